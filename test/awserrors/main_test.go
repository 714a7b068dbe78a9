// Package awserrors drives the worker's adapters (the order store, the
// event publisher, the notifier, the sandbox payment ledger) and its SQS
// consumer through the error responses AWS really sends, from a fault
// endpoint (internal/dev/awsfault) in front of the emulator, and checks
// each documented reaction: retried by the SDK, retried through the
// message's visibility, dead-lettered, readiness failing with the cause,
// and in every case nothing lost and nothing applied twice.
package awserrors

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/cloudcommerce/cloudcommerce/internal/awsconf"
	"github.com/cloudcommerce/cloudcommerce/internal/config"
	"github.com/cloudcommerce/cloudcommerce/internal/dev/awsfault"
	"github.com/cloudcommerce/cloudcommerce/internal/dev/emulator"
	"github.com/cloudcommerce/cloudcommerce/internal/dev/testkit"
	"github.com/cloudcommerce/cloudcommerce/internal/intake"
	"github.com/cloudcommerce/cloudcommerce/internal/metrics"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
	"github.com/cloudcommerce/cloudcommerce/internal/sandbox"
	"github.com/cloudcommerce/cloudcommerce/internal/topology"
	"github.com/cloudcommerce/cloudcommerce/internal/worker"
)

func TestMain(m *testing.M) { emulator.RunTests(m) }

// rig is a worker whose every AWS call goes through a fault endpoint.
type rig struct {
	env   *testkit.Env
	proxy *awsfault.Proxy
	w     *worker.Worker
	m     *metrics.Metrics
	srv   *httptest.Server
	inbox string // a queue subscribed to the notifications topic
}

// start provisions a topology and runs a worker on it whose AWS calls go
// through a fault endpoint with the rules faults returns for its names.
func start(t *testing.T, faults func(n topology.Names) []*awsfault.Rule) (*rig, []*awsfault.Rule) {
	t.Helper()
	env := testkit.Provision(t)
	proxy, err := awsfault.New(os.Getenv("AWS_ENDPOINT_URL"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Close)
	var rules []*awsfault.Rule
	if faults != nil {
		rules = faults(env.Prov.Names)
	}
	for _, r := range rules {
		proxy.Add(r)
	}
	cfg, err := awsconf.Load(context.Background(), awsconf.Options{Endpoint: proxy.URL})
	if err != nil {
		t.Fatal(err)
	}
	wc := config.WorkerDefaults()
	wc.Prefix, wc.WaitTime, wc.RetryBase, wc.SweepInterval, wc.QueueSampleInterval = env.Prefix, time.Second, 100*time.Millisecond, -1, -1
	wc.Pollers, wc.TopicARN = 1, env.Prov.TopicARN
	for _, st := range pipeline.Stages {
		wc.Concurrency[st] = 2
	}
	m := metrics.New()
	w, err := worker.New(context.Background(), wc, worker.Deps{AWS: cfg, LedgerAWS: &cfg, Metrics: m,
		Log: zaptest.NewLogger(t, zaptest.Level(zap.ErrorLevel))})
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
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("worker run: %v", err)
		}
		srv.Close()
	})
	return &rig{env: env, proxy: proxy, w: w, m: m, srv: srv, inbox: env.SubscribeQueue(t)}, rules
}

// place places a one-unit order of sku through the intake (which writes
// through the store and publishes through the bus publisher, so faults on
// those reach it too unless the rule's Match excludes it).
func (r *rig) place(t *testing.T, sku string) (int, string) {
	t.Helper()
	b, _ := json.Marshal(testkit.Order(sandbox.TokenVisa, sku))
	resp, err := http.Post(r.srv.URL+"/v1/orders", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var out intake.PlaceOrderResponse
	_ = json.Unmarshal(body, &out)
	if resp.StatusCode == http.StatusAccepted && out.OrderID == "" {
		t.Fatalf("202 without an order id: %s", body)
	}
	return resp.StatusCode, out.OrderID
}

// final waits until the order is final and returns it.
func (r *rig) final(t *testing.T, id string) pipeline.Order {
	t.Helper()
	var o pipeline.Order
	testkit.Eventually(t, "order "+id+" final", 60*time.Second, func() bool {
		var err error
		o, err = r.env.Store().Get(context.Background(), id)
		if err != nil && !errors.Is(err, pipeline.ErrNotFound) {
			t.Fatal(err)
		}
		return err == nil && o.Status.Final()
	})
	return o
}

func (r *rig) stock(t *testing.T, sku string) int64 {
	t.Helper()
	n, err := r.env.Store().Stock(context.Background(), sku)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// charges counts the sandbox ledger's captures of the order.
func (r *rig) charges(t *testing.T, id string) int {
	t.Helper()
	entries, err := sandbox.NewGateway(r.env.DDB, r.env.Prov.Names.Tables["payments_ledger"]).Entries(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if e.OrderID == id && e.Kind == sandbox.KindCapture {
			n++
		}
	}
	return n
}

// notified waits for the order's OrderConfirmed and OrderShipped
// notifications, then a little longer for any repeat, and returns how many
// of each arrived.
func (r *rig) notified(t *testing.T, id string) map[string]int {
	t.Helper()
	got := map[string]int{}
	deadline := time.Now().Add(30 * time.Second)
	for extra := 0; extra < 1 && time.Now().Before(deadline); {
		if got["OrderConfirmed"] > 0 && got["OrderShipped"] > 0 {
			extra++
		}
		for _, n := range testkit.Notifications(t, r.env.Receive(t, r.inbox, 10, 2*time.Second)) {
			if n.Attr("order_id") == id {
				got[n.Attr("event")]++
			}
		}
	}
	return got
}

func (r *rig) handled(st pipeline.Stage, outcome string) int {
	return int(testutil.ToFloat64(r.m.Handled.WithLabelValues(string(st), outcome)))
}

func (r *rig) retried() int {
	n := 0
	for _, st := range pipeline.Stages {
		n += r.handled(st, "retried")
	}
	return n
}

func (r *rig) deadLettered() int {
	n := 0
	for _, st := range pipeline.Stages {
		n += r.handled(st, "dead_lettered")
	}
	return n
}

// ready returns /readyz's status code and body.
func (r *rig) ready(t *testing.T) (int, string) {
	t.Helper()
	resp, err := http.Get(r.srv.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (r *rig) setStock(t *testing.T, sku string, n int64) {
	t.Helper()
	if err := r.env.Store().SetStock(context.Background(), sku, n); err != nil {
		t.Fatal(err)
	}
}
