package delivery

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/cloudcommerce/cloudcommerce/internal/metrics"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
)

// Middleware wraps a handler with one concern. It must return a handler
// that is safe for concurrent use when next is.
type Middleware func(next pipeline.Handler) pipeline.Handler

// Chain wraps h in mw, the first outermost: Chain(h, a, b) runs a, then b,
// then h.
func Chain(h pipeline.Handler, mw ...Middleware) pipeline.Handler {
	for i := len(mw) - 1; i >= 0; i-- {
		if mw[i] != nil {
			h = mw[i](h)
		}
	}
	return h
}

// Stack is the middleware every stage handler runs in, outermost first:
// the duration metric (when m is not nil), the deadline, then the panic
// recovery; extra (tracing, say) sits inside them, next to the handler.
func Stack(stage pipeline.Stage, timeout time.Duration, m *metrics.Metrics, extra ...Middleware) []Middleware {
	return append([]Middleware{Measure(m, stage), Deadline(timeout), Recover()}, extra...)
}

// NewMessage is a delivery of a message body, decoded once: the handler,
// the tracing middleware and the settler's log lines all read the result.
func NewMessage(id, body string, receiveCount int) pipeline.Message {
	return pipeline.Message{ID: id, Body: []byte(body), ReceiveCount: receiveCount}.Decode()
}

// PanicError is the error of a handler that panicked: the message is
// retried and the process lives on.
type PanicError struct {
	Value any
	Stack []byte
}

func (e *PanicError) Error() string { return fmt.Sprintf("handler panic: %v", e.Value) }

// Recover turns a panic of the handler into a *PanicError.
func Recover() Middleware {
	return func(next pipeline.Handler) pipeline.Handler {
		return func(ctx context.Context, m pipeline.Message) (out pipeline.Outcome, err error) {
			defer func() {
				if r := recover(); r != nil {
					out, err = "", &PanicError{Value: r, Stack: debug.Stack()}
				}
			}()
			return next(ctx, m)
		}
	}
}

// ErrHandlerDeadline is the cause of a handler context that ran out of time.
var ErrHandlerDeadline = errors.New("handler deadline exceeded")

// Deadline runs the handler under a context that ends after timeout with
// the cause ErrHandlerDeadline. A handler that returned nil after its
// context ended (it may have swallowed the cancellation) gets the
// context's cause as its error, so the message is retried: retrying is
// idempotent, acknowledging half-done work is not.
func Deadline(timeout time.Duration) Middleware {
	return func(next pipeline.Handler) pipeline.Handler {
		return func(ctx context.Context, m pipeline.Message) (pipeline.Outcome, error) {
			ctx, cancel := context.WithTimeoutCause(ctx, timeout, ErrHandlerDeadline)
			defer cancel()
			out, err := next(ctx, m)
			if err == nil && ctx.Err() != nil {
				err = context.Cause(ctx)
			}
			return out, err
		}
	}
}

// Measure observes each run's duration in the stage's handler duration
// histogram; with m nil it adds nothing.
func Measure(m *metrics.Metrics, stage pipeline.Stage) Middleware {
	if m == nil {
		return nil
	}
	hist := m.HandlerDuration.WithLabelValues(string(stage))
	return func(next pipeline.Handler) pipeline.Handler {
		return func(ctx context.Context, msg pipeline.Message) (pipeline.Outcome, error) {
			start := time.Now()
			out, err := next(ctx, msg)
			hist.Observe(time.Since(start).Seconds())
			return out, err
		}
	}
}
