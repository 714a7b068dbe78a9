package queue_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/cloudcommerce/cloudcommerce/internal/delivery"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
	"github.com/cloudcommerce/cloudcommerce/internal/queue"
)

// An event a newer release wrote is handed back on every delivery, never
// deleted or dead-lettered by the consumer: short hand-backs first, then
// one that holds it so long that the last delivery the queue's redrive
// policy allows (maxReceiveCount 5 here) comes 30 minutes after the first.
func TestAnEventOfANewerReleaseIsHandedBackUntilTheWindowIsCovered(t *testing.T) {
	t.Parallel()
	const maxReceives = 5
	h := newRecorder(func(c call) (pipeline.Outcome, error) {
		_, err := pipeline.DecodeEvent([]byte(c.body))
		return "", err
	})
	var visibility <-chan string
	x := start(t, queue.Config{Visibility: 30 * time.Second, WaitTime: time.Second, DeferBase: time.Second, MaxReceives: maxReceives},
		h.handle, func(e *endpoint) { visibility = e.watch("ChangeMessageVisibility") })
	x.send(`{"detail-type":"PaymentCaptured","source":"cloudcommerce.orders","detail":{"schema_version":999,"order_id":"o-next"}}`)
	var total time.Duration
	for n := 1; n < maxReceives; n++ {
		if c := h.next(t); c.receives != n {
			t.Fatalf("delivery %d came as receive %d", n, c.receives)
		}
		var req struct{ VisibilityTimeout int }
		select {
		case b := <-visibility:
			if err := json.Unmarshal([]byte(b), &req); err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("delivery %d: no ChangeMessageVisibility", n)
		}
		d := time.Duration(req.VisibilityTimeout) * time.Second
		total += d
		if n < maxReceives-1 && d > 10*time.Second {
			t.Fatalf("delivery %d handed back for %v: a newer task would wait too long", n, d)
		}
	}
	if total < delivery.DeferWindow {
		t.Errorf("the first %d deliveries handed back for %v in all, want at least %v", maxReceives-1, total, delivery.DeferWindow)
	}
	if v, nv := x.counts(x.url); v != 0 || nv != 1 {
		t.Errorf("after the last hand-back the queue has %d visible and %d in-flight messages, want 0 and 1", v, nv)
	}
	if v, nv := x.counts(x.dlq); v+nv != 0 {
		t.Errorf("the DLQ holds %d messages, want none", v+nv)
	}
	if v := testutil.ToFloat64(x.m.Deferred.WithLabelValues(string(stage), pipeline.ReasonNewerSchema)); v != maxReceives-1 {
		t.Errorf("deferrals counted %v, want %d", v, maxReceives-1)
	}
	if len(x.ep.bodies("DeleteMessageBatch")) != 0 {
		t.Error("the consumer deleted a deferred message")
	}
}
