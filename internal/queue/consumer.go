// Package queue is the SQS adapter that feeds a stage handler: N long-pollers
// that reserve pool slots before receiving (never more messages in memory
// than free slots), a bounded pool of handlers with a per-message deadline,
// visibility extension for slow handlers, batched deletes, dead-lettering
// of permanent failures and back-off of transient ones through the
// visibility timeout.
//
// Outcomes are classified in one place (Consumer.finish):
//   - nil error: acknowledged (deleted in a batch);
//   - pipeline.PermanentError: copied to the DLQ with its reason, then
//     deleted; never retried;
//   - any other error (or a panic): the message's visibility is set to an
//     exponential back-off with jitter, so it comes back later; after the
//     queue's maxReceiveCount SQS moves it to the DLQ itself.
package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
	"go.uber.org/zap"

	"github.com/cloudcommerce/cloudcommerce/internal/batch"
	"github.com/cloudcommerce/cloudcommerce/internal/metrics"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
)

// Message attributes the worker sets on messages it dead-letters.
const (
	AttrReason      = "cloudcommerce-dead-letter-reason"
	AttrError       = "cloudcommerce-error"
	AttrSourceQueue = "cloudcommerce-source-queue"
	AttrReceives    = "cloudcommerce-receive-count"
)

// Config configures one stage consumer. Zero values mean the defaults.
type Config struct {
	Stage    pipeline.Stage
	QueueURL string
	// DLQURL is where permanent failures are copied.
	DLQURL string
	// Concurrency is the pool size: handlers running at once. Default 16.
	Concurrency int
	// Pollers is the number of concurrent long-polls. Default 1: with a
	// receive linger one poller gathers the most messages per receive; add
	// pollers only when one cannot keep up (receives come back full).
	Pollers int
	// MaxReceive is the most messages one receive asks for (1..10).
	// Default 10; 1 turns receive batching off.
	MaxReceive int
	// WaitTime is the long-poll wait. Default 20s.
	WaitTime time.Duration
	// Visibility is how long a received message stays hidden: each receive
	// asks SQS for it (in place of the queue's own timeout), and handlers
	// still running at half of it get their message extended by it. A
	// short one makes a lost receive (a response cut on the way) cost
	// seconds instead of the queue's timeout. Default 30s.
	Visibility time.Duration
	// HandlerTimeout bounds one handler run. Default 20s.
	HandlerTimeout time.Duration
	// RetryBase and RetryMax shape the back-off of transient failures:
	// min(RetryMax, RetryBase·2^(receives-1)) with full jitter in its upper
	// half. Defaults 1s and 5m.
	RetryBase, RetryMax time.Duration
	// DeleteBatch is the most receipts per DeleteMessageBatch (1 disables
	// batching); DeleteLinger how long a delete waits for company.
	// Defaults 10 and 5ms. Deletes never hold up a handler (the slot is
	// free once the handler returns), so a longer linger costs nothing but
	// a later acknowledgement.
	DeleteBatch  int
	DeleteLinger time.Duration
	// ReceiveLinger is how long a poller waits before its next receive
	// after one that came back with some messages but fewer than it asked
	// for (it asks for as many as there are free slots, up to MaxReceive),
	// so that messages gather in the queue and the next receive (and
	// the deletes and events that follow it) carries more. A receive that
	// found nothing long-polls as usual and a full one is followed at once,
	// so an idle queue costs nothing extra and a busy one never waits. It
	// adds at most ReceiveLinger to a message's time in the queue. 0 (the
	// default) turns it off.
	ReceiveLinger time.Duration
}

