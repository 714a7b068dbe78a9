// Package dlq lets an operator see and recover dead-lettered messages:
// List peeks at a stage's DLQ without consuming it, Redrive moves messages
// back to the stage queue. Redrive uses SQS's StartMessageMoveTask where the
// endpoint supports it, and otherwise a receive → send → delete loop that
// sends each message to the source queue before deleting it from the DLQ,
// so a failure at any point leaves the message in the DLQ (or, after a
// crash between send and delete, in both queues — which the idempotent
// handlers absorb), never nowhere.
package dlq

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"

	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
	"github.com/cloudcommerce/cloudcommerce/internal/queue"
)

// Queues names a stage's queue and its DLQ by URL.
type Queues struct {
	Source string
	DLQ    string
}

// Manager works on the DLQs of the stages. Safe for concurrent use.
type Manager struct {
	sqs    *sqs.Client
	queues map[pipeline.Stage]Queues
}

// New returns a manager for the given queues.
func New(client *sqs.Client, queues map[pipeline.Stage]Queues) *Manager {
	return &Manager{sqs: client, queues: queues}
}

// DeadLetter is one message in a DLQ.
type DeadLetter struct {
	MessageID    string    `json:"message_id"`
	OrderID      string    `json:"order_id,omitempty"`
	EventType    string    `json:"event_type,omitempty"`
	ReceiveCount int       `json:"receive_count"`
	Reason       string    `json:"reason"`
	Error        string    `json:"error,omitempty"`
	SentAt       time.Time `json:"sent_at"`
	Body         string    `json:"-"`
}

func (m *Manager) stage(st pipeline.Stage) (Queues, error) {
	q, ok := m.queues[st]
	if !ok {
		return Queues{}, fmt.Errorf("unknown stage %q (want inventory, payment or shipping)", st)
	}
	return q, nil
}

// peekHold is how long List hides the messages it has seen, so one listing
// does not count a message twice; they are made visible again at the end.
const peekHold = 20 * time.Second

// List returns up to max dead-lettered messages of a stage without
// consuming them: each is received, described and made visible again.
func (m *Manager) List(ctx context.Context, st pipeline.Stage, max int) ([]DeadLetter, error) {
	q, err := m.stage(st)
	if err != nil {
		return nil, err
	}
	if max <= 0 {
		max = 100
	}
	var out []DeadLetter
	var seen []types.ChangeMessageVisibilityBatchRequestEntry
	defer func() {
		// Hand every seen message back at once, even on error.
		bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		for len(seen) > 0 {
			n := min(10, len(seen))
			_, _ = m.sqs.ChangeMessageVisibilityBatch(bctx, &sqs.ChangeMessageVisibilityBatchInput{QueueUrl: &q.DLQ, Entries: seen[:n]})
			seen = seen[n:]
		}
	}()
	for len(out) < max {
		resp, err := m.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl: &q.DLQ, MaxNumberOfMessages: int32(min(10, max-len(out))), WaitTimeSeconds: 1,
			VisibilityTimeout:           int32(peekHold / time.Second),
			MessageAttributeNames:       []string{"All"},
			MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameAll},
		})
		if err != nil {
			return out, fmt.Errorf("read %s DLQ: %w", st, err)
		}
		if len(resp.Messages) == 0 {
			break
		}
		for _, msg := range resp.Messages {
			out = append(out, describe(msg))
			seen = append(seen, types.ChangeMessageVisibilityBatchRequestEntry{
				Id: aws.String(strconv.Itoa(len(seen) % 10)), ReceiptHandle: msg.ReceiptHandle, VisibilityTimeout: 0})
		}
		for i := range seen {
			seen[i].Id = aws.String(strconv.Itoa(i % 10))
		}
	}
	return out, nil
}

func attr(m types.Message, name string) string {
	if v, ok := m.MessageAttributes[name]; ok {
		return aws.ToString(v.StringValue)
	}
	return ""
}

