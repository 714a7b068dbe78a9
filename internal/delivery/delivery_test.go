package delivery

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
)

func TestOrderIDOfAnEventBody(t *testing.T) {
	t.Parallel()
	for body, want := range map[string]string{
		`{"detail-type":"OrderPlaced","detail":{"order_id":"o-42","status":"PLACED"}}`: "o-42",
		`{"this is": not json`:       "",
		`{"detail":"not an object"}`: "",
	} {
		ev, _ := NewMessage("m", body, 1).Event()
		if ev.Order.ID != want {
			t.Errorf("order id of %s = %q, want %q", body, ev.Order.ID, want)
		}
	}
}

func TestClassify(t *testing.T) {
	t.Parallel()
	if d := Classify(pipeline.OutcomeDuplicate, nil); d.Action != Acknowledge || d.Outcome != pipeline.OutcomeDuplicate {
		t.Errorf("nil error: %+v", d)
	}
	perm := pipeline.Permanent(pipeline.ReasonMalformed, errors.New("bad body"))
	if d := Classify("", perm); d.Action != DeadLetter || d.Reason != pipeline.ReasonMalformed || d.Err != perm {
		t.Errorf("permanent error: %+v", d)
	}
	transient := errors.New("throttled")
	if d := Classify("", transient); d.Action != Retry || d.Err != transient {
		t.Errorf("transient error: %+v", d)
	}
	if d := Classify("", &PanicError{Value: "boom"}); d.Action != Retry {
		t.Errorf("panic: %+v", d)
	}
}

func TestBackoffGrowsAndStaysUnderTheCeiling(t *testing.T) {
	t.Parallel()
	for receives, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 4: 8 * time.Second, 30: time.Minute} {
		for range 50 {
			if d := Backoff(time.Second, time.Minute, receives); d < want/2 || d > want {
				t.Fatalf("Backoff(1s, 1m, %d) = %v, want in [%v, %v]", receives, d, want/2, want)
			}
		}
	}
}

func TestStackRecoversPanicsAndEnforcesTheDeadline(t *testing.T) {
	t.Parallel()
	panics := Chain(func(context.Context, pipeline.Message) (pipeline.Outcome, error) { panic("boom") },
		Stack(pipeline.StageInventory, time.Second, nil)...)
	_, err := panics(context.Background(), NewMessage("m", "{}", 1))
	var pe *PanicError
	if !errors.As(err, &pe) || pe.Value != "boom" || !strings.Contains(string(pe.Stack), "delivery") || err.Error() != "handler panic: boom" {
		t.Fatalf("panic became %v", err)
	}
	// A handler that swallows its cancellation and returns nil is retried.
	swallows := Chain(func(ctx context.Context, _ pipeline.Message) (pipeline.Outcome, error) {
		<-ctx.Done()
		return pipeline.OutcomeOK, nil
	}, Stack(pipeline.StageInventory, 10*time.Millisecond, nil)...)
	if _, err := swallows(context.Background(), NewMessage("m", "{}", 1)); !errors.Is(err, ErrHandlerDeadline) {
		t.Fatalf("late nil became %v, want ErrHandlerDeadline", err)
	}
}

func TestChainRunsTheFirstMiddlewareOutermost(t *testing.T) {
	t.Parallel()
	var order []string
	mw := func(name string) Middleware {
		return func(next pipeline.Handler) pipeline.Handler {
			return func(ctx context.Context, m pipeline.Message) (pipeline.Outcome, error) {
				order = append(order, name)
				return next(ctx, m)
			}
		}
	}
	h := Chain(func(context.Context, pipeline.Message) (pipeline.Outcome, error) {
		order = append(order, "handler")
		return pipeline.OutcomeOK, nil
	}, mw("a"), nil, mw("b"))
	if _, err := h(context.Background(), pipeline.Message{}); err != nil {
		t.Fatal(err)
	}
	if strings.Join(order, ",") != "a,b,handler" {
		t.Fatalf("order %v", order)
	}
}

func TestAMessageIsDecodedOnce(t *testing.T) {
	t.Parallel()
	body := `{"detail-type":"OrderPlaced","source":"cloudcommerce.orders","detail":{"order_id":"o-7","status":"PLACED"}}`
	m := NewMessage("m", body, 1)
	// The decoded event travels with the message: changing the body
	// afterwards does not change what the handler reads.
	m.Body = []byte("garbage")
	ev, err := m.Event()
	if err != nil || ev.Order.ID != "o-7" || ev.Type != pipeline.EventOrderPlaced {
		t.Fatalf("event %+v, %v", ev, err)
	}
}
