package queue

import (
	"context"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"go.uber.org/zap"

	"github.com/cloudcommerce/cloudcommerce/internal/delivery"
)

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
	ctx, cancel := delivery.AckContext(context.Background())
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
