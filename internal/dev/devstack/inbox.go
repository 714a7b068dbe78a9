// Package devstack runs the whole system in one process on the embedded
// emulator: topology, demo inventory, the worker, the intake API, and a
// queue subscribed to the notifications topic so a person can see what
// customers were told.
package devstack

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"go.uber.org/zap"

	"github.com/cloudcommerce/cloudcommerce/internal/intake"
)

// Inbox drains a queue subscribed to the notifications topic and keeps what
// arrived, by order. Safe for concurrent use.
type Inbox struct {
	sqs *sqs.Client
	url string
	log *zap.Logger

	mu      sync.Mutex
	byOrder map[string][]intake.DeliveredNotification
	subs    []chan intake.DeliveredNotification
}

// NewInbox reads notifications from the queue at url.
func NewInbox(client *sqs.Client, url string, log *zap.Logger) *Inbox {
	return &Inbox{sqs: client, url: url, log: log, byOrder: map[string][]intake.DeliveredNotification{}}
}

// snsEnvelope is an SNS notification as delivered to SQS (not raw).
type snsEnvelope struct {
	Subject           string `json:"Subject"`
	Message           string `json:"Message"`
	MessageAttributes map[string]struct {
		Type  string `json:"Type"`
		Value string `json:"Value"`
	} `json:"MessageAttributes"`
}

// ForOrder implements intake.NotificationLog.
func (in *Inbox) ForOrder(id string) []intake.DeliveredNotification {
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([]intake.DeliveredNotification(nil), in.byOrder[id]...)
}

// Subscribe returns a channel that receives every notification from now on.
func (in *Inbox) Subscribe() <-chan intake.DeliveredNotification {
	ch := make(chan intake.DeliveredNotification, 4096)
	in.mu.Lock()
	in.subs = append(in.subs, ch)
	in.mu.Unlock()
	return ch
}

// Run receives until ctx is done.
func (in *Inbox) Run(ctx context.Context) {
	for ctx.Err() == nil {
		out, err := in.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &in.url, MaxNumberOfMessages: 10, WaitTimeSeconds: 2})
		if err != nil {
			if ctx.Err() == nil {
				in.log.Warn("notification inbox receive failed", zap.Error(err))
				time.Sleep(time.Second)
			}
			continue
		}
		var del []types.DeleteMessageBatchRequestEntry
		for _, m := range out.Messages {
			var env snsEnvelope
			if err := json.Unmarshal([]byte(aws.ToString(m.Body)), &env); err == nil {
				n := intake.DeliveredNotification{Subject: env.Subject, Message: env.Message, Attributes: map[string]string{}, ReceivedAt: time.Now().UTC()}
				for k, v := range env.MessageAttributes {
					n.Attributes[k] = v.Value
				}
				n.Event, n.OrderID = n.Attributes["event"], n.Attributes["order_id"]
				in.add(n)
			}
			del = append(del, types.DeleteMessageBatchRequestEntry{Id: aws.String(aws.ToString(m.MessageId)), ReceiptHandle: m.ReceiptHandle})
		}
		if len(del) > 0 {
			_, _ = in.sqs.DeleteMessageBatch(context.WithoutCancel(ctx), &sqs.DeleteMessageBatchInput{QueueUrl: &in.url, Entries: del})
		}
	}
}

func (in *Inbox) add(n intake.DeliveredNotification) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.byOrder[n.OrderID] = append(in.byOrder[n.OrderID], n)
	for _, ch := range in.subs {
		select {
		case ch <- n:
		default:
		}
	}
}
