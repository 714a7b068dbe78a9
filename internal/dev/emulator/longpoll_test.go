package emulator

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/sivchari/kumo"

	"github.com/cloudcommerce/cloudcommerce/internal/awsconf"
)

// TestKumoLongPollMissesVisibilityExpiry pins down the emulator's gap
// behind the benchmarks' tail of retried orders: a long poll already
// waiting when a message's visibility expires is not answered with it (on
// SQS it is, as soon as the message is visible); it returns empty at the
// end of its wait, and the next receive gets the message at once. A
// worker whose retry back-off is 1–2 s thus picks the message up only when
// its parked poll ends, up to CLOUDCOMMERCE_WAIT_TIME (20 s) later. Should
// a kumo release fix this, the test fails and the notes on the gap
// (BENCHMARKS.md, the slow-order causes in internal/dev/loadgen) go.
func TestKumoLongPollMissesVisibilityExpiry(t *testing.T) {
	t.Parallel()
	srv := kumo.NewServer()
	defer srv.Close()
	ctx := context.Background()
	cfg, err := awsconf.Load(ctx, awsconf.Options{Endpoint: srv.URL, Region: "us-east-1", StaticCredentials: true})
	if err != nil {
		t.Fatal(err)
	}
	q := sqs.NewFromConfig(cfg)
	created, err := q.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(fmt.Sprintf("longpoll-%d", time.Now().UnixNano()))})
	if err != nil {
		t.Fatal(err)
	}
	url := created.QueueUrl
	if _, err := q.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: url, MessageBody: aws.String("retry me")}); err != nil {
		t.Fatal(err)
	}
	first, err := q.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: url, WaitTimeSeconds: 1})
	if err != nil || len(first.Messages) != 1 {
		t.Fatalf("first receive: %v, %d messages", err, len(first.Messages))
	}
	// The worker's retry: the message comes back after a 1 s back-off.
	if _, err := q.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{QueueUrl: url,
		ReceiptHandle: first.Messages[0].ReceiptHandle, VisibilityTimeout: 1}); err != nil {
		t.Fatal(err)
	}
	// A poller parks in a long poll while the message is invisible; the
	// message turns visible a second into its 4 s wait.
	start := time.Now()
	parked, err := q.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: url, WaitTimeSeconds: 4})
	if err != nil {
		t.Fatal(err)
	}
	waited := time.Since(start)
	next, err := q.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: url})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("parked long poll (4 s, message visible after 1 s): %d messages after %s; the next receive: %d", len(parked.Messages), waited.Round(10*time.Millisecond), len(next.Messages))
	if len(parked.Messages) != 0 {
		t.Fatalf("the parked long poll returned the message (as SQS does): kumo no longer has this gap; update the notes")
	}
	if len(next.Messages) != 1 || aws.ToString(next.Messages[0].Body) != "retry me" {
		t.Fatalf("the message was not visible after the parked poll: %d messages", len(next.Messages))
	}
}
