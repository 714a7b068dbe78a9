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
// receive count; the receive that finds the count at the queue's
// maxReceiveCount moves it to the DLQ instead of delivering it; a
// message handed back with ChangeMessageVisibility(V) is invisible for V
// (at most 12 hours from its receive). A message deferred on every one of
// its maxReceiveCount deliveries therefore stays in its queue for about
// the sum of their visibilities. DeferDelay makes the early deliveries
// short (the first DeferBase, doubling up to deferStepMax: a new task
// usually takes the message after one or two hand-backs) and the last one
// long enough that the sum over maxReceiveCount deliveries is at least
// DeferWindow.
const (
	// DeferWindow is the least time a message handed back on every
	// delivery stays in its queue before the dead-letter rule applies.
	DeferWindow = 30 * time.Minute
	// MaxVisibility is SQS's limit on a message's visibility timeout.
	MaxVisibility = 12 * time.Hour
	// deferStepMax caps the doubling early hand-backs.
	deferStepMax = 5 * time.Minute
)

// DeferDelay returns the visibility of the receives-th delivery of a
// deferred message on a queue whose maxReceiveCount is maxReceives: base
// doubled per earlier delivery, at most deferStepMax, with up to a
// quarter more of jitter; and on the last delivery SQS makes
// (receives >= maxReceives) whatever the earlier nominal steps leave of
// DeferWindow, if that is more. Never more than MaxVisibility. A
// maxReceives below 1 (unknown) counts every delivery as the last.
func DeferDelay(base time.Duration, maxReceives, receives int) time.Duration {
	receives = max(receives, 1)
	if receives < maxReceives {
		d := deferStep(base, receives)
		return min(d+rand.N(d/4+1), MaxVisibility)
	}
	var before time.Duration
	for n := 1; n < maxReceives; n++ {
		before += deferStep(base, n)
	}
	return min(max(DeferWindow-before, deferStep(base, receives)), MaxVisibility)
}

func deferStep(base time.Duration, n int) time.Duration {
	d := base << min(n-1, 20)
	if d > deferStepMax || d <= 0 {
		d = deferStepMax
	}
	return d
}
