// Package dlq lets an operator see and recover dead-lettered messages, for
// the `worker dlq` commands and the console: List peeks at a stage's DLQ
// without consuming it; Redrive moves messages back to the stage queue with
// SQS's StartMessageMoveTask where the endpoint supports it, and otherwise
// with a receive → send → delete loop that deletes a message from the DLQ
// only after the stage queue accepted it, so a failure at any point leaves
// it in the DLQ (or, after a crash between send and delete, in both queues,
// which the idempotent handlers absorb) — never nowhere.
package dlq

import (
	"cmp"
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
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
	"github.com/cloudcommerce/cloudcommerce/internal/topology"
)

// DeadLetter is one message in a stage's DLQ, as the console shows it. It
// never carries the body: that holds the customer's contact details and
// payment token.
type DeadLetter struct {
	MessageID string `json:"message_id"`
	// OrderID and Event are read from the body when it is an event.
	OrderID string `json:"order_id,omitempty"`
	Event   string `json:"event_type,omitempty"`
	// ReceiveCount is how often the stage received it before it was
	// dead-lettered (the worker's attribute), or SQS's approximate count.
	ReceiveCount int `json:"receive_count"`
	// Reason is the worker's dead-letter reason, or "max_receives" for a
	// message SQS moved after the queue's maxReceiveCount.
	Reason string `json:"reason"`
	// Error is the error the worker gave up on, when it dead-lettered it.
	Error  string    `json:"error,omitempty"`
	SentAt time.Time `json:"sent_at"`
}

// Queue is a stage queue and its DLQ.
type Queue = topology.StageQueue

// Manager lists and redrives the stage DLQs on SQS. Safe for concurrent
// use; ctx bounds each call.
type Manager struct {
	SQS    *sqs.Client
	Queues map[pipeline.Stage]Queue
	Log    *zap.Logger
	// PeekLimit is the most messages List returns; default 50.
	PeekLimit int
}

// ReasonMaxReceives is the reason shown for a message SQS itself moved to
// the DLQ after the queue's maxReceiveCount (it carries no worker reason).
const ReasonMaxReceives = "max_receives"

// peekVisibility hides peeked messages only while a page is assembled; they
// are released at once after (SQS cannot receive with visibility 0: the
// SDK does not send a zero).
const peekVisibility = 10

func (d *Manager) queue(stage pipeline.Stage) (Queue, error) {
	q, ok := d.Queues[stage]
	if !ok || q.URL == "" || q.DLQURL == "" {
		return Queue{}, fmt.Errorf("no queues known for stage %q", stage)
	}
	return q, nil
}

// List returns up to PeekLimit dead-lettered messages of a stage without
// consuming them. It receives the DLQ's messages with a short
// visibility timeout until it has PeekLimit or the queue has no more, then
// makes them visible again at once. Their approximate receive count grows
// by one per look; a DLQ has no redrive of its own, so that is harmless.
func (d *Manager) List(ctx context.Context, stage pipeline.Stage) ([]DeadLetter, error) {
	q, err := d.queue(stage)
	if err != nil {
		return nil, err
	}
	limit := d.PeekLimit
	if limit <= 0 {
		limit = 50
	}
	var out []DeadLetter
	var receipts []string
	defer func() { d.release(q.DLQURL, receipts) }()
	for wait := int32(1); len(out) < limit; wait = 0 {
		resp, err := d.SQS.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl: &q.DLQURL, MaxNumberOfMessages: int32(min(10, limit-len(out))), VisibilityTimeout: peekVisibility, WaitTimeSeconds: wait,
			MessageAttributeNames:       []string{"All"},
			MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameApproximateReceiveCount, types.MessageSystemAttributeNameSentTimestamp},
		})
		if err != nil {
			return out, fmt.Errorf("peek %s DLQ: %w", stage, err)
		}
		if len(resp.Messages) == 0 {
			break
		}
		for _, m := range resp.Messages {
			receipts = append(receipts, aws.ToString(m.ReceiptHandle))
			out = append(out, deadLetter(m))
		}
	}
	return out, nil
}

// release makes peeked messages visible again, on its own bounded context
// so that a cancelled page still hands them back.
func (d *Manager) release(url string, receipts []string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for len(receipts) > 0 {
		n := min(10, len(receipts))
		entries := make([]types.ChangeMessageVisibilityBatchRequestEntry, n)
		for i := range entries {
			entries[i] = types.ChangeMessageVisibilityBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: aws.String(receipts[i]), VisibilityTimeout: 0}
		}
		receipts = receipts[n:]
		out, err := d.SQS.ChangeMessageVisibilityBatch(ctx, &sqs.ChangeMessageVisibilityBatchInput{QueueUrl: &url, Entries: entries})
		if err == nil && len(out.Failed) > 0 {
			err = fmt.Errorf("%d entries failed, first %s", len(out.Failed), aws.ToString(out.Failed[0].Code))
		}
		if err != nil && d.Log != nil {
			d.Log.Warn("could not release peeked dead letters; they reappear after their visibility timeout",
				zap.Int("seconds", peekVisibility), zap.Error(err))
		}
	}
}

