package reliability

import (
	"context"
	"encoding/json"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/rs/zerolog"

	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
)

// faultProxy is an in-process toxiproxy TCP proxy in front of the AWS
// endpoint. The workers' AWS traffic goes through it; the test's own
// clients (and the emulator's EventBridge → SQS deliveries) do not.
type faultProxy struct {
	r     *rt
	proxy *toxiproxy.Proxy
	url   string
}

func newFaultProxy(r *rt) *faultProxy {
	r.Helper()
	u, err := url.Parse(os.Getenv("AWS_ENDPOINT_URL"))
	if err != nil || u.Scheme != "http" || u.Host == "" {
		r.Skipf("the fault proxy needs a plain-HTTP AWS endpoint (AWS_ENDPOINT_URL=%q); TLS endpoints cannot be proxied by address", os.Getenv("AWS_ENDPOINT_URL"))
	}
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
	p := toxiproxy.NewProxy(srv, "aws", "127.0.0.1:0", u.Host)
	if err := p.Start(); err != nil {
		r.Fatalf("start fault proxy: %v", err)
	}
	r.Cleanup(p.Stop)
	return &faultProxy{r: r, proxy: p, url: "http://" + p.Listen}
}

// toxic adds a toxic to every connection's response (downstream) stream,
// affecting the given share of connections.
func (f *faultProxy) toxic(kind string, toxicity float64, attrs map[string]int64) {
	f.r.Helper()
	b, _ := json.Marshal(map[string]any{"name": kind, "type": kind, "stream": "downstream", "toxicity": toxicity, "attributes": attrs})
	if _, err := f.proxy.Toxics.AddToxicJson(strings.NewReader(string(b))); err != nil {
		f.r.Fatalf("add %s toxic: %v", kind, err)
	}
}

// calm removes every toxic.
func (f *faultProxy) calm() { f.proxy.Toxics.ResetToxics(context.Background()) }

// chaos runs random fault phases (latency, connection resets, stalled
// connections that time out, a cut of the whole connection) separated by
// calm spells, every kind once first, until stop is closed and every kind
// has run (or ctx ends), and leaves the proxy calm and enabled.
func (f *faultProxy) chaos(ctx context.Context, stop <-chan struct{}) []string {
	r := f.r
	var log []string
	// Every kind once, in random order, then kinds at random.
	order := []int{0, 1, 2, 3}
	for i := range order {
		j := i + r.IntN(len(order)-i)
		order[i], order[j] = order[j], order[i]
	}
	stopped := func() bool {
		select {
		case <-stop:
			return true
		default:
			return false
		}
	}
	for n := 0; ctx.Err() == nil && (n < len(order) || !stopped()); n++ {
		d := r.Duration(2*time.Second, 4*time.Second)
		kind := r.IntN(4)
		if n < len(order) {
			kind = order[n]
		}
		switch kind {
		case 0:
			lat := int64(r.Duration(20*time.Millisecond, 80*time.Millisecond) / time.Millisecond)
			f.toxic("latency", 1, map[string]int64{"latency": lat, "jitter": lat / 2})
			log = append(log, "latency")
		case 1:
			f.toxic("reset_peer", 0.3+0.3*r.Float64(), map[string]int64{"timeout": int64(r.Duration(0, time.Second) / time.Millisecond)})
			log = append(log, "reset_peer")
		case 2:
			f.toxic("timeout", 0.2+0.2*r.Float64(), map[string]int64{"timeout": int64(r.Duration(500*time.Millisecond, 2*time.Second) / time.Millisecond)})
			log = append(log, "timeout")
		case 3:
			f.proxy.Stop() // refuse and drop every connection: an outage
			log = append(log, "cut")
		}
		sleepCtx(ctx, d) // how long the fault lasts (not a correctness wait)
		f.calm()
		if err := f.proxy.Start(); err != nil && err != toxiproxy.ErrProxyAlreadyStarted {
			r.Errorf("restart fault proxy: %v", err) // not Fatal: this runs on its own goroutine
			return log
		}
		sleepCtx(ctx, r.Duration(500*time.Millisecond, 2*time.Second))
	}
	return log
}