func (c *Config) defaults() {
	if c.Concurrency <= 0 {
		c.Concurrency = 16
	}
	if c.Pollers <= 0 {
		c.Pollers = 1
	}
	if c.MaxReceive <= 0 || c.MaxReceive > 10 {
		c.MaxReceive = 10
	}
	if c.WaitTime <= 0 {
		c.WaitTime = 20 * time.Second
	}
	if c.Visibility <= 0 {
		c.Visibility = 30 * time.Second
	}
	if c.HandlerTimeout <= 0 {
		c.HandlerTimeout = 20 * time.Second
	}
	if c.RetryBase <= 0 {
		c.RetryBase = time.Second
	}
	if c.RetryMax <= 0 {
		c.RetryMax = 5 * time.Minute
	}
	if c.DeleteBatch <= 0 || c.DeleteBatch > 10 {
		c.DeleteBatch = 10
	}
	if c.ReceiveLinger < 0 {
		c.ReceiveLinger = 0
	}
	if c.DeleteLinger < 0 {
		c.DeleteLinger = 0
	} else if c.DeleteLinger == 0 {
		c.DeleteLinger = 5 * time.Millisecond
	}
}

// ErrHandlerDeadline is the cause of a handler context that ran out of time.
var ErrHandlerDeadline = errors.New("handler deadline exceeded")

// ErrShutdown is the cause given to handlers cancelled because the worker's
// shutdown deadline passed.
var ErrShutdown = errors.New("worker shutdown deadline passed")

// Consumer feeds one stage queue to a handler.
type Consumer struct {
	cfg     Config
	sqs     *sqs.Client
	handler pipeline.Handler
	log     *zap.Logger
	m       *metrics.Metrics
	stage   string

	slots    chan struct{}
	work     chan types.Message
	inFlight atomic.Int64
	deleter  *batch.Batcher[string]
	active   sync.Map // message id → *tracked
	fatal    atomic.Pointer[error]
}

type tracked struct {
	receipt  string
	due      time.Time // next visibility extension
	deadline time.Time
}

// New returns a consumer. The metrics must not be shared with another
// consumer of the same stage.
func New(client *sqs.Client, cfg Config, h pipeline.Handler, log *zap.Logger, m *metrics.Metrics) *Consumer {
	cfg.defaults()
	c := &Consumer{cfg: cfg, sqs: client, handler: h, log: log.With(zap.String("stage", string(cfg.Stage))), m: m,
		stage: string(cfg.Stage), slots: make(chan struct{}, cfg.Concurrency), work: make(chan types.Message)}
	c.deleter = batch.New(batch.Config{Max: cfg.DeleteBatch, Linger: cfg.DeleteLinger,
		OnFlush: func(n int) { m.BatchSize.WithLabelValues("delete").Observe(float64(n)) }}, c.deleteBatch)
	m.PoolSize.WithLabelValues(c.stage).Set(float64(cfg.Concurrency))
	m.InFlight(cfg.Stage, func() float64 { return float64(c.inFlight.Load()) })
	return c
}

// Healthy returns nil, or the fatal error (queue missing, access denied)
// that stops this consumer from receiving.
func (c *Consumer) Healthy() error {
	if p := c.fatal.Load(); p != nil {
		return *p
	}
	return nil
}

// Run receives until recv is done, handling messages on contexts derived
// from work, then waits for every handler to return and flushes pending
// deletes. Cancel work (with a cause) to abandon handlers still running
// after the shutdown deadline; their messages come back after their
// visibility timeout.
func (c *Consumer) Run(recv, work context.Context) {
	var handlers sync.WaitGroup
	var pollers sync.WaitGroup
	hbDone := make(chan struct{})
	go c.heartbeat(hbDone)
	// The pool: Concurrency long-lived handler goroutines. Reusing them
	// (rather than a goroutine per message) keeps their grown stacks, which
	// the SDK's deep call chains would otherwise grow from scratch for
	// every message.
	for range c.cfg.Concurrency {
		handlers.Add(1)
		go func() {
			defer handlers.Done()
			for msg := range c.work {
				c.process(work, msg)
				c.inFlight.Add(-1)
				<-c.slots
			}
		}()
	}
	for i := 0; i < c.cfg.Pollers; i++ {
		pollers.Add(1)
		go func() {
			defer pollers.Done()
			c.poll(recv, work)
		}()
	}
	pollers.Wait()
	close(c.work)
	handlers.Wait()
	close(hbDone)
	c.deleter.Close()
}

