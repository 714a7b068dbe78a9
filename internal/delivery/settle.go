package delivery

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"go.uber.org/zap"

	"github.com/cloudcommerce/cloudcommerce/internal/metrics"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
)

// Message attributes set on a message copied to a DLQ.
const (
	AttrReason      = "cloudcommerce-dead-letter-reason"
	AttrError       = "cloudcommerce-error"
	AttrSourceQueue = "cloudcommerce-source-queue"
	AttrReceives    = "cloudcommerce-receive-count"
)

// Outcomes of a settled message besides the handler's own outcomes: the
// "outcome" label of the handled-messages counter and the Lambda batch
// summary use them.
const (
	OutcomeDeadLettered = "dead_lettered"
	OutcomeRetried      = "retried"
	OutcomeDeferred     = "deferred"
)

// Settler carries out Classify's decisions for the messages of one stage
// queue: it copies dead letters to the DLQ and sets the back-off of
// retried messages through their visibility timeout. It does not delete:
// the consumer batches deletes, and Lambda's event source mapping deletes
// the records not reported as failed. Safe for concurrent use.
type Settler struct {
	SQS   *sqs.Client
	Stage pipeline.Stage
	// QueueURL is the stage queue (the back-off's target and the
	// dead-letter's source attribute); DLQURL where dead letters go.
	QueueURL, DLQURL string
	// RetryBase and RetryMax shape the back-off (see Backoff).
	RetryBase, RetryMax time.Duration
	// DeferBase is the first hand-back of a deferred message and
	// MaxReceives the queue's maxReceiveCount (see DeferDelay).
	DeferBase   time.Duration
	MaxReceives int
	// Metrics, when set, counts outcomes, panics and failed acknowledgements.
	Metrics *metrics.Metrics
	// Now is the clock of the deferral log's rate limit; time.Now when nil.
	Now func() time.Time

	deferLog every
}

// deferLogEvery is how often, at most, a settler logs a hand-back of each
// reason: during a deploy every message a newer release wrote may be
// handed back, and the counter says how many.
const deferLogEvery = time.Minute

// Result is what became of a settled message.
type Result struct {
	// Retry is true when the message must come back: it is not to be
	// deleted (and Lambda reports it as a batch item failure).
	Retry bool
	// Outcome is the handler's outcome, OutcomeDeadLettered or
	// OutcomeRetried.
	Outcome string
}

// Settle carries out d for the message m, received with receipt, and logs
// it with log, which should carry the message's fields (message_id,
// receive_count, stage). ctx bounds the SQS calls (each at most 5s more).
// A dead letter that cannot be copied to the DLQ is retried instead.
func (s *Settler) Settle(ctx context.Context, log *zap.Logger, m pipeline.Message, receipt string, d Decision) Result {
	stage := string(s.Stage)
	if d.Action != Acknowledge || d.Outcome != pipeline.OutcomeOK {
		// Only messages worth a log line pay for the order_id field.
		ev, _ := m.Event()
		log = log.With(zap.String("order_id", ev.Order.ID))
	}
	var panicked *PanicError
	if errors.As(d.Err, &panicked) {
		if s.Metrics != nil {
			s.Metrics.Panics.WithLabelValues(stage).Inc()
		}
		log.Error("handler panicked; the message will be retried", zap.Any("panic", panicked.Value), zap.ByteString("stack", panicked.Stack))
	}
	switch d.Action {
	case Acknowledge:
		s.count(string(d.Outcome))
		if d.Outcome != pipeline.OutcomeOK {
			log.Info("message handled", zap.String("outcome", string(d.Outcome)))
		}
		return Result{Outcome: string(d.Outcome)}
	case DeadLetter:
		if dlErr := s.deadLetter(ctx, m, d.Reason, d.Err); dlErr != nil {
			log.Error("could not dead-letter a poison message; it will be retried", zap.String("reason", d.Reason), zap.Error(d.Err), zap.NamedError("dlq_error", dlErr))
			s.backOff(ctx, log, receipt, m.ReceiveCount)
			return Result{Retry: true, Outcome: OutcomeRetried}
		}
		s.count(OutcomeDeadLettered)
		if s.Metrics != nil {
			s.Metrics.DeadLettered.WithLabelValues(stage, d.Reason).Inc()
		}
		log.Warn("message dead-lettered", zap.String("reason", d.Reason), zap.Error(d.Err))
		return Result{Outcome: OutcomeDeadLettered}
	case Defer:
		s.count(OutcomeDeferred)
		if s.Metrics != nil {
			s.Metrics.Deferred.WithLabelValues(stage, d.Reason).Inc()
		}
		delay := DeferDelay(s.DeferBase, s.MaxReceives, m.ReceiveCount)
		if skipped, ok := s.deferLog.allow(d.Reason, s.now(), deferLogEvery); ok {
			log.Info("message handed back for a newer release", zap.String("reason", d.Reason), zap.Error(d.Err),
				zap.Duration("visible_again_in", delay), zap.Int("not_logged_since_last_line", skipped))
		}
		s.setVisibility(ctx, log, receipt, delay)
		return Result{Retry: true, Outcome: OutcomeDeferred}
	default:
		s.count(OutcomeRetried)
		log.Warn("handler failed; will retry", zap.Error(d.Err))
		s.backOff(ctx, log, receipt, m.ReceiveCount)
		return Result{Retry: true, Outcome: OutcomeRetried}
	}
}

