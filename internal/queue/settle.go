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
