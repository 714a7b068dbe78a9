package delivery

import (
	"math/rand/v2"
	"time"

	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
)

// Action is what becomes of a delivered message.
type Action int

// The three actions.
const (
	// Acknowledge: the message is done with (deleted).
	Acknowledge Action = iota
	// DeadLetter: copied to the DLQ with a reason, then deleted.
	DeadLetter
	// Retry: delivered again after a back-off.
	Retry
)

// Decision is Classify's verdict on one handler run.
type Decision struct {
	Action Action
	// Outcome is the handler's outcome (Acknowledge).
	Outcome pipeline.Outcome
	// Reason is the dead-letter reason (DeadLetter).
	Reason string
	// Err is the handler's error (DeadLetter, Retry).
	Err error
}

// Classify is the one place that decides what becomes of a message from
// its handler's result: nil error acknowledges, a pipeline.PermanentError
// dead-letters with its reason, any other error (a panic included)
// retries.
func Classify(out pipeline.Outcome, err error) Decision {
	if err == nil {
		return Decision{Action: Acknowledge, Outcome: out}
	}
	if reason, ok := pipeline.IsPermanent(err); ok {
		return Decision{Action: DeadLetter, Reason: reason, Err: err}
	}
	return Decision{Action: Retry, Err: err}
}

// Backoff returns the visibility delay before the receives-th attempt is
// retried: min(ceiling, base·2^(receives-1)), with full jitter in its
// upper half.
func Backoff(base, ceiling time.Duration, receives int) time.Duration {
	d := base << min(max(receives-1, 0), 20)
	if d > ceiling || d <= 0 {
		d = ceiling
	}
	return Jitter(d)
}

// Jitter returns a duration uniformly in [d/2, d].
func Jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2+1)
}
