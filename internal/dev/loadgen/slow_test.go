package loadgen

import (
	"strings"
	"testing"
	"time"

	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
)

func TestExplainSlowOrders(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	order := func(id string, paid, shipped float64) pipeline.Order {
		return pipeline.Order{ID: id, Status: pipeline.StatusShipped, PlacedAt: t0, UpdatedAt: at(shipped),
			History: map[pipeline.Status]time.Time{pipeline.StatusPlaced: t0, pipeline.StatusReserved: at(0.05), pipeline.StatusPaid: at(paid), pipeline.StatusShipped: at(shipped)}}
	}
	line := func(id string, s float64, rc int) string {
		return `{"level":"warn","time":"` + at(s).Format("2006-01-02T15:04:05.000Z0700") + `","msg":"handler failed; will retry","stage":"payment","message_id":"m","receive_count":` +
			string(rune('0'+rc)) + `,"order_id":"` + id + `","error":"payment provider: processing error"}`
	}
	slow := []SlowOrder{
		// Retried twice; received again 20 s after each back-off expired.
		slowOrder(order("parked", 43.2, 43.3), true),
		// Retried twice; received again as soon as each back-off expired.
		slowOrder(order("prompt", 3.2, 3.3), true),
		// Waited in the shipping queue with nothing logged.
		slowOrder(order("queued", 0.2, 6.4), false),
	}
	logs := strings.Join([]string{
		line("parked", 0.1, 1), line("parked", 21.1, 2),
		line("prompt", 0.1, 1), line("prompt", 1.1, 2),
		`{"level":"info","time":"x","msg":"unrelated"}`, line("someone-else", 1, 1),
	}, "\n")
	if err := Explain(slow, time.Second, strings.NewReader(logs)); err != nil {
		t.Fatal(err)
	}
	if s := slow[0]; s.Slowest.Stage != "payment" || len(s.Attempts) != 2 || !strings.Contains(s.Cause, "KUMO.md gap 3") || !strings.Contains(s.Cause, "received again 20.0 s after") {
		t.Errorf("parked: stage %s, %d attempts, cause %q", s.Slowest.Stage, len(s.Attempts), s.Cause)
	}
	if s := slow[1]; len(s.Attempts) != 2 || !strings.HasPrefix(s.Cause, "deliberate back-off") {
		t.Errorf("prompt: %d attempts, cause %q", len(s.Attempts), s.Cause)
	}
	if s := slow[2]; s.Slowest.Stage != "shipping" || len(s.Attempts) != 0 || !strings.Contains(s.Cause, "queued 6.2 s in shipping") {
		t.Errorf("queued: stage %s, cause %q", s.Slowest.Stage, s.Cause)
	}
	if got := len(slow[0].Spans); got != 3 {
		t.Errorf("%d spans, want 3 (placed→reserved→paid→shipped)", got)
	}
}
