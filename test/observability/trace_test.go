package observability_test

import (
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	oteltrace "go.opentelemetry.io/otel/trace"

	"github.com/cloudcommerce/cloudcommerce/internal/dev/testkit"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
	"github.com/cloudcommerce/cloudcommerce/internal/trace"
)

func attr(s sdktrace.ReadOnlySpan, key attribute.Key) string {
	for _, kv := range s.Attributes() {
		if kv.Key == key {
			return kv.Value.Emit()
		}
	}
	return ""
}

// TestOneConnectedTracePerOrder places an order through the intake and
// follows it through EventBridge and the three stage queues: every span of
// the order is in the intake's trace, each stage's handler span is a child
// of the intake span, and the AWS calls the handlers make are children of
// the handler spans.
func TestOneConnectedTracePerOrder(t *testing.T) {
	t.Parallel()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(t.Context()) })
	s := start(t, options{tracing: tp})
	s.stock(t, "SKU-TRACE", 10)
	id := s.place(t, testkit.Order("tok_visa", "SKU-TRACE"))
	if o := s.final(t, id); o.Status != pipeline.StatusShipped {
		t.Fatalf("order %s ended %s (%s), want SHIPPED", id, o.Status, o.Reason)
	}

	// The shipping span ends when its handler returns, just after the
	// order is written: wait for it.
	stageSpan := map[pipeline.Stage]sdktrace.ReadOnlySpan{}
	var spans []sdktrace.ReadOnlySpan
	deadline := time.Now().Add(30 * time.Second)
	for len(stageSpan) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("stage spans for order %s: got %d of 3", id, len(stageSpan))
		}
		time.Sleep(50 * time.Millisecond)
		spans = rec.Ended()
		for _, sp := range spans {
			if attr(sp, trace.AttrOrderID) == id && strings.HasSuffix(sp.Name(), " process") {
				stageSpan[pipeline.Stage(attr(sp, trace.AttrStage))] = sp
			}
		}
	}

	var root sdktrace.ReadOnlySpan
	for _, sp := range spans {
		if sp.SpanKind() == oteltrace.SpanKindServer && attr(sp, trace.AttrOrderID) == id {
			root = sp
		}
	}
	if root == nil {
		t.Fatal("no intake server span for the order")
	}
	if root.Parent().IsValid() {
		t.Errorf("the intake span has a parent %s; it should start the trace", root.Parent().SpanID())
	}
	traceID := root.SpanContext().TraceID()

	byID := map[oteltrace.SpanID]sdktrace.ReadOnlySpan{}
	var ours []sdktrace.ReadOnlySpan
	for _, sp := range spans {
		if sp.SpanContext().TraceID() == traceID {
			byID[sp.SpanContext().SpanID()] = sp
			ours = append(ours, sp)
		}
	}
	for _, st := range pipeline.Stages {
		sp := stageSpan[st]
		if sp.SpanContext().TraceID() != traceID {
			t.Errorf("%s span is in trace %s, the order's trace is %s", st, sp.SpanContext().TraceID(), traceID)
		}
		if sp.Parent().SpanID() != root.SpanContext().SpanID() {
			t.Errorf("%s span's parent is %s, want the intake span %s", st, sp.Parent().SpanID(), root.SpanContext().SpanID())
		}
		if sp.SpanKind() != oteltrace.SpanKindConsumer || attr(sp, trace.AttrOutcome) != "ok" {
			t.Errorf("%s span: kind %s, outcome %q", st, sp.SpanKind(), attr(sp, trace.AttrOutcome))
		}
	}
	// Every span of the trace hangs off another one of it: one tree.
	for _, sp := range ours {
		if sp == root {
			continue
		}
		if _, ok := byID[sp.Parent().SpanID()]; !ok {
			t.Errorf("span %q has a parent outside the trace's recorded spans", sp.Name())
		}
	}
	// AWS calls are client spans under the handler that made them.
	calls := map[string][]string{}
	for _, sp := range ours {
		if sp.SpanKind() != oteltrace.SpanKindClient {
			continue
		}
		parent := byID[sp.Parent().SpanID()]
		if parent == nil {
			continue
		}
		calls[parent.Name()] = append(calls[parent.Name()], sp.Name())
		if attr(sp, "rpc.system") != "aws-api" {
			t.Errorf("AWS span %q lacks rpc.system=aws-api", sp.Name())
		}
	}
	want := map[string]string{
		root.Name():         "DynamoDB.PutItem",            // the order is recorded
		"inventory process": "DynamoDB.TransactWriteItems", // stock and status in one write
		"payment process":   "DynamoDB.PutItem",
		"shipping process":  "DynamoDB.PutItem",
	}
	for parent, call := range want {
		found := false
		for _, c := range calls[parent] {
			found = found || c == call
		}
		if !found {
			t.Errorf("span %q has AWS children %v, want %s among them", parent, calls[parent], call)
		}
	}
	t.Logf("trace %s: %d spans; AWS calls by parent: %v", traceID, len(ours), calls)
}

// TestTraceStartsAtTheStageWhenTheProducerSentNone puts OrderPlaced on the
// stage queue with no trace in it (a producer other than the intake): the
// inventory stage starts the trace, and the later stages join it.
func TestTraceStartsAtTheStageWhenTheProducerSentNone(t *testing.T) {
	t.Parallel()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(t.Context()) })
	s := start(t, options{tracing: tp})
	s.stock(t, "SKU-TRACE", 10)
	o, err := pipeline.NewOrder("untraced-"+s.env.Prefix, testkit.Order("tok_visa", "SKU-TRACE"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	s.send(t, s.env.QueueURL(pipeline.StageInventory, false), testkit.Envelope(t, pipeline.Event{Type: pipeline.EventOrderPlaced, Order: o}), nil)
	if got := s.final(t, o.ID); got.Status != pipeline.StatusShipped || got.Trace == "" {
		t.Fatalf("order ended %s with trace %q; want SHIPPED with a trace", got.Status, got.Trace)
	}
	traces := map[oteltrace.TraceID]bool{}
	deadline := time.Now().Add(30 * time.Second)
	for n := 0; n < 3; {
		if time.Now().After(deadline) {
			t.Fatalf("%d of 3 stage spans ended", n)
		}
		time.Sleep(50 * time.Millisecond)
		n = 0
		clear(traces)
		for _, sp := range rec.Ended() {
			if attr(sp, trace.AttrOrderID) == o.ID && strings.HasSuffix(sp.Name(), " process") {
				n++
				traces[sp.SpanContext().TraceID()] = true
			}
		}
	}
	if len(traces) != 1 {
		t.Fatalf("the order's three stage spans are in %d traces, want 1", len(traces))
	}
}