func describe(msg types.Message) DeadLetter {
	d := DeadLetter{MessageID: aws.ToString(msg.MessageId), Body: aws.ToString(msg.Body), Reason: attr(msg, queue.AttrReason), Error: attr(msg, queue.AttrError)}
	if d.Reason == "" {
		d.Reason = "max receives exceeded (retried until SQS moved it)"
	}
	if n, err := strconv.Atoi(attr(msg, queue.AttrReceives)); err == nil {
		d.ReceiveCount = n
	} else {
		d.ReceiveCount, _ = strconv.Atoi(msg.Attributes[string(types.MessageSystemAttributeNameApproximateReceiveCount)])
	}
	if ms, err := strconv.ParseInt(msg.Attributes[string(types.MessageSystemAttributeNameSentTimestamp)], 10, 64); err == nil {
		d.SentAt = time.UnixMilli(ms).UTC()
	}
	var env struct {
		DetailType string `json:"detail-type"`
		Detail     struct {
			OrderID string `json:"order_id"`
		} `json:"detail"`
	}
	if json.Unmarshal([]byte(d.Body), &env) == nil {
		d.EventType, d.OrderID = env.DetailType, env.Detail.OrderID
	}
	return d
}

// Redrive moves up to max messages (0: all) from a stage's DLQ back to its
// queue and returns how many it moved.
func (m *Manager) Redrive(ctx context.Context, st pipeline.Stage, max int) (int, error) {
	q, err := m.stage(st)
	if err != nil {
		return 0, err
	}
	if max == 0 {
		if n, err := m.moveTask(ctx, q); err == nil {
			return n, nil
		} else if !unsupported(err) {
			return 0, err
		}
	}
	return m.loop(ctx, q, max)
}

// moveTask runs SQS's own redrive and waits for it to finish.
func (m *Manager) moveTask(ctx context.Context, q Queues) (int, error) {
	arn := func(url string) (string, error) {
		out, err := m.sqs.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: &url, AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameQueueArn}})
		if err != nil {
			return "", err
		}
		return out.Attributes[string(types.QueueAttributeNameQueueArn)], nil
	}
	src, err := arn(q.DLQ)
	if err != nil {
		return 0, err
	}
	dst, err := arn(q.Source)
	if err != nil {
		return 0, err
	}
	if _, err := m.sqs.StartMessageMoveTask(ctx, &sqs.StartMessageMoveTaskInput{SourceArn: &src, DestinationArn: &dst}); err != nil {
		return 0, err
	}
	for {
		out, err := m.sqs.ListMessageMoveTasks(ctx, &sqs.ListMessageMoveTasksInput{SourceArn: &src, MaxResults: aws.Int32(1)})
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

// skipAttrs are the worker's own dead-letter annotations, not carried back.
var skipAttrs = map[string]bool{queue.AttrReason: true, queue.AttrError: true, queue.AttrSourceQueue: true, queue.AttrReceives: true}

func (m *Manager) loop(ctx context.Context, q Queues, max int) (int, error) {
	moved := 0
	for max <= 0 || moved < max {
		want := 10
		if max > 0 {
			want = min(10, max-moved)
		}
		resp, err := m.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl: &q.DLQ, MaxNumberOfMessages: int32(want), WaitTimeSeconds: 1, VisibilityTimeout: 60, MessageAttributeNames: []string{"All"},
		})
		if err != nil {
			return moved, fmt.Errorf("read DLQ: %w", err)
		}
		if len(resp.Messages) == 0 {
			return moved, nil
		}
		send := make([]types.SendMessageBatchRequestEntry, len(resp.Messages))
		for i, msg := range resp.Messages {
			attrs := map[string]types.MessageAttributeValue{}
			for k, v := range msg.MessageAttributes {
				if !skipAttrs[k] {
					attrs[k] = v
				}
			}
			send[i] = types.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), MessageBody: msg.Body, MessageAttributes: attrs}
		}
		out, err := m.sqs.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: &q.Source, Entries: send})
		if err != nil {
			return moved, fmt.Errorf("send to source queue (nothing deleted): %w", err)
		}
		var del []types.DeleteMessageBatchRequestEntry
		for _, ok := range out.Successful {
			i, _ := strconv.Atoi(aws.ToString(ok.Id))
			del = append(del, types.DeleteMessageBatchRequestEntry{Id: ok.Id, ReceiptHandle: resp.Messages[i].ReceiptHandle})
		}
		if len(del) > 0 {
			dout, err := m.sqs.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: &q.DLQ, Entries: del})
			if err != nil {
				return moved, fmt.Errorf("delete redriven messages from the DLQ (they are in both queues; handlers are idempotent): %w", err)
			}
			moved += len(dout.Successful)
		}
		if len(out.Failed) > 0 {
			return moved, fmt.Errorf("%d messages could not be sent back and stay in the DLQ: %s", len(out.Failed), aws.ToString(out.Failed[0].Message))
		}
	}
	return moved, nil
}
