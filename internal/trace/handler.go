package trace

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	oteltrace "go.opentelemetry.io/otel/trace"

	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
)

// Span attribute keys of the pipeline's own vocabulary.
const (
	AttrOrderID      = attribute.Key("cloudcommerce.order_id")
	AttrStage        = attribute.Key("cloudcommerce.stage")
	AttrEvent        = attribute.Key("cloudcommerce.event")
	AttrOutcome      = attribute.Key("cloudcommerce.outcome")
	AttrReceiveCount = attribute.Key("cloudcommerce.receive_count")
	AttrReason       = attribute.Key("cloudcommerce.dead_letter_reason")
)

// Middleware is Handler as a delivery middleware.
func Middleware(tp oteltrace.TracerProvider, stage pipeline.Stage) func(pipeline.Handler) pipeline.Handler {
	return func(next pipeline.Handler) pipeline.Handler { return Handler(tp, stage, next) }
}

// Handler wraps a stage handler so that each message is handled in a
// consumer span named "<stage> process", a child of the trace the order
// carries in detail.trace (the intake's span). The span records the
// outcome, or the error and whether it is permanent.
//
// An event whose detail has no trace (a producer that put OrderPlaced on
// the bus itself) starts a new trace here, and the handler sees the body
// with detail.trace set to it, so the order carries that trace on to the
// next stages and the order is still one trace.
//
// Safe for concurrent use when next is.
func Handler(tp oteltrace.TracerProvider, stage pipeline.Stage, next pipeline.Handler) pipeline.Handler {
	tr := OrNoop(tp).Tracer(InstrumentationName)
	name := string(stage) + " process"
	return func(ctx context.Context, m pipeline.Message) (pipeline.Outcome, error) {
		m = m.Decode() // a no-op for a message the consumer decoded
		ev, decodeErr := m.Event()
		ctx, span := tr.Start(WithTraceparent(ctx, ev.Order.Trace), name,
			oteltrace.WithSpanKind(oteltrace.SpanKindConsumer),
			oteltrace.WithAttributes(
				attribute.String("messaging.system", "aws_sqs"),
				attribute.String("messaging.operation.type", "process"),
				attribute.String("messaging.message.id", m.ID),
				AttrStage.String(string(stage)),
				AttrReceiveCount.Int(m.ReceiveCount),
			))
		defer span.End()
		defer func() {
			if r := recover(); r != nil {
				span.SetStatus(codes.Error, "handler panicked")
				panic(r) // the consumer recovers it and retries the message
			}
		}()
		if ev.Order.ID != "" {
			span.SetAttributes(AttrOrderID.String(ev.Order.ID), AttrEvent.String(string(ev.Type)))
		}
		if ev.Order.Trace == "" && span.SpanContext().IsValid() {
			tp := Traceparent(ctx)
			if b := pipeline.WithDetailTrace(m.Body, tp); b != nil {
				m.Body = b
			}
			if decodeErr == nil {
				// The handler reads the decoded event, not the body.
				ev.Order.Trace = tp
				m = m.WithEvent(ev)
			}
		}
		out, err := next(ctx, m)
		deferReason, deferred := pipeline.IsDeferred(err)
		switch reason, permanent := pipeline.IsPermanent(err); {
		case err == nil:
			span.SetAttributes(AttrOutcome.String(string(out)))
		case deferred:
			// Handed back for a newer release: expected during a deploy.
			span.SetAttributes(AttrOutcome.String("deferred"), AttrReason.String(deferReason))
		case permanent:
			span.SetAttributes(AttrOutcome.String("dead_lettered"), AttrReason.String(reason))
			span.RecordError(err)
			span.SetStatus(codes.Error, "permanent failure: "+reason)
		default:
			span.SetAttributes(AttrOutcome.String("retried"))
			span.RecordError(err)
			msg := "transient failure"
			if errors.Is(err, context.DeadlineExceeded) {
				msg = "handler deadline exceeded"
			}
			span.SetStatus(codes.Error, msg)
		}
		return out, err
	}
}
