package queue

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"go.uber.org/zap"

	"github.com/cloudcommerce/cloudcommerce/internal/delivery"
)

func receiveCount(m types.Message) int {
	n, _ := strconv.Atoi(m.Attributes[string(types.MessageSystemAttributeNameApproximateReceiveCount)])
	return n
}

// process runs one message through the handler chain and settles it by
// the one delivery policy: an acknowledged or dead-lettered message is
// deleted in a batch; a retried one is left with its back-off.
func (c *Consumer) process(work context.Context, msg types.Message) {
	id := aws.ToString(msg.MessageId)
	rc := receiveCount(msg)
	// Lazy: the fields are encoded only if a line is written, which a
	// message handled without trouble never does.
	log := c.log.WithLazy(zap.String("message_id", id), zap.Int("receive_count", rc))
	if ts, err := strconv.ParseInt(msg.Attributes[string(types.MessageSystemAttributeNameSentTimestamp)], 10, 64); err == nil {
		c.queueOldest.Set(time.Since(time.UnixMilli(ts)).Seconds())
	}
	receipt := aws.ToString(msg.ReceiptHandle)
	now := time.Now()
	c.active.Store(id, &tracked{receipt: receipt, due: now.Add(c.cfg.Visibility / 2), deadline: now.Add(c.cfg.HandlerTimeout)})
	defer c.active.Delete(id)

	m := delivery.NewMessage(id, aws.ToString(msg.Body), rc)
	outcome, err := c.handler(work, m)
	if res := c.settler.Settle(context.Background(), log, m, receipt, delivery.Classify(outcome, err)); !res.Retry {
		c.deleter.Submit(receipt)
	}
}

// deleteRetries is how many more times a delete entry that failed on the
// service's side (SenderFault false: an internal error, say) is resubmitted,
// after a short pause, before its message is left to come back after its
// visibility timeout. An entry refused because of the request itself (an
// invalid receipt handle) is not resubmitted: it would fail the same way. A
// failed call as a whole is not resubmitted here: the SDK's retryer has
// already retried it.
const deleteRetries = 2

// deleteRetryPause is the pause before the first resubmission, doubled
// for the next.
const deleteRetryPause = 50 * time.Millisecond

// deleteBatch deletes receipts with DeleteMessageBatch and resubmits the
// entries that failed on the service's side, up to deleteRetries times.
// Every failed entry counts as an acknowledgement failure.
func (c *Consumer) deleteBatch(ctx context.Context, receipts []string) []error {
	errs := make([]error, len(receipts))
	pending := make([]int, len(receipts))
	for i := range pending {
		pending[i] = i
	}
	for attempt := 0; ; attempt++ {
		last := attempt == deleteRetries
		pending = c.deleteOnce(ctx, receipts, pending, errs, last)
		if len(pending) == 0 || last {
			return errs
		}
		t := time.NewTimer(delivery.Jitter(deleteRetryPause << attempt))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return errs
		}
	}
}

// deleteOnce sends one DeleteMessageBatch for receipts[i] of every i in
// pending, records each entry's outcome in errs, and returns the indexes
// worth resubmitting (none when the call failed as a whole or last is set).
func (c *Consumer) deleteOnce(ctx context.Context, receipts []string, pending []int, errs []error, last bool) []int {
	entries := make([]types.DeleteMessageBatchRequestEntry, len(pending))
	for k, i := range pending {
		entries[k] = types.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(k)), ReceiptHandle: &receipts[i]}
	}
	out, err := c.sqs.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: &c.cfg.QueueURL, Entries: entries})
	if err != nil {
		c.m.AckFailures.WithLabelValues(c.stage, "delete").Add(float64(len(pending)))
		c.log.Warn("delete batch failed; the messages will be redelivered and handled idempotently", zap.Int("messages", len(pending)), zap.Error(err))
		for _, i := range pending {
			errs[i] = fmt.Errorf("delete batch: %w", err)
		}
		return nil
	}
	for _, i := range pending {
		errs[i] = nil
	}
	var retry []int
	for _, f := range out.Failed {
		k, convErr := strconv.Atoi(aws.ToString(f.Id))
		if convErr != nil || k < 0 || k >= len(pending) {
			continue
		}
		i := pending[k]
		c.m.AckFailures.WithLabelValues(c.stage, "delete").Inc()
		errs[i] = fmt.Errorf("delete failed: %s: %s", aws.ToString(f.Code), aws.ToString(f.Message))
		fields := []zap.Field{zap.String("code", aws.ToString(f.Code)), zap.String("detail", aws.ToString(f.Message)), zap.Bool("sender_fault", f.SenderFault)}
		if f.SenderFault || last {
			c.log.Warn("delete entry failed; the message will be redelivered and handled idempotently", fields...)
			continue
		}
		c.log.Warn("delete entry failed; resubmitting it", fields...)
		retry = append(retry, i)
	}
	return retry
}