// TestNetworkFaults runs the crash suite's load with the worker's AWS
// traffic (SQS, DynamoDB, EventBridge, SNS and the payment ledger) through
// a fault proxy: latency, connection resets, stalled connections and
// outages of a few seconds, at random. Afterwards the same invariants hold
// and the worker is still running.
//
// The stuck-order sweep runs at its production threshold
// (CLOUDCOMMERCE_STUCK_AFTER=2m), and the run must not have needed it but
// for its one documented use here: an order the intake recorded but whose
// OrderPlaced it could not publish (the intake logs each such order). It
// must re-publish no order of a later status and no more PLACED orders
// than the intake failed to publish, so a message lost on the way (deleted
// before its effect, say) fails the run rather than being re-published.
func TestNetworkFaults(t *testing.T) {
	t.Parallel()
	r := newRT(t)
	runFaults(r, defaultMix(400, 25))
}

func runFaults(r *rt, m mix) {
	f := newFaultProxy(r)
	c := newCluster(r, "CLOUDCOMMERCE_STUCK_AFTER=2m")
	c.endpoint = f.url
	c.setStock(m.Stock)
	orders := plan(r, m)
	w := c.worker()
	w.start()

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	stopChaos := make(chan struct{})
	var phases []string
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); phases = f.chaos(ctx, stopChaos) }()
	res := drive(ctx, c, m, orders, func() string { return w.api })
	close(stopChaos)
	wg.Wait()
	r.Logf("fault phases: %v; accepted %d orders, %d cancellations answered", phases, len(res.accepted), len(res.cancels))
	if res.lost > 0 {
		r.Fatalf("%d orders were never accepted", res.lost)
	}
	kinds := map[string]bool{}
	for _, ph := range phases {
		kinds[ph] = true
	}
	if len(kinds) != 4 {
		r.Fatalf("fault phases %v: want every kind (latency, reset_peer, timeout, cut) at least once", phases)
	}
	if m.Cancel > 0 && len(res.cancels) == 0 {
		r.Fatalf("no cancellation was made: the cancellation invariants would check nothing")
	}
	settle(c, expect{stock: m.Stock, accepted: res.accepted, cancels: res.cancels})
	if p := w.proc(); p.Exited() {
		r.Fatalf("the worker died under network faults: %v", p.Err())
	}
	if len(w.history) != 1 {
		r.Fatalf("the worker was started %d times, want once (it must survive the faults)", len(w.history))
	}
	unpublished := w.grep("OrderPlaced not published")
	moved := map[string]float64{}
	for _, st := range []pipeline.Status{pipeline.StatusPlaced, pipeline.StatusReserved, pipeline.StatusPaid, pipeline.StatusCancelled} {
		v := metric(w.ops, "cloudcommerce_sweep_republished_total", "status", string(st))
		if v < 0 {
			r.Fatalf("the worker's /metrics did not answer")
		}
		moved[string(st)] = v
	}
	r.Logf("stuck-order sweep re-published %v; the intake could not publish OrderPlaced %d times", moved, unpublished)
	if moved["PLACED"] > float64(unpublished) {
		r.Errorf("the sweep re-published %v PLACED orders but the intake failed to publish only %d: a message was lost", moved["PLACED"], unpublished)
	}
	for _, st := range []string{"RESERVED", "PAID", "CANCELLED"} {
		if moved[st] != 0 {
			r.Errorf("the sweep moved on %v %s orders: a message or a refund was lost and only the sweep recovered it", moved[st], st)
		}
	}
	logSummary(r, w)
	r.Logf("AWS request outcomes other than ok: %v", nonOK(w))
}

// nonOK lists the worker's AWS request counts by outcome other than ok.
func nonOK(w *worker) map[string]float64 {
	_, body := httpGet("http://" + w.ops + "/metrics")
	out := map[string]float64{}
	for _, m := range metricFamilies(string(body))["cloudcommerce_aws_requests_total"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "outcome" && l.GetValue() != "ok" {
				out[l.GetValue()] += m.GetCounter().GetValue()
			}
		}
	}
	return out
}
