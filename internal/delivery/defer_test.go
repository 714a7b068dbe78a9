package delivery

import (
	"testing"
	"time"

	"github.com/cloudcommerce/cloudcommerce/internal/config"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
	"github.com/cloudcommerce/cloudcommerce/internal/topology"
)

func TestClassifyDefersWhatANewerReleaseWrote(t *testing.T) {
	t.Parallel()
	for _, reason := range pipeline.DeferReasons {
		err := pipeline.Deferred(reason, errTest)
		if d := Classify("", err); d.Action != Defer || d.Reason != reason || d.Err != err {
			t.Errorf("%s: %+v, want Defer with the reason", reason, d)
		}
	}
}

type testError struct{}

func (testError) Error() string { return "test" }

var errTest = testError{}

// A message handed back on every delivery is delivered at most
// maxReceiveCount times (SQS moves it to the DLQ on the receive after the
// last), the last time after the visibilities of the deliveries before
// it: those must span DeferWindow, for the queues of deploy/topology.json
// and for any maxReceiveCount, with no visibility over SQS's 12 hours.
func TestDeferralsOutlastADeployBeforeTheDeadLetterRule(t *testing.T) {
	t.Parallel()
	topo, err := topology.Load()
	if err != nil {
		t.Fatal(err)
	}
	check := func(name string, base time.Duration, maxReceives int) (first, lastAt time.Duration) {
		for n := 1; n <= maxReceives; n++ {
			d := DeferDelay(base, maxReceives, n)
			if d <= 0 || d > MaxVisibility {
				t.Errorf("%s: delivery %d of %d hidden for %v, want in (0, 12h]", name, n, maxReceives, d)
			}
			if n == 1 {
				first = d
			}
			if n < maxReceives {
				lastAt += d
			}
		}
		if maxReceives > 1 && lastAt < DeferWindow {
			t.Errorf("%s: the last of %d deliveries comes %v after the first, want at least %v", name, maxReceives, lastAt, DeferWindow)
		}
		return first, lastAt
	}
	for _, st := range pipeline.Stages {
		r := topo.MaxReceives(st)
		if r < 2 {
			t.Fatalf("maxReceiveCount %d for %s in the topology: no hand-back could reach another task", r, st)
		}
		first, lastAt := check(string(st), config.DefaultDeferBase, r)
		t.Logf("%s: maxReceiveCount %d; first hand-back %v, hold before the last delivery %v, last delivery %v after the first",
			st, r, first, DeferDelay(config.DefaultDeferBase, r, r-1), lastAt)
	}
	for _, base := range []time.Duration{0, time.Second, 5 * time.Second, time.Minute, 2 * time.Hour} {
		for _, r := range []int{2, 3, 5, 10, 100, 1000} {
			check(base.String(), base, r)
		}
	}
	// Early hand-backs are short and grow by the base: a task of the newer
	// release soon takes the message.
	for n, want := range map[int]time.Duration{1: 5 * time.Second, 2: 10 * time.Second, 3: 15 * time.Second} {
		if d := DeferDelay(5*time.Second, 10, n); d < want || d > want*5/4 {
			t.Errorf("hand-back %d: %v, want %v plus at most a quarter", n, d, want)
		}
	}
	// An unknown maxReceiveCount (or a single delivery) holds the message
	// for the whole window.
	if d := DeferDelay(5*time.Second, 0, 3); d < DeferWindow {
		t.Errorf("unknown maxReceiveCount: hand-back %v, want the whole window", d)
	}
}

// The hand-back log line: at most one per reason per minute, the next
// one saying how many were not logged.
func TestEveryLetsOnePerKeyPerPeriod(t *testing.T) {
	t.Parallel()
	var e every
	t0 := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	steps := []struct {
		key     string
		at      time.Duration
		ok      bool
		skipped int
	}{
		{pipeline.ReasonNewerSchema, 0, true, 0},
		{pipeline.ReasonNewerSchema, time.Second, false, 0},
		{pipeline.ReasonUnknownEvent, 2 * time.Second, true, 0}, // another key has its own minute
		{pipeline.ReasonNewerSchema, 59 * time.Second, false, 0},
		{pipeline.ReasonNewerSchema, time.Minute, true, 2},
		{pipeline.ReasonNewerSchema, time.Minute + time.Second, false, 0},
		{pipeline.ReasonUnknownEvent, time.Minute + 2*time.Second, true, 0},
		{pipeline.ReasonNewerSchema, 3 * time.Minute, true, 1},
	}
	for i, s := range steps {
		skipped, ok := e.allow(s.key, t0.Add(s.at), time.Minute)
		if ok != s.ok || skipped != s.skipped {
			t.Errorf("step %d (%s at %v): allow = %d, %v; want %d, %v", i, s.key, s.at, skipped, ok, s.skipped, s.ok)
		}
	}
}
