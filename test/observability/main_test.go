// Package observability_test checks what an operator sees of the pipeline:
// one connected trace per order, logs with no customer contact details or
// payment tokens, the operations console (in a real headless browser), and
// that every dashboard query and alert rule names a metric the worker
// exports. The worker runs in-process on the embedded emulator, as in the
// worker's own tests.
package observability_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	oteltrace "go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/cloudcommerce/cloudcommerce/internal/config"
	"github.com/cloudcommerce/cloudcommerce/internal/dev/emulator"
	"github.com/cloudcommerce/cloudcommerce/internal/dev/testkit"
	"github.com/cloudcommerce/cloudcommerce/internal/intake"
	"github.com/cloudcommerce/cloudcommerce/internal/metrics"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
	"github.com/cloudcommerce/cloudcommerce/internal/worker"
)

func TestMain(m *testing.M) { emulator.RunTests(m) }

// options shape one in-process stack.
type options struct {
	log           *zap.Logger
	tracing       oteltrace.TracerProvider
	apiKey        string
	notifications intake.NotificationLog
	mutate        func(*config.Worker)
}

// stack is a provisioned topology with a running worker, and one HTTP
// server with the intake API and the ops routes (as devstack serves them).
type stack struct {
	env    *testkit.Env
	w      *worker.Worker
	m      *metrics.Metrics
	srv    *httptest.Server
	apiKey string
	stop   func()
}

// start provisions a fresh topology, runs a worker on it until the test
// ends, and serves its intake and ops routes.
func start(t *testing.T, o options) *stack {
	t.Helper()
	env := testkit.Provision(t)
	return startOn(t, env, o)
}

func startOn(t *testing.T, env *testkit.Env, o options) *stack {
	t.Helper()
	cfg := config.WorkerDefaults()
	cfg.Prefix, cfg.WaitTime, cfg.RetryBase, cfg.SweepInterval, cfg.QueueSampleInterval = env.Prefix, time.Second, time.Second, -1, -1
	cfg.Pollers, cfg.APIKey = 1, o.apiKey
	for _, st := range pipeline.Stages {
		cfg.Concurrency[st] = 4
	}
	if o.mutate != nil {
		o.mutate(&cfg)
	}
	if o.log == nil {
		o.log = testLogger(t)
	}
	m := metrics.New()
	w, err := worker.New(context.Background(), cfg, worker.Deps{AWS: testkit.RecordedAs(t, env.AWS, "worker", "run"), Log: o.log, Metrics: m, Tracing: o.tracing, Notifications: o.notifications})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	w.Intake.Routes(mux)
	w.OpsRoutes(mux)
	srv := httptest.NewServer(mux)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	var once sync.Once
	s := &stack{env: env, w: w, m: m, srv: srv, apiKey: o.apiKey}
	s.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("worker run: %v", err)
			}
			srv.Close()
		})
	}
	t.Cleanup(s.stop)
	return s
}

func testLogger(t *testing.T) *zap.Logger {
	return zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
}

func (s *stack) stock(t *testing.T, sku string, n int64) {
	t.Helper()
	if err := s.w.Store.SetStock(context.Background(), sku, n); err != nil {
		t.Fatal(err)
	}
}

// post sends a JSON request to the intake with the API key.
func (s *stack) post(t *testing.T, path string, body any) (int, []byte) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, s.srv.URL+path, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	if s.apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+s.apiKey)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// place places an order through the intake API and returns its id.
func (s *stack) place(t *testing.T, req pipeline.OrderRequest) string {
	t.Helper()
	code, body := s.post(t, "/v1/orders", req)
	if code != http.StatusAccepted {
		t.Fatalf("place order: %d %s", code, body)
	}
	var out intake.PlaceOrderResponse
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatal(err)
	}
	return out.OrderID
}

// final waits until the order is in a final status and returns it.
func (s *stack) final(t *testing.T, id string) pipeline.Order {
	t.Helper()
	var o pipeline.Order
	var err error
	if !testkit.Poll(90*time.Second, 100*time.Millisecond, func() bool {
		o, err = s.w.Store.Get(context.Background(), id)
		return (err == nil && o.Status.Final()) || (err != nil && !errors.Is(err, pipeline.ErrNotFound))
	}) {
		t.Fatalf("order %s is not final after 90s (status %s)", id, o.Status)
	}
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// depth returns the approximate number of messages in a queue, in flight
// included.
func (s *stack) depth(t *testing.T, url string) int {
	t.Helper()
	out, err := s.env.SQS.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{QueueUrl: &url,
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages, sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible}})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, v := range out.Attributes {
		i, _ := strconv.Atoi(v)
		n += i
	}
	return n
}

// waitDepth waits until a queue holds want messages.
func (s *stack) waitDepth(t *testing.T, url string, want int) {
	t.Helper()
	if !testkit.Poll(60*time.Second, 100*time.Millisecond, func() bool { return s.depth(t, url) == want }) {
		t.Fatalf("queue %s holds %d messages, want %d", url, s.depth(t, url), want)
	}
}

// send puts a raw message body on a queue.
func (s *stack) send(t *testing.T, url, body string, attrs map[string]sqstypes.MessageAttributeValue) {
	t.Helper()
	if _, err := s.env.SQS.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String(body), MessageAttributes: attrs}); err != nil {
		t.Fatal(err)
	}
}
