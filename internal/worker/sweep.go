package worker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"go.uber.org/zap"

	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
)

// sweepLoop re-publishes the event that moves on each order stuck in a
// non-final status, and finishes refunds of cancelled orders. The handlers
// are idempotent, so a spurious re-publish is harmless.
func (w *Worker) sweepLoop(ctx context.Context) {
	t := time.NewTicker(w.cfg.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if n, err := w.Sweep(ctx, time.Now().Add(-w.cfg.StuckAfter)); err != nil {
			w.log.Warn("stuck-order sweep failed", zap.Error(err))
		} else if n > 0 {
			w.log.Info("stuck orders moved on", zap.Int("orders", n))
		}
	}
}

// Sweep re-publishes events for orders last changed before olderThan and
// still in progress, and returns how many it moved on.
func (w *Worker) Sweep(ctx context.Context, olderThan time.Time) (int, error) {
	total := 0
	// In the compact format the orders the sweep reads are the overdue
	// ones; the walk adds those no write has marked (store/overdue.go).
	// A failed walk leaves the orders already on by_open to sweep.
	if n, err := w.Store.MarkOverdue(ctx); err != nil {
		w.log.Warn("the sweep's walk of the order timeline failed; it resumes at the next sweep", zap.Error(err))
	} else if n > 0 {
		w.log.Info("orders overdue and not written since marked for the sweep", zap.Int("orders", n))
	}
	for _, st := range []pipeline.Status{pipeline.StatusPlaced, pipeline.StatusReserved, pipeline.StatusPaid} {
		orders, err := w.Store.ListByStatus(ctx, st, time.Time{}, olderThan, 500)
		if err != nil {
			return total, err
		}
		var events []pipeline.Event
		for _, o := range orders {
			if ev, ok := pipeline.NextEvent(o); ok {
				events = append(events, ev)
			}
		}
		if len(events) == 0 {
			continue
		}
		if err := w.Publisher.Publish(ctx, events...); err != nil {
			return total, fmt.Errorf("re-publish %s orders: %w", st, err)
		}
		w.m.Republished.WithLabelValues(string(st)).Add(float64(len(events)))
		total += len(events)
	}
	// Cancelled-after-paid orders whose refund did not get recorded.
	cancelled, err := w.Store.ListByStatus(ctx, pipeline.StatusCancelled, olderThan.Add(-24*time.Hour), olderThan, 500)
	if err != nil {
		return total, err
	}
	for _, o := range cancelled {
		if o.ChargeID == "" || o.RefundID != "" {
			continue
		}
		if _, err := w.Service.Cancel(ctx, o.ID); err != nil {
			var se *pipeline.StatusError
			if !errors.As(err, &se) {
				return total, err
			}
		}
		w.m.Republished.WithLabelValues(string(pipeline.StatusCancelled)).Inc()
		total++
	}
	return total, nil
}

// sampleLoop samples queue depths for the backlog metrics.
func (w *Worker) sampleLoop(ctx context.Context) {
	t := time.NewTicker(w.cfg.QueueSampleInterval)
	defer t.Stop()
	for {
		w.SampleQueues(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// SampleQueues reads the approximate depths of every stage queue and DLQ.
func (w *Worker) SampleQueues(ctx context.Context) {
	for _, st := range pipeline.Stages {
		for kind, url := range map[string]string{"main": w.queues[st].URL, "dlq": w.queues[st].DLQURL} {
			out, err := w.sqs.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url), AttributeNames: []sqstypes.QueueAttributeName{
				sqstypes.QueueAttributeNameApproximateNumberOfMessages, sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
				sqstypes.QueueAttributeNameApproximateNumberOfMessagesDelayed}})
			if err != nil {
				if ctx.Err() == nil {
					w.log.Debug("queue sample failed", zap.String("stage", string(st)), zap.Error(err))
				}
				continue
			}
			for state, attr := range map[string]sqstypes.QueueAttributeName{"visible": sqstypes.QueueAttributeNameApproximateNumberOfMessages,
				"in_flight": sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible, "delayed": sqstypes.QueueAttributeNameApproximateNumberOfMessagesDelayed} {
				n, _ := strconv.ParseFloat(out.Attributes[string(attr)], 64)
				w.m.QueueMessages.WithLabelValues(string(st), kind, state).Set(n)
			}
		}
	}
}