func (c *Consumer) poll(recv, work context.Context) {
	failures := 0
	partial := false
	for {
		if partial && c.cfg.ReceiveLinger > 0 {
			t := time.NewTimer(c.cfg.ReceiveLinger)
			select {
			case <-t.C:
			case <-recv.Done():
				t.Stop()
				return
			}
		}
		// Reserve at least one slot before asking for anything, then as
		// many more as are free, up to MaxReceive.
		select {
		case c.slots <- struct{}{}:
		case <-recv.Done():
			return
		}
		n := 1
	fill:
		for n < c.cfg.MaxReceive {
			select {
			case c.slots <- struct{}{}:
				n++
			default:
				break fill
			}
		}
		if recv.Err() != nil {
			// Receiving stopped while slots were reserved: start no new
			// receive (it would no longer fail at once; see receiveContext).
			for range n {
				<-c.slots
			}
			return
		}
		rctx, rdone := receiveContext(recv, work)
		out, err := c.sqs.ReceiveMessage(rctx, &sqs.ReceiveMessageInput{
			QueueUrl:                    &c.cfg.QueueURL,
			MaxNumberOfMessages:         int32(n),
			WaitTimeSeconds:             int32(c.cfg.WaitTime / time.Second),
			VisibilityTimeout:           int32(c.cfg.Visibility / time.Second),
			MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameApproximateReceiveCount, types.MessageSystemAttributeNameSentTimestamp},
			MessageAttributeNames:       []string{"All"},
		})
		rdone()
		got := 0
		if out != nil {
			got = len(out.Messages)
		}
		// Linger only when the queue ran short: a receive sized down to
		// the free slots that came back full says the queue has more, and
		// the pool, not the queue, sets the pace.
		partial = got > 0 && got < n
		for i := got; i < n; i++ {
			<-c.slots
		}
		if err != nil {
			if recv.Err() != nil {
				return
			}
			failures++
			c.receiveFailed(recv, err, failures)
			continue
		}
		if failures > 0 || c.fatal.Load() != nil {
			failures = 0
			c.fatal.Store(nil)
			c.log.Info("receiving again")
		}
		if got == 0 {
			continue
		}
		c.m.BatchSize.WithLabelValues("receive").Observe(float64(got))
		c.m.Received.WithLabelValues(c.stage).Add(float64(got))
		if recv.Err() != nil {
			// Received while shutting down: hand them back at once.
			c.release(out.Messages)
			for range out.Messages {
				<-c.slots
			}
			return
		}
		for _, msg := range out.Messages {
			// A slot is reserved for each message, so a pool goroutine is
			// free or about to be.
			c.inFlight.Add(1)
			c.work <- msg
		}
	}
}

// receiveGrace is how long a receive in flight when receiving stops may
// still return.
const receiveGrace = 2 * time.Second

// receiveContext is the context of one ReceiveMessage call (reliability
// fix). Cancelling a receive the moment SIGTERM arrives can discard a
// response the endpoint has already sent: its messages are then invisible
// until their visibility timeout instead of being handed back at once. So a
// receive in flight when recv ends gets receiveGrace to return (a poll that
// has messages returns in milliseconds; an idle long poll is cut off after
// the grace, costing shutdown at most that long), and what it returns is
// handed back by the caller. The work context's cancellation (the shutdown
// deadline) still cancels it at once.
func receiveContext(recv, work context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(work)
	stop := context.AfterFunc(recv, func() { time.AfterFunc(receiveGrace, cancel) })
	return ctx, func() { stop(); cancel() }
}