func (s *Settler) count(outcome string) {
	if s.Metrics != nil {
		s.Metrics.HandledCounter(string(s.Stage), outcome).Inc()
	}
}

// AckContext bounds one acknowledgement call (delete, DLQ copy, visibility
// change) made on behalf of a message whose handler has returned.
func AckContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, 5*time.Second)
}

// backOff delays the message's next delivery exponentially in its receive
// count. Without it the message would return after the queue's whole
// visibility timeout, whatever the attempt.
func (s *Settler) backOff(ctx context.Context, log *zap.Logger, receipt string, receives int) {
	s.setVisibility(ctx, log, receipt, Backoff(s.RetryBase, s.RetryMax, receives))
}

// setVisibility hides the message for delay from now.
func (s *Settler) setVisibility(ctx context.Context, log *zap.Logger, receipt string, delay time.Duration) {
	if receipt == "" || s.QueueURL == "" {
		return
	}
	// SQS counts visibility in whole seconds; never round a back-off to 0.
	secs := int32(max((delay+time.Second-1)/time.Second, 1))
	ctx, cancel := AckContext(ctx)
	defer cancel()
	if _, err := s.SQS.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{
		QueueUrl: aws.String(s.QueueURL), ReceiptHandle: aws.String(receipt), VisibilityTimeout: secs,
	}); err != nil {
		if s.Metrics != nil {
			s.Metrics.AckFailures.WithLabelValues(string(s.Stage), "backoff").Inc()
		}
		log.Warn("could not set the back-off; the message returns after its visibility timeout", zap.Error(err))
	}
}

// deadLetter copies the message to the DLQ with why, before it is deleted
// from the source: a crash in between leaves a duplicate in the DLQ, never
// a lost message.
func (s *Settler) deadLetter(ctx context.Context, m pipeline.Message, reason string, cause error) error {
	if s.DLQURL == "" {
		return errors.New("no DLQ configured for stage " + string(s.Stage))
	}
	text := cause.Error()
	if len(text) > 1000 {
		text = text[:1000]
	}
	attrs := map[string]types.MessageAttributeValue{
		AttrReason:      {DataType: aws.String("String"), StringValue: aws.String(reason)},
		AttrError:       {DataType: aws.String("String"), StringValue: aws.String(text)},
		AttrSourceQueue: {DataType: aws.String("String"), StringValue: aws.String(s.QueueURL)},
		AttrReceives:    {DataType: aws.String("Number"), StringValue: aws.String(strconv.Itoa(m.ReceiveCount))},
	}
	body := string(m.Body)
	if body == "" {
		body = "(empty body)"
	}
	ctx, cancel := AckContext(ctx)
	defer cancel()
	if _, err := s.SQS.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(s.DLQURL), MessageBody: aws.String(body), MessageAttributes: attrs}); err != nil {
		return fmt.Errorf("send to DLQ: %w", err)
	}
	return nil
}

func (s *Settler) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// every lets one event of each key through per period and counts the
// others. The zero value is ready; safe for concurrent use.
type every struct {
	mu      sync.Mutex
	last    map[string]time.Time
	skipped map[string]int
}

// allow reports whether an event of key at now may be logged, and how many
// were not since the last one that was.
func (e *every) allow(key string, now time.Time, period time.Duration) (skipped int, ok bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.last == nil {
		e.last, e.skipped = map[string]time.Time{}, map[string]int{}
	}
	if last, seen := e.last[key]; seen && now.Sub(last) < period {
		e.skipped[key]++
		return 0, false
	}
	skipped = e.skipped[key]
	e.last[key], e.skipped[key] = now, 0
	return skipped, true
}