func attr(m types.Message, name string) string {
	if v, ok := m.MessageAttributes[name]; ok {
		return aws.ToString(v.StringValue)
	}
	return ""
}

func deadLetter(m types.Message) DeadLetter {
	dl := DeadLetter{MessageID: aws.ToString(m.MessageId), Reason: attr(m, delivery.AttrReason), Error: attr(m, delivery.AttrError)}
	if dl.Reason == "" {
		dl.Reason = ReasonMaxReceives
	}
	if n, err := strconv.Atoi(attr(m, delivery.AttrReceives)); err == nil {
		dl.ReceiveCount = n
	} else {
		dl.ReceiveCount, _ = strconv.Atoi(m.Attributes[string(types.MessageSystemAttributeNameApproximateReceiveCount)])
	}
	if ms, err := strconv.ParseInt(m.Attributes[string(types.MessageSystemAttributeNameSentTimestamp)], 10, 64); err == nil {
		dl.SentAt = time.UnixMilli(ms).UTC()
	}
	// A dead letter is often not a whole event: take what can be read.
	ev, _ := pipeline.DecodeEvent([]byte(aws.ToString(m.Body)))
	dl.OrderID, dl.Event = ev.Order.ID, string(ev.Type)
	return dl
}

// deadLetterAttrs are the attributes the worker adds when it dead-letters a
// message; a redriven message goes back without them, as it first came.
var deadLetterAttrs = map[string]bool{delivery.AttrReason: true, delivery.AttrError: true, delivery.AttrSourceQueue: true, delivery.AttrReceives: true}

// Redrive moves up to max messages (0: all it held when it began) from a
// stage's DLQ back to the stage queue and returns how many moved. With max
// 0 it first tries SQS's own StartMessageMoveTask; where the endpoint
// lacks it, and for a bounded max, it runs a receive → send → delete loop, ten
// messages at a time, until the DLQ answers empty or max have moved. Only
// messages the stage queue accepted are deleted; the others are made
// visible again and the error is returned.
//
// A message that fails again while the redrive runs comes back to the DLQ
// (a poison message does so at once). So that the loop does not move it
// round and round, a redrive moves at most the messages the DLQ held when
// it began, and stops at a message sent to the DLQ after it began or one
// it has moved itself.
func (d *Manager) Redrive(ctx context.Context, stage pipeline.Stage, max int) (int, error) {
	q, err := d.queue(stage)
	if err != nil {
		return 0, err
	}
	if max <= 0 {
		if n, err := d.moveTask(ctx, q); err == nil || !unsupported(err) {
			return n, err
		}
	}
	began := time.Now()
	held, err := d.held(ctx, q.DLQURL)
	if err != nil {
		return 0, fmt.Errorf("read %s DLQ depth: %w", stage, err)
	}
	if max <= 0 {
		max = held
	}
	max = min(max, held)
	movedIDs := map[string]bool{}
	moved := 0
	for moved < max {
		resp, err := d.SQS.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl: &q.DLQURL, MaxNumberOfMessages: int32(min(10, max-moved)), VisibilityTimeout: 30, WaitTimeSeconds: 1,
			MessageAttributeNames:       []string{"All"},
			MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameSentTimestamp},
		})
		if err != nil {
			return moved, fmt.Errorf("receive from %s DLQ: %w", stage, err)
		}
		var back, msgs []types.Message
		for _, m := range resp.Messages {
			if movedIDs[aws.ToString(m.MessageId)] || sentAfter(m, began) {
				back = append(back, m)
			} else {
				msgs = append(msgs, m)
			}
		}
		if len(back) > 0 {
			d.release(q.DLQURL, receipts(back))
		}
		if len(msgs) == 0 {
			return moved, nil
		}
		entries := make([]types.SendMessageBatchRequestEntry, len(msgs))
		for i, m := range msgs {
			attrs := map[string]types.MessageAttributeValue{}
			for k, v := range m.MessageAttributes {
				if !deadLetterAttrs[k] {
					attrs[k] = v
				}
			}
			entries[i] = types.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), MessageBody: m.Body, MessageAttributes: attrs}
		}
		failed, ids, sendErr := d.send(ctx, q.URL, entries)
		for _, id := range ids {
			movedIDs[id] = true
		}
		if sendErr != nil {
			sendErr = fmt.Errorf("send to %s queue: %w", stage, sendErr)
		}
		var done []types.Message
		back = nil
		for i, m := range msgs {
			if failed[strconv.Itoa(i)] {
				back = append(back, m)
			} else {
				done = append(done, m)
			}
		}
		d.release(q.DLQURL, receipts(back))
		if err := d.delete(ctx, q.DLQURL, done); err != nil {
			// Sent but still in the DLQ: a later redrive sends them again,
			// which the idempotent handlers absorb.
			return moved + len(done), fmt.Errorf("delete redriven messages from %s DLQ: %w", stage, err)
		}
		moved += len(done)
		if sendErr != nil {
			return moved, sendErr
		}
	}
	return moved, nil
}