// receiveFailed backs off after a failed receive. A missing queue or denied
// access will not fix itself quickly: the consumer reports itself unhealthy
// (readiness fails, the log says why) and retries slowly instead of spinning.
func (c *Consumer) receiveFailed(ctx context.Context, err error, failures int) {
	var api smithy.APIError
	fatal := false
	if errors.As(err, &api) {
		switch api.ErrorCode() {
		case "QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue", "AccessDenied", "AccessDeniedException",
			"InvalidClientTokenId", "UnrecognizedClientException", "KMS.AccessDeniedException":
			fatal = true
		}
	}
	delay := min(30*time.Second, 100*time.Millisecond<<min(failures, 9))
	if fatal {
		e := fmt.Errorf("%s queue unusable: %w", c.stage, err)
		c.fatal.Store(&e)
		c.log.Error("cannot receive from queue; fix the queue or its permissions", zap.String("queue_url", c.cfg.QueueURL), zap.Error(err))
		delay = 30 * time.Second
	} else {
		c.log.Warn("receive failed; backing off", zap.Error(err), zap.Duration("backoff", delay))
	}
	t := time.NewTimer(jitter(delay))
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

func receiveCount(m types.Message) int {
	n, _ := strconv.Atoi(m.Attributes[string(types.MessageSystemAttributeNameApproximateReceiveCount)])
	return n
}

func (c *Consumer) process(work context.Context, msg types.Message) {
	id := aws.ToString(msg.MessageId)
	rc := receiveCount(msg)
	log := c.log.With(zap.String("message_id", id), zap.Int("receive_count", rc))
	if ts, err := strconv.ParseInt(msg.Attributes[string(types.MessageSystemAttributeNameSentTimestamp)], 10, 64); err == nil {
		c.m.QueueOldest.WithLabelValues(c.stage).Set(time.Since(time.UnixMilli(ts)).Seconds())
	}
	now := time.Now()
	c.active.Store(id, &tracked{receipt: aws.ToString(msg.ReceiptHandle), due: now.Add(c.cfg.Visibility / 2), deadline: now.Add(c.cfg.HandlerTimeout)})
	defer c.active.Delete(id)

	ctx, cancel := context.WithTimeoutCause(work, c.cfg.HandlerTimeout, ErrHandlerDeadline)
	start := time.Now()
	outcome, err := c.call(ctx, pipeline.Message{ID: id, Body: []byte(aws.ToString(msg.Body)), ReceiveCount: rc})
	if err == nil && ctx.Err() != nil {
		err = context.Cause(ctx)
	}
	cancel()
	c.m.HandlerDuration.WithLabelValues(c.stage).Observe(time.Since(start).Seconds())
	c.finish(log, msg, rc, outcome, err)
}

// call runs the handler, turning a panic into an error so the message is
// retried and the worker lives on.
func (c *Consumer) call(ctx context.Context, m pipeline.Message) (out pipeline.Outcome, err error) {
	defer func() {
		if r := recover(); r != nil {
			c.m.Panics.WithLabelValues(c.stage).Inc()
			c.log.Error("handler panicked; the message will be retried", zap.String("message_id", m.ID),
				zap.Any("panic", r), zap.ByteString("stack", debug.Stack()))
			err = fmt.Errorf("handler panic: %v", r)
		}
	}()
	return c.handler(ctx, m)
}

func (c *Consumer) finish(log *zap.Logger, msg types.Message, rc int, outcome pipeline.Outcome, err error) {
	receipt := aws.ToString(msg.ReceiptHandle)
	if err != nil || outcome != pipeline.OutcomeOK {
		// Only messages worth a log line pay for finding their order id.
		log = log.With(zap.String("order_id", orderID(aws.ToString(msg.Body))))
	}
	if err == nil {
		c.m.Handled.WithLabelValues(c.stage, string(outcome)).Inc()
		if outcome != pipeline.OutcomeOK {
			log.Info("message handled", zap.String("outcome", string(outcome)))
		}
		c.deleter.Submit(receipt)
		return
	}
	if reason, ok := pipeline.IsPermanent(err); ok {
		if dlErr := c.deadLetter(msg, reason, err); dlErr != nil {
			log.Error("could not dead-letter a poison message; it will be retried", zap.String("reason", reason), zap.Error(err), zap.NamedError("dlq_error", dlErr))
			c.retry(log, receipt, rc)
			return
		}
		c.m.Handled.WithLabelValues(c.stage, "dead_lettered").Inc()
		c.m.DeadLettered.WithLabelValues(c.stage, reason).Inc()
		log.Warn("message dead-lettered", zap.String("reason", reason), zap.Error(err))
		c.deleter.Submit(receipt)
		return
	}
	c.m.Handled.WithLabelValues(c.stage, "retried").Inc()
	log.Warn("handler failed; will retry", zap.Error(err))
	c.retry(log, receipt, rc)
}

// Backoff returns the visibility delay before the receives-th attempt is
// retried.
func Backoff(base, ceiling time.Duration, receives int) time.Duration {
	d := base << min(max(receives-1, 0), 20)
	if d > ceiling || d <= 0 {
		d = ceiling
	}
	return jitter(d)
}

// jitter returns a duration uniformly in [d/2, d].
func jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2+1)
}

func ackContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 5*time.Second)
}

func (c *Consumer) retry(log *zap.Logger, receipt string, rc int) {
	delay := Backoff(c.cfg.RetryBase, c.cfg.RetryMax, rc)
	ctx, cancel := ackContext()
	defer cancel()
	// SQS counts visibility in whole seconds; never round a back-off to 0.
	secs := int32(max((delay+time.Second-1)/time.Second, 1))
	if _, err := c.sqs.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{
		QueueUrl: &c.cfg.QueueURL, ReceiptHandle: &receipt, VisibilityTimeout: secs,
	}); err != nil {
		c.m.AckFailures.WithLabelValues(c.stage, "backoff").Inc()
		log.Warn("could not set retry back-off; the message returns after its visibility timeout", zap.Error(err))
	}
}

// deadLetter copies the message to the DLQ with why, before the caller
// deletes it from the source: a crash in between leaves a duplicate in the
// DLQ, never a lost message.
func (c *Consumer) deadLetter(msg types.Message, reason string, cause error) error {
	if c.cfg.DLQURL == "" {
		return errors.New("no DLQ configured")
	}
	text := cause.Error()
	if len(text) > 1000 {
		text = text[:1000]
	}
	attrs := map[string]types.MessageAttributeValue{
		AttrReason:      {DataType: aws.String("String"), StringValue: aws.String(reason)},
		AttrError:       {DataType: aws.String("String"), StringValue: aws.String(text)},
		AttrSourceQueue: {DataType: aws.String("String"), StringValue: aws.String(c.cfg.QueueURL)},
		AttrReceives:    {DataType: aws.String("Number"), StringValue: aws.String(strconv.Itoa(receiveCount(msg)))},
	}
	ctx, cancel := ackContext()
	defer cancel()
	body := aws.ToString(msg.Body)
	if body == "" {
		body = "(empty body)"
	}
	_, err := c.sqs.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &c.cfg.DLQURL, MessageBody: &body, MessageAttributes: attrs})
	if err != nil {
		return fmt.Errorf("send to DLQ: %w", err)
	}
	return nil
}

func (c *Consumer) deleteBatch(ctx context.Context, receipts []string) []error {
	entries := make([]types.DeleteMessageBatchRequestEntry, len(receipts))
	for i := range receipts {
		entries[i] = types.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: &receipts[i]}
	}
	errs := make([]error, len(receipts))
	out, err := c.sqs.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: &c.cfg.QueueURL, Entries: entries})
	if err != nil {
		c.m.AckFailures.WithLabelValues(c.stage, "delete").Add(float64(len(receipts)))
		c.log.Warn("delete batch failed; the messages will be redelivered and handled idempotently", zap.Int("messages", len(receipts)), zap.Error(err))
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	for _, f := range out.Failed {
		i, _ := strconv.Atoi(aws.ToString(f.Id))
		c.m.AckFailures.WithLabelValues(c.stage, "delete").Inc()
		c.log.Warn("delete entry failed; the message will be redelivered and handled idempotently",
			zap.String("code", aws.ToString(f.Code)), zap.String("detail", aws.ToString(f.Message)))
		if i >= 0 && i < len(errs) {
			errs[i] = fmt.Errorf("delete failed: %s", aws.ToString(f.Code))
		}
	}
	return errs
}

