package worker_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
)

func TestMissingQueueTurnsTheWorkerUnreadyInsteadOfSpinning(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.w.Run(ctx) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(20 * time.Second)
	for f.w.Ready() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("never ready: %v", f.w.Ready())
		}
		time.Sleep(20 * time.Millisecond)
	}
	url := f.env.QueueURL(pipeline.StagePayment, false)
	if _, err := f.env.SQS.DeleteQueue(context.Background(), &sqs.DeleteQueueInput{QueueUrl: aws.String(url)}); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(30 * time.Second)
	for {
		err := f.w.Ready()
		if err != nil {
			if !strings.Contains(err.Error(), "payment queue unusable") {
				t.Fatalf("unready for the wrong reason: %v", err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the worker stayed ready with its payment queue gone")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// It backs off instead of spinning: a handful of receive attempts, not
	// thousands.
	time.Sleep(500 * time.Millisecond)
	failed := f.awsRequests(t, func(l map[string]string) bool { return l["operation"] == "ReceiveMessage" && l["outcome"] != "ok" })
	if failed == 0 || failed > 10 {
		t.Fatalf("%v failed receives; want a few (backing off), not none or a spin", failed)
	}
}
