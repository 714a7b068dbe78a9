package bus_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"

	"github.com/cloudcommerce/cloudcommerce/internal/bus"
	"github.com/cloudcommerce/cloudcommerce/internal/dev/awsfault"
	"github.com/cloudcommerce/cloudcommerce/internal/dev/emulator"
	"github.com/cloudcommerce/cloudcommerce/internal/dev/testkit"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
)

// Events go to the bus of a topology on the in-process emulator (or the
// endpoint in AWS_ENDPOINT_URL), through the fault endpoint; its rules
// route OrderPlaced to the inventory queue.
func TestMain(m *testing.M) { emulator.RunTests(m) }

type fixture struct {
	env   *testkit.Env
	proxy *awsfault.Proxy
	pub   *bus.Publisher
	flush []int
	mu    sync.Mutex
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{env: testkit.Provision(t)}
	var cfg aws.Config
	f.proxy, cfg = testkit.FaultEndpoint(t)
	// A long linger so that concurrent publishers share requests.
	f.pub = bus.New(eventbridge.NewFromConfig(cfg), bus.Config{Bus: f.env.Prov.Names.Bus, Batch: 10, Linger: 300 * time.Millisecond,
		OnFlush: func(n int) { f.mu.Lock(); f.flush = append(f.flush, n); f.mu.Unlock() }})
	t.Cleanup(f.pub.Close)
	return f
}

func placedEvent(t *testing.T, id string) pipeline.Event {
	t.Helper()
	o, err := pipeline.NewOrder(id, testkit.Order("tok_visa", "SKU-A"), time.Now().UTC())
	if err != nil {
		t.Fatal(err)
	}
	return pipeline.Event{Type: pipeline.EventOrderPlaced, Order: o}
}

// publishAll publishes one event per id, each from its own goroutine as
// concurrent handlers do, and returns each caller's error.
func (f *fixture) publishAll(t *testing.T, ids []string) map[string]error {
	t.Helper()
	errs := map[string]error{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, id := range ids {
		ev := placedEvent(t, id)
		wg.Go(func() {
			err := f.pub.Publish(context.Background(), ev)
			mu.Lock()
			errs[id] = err
			mu.Unlock()
		})
	}
	wg.Wait()
	return errs
}

// arrived returns the order ids of the events the inventory queue
// received, waiting for want of them (and a moment for any more).
func (f *fixture) arrived(t *testing.T, want int) []string {
	t.Helper()
	var ids []string
	for _, m := range f.env.Receive(t, f.env.QueueURL(pipeline.StageInventory, false), want+1, 5*time.Second) {
		ev, err := pipeline.DecodeEvent([]byte(aws.ToString(m.Body)))
		if err != nil {
			t.Fatalf("inventory queue: %v", err)
		}
		ids = append(ids, ev.Order.ID)
	}
	slices.Sort(ids)
	return ids
}

// Per-entry PutEvents failures reach exactly the callers whose entries
// failed, with EventBridge's error code; the others' events are delivered.
func TestEntryFailuresReachExactlyTheirCallers(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	internal := f.proxy.AddEntries(&awsfault.EntryFault{Service: "EventBridge", Operation: "PutEvents", Match: `bad-internal`,
		Code: "InternalFailure", Message: "Internal service error"})
	throttled := f.proxy.AddEntries(&awsfault.EntryFault{Service: "EventBridge", Operation: "PutEvents", Match: `bad-throttled`,
		Code: "ThrottlingException", Message: "Rate exceeded"})
	var ids, good []string
	for _, id := range []string{"ok-1", "bad-internal-1", "ok-2", "ok-3", "bad-throttled-1", "ok-4", "bad-internal-2", "ok-5", "ok-6", "ok-7"} {
		id = f.env.Prefix + "-" + id
		ids = append(ids, id)
		if strings.Contains(id, "-ok-") {
			good = append(good, id)
		}
	}
	errs := f.publishAll(t, ids)
	for _, id := range ids {
		err := errs[id]
		switch {
		case strings.Contains(id, "bad-internal"):
			if err == nil || !strings.Contains(err.Error(), "InternalFailure") || !strings.Contains(err.Error(), id) {
				t.Errorf("%s: error %v, want its entry's InternalFailure naming the order", id, err)
			}
		case strings.Contains(id, "bad-throttled"):
			if err == nil || !strings.Contains(err.Error(), "ThrottlingException") {
				t.Errorf("%s: error %v, want its entry's ThrottlingException", id, err)
			}
		default:
			if err != nil {
				t.Errorf("%s: error %v, want nil (its entry was accepted)", id, err)
			}
		}
	}
	if internal.Hits() != 2 || throttled.Hits() != 1 {
		t.Errorf("entry faults hit %d and %d times, want 2 and 1", internal.Hits(), throttled.Hits())
	}
	slices.Sort(good)
	if got := f.arrived(t, len(good)); !slices.Equal(got, good) {
		t.Errorf("inventory queue received %v, want exactly the accepted %v", got, good)
	}
}

// A request that fails as a whole fails every caller in it (after the SDK's
// retries where EventBridge calls the error retryable), and delivers none.
func TestAFailedRequestFailsEveryCaller(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		answer   awsfault.Response
		code     string
		attempts int
	}{
		{"access denied", awsfault.EventBridgeAccessDenied, "AccessDeniedException", 1},
		{"internal", awsfault.EventBridgeInternal, "InternalException", 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			f.proxy.Add(&awsfault.Rule{Service: "EventBridge", Operation: "PutEvents", Response: tc.answer})
			ids := []string{f.env.Prefix + "-a", f.env.Prefix + "-b", f.env.Prefix + "-c"}
			for id, err := range f.publishAll(t, ids) {
				if err == nil || !strings.Contains(err.Error(), tc.code) {
					t.Errorf("%s: error %v, want %s", id, err, tc.code)
				}
			}
			f.mu.Lock()
			requests := len(f.flush)
			f.mu.Unlock()
			if got := f.proxy.Requests("EventBridge", "PutEvents"); got != tc.attempts*requests {
				t.Errorf("PutEvents tried %d times for %d requests, want %d each", got, requests, tc.attempts)
			}
			if got := f.arrived(t, 0); len(got) != 0 {
				t.Errorf("inventory queue received %v, want nothing", got)
			}
		})
	}
}

// With nothing failing, one PutEvents carries the concurrent callers'
// events and each arrives once.
func TestConcurrentEventsShareRequestsAndArriveOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var ids []string
	for _, s := range []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l"} {
		ids = append(ids, f.env.Prefix+"-"+s)
	}
	for id, err := range f.publishAll(t, ids) {
		if err != nil {
			t.Errorf("%s: %v", id, err)
		}
	}
	f.mu.Lock()
	sizes := slices.Clone(f.flush)
	f.mu.Unlock()
	total := 0
	for _, n := range sizes {
		if n > 10 {
			t.Errorf("a PutEvents carried %d entries, more than EventBridge's 10", n)
		}
		total += n
	}
	if total != len(ids) {
		t.Errorf("requests carried %d entries (%v), want %d", total, sizes, len(ids))
	}
	if got := f.arrived(t, len(ids)); !slices.Equal(got, ids) {
		t.Errorf("inventory queue received %v, want %v", got, ids)
	}
}
