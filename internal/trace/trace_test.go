package trace

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	oteltrace "go.opentelemetry.io/otel/trace"

	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
)

func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

func TestFromEnv(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		env     func(string) string
		enabled bool
		err     string
	}{
		{"off by default", env(), false, ""},
		{"none", env("OTEL_TRACES_EXPORTER", "none", "OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"), false, ""},
		{"sdk disabled", env("OTEL_SDK_DISABLED", "true", "OTEL_TRACES_EXPORTER", "console"), false, ""},
		{"endpoint turns otlp on", env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"), true, ""},
		{"console", env("OTEL_TRACES_EXPORTER", "console"), true, ""},
		{"grpc refused", env("OTEL_TRACES_EXPORTER", "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"), false, "http/protobuf only"},
		{"unknown exporter", env("OTEL_TRACES_EXPORTER", "zipkin"), false, `"zipkin"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := FromEnv(ctx, tc.env, "test")
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want one mentioning %s", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = p.Shutdown(ctx) }()
			if p.Enabled != tc.enabled {
				t.Fatalf("enabled = %v, want %v", p.Enabled, tc.enabled)
			}
		})
	}
}

func TestTraceparentRoundTrip(t *testing.T) {
	t.Parallel()
	if got := Traceparent(context.Background()); got != "" {
		t.Fatalf("no span: %q", got)
	}
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	if got := Traceparent(WithTraceparent(context.Background(), tp)); got != tp {
		t.Fatalf("round trip: %q", got)
	}
	if got := Traceparent(WithTraceparent(context.Background(), "garbage")); got != "" {
		t.Fatalf("garbage gave %q", got)
	}
}

func TestHandlerJoinsTheOrdersTraceAndRecordsTheOutcome(t *testing.T) {
	t.Parallel()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	body := `{"detail-type":"OrderPlaced","detail":{"order_id":"o-1","trace":"` + parent + `"}}`
	var inner oteltrace.SpanContext
	h := Handler(tp, pipeline.StageInventory, func(ctx context.Context, m pipeline.Message) (pipeline.Outcome, error) {
		inner = oteltrace.SpanContextFromContext(ctx)
		return "", pipeline.Permanent(pipeline.ReasonInvalid, errors.New("bad order"))
	})
	if _, err := h(context.Background(), pipeline.Message{ID: "m-1", Body: []byte(body), ReceiveCount: 2}); err == nil {
		t.Fatal("the handler's error was lost")
	}
	spans := rec.Ended()
	if len(spans) != 1 {
		t.Fatalf("%d spans", len(spans))
	}
	sp := spans[0]
	if sp.Name() != "inventory process" || sp.Parent().SpanID().String() != "00f067aa0ba902b7" ||
		sp.SpanContext().TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || inner.SpanID() != sp.SpanContext().SpanID() {
		t.Fatalf("span %s parent %s trace %s", sp.Name(), sp.Parent().SpanID(), sp.SpanContext().TraceID())
	}
	attrs := map[string]string{}
	for _, kv := range sp.Attributes() {
		attrs[string(kv.Key)] = kv.Value.Emit()
	}
	if attrs["cloudcommerce.order_id"] != "o-1" || attrs["cloudcommerce.outcome"] != "dead_lettered" ||
		attrs["cloudcommerce.dead_letter_reason"] != pipeline.ReasonInvalid || attrs["messaging.message.id"] != "m-1" {
		t.Fatalf("attributes %v", attrs)
	}
}

func TestHandlerGivesAnUntracedOrderATrace(t *testing.T) {
	t.Parallel()
	tp := sdktrace.NewTracerProvider()
	var seen []byte
	h := Handler(tp, pipeline.StageInventory, func(ctx context.Context, m pipeline.Message) (pipeline.Outcome, error) {
		seen = m.Body
		return pipeline.OutcomeOK, nil
	})
	body := `{"detail-type":"OrderPlaced","source":"cloudcommerce.orders","detail":{"order_id":"o-2","status":"PLACED"}}`
	if _, err := h(context.Background(), pipeline.Message{Body: []byte(body)}); err != nil {
		t.Fatal(err)
	}
	var env struct {
		Source string `json:"source"`
		Detail struct {
			OrderID string `json:"order_id"`
			Status  string `json:"status"`
			Trace   string `json:"trace"`
		} `json:"detail"`
	}
	if err := json.Unmarshal(seen, &env); err != nil {
		t.Fatal(err)
	}
	if env.Detail.OrderID != "o-2" || env.Detail.Status != "PLACED" || env.Source != "cloudcommerce.orders" || !strings.HasPrefix(env.Detail.Trace, "00-") {
		t.Fatalf("the handler saw %s", seen)
	}
	// A body that is not an event is passed on untouched.
	if _, err := h(context.Background(), pipeline.Message{Body: []byte("not json")}); err != nil || string(seen) != "not json" {
		t.Fatalf("non-event body became %q", seen)
	}
}
