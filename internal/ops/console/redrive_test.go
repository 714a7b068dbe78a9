package console_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/cloudcommerce/cloudcommerce/internal/config"
	"github.com/cloudcommerce/cloudcommerce/internal/dev/awsfault"
	"github.com/cloudcommerce/cloudcommerce/internal/dev/testkit"
	"github.com/cloudcommerce/cloudcommerce/internal/metrics"
	"github.com/cloudcommerce/cloudcommerce/internal/ops/dlq"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
	"github.com/cloudcommerce/cloudcommerce/internal/worker"
)

// bodies receives and deletes every visible message of a queue.
func bodies(t *testing.T, e *testkit.Env, u string) []string {
	t.Helper()
	var out []string
	for {
		r, err := e.SQS.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: &u, MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Messages) == 0 {
			slices.Sort(out)
			return out
		}
		for _, m := range r.Messages {
			out = append(out, aws.ToString(m.Body))
			if _, err := e.SQS.DeleteMessage(context.Background(), &sqs.DeleteMessageInput{QueueUrl: &u, ReceiptHandle: m.ReceiptHandle}); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// The console's redrive, against AWS's answers from the fault endpoint:
// messages the stage queue refuses stay in the DLQ and are logged by id
// and reason, the page says how many; a request that fails as a whole
// stops the redrive and leaves the page in the DLQ.
func TestConsoleRedriveKeepsWhatTheQueueRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		fault    func(*awsfault.Proxy)
		moved    int
		left     []string
		location string // a query parameter the redirect must carry
		logged   string // the log line's message
	}{
		{"refused entries", func(p *awsfault.Proxy) {
			p.AddEntries(&awsfault.EntryFault{Service: "SQS", Operation: "SendMessageBatch", Match: "refused-",
				Code: "InvalidParameterValue", Message: "Message contains invalid characters.", SenderFault: true})
		}, 10, []string{"refused-0", "refused-1"}, "unsent=2", "console redrive left messages in the DLQ"},
		{"throttled batch", func(p *awsfault.Proxy) {
			p.Add(&awsfault.Rule{Service: "SQS", Operation: "SendMessageBatch", Response: awsfault.SQSThrottled})
		}, 0, nil, "failed=1", "console redrive failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := testkit.Provision(t)
			proxy, awsCfg := testkit.FaultEndpoint(t)
			tc.fault(proxy)
			core, logs := observer.New(zap.InfoLevel)
			cfg := config.WorkerDefaults()
			cfg.Prefix, cfg.APIKey = e.Prefix, key
			w, err := worker.New(context.Background(), cfg, worker.Deps{AWS: awsCfg, Log: zap.New(core), Metrics: metrics.New()})
			if err != nil {
				t.Fatal(err)
			}
			mux := http.NewServeMux()
			w.OpsRoutes(mux)
			srv := httptest.NewServer(mux)
			t.Cleanup(srv.Close)

			dlqURL := e.QueueURL(pipeline.StageInventory, true)
			var all []string
			for i, b := range []string{"fine-0", "fine-1", "fine-2", "fine-3", "fine-4", "refused-0", "fine-5", "fine-6", "fine-7", "refused-1", "fine-8", "fine-9"} {
				all = append(all, b)
				if _, err := e.SQS.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: &dlqURL, MessageBody: aws.String(b),
					MessageAttributes: map[string]types.MessageAttributeValue{"n": {DataType: aws.String("Number"), StringValue: aws.String(strconv.Itoa(i))}}}); err != nil {
					t.Fatal(err)
				}
			}
			slices.Sort(all)
			left := tc.left
			if left == nil {
				left = all
			}

			resp, _ := send(t, "POST", srv.URL+"/console/redrive", url.Values{"stage": {"inventory"}, "api_key": {key}}, nil)
			loc := resp.Header.Get("Location")
			if resp.StatusCode != http.StatusSeeOther || !strings.Contains(loc, fmt.Sprintf("moved=%d", tc.moved)) || !strings.Contains(loc, tc.location) {
				t.Fatalf("redrive = %d → %s, want moved=%d and %s", resp.StatusCode, loc, tc.moved, tc.location)
			}
			if got := bodies(t, e, dlqURL); !slices.Equal(got, left) {
				t.Errorf("DLQ holds %v, want %v", got, left)
			}
			if got := len(bodies(t, e, e.QueueURL(pipeline.StageInventory, false))); got != tc.moved {
				t.Errorf("stage queue holds %d, want %d", got, tc.moved)
			}
			entries := logs.FilterMessage(tc.logged).All()
			if len(entries) != 1 {
				t.Fatalf("log has %d %q lines, want 1: %v", len(entries), tc.logged, logs.All())
			}
			if tc.left != nil {
				unsent, _ := entries[0].ContextMap()["unsent_messages"].([]dlq.Unsent)
				if len(unsent) != len(tc.left) {
					t.Fatalf("logged unsent messages %v, want %d", entries[0].ContextMap()["unsent_messages"], len(tc.left))
				}
				for _, u := range unsent {
					if u.MessageID == "" || u.Code != "InvalidParameterValue" {
						t.Errorf("logged unsent %+v, want its id and AWS's code", u)
					}
				}
			}

			// The page after the redirect says what happened.
			page, body := send(t, "GET", srv.URL+loc, nil, http.Header{"Authorization": {"Bearer " + key}})
			if page.StatusCode != http.StatusOK || !strings.Contains(body, "still in the DLQ") {
				t.Fatalf("GET %s = %d, want a page saying what is still in the DLQ:\n%s", loc, page.StatusCode, body)
			}
		})
	}
}
