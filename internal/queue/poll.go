package queue

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
	"go.uber.org/zap"

	"github.com/cloudcommerce/cloudcommerce/internal/delivery"
)

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
		c.receiveBatch.Observe(float64(got))
		c.received.Add(float64(got))
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
			"InvalidClientTokenId", "UnrecognizedClientException", "KMS.AccessDeniedException",
			// The queue's KMS key is disabled, deleted or pending deletion.
			"KMS.DisabledException", "KMS.NotFoundException", "KMS.InvalidStateException", "KMS.OptInRequired":
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
	t := time.NewTimer(delivery.Jitter(delay))
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// release hands messages back at once (visibility 0).
func (c *Consumer) release(msgs []types.Message) {
	entries := make([]types.ChangeMessageVisibilityBatchRequestEntry, 0, len(msgs))
	for i, m := range msgs {
		entries = append(entries, types.ChangeMessageVisibilityBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: 0})
	}
	ctx, cancel := delivery.AckContext(context.Background())
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
