package delivery

import (
	"math/rand/v2"
	"time"

	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
)

// Action is what becomes of a delivered message.
type Action int

// The four actions.
const (
	// Acknowledge: the message is done with (deleted).
	Acknowledge Action = iota
	// DeadLetter: copied to the DLQ with a reason, then deleted.
	DeadLetter
	// Retry: delivered again after a back-off.
	Retry
	// Defer: an event a newer release wrote, handed back to its queue,
	// neither acted on nor dead-lettered, with a back-off (DeferDelay) that
	// keeps it there for at least DeferWindow before the queue's
	// dead-letter rule can apply, so that a task of the newer release takes
	// it.
	Defer
)

// Decision is Classify's verdict on one handler run.
type Decision struct {
	Action Action
	// Outcome is the handler's outcome (Acknowledge).
	Outcome pipeline.Outcome
	// Reason is the dead-letter reason (DeadLetter) or the hand-back's,
	// one of pipeline.DeferReasons (Defer).
	Reason string
	// Err is the handler's error (DeadLetter, Retry, Defer).
	Err error
}

// Classify is the one place that decides what becomes of a message from
// its handler's result: nil error acknowledges, a pipeline.DeferredError
// (an event of a newer release) defers with its reason, a
// pipeline.PermanentError dead-letters with its reason, any other error (a
// panic included) retries.
func Classify(out pipeline.Outcome, err error) Decision {
	if err == nil {
		return Decision{Action: Acknowledge, Outcome: out}
	}
	if reason, ok := pipeline.IsDeferred(err); ok {
		return Decision{Action: Defer, Reason: reason, Err: err}
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

// The hand-back of a deferred message (Defer). During a deploy, tasks of
// the old and the new release receive from the same queue; an event only
// the new release understands must survive the old tasks' receives until
// a new task takes it, however long the deploy takes (DeferWindow), and
// only then may the queue's redrive policy move it to the DLQ.
//
// SQS semantics decide the shape: each receive adds one to the message's
// receive count, and the receive that finds the count at the queue's
// maxReceiveCount moves the message to the DLQ instead of delivering it,
// so a message is delivered at most maxReceiveCount times; a message
// handed back with ChangeMessageVisibility(V) is invisible for V (at most
// 12 hours from its receive). A message deferred on every delivery is
// therefore delivered for the last time the sum of the first
// maxReceiveCount-1 visibilities after its first delivery: that sum must
// be at least DeferWindow, or a task of the new release that starts late
// in a deploy would never see it. DeferDelay makes the early hand-backs
// short, growing by DeferBase per delivery (a new task usually takes the
// message after one or two), and the one before the last delivery long
// enough that the last comes DeferWindow after the first.
const (
	// DeferWindow is the least time between the first and the last
	// delivery of a message handed back on every delivery.
	DeferWindow = 30 * time.Minute
	// MaxVisibility is SQS's limit on a message's visibility timeout.
	MaxVisibility = 12 * time.Hour
)

// DeferDelay returns the visibility of the receives-th delivery of a
// deferred message on a queue whose maxReceiveCount is maxReceives:
// receives·base (at least a second) with up to a quarter more of jitter,
// except from delivery maxReceives-1 on, which holds the message for
// whatever the earlier nominal hand-backs leave of DeferWindow (if that
// is more). A maxReceives below 2 (unknown, or a single delivery) holds
// every delivery for the whole window. Never more than MaxVisibility.
func DeferDelay(base time.Duration, maxReceives, receives int) time.Duration {
	base = max(base, time.Second)
	n := max(receives, 1)
	d := time.Duration(n) * base
	switch {
	case maxReceives < 2:
		d = DeferWindow
	case n < maxReceives-1:
		d += rand.N(d/4 + 1)
	default:
		// The sum of k·base for k = 1..maxReceives-2.
		before := base * time.Duration((maxReceives-2)*(maxReceives-1)/2)
		d = max(d, DeferWindow-before)
	}
	return min(d, MaxVisibility)
}