// release hands messages back at once (visibility 0).
func (c *Consumer) release(msgs []types.Message) {
	entries := make([]types.ChangeMessageVisibilityBatchRequestEntry, 0, len(msgs))
	for i, m := range msgs {
		entries = append(entries, types.ChangeMessageVisibilityBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: 0})
	}
	ctx, cancel := ackContext()
	defer cancel()
	out, err := c.sqs.ChangeMessageVisibilityBatch(ctx, &sqs.ChangeMessageVisibilityBatchInput{QueueUrl: &c.cfg.QueueURL, Entries: entries})
	if err != nil {
		c.m.AckFailures.WithLabelValues(c.stage, "release").Add(float64(len(msgs)))
		c.log.Warn("could not hand back unstarted messages; they return after their visibility timeout", zap.Error(err))
		return
	}
	if n := len(out.Failed); n > 0 {
		c.m.AckFailures.WithLabelValues(c.stage, "release").Add(float64(n))
	}
	c.log.Info("handed back unstarted messages", zap.Int("messages", len(msgs)-len(out.Failed)))
}

// heartbeat extends the visibility of messages whose handlers are still
// running at half the visibility timeout, in batches, until their handler
// returns or hits its deadline.
func (c *Consumer) heartbeat(done <-chan struct{}) {
	tick := time.NewTicker(max(c.cfg.Visibility/8, 100*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-done:
			return
		case <-tick.C:
		}
		now := time.Now()
		var due []types.ChangeMessageVisibilityBatchRequestEntry
		c.active.Range(func(_, v any) bool {
			t := v.(*tracked)
			if now.Before(t.due) || now.After(t.deadline) {
				return true
			}
			t.due = now.Add(c.cfg.Visibility / 2)
			due = append(due, types.ChangeMessageVisibilityBatchRequestEntry{
				Id: aws.String(strconv.Itoa(len(due))), ReceiptHandle: aws.String(t.receipt), VisibilityTimeout: int32(c.cfg.Visibility / time.Second),
			})
			return true
		})
		for len(due) > 0 {
			n := min(len(due), 10)
			c.extend(due[:n])
			due = due[n:]
		}
	}
}

func (c *Consumer) extend(entries []types.ChangeMessageVisibilityBatchRequestEntry) {
	for i := range entries {
		entries[i].Id = aws.String(strconv.Itoa(i))
	}
	ctx, cancel := ackContext()
	defer cancel()
	c.m.BatchSize.WithLabelValues("visibility").Observe(float64(len(entries)))
	out, err := c.sqs.ChangeMessageVisibilityBatch(ctx, &sqs.ChangeMessageVisibilityBatchInput{QueueUrl: &c.cfg.QueueURL, Entries: entries})
	if err != nil {
		c.m.AckFailures.WithLabelValues(c.stage, "extend").Add(float64(len(entries)))
		c.log.Warn("could not extend visibility of slow messages", zap.Error(err))
		return
	}
	c.m.Extended.WithLabelValues(c.stage).Add(float64(len(entries) - len(out.Failed)))
	for _, f := range out.Failed {
		c.m.AckFailures.WithLabelValues(c.stage, "extend").Inc()
		c.log.Warn("visibility extension failed", zap.String("code", aws.ToString(f.Code)))
	}
}

// orderID reads the order id of an EventBridge event body, or "" when the
// body is not one (a poison message).
func orderID(body string) string {
	var env struct {
		Detail struct {
			OrderID string `json:"order_id"`
		} `json:"detail"`
	}
	if len(body) > pipeline.MaxMessageBytes || json.Unmarshal([]byte(body), &env) != nil {
		return ""
	}
	return env.Detail.OrderID
}
