package notify_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"testing"
	"time"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/smithy-go"
	"go.uber.org/zap/zaptest"

	"github.com/cloudcommerce/cloudcommerce/internal/awsconf"
	"github.com/cloudcommerce/cloudcommerce/internal/dev/awsfault"
	"github.com/cloudcommerce/cloudcommerce/internal/dev/emulator"
	"github.com/cloudcommerce/cloudcommerce/internal/dev/testkit"
	"github.com/cloudcommerce/cloudcommerce/internal/notify"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
)

var (
	// InternalFailure is the query APIs' common 500 answer.
	internalFailure = awsfault.SNS(500, "InternalFailure", "Receiver", "The request processing has failed because of an unknown error, exception or failure.")
	// A 502 with a body that is no SNS answer at all.
	badGateway = awsfault.Response{Status: 502, Header: http.Header{"Content-Type": {"text/html"}},
		Body: "<html><body><h1>502 Bad Gateway</h1></body></html>"}
)

// Only an answer that PublishBatch does not exist turns batching off; a
// throttled, failed or denied batch is returned to its callers (after the
// SDK's own retries where the error is retryable) and the next batch tries
// PublishBatch again. The answers are SNS's own (awsfault), in front of the
// emulator.
func TestPublishBatchFallsBackOnlyWhenTheActionIsMissing(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name         string
		answer       *awsfault.Response // nil: the endpoint's own answer
		wantCode     string             // "" : delivered
		wantAttempts int                // PublishBatch requests per flush
		wantFallback bool
		wantStatus   int // an HTTP error without an API error code
	}{
		{name: "InvalidAction", answer: &awsfault.SNSInvalidAction, wantAttempts: 1, wantFallback: true},
		{name: "Throttled", answer: &awsfault.SNSThrottled, wantCode: "Throttled", wantAttempts: 1},
		{name: "InternalError", answer: &awsfault.SNSInternalError, wantCode: "InternalError", wantAttempts: 3},
		{name: "ServiceUnavailable", answer: &awsfault.SNSUnavailable, wantCode: "ServiceUnavailable", wantAttempts: 3},
		{name: "InternalFailure", answer: &internalFailure, wantCode: "InternalFailure", wantAttempts: 3},
		{name: "502 from a load balancer", answer: &badGateway, wantAttempts: 3, wantStatus: 502},
		{name: "AuthorizationError", answer: &awsfault.SNSAuthorization, wantCode: "AuthorizationError", wantAttempts: 1},
	}
	if emulator.Embedded() {
		// kumo has no PublishBatch; its answer is not an SNS error.
		cases = append(cases, struct {
			name         string
			answer       *awsfault.Response
			wantCode     string
			wantAttempts int
			wantFallback bool
			wantStatus   int
		}{name: "emulator without PublishBatch", wantAttempts: 1, wantFallback: true})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := testkit.Provision(t)
			inbox := e.SubscribeQueue(t)
			proxy, err := awsfault.New(os.Getenv("AWS_ENDPOINT_URL"))
			if err != nil {
				t.Fatal(err)
			}
			defer proxy.Close()
			if tc.answer != nil {
				proxy.Add(&awsfault.Rule{Service: "SNS", Operation: "PublishBatch", Response: *tc.answer})
			}
			cfg, err := awsconf.Load(context.Background(), awsconf.Options{Endpoint: proxy.URL})
			if err != nil {
				t.Fatal(err)
			}
			n := notify.New(sns.NewFromConfig(cfg), notify.Config{TopicARN: e.Prov.TopicARN, Linger: time.Millisecond}, zaptest.NewLogger(t))
			defer n.Close()
			note := func(id string) pipeline.Notification {
				return pipeline.Notification{Event: "OrderShipped", OrderID: id, Customer: "c", Channels: []string{"email"}, Subject: "Your order", Text: "Your order has shipped."}
			}
			ctx := context.Background()
			for i, id := range []string{"o-1", "o-2"} {
				err := n.Notify(ctx, note(id))
				if tc.wantStatus != 0 {
					var re *awshttp.ResponseError
					if !errors.As(err, &re) || re.HTTPStatusCode() != tc.wantStatus {
						t.Fatalf("notify %s: error %v, want HTTP %d", id, err, tc.wantStatus)
					}
				} else if tc.wantCode == "" {
					if err != nil {
						t.Fatalf("notify %s: %v", id, err)
					}
				} else {
					var api smithy.APIError
					if !errors.As(err, &api) || api.ErrorCode() != tc.wantCode {
						t.Fatalf("notify %s: error %v, want the API error %s", id, err, tc.wantCode)
					}
				}
				batches, singles := proxy.Requests("SNS", "PublishBatch"), proxy.Requests("SNS", "Publish")
				if tc.wantFallback {
					// The first notification tried PublishBatch once and was
					// then published alone; the second went straight to Publish.
					if batches != tc.wantAttempts || singles != i+1 {
						t.Fatalf("after %d notifications: %d PublishBatch and %d Publish requests, want %d and %d", i+1, batches, singles, tc.wantAttempts, i+1)
					}
				} else if batches != tc.wantAttempts*(i+1) || singles != 0 {
					// Every flush tries PublishBatch again (with the SDK's retries).
					t.Fatalf("after %d notifications: %d PublishBatch and %d Publish requests, want %d and 0", i+1, batches, singles, tc.wantAttempts*(i+1))
				}
			}
			if tc.wantFallback {
				got := map[string]int{}
				for _, m := range testkit.Notifications(t, e.Receive(t, inbox, 2, 5*time.Second)) {
					got[m.Attr("order_id")]++
				}
				if got["o-1"] != 1 || got["o-2"] != 1 || len(got) != 2 {
					t.Fatalf("delivered %v, want o-1 and o-2 once each", got)
				}
			}
		})
	}
}