// held returns the messages in a queue, visible or not.
func (d *Manager) held(ctx context.Context, url string) (int, error) {
	names := []types.QueueAttributeName{types.QueueAttributeNameApproximateNumberOfMessages, types.QueueAttributeNameApproximateNumberOfMessagesNotVisible}
	out, err := d.SQS.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: &url, AttributeNames: names})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, a := range names {
		v, _ := strconv.Atoi(out.Attributes[string(a)])
		n += v
	}
	return n, nil
}

// sentAfter reports whether SQS received m after t (SQS's clock; a skew
// can only end a redrive early, never move a message twice).
func sentAfter(m types.Message, t time.Time) bool {
	ms, err := strconv.ParseInt(m.Attributes[string(types.MessageSystemAttributeNameSentTimestamp)], 10, 64)
	return err == nil && time.UnixMilli(ms).After(t)
}

// maxBatchBytes is SendMessageBatch's limit on the sum of its messages.
const maxBatchBytes = 256 * 1024

// send sends entries in as few batches as the size limit allows and
// returns the entry ids that were not accepted, the message ids of those
// that were, and the first error.
func (d *Manager) send(ctx context.Context, url string, entries []types.SendMessageBatchRequestEntry) (map[string]bool, []string, error) {
	failed := map[string]bool{}
	var sent []string
	var first error
	for len(entries) > 0 {
		n, size := 0, 0
		for n < len(entries) && (n == 0 || size+entryBytes(entries[n]) <= maxBatchBytes) {
			size += entryBytes(entries[n])
			n++
		}
		chunk := entries[:n]
		entries = entries[n:]
		out, err := d.SQS.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: &url, Entries: chunk})
		if err != nil {
			for _, e := range chunk {
				failed[aws.ToString(e.Id)] = true
			}
			first = cmp.Or(first, err)
			continue
		}
		for _, f := range out.Failed {
			failed[aws.ToString(f.Id)] = true
			first = cmp.Or(first, fmt.Errorf("entry failed: %s %s", aws.ToString(f.Code), aws.ToString(f.Message)))
		}
		for _, ok := range out.Successful {
			sent = append(sent, aws.ToString(ok.MessageId))
		}
	}
	return failed, sent, first
}

func entryBytes(e types.SendMessageBatchRequestEntry) int {
	n := len(aws.ToString(e.MessageBody))
	for k, v := range e.MessageAttributes {
		n += len(k) + len(aws.ToString(v.DataType)) + len(aws.ToString(v.StringValue)) + len(v.BinaryValue)
	}
	return n
}

func receipts(msgs []types.Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = aws.ToString(m.ReceiptHandle)
	}
	return out
}

func (d *Manager) delete(ctx context.Context, url string, msgs []types.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	entries := make([]types.DeleteMessageBatchRequestEntry, len(msgs))
	for i, m := range msgs {
		entries[i] = types.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: m.ReceiptHandle}
	}
	// The messages are in the stage queue now: finish the delete even if
	// the request that asked for the redrive went away.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	out, err := d.SQS.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: &url, Entries: entries})
	if err != nil {
		return err
	}
	if len(out.Failed) > 0 {
		return errors.New(aws.ToString(out.Failed[0].Code) + ": " + aws.ToString(out.Failed[0].Message))
	}
	return nil
}

// moveTask runs SQS's own redrive and waits for it to finish.
func (d *Manager) moveTask(ctx context.Context, q Queue) (int, error) {
	arn := func(url string) (string, error) {
		out, err := d.SQS.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: &url, AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameQueueArn}})
		if err != nil {
			return "", err
		}
		return out.Attributes[string(types.QueueAttributeNameQueueArn)], nil
	}
	src, err := arn(q.DLQURL)
	if err != nil {
		return 0, err
	}
	dst, err := arn(q.URL)
	if err != nil {
		return 0, err
	}
	if _, err := d.SQS.StartMessageMoveTask(ctx, &sqs.StartMessageMoveTaskInput{SourceArn: &src, DestinationArn: &dst}); err != nil {
		return 0, err
	}
	for {
		out, err := d.SQS.ListMessageMoveTasks(ctx, &sqs.ListMessageMoveTasksInput{SourceArn: &src, MaxResults: aws.Int32(1)})
		if err != nil {
			return 0, err
		}
		if len(out.Results) > 0 {
			r := out.Results[0]
			switch aws.ToString(r.Status) {
			case "COMPLETED":
				return int(r.ApproximateNumberOfMessagesMoved), nil
			case "FAILED", "CANCELLED":
				return int(r.ApproximateNumberOfMessagesMoved), fmt.Errorf("message move task %s: %s", aws.ToString(r.Status), aws.ToString(r.FailureReason))
			}
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

func unsupported(err error) bool {
	var api smithy.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode() {
		case "UnsupportedOperation", "AWS.SimpleQueueService.UnsupportedOperation", "InvalidAction", "UnknownOperationException", "NotImplemented", "InternalFailure", "UnknownError":
			return true
		}
	}
	var de *smithy.DeserializationError
	return errors.As(err, &de)
}
