// Package notify is the SNS adapter of pipeline.Notifier. Each notification
// carries the message attributes event, channel, order_id and customer_id so
// email and SMS subscriptions can filter on them. Where the endpoint offers
// PublishBatch, notifications from concurrent handlers are sent ten at a
// time; where the endpoint answers that it has no such action (some
// emulators), the notifier falls back to one Publish per notification, once
// and for good. Any other failure of a batch (throttling, 5xx) is returned
// to each notification's caller and does not change the mode.
package notify

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sns/types"
	"github.com/aws/smithy-go"
	"go.uber.org/zap"

	"github.com/cloudcommerce/cloudcommerce/internal/batch"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
)

// Config configures the notifier.
type Config struct {
	TopicARN string
	// Batch is the most notifications per PublishBatch (1 disables it).
	// Default 10.
	Batch int
	// Linger is how long a notification waits for company; default 5ms.
	Linger time.Duration
	// PublishBatch says whether to try PublishBatch at all: "auto" (the
	// default) tries it and falls back when the endpoint lacks it, "off"
	// never uses it.
	PublishBatch string
	OnFlush      func(int)
}

// Notifier implements pipeline.Notifier. Safe for concurrent use.
type Notifier struct {
	sns     *sns.Client
	cfg     Config
	log     *zap.Logger
	b       *batch.Batcher[pipeline.Notification]
	noBatch atomic.Bool
}

var _ pipeline.Notifier = (*Notifier)(nil)

// New returns a notifier publishing to the topic.
func New(client *sns.Client, cfg Config, log *zap.Logger) *Notifier {
	if cfg.Batch <= 0 || cfg.Batch > 10 {
		cfg.Batch = 10
	}
	if cfg.Linger == 0 {
		cfg.Linger = 5 * time.Millisecond
	}
	n := &Notifier{sns: client, cfg: cfg, log: log}
	if cfg.PublishBatch == "off" || cfg.Batch == 1 {
		n.noBatch.Store(true)
	}
	n.b = batch.New(batch.Config{Max: cfg.Batch, Linger: cfg.Linger, OnFlush: cfg.OnFlush}, n.flush)
	return n
}

// Attributes returns the SNS message attributes of a notification.
func Attributes(n pipeline.Notification) map[string]types.MessageAttributeValue {
	channels := "["
	for i, c := range n.Channels {
		if i > 0 {
			channels += ","
		}
		channels += strconv.Quote(c)
	}
	channels += "]"
	return map[string]types.MessageAttributeValue{
		"event":       {DataType: aws.String("String"), StringValue: aws.String(n.Event)},
		"channel":     {DataType: aws.String("String.Array"), StringValue: aws.String(channels)},
		"order_id":    {DataType: aws.String("String"), StringValue: aws.String(n.OrderID)},
		"customer_id": {DataType: aws.String("String"), StringValue: aws.String(n.Customer)},
	}
}

// Notify implements pipeline.Notifier.
func (n *Notifier) Notify(ctx context.Context, note pipeline.Notification) error {
	if n.noBatch.Load() {
		return n.publish(ctx, note)
	}
	return n.b.Do(ctx, note)
}

// Close sends what is pending and waits for requests in flight.
func (n *Notifier) Close() { n.b.Close() }

func (n *Notifier) publish(ctx context.Context, note pipeline.Notification) error {
	_, err := n.sns.Publish(ctx, &sns.PublishInput{
		TopicArn:          &n.cfg.TopicARN,
		Subject:           aws.String(note.Subject),
		Message:           aws.String(note.Text),
		MessageAttributes: Attributes(note),
	})
	if err != nil {
		return fmt.Errorf("publish %s notification for order %s: %w", note.Event, note.OrderID, err)
	}
	return nil
}

// unsupported reports whether err is an answer that the endpoint has no
// PublishBatch action, the only answer that turns batching off:
//   - InvalidAction (HTTP 400), what query-protocol endpoints such as SNS
//     answer for an action they do not have, or UnknownOperationException,
//     its JSON-protocol spelling, or NotImplemented;
//   - HTTP 404 or 501 for the action;
//   - an HTTP 400 whose body is not an SNS error at all (the SDK reads no
//     code from it): the endpoint does not speak SNS for this action. SNS
//     itself always answers its own actions with an <ErrorResponse>.
//
// Everything else, and in particular 5xx, InternalError/InternalFailure,
// throttling and access denied, is an answer about this request: the SDK
// has retried what is retryable and the error goes back to the caller,
// whose message is retried; the next batch tries PublishBatch again.
func unsupported(err error) bool {
	var re *awshttp.ResponseError
	status := 0
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	if status == 404 || status == 501 {
		return true
	}
	var api smithy.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode() {
		case "InvalidAction", "UnknownOperationException", "NotImplemented":
			return true
		case "UnknownError":
			return status == 400
		}
		return false
	}
	var de *smithy.DeserializationError
	return errors.As(err, &de) && status == 400
}

func (n *Notifier) flush(ctx context.Context, notes []pipeline.Notification) []error {
	errs := make([]error, len(notes))
	if !n.noBatch.Load() {
		entries := make([]types.PublishBatchRequestEntry, len(notes))
		for i, note := range notes {
			entries[i] = types.PublishBatchRequestEntry{
				Id: aws.String(strconv.Itoa(i)), Subject: aws.String(note.Subject), Message: aws.String(note.Text),
				MessageAttributes: Attributes(note),
			}
		}
		out, err := n.sns.PublishBatch(ctx, &sns.PublishBatchInput{TopicArn: &n.cfg.TopicARN, PublishBatchRequestEntries: entries})
		switch {
		case err == nil:
			for _, f := range out.Failed {
				if i, convErr := strconv.Atoi(aws.ToString(f.Id)); convErr == nil && i < len(errs) {
					errs[i] = fmt.Errorf("publish %s notification for order %s: %s", notes[i].Event, notes[i].OrderID, aws.ToString(f.Code))
				}
			}
			return errs
		case unsupported(err):
			if n.noBatch.CompareAndSwap(false, true) {
				n.log.Info("the SNS endpoint has no PublishBatch; publishing notifications one by one", zap.Error(err))
			}
		default:
			for i := range errs {
				errs[i] = fmt.Errorf("publish notification batch: %w", err)
			}
			return errs
		}
	}
	for i, note := range notes {
		errs[i] = n.publish(ctx, note)
	}
	return errs
}
