package reliability

import (
	"context"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/cloudcommerce/cloudcommerce/internal/dev/emulator"
	"github.com/cloudcommerce/cloudcommerce/internal/dev/testkit"
)

// TestMain hosts the emulator in this process (unless AWS_ENDPOINT_URL
// already names an endpoint such as LocalStack) and exports its address.
func TestMain(m *testing.M) { emulator.RunTests(m) }

// baseSeed seeds every random choice of the run. Each test derives its own
// stream from it and its name, so one seed reproduces any test's plan.
var baseSeed = func() uint64 {
	if v := os.Getenv("CLOUDCOMMERCE_TEST_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			panic(fmt.Sprintf("CLOUDCOMMERCE_TEST_SEED=%q: want an unsigned integer", v))
		}
		return s
	}
	return uint64(time.Now().UnixNano())
}()

// rt is a test with a seeded random source. Its failure methods append the
// seed and the command that replays the test, so every failure message
// says how to reproduce it. It satisfies testing.TB, so helpers taking a
// testing.TB (testkit) fail through it too.
type rt struct {
	*testing.T
	seed uint64
	mu   sync.Mutex
	rng  *rand.Rand
}

func newRT(t *testing.T) *rt {
	h := fnv.New64a()
	_, _ = h.Write([]byte(t.Name()))
	r := &rt{T: t, seed: baseSeed, rng: rand.New(rand.NewPCG(baseSeed, h.Sum64()))}
	t.Logf("seed %d (rerun: %s)", r.seed, r.rerun())
	return r
}

func (r *rt) rerun() string {
	return fmt.Sprintf("CLOUDCOMMERCE_TEST_SEED=%d go test -race -count=1 -run '^%s$' ./test/reliability/", r.seed, strings.SplitN(r.Name(), "/", 2)[0])
}

func (r *rt) note() string { return fmt.Sprintf("\n[seed %d; rerun: %s]", r.seed, r.rerun()) }

func (r *rt) Fatalf(format string, args ...any) {
	r.T.Helper()
	r.T.Fatalf(format+"%s", append(args, r.note())...)
}
func (r *rt) Errorf(format string, args ...any) {
	r.T.Helper()
	r.T.Errorf(format+"%s", append(args, r.note())...)
}
func (r *rt) Fatal(args ...any) { r.T.Helper(); r.T.Fatal(append(args, r.note())...) }
func (r *rt) Error(args ...any) { r.T.Helper(); r.T.Error(append(args, r.note())...) }

// Float64, IntN and Duration draw from the test's seeded source; safe for
// concurrent use (though plans are drawn up front, so runs replay).
func (r *rt) Float64() float64 { r.mu.Lock(); defer r.mu.Unlock(); return r.rng.Float64() }
func (r *rt) IntN(n int) int   { r.mu.Lock(); defer r.mu.Unlock(); return r.rng.IntN(n) }
func (r *rt) Duration(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(r.Float64()*float64(hi-lo))
}

// eventually polls ok every interval until it returns true, failing the
// test when the deadline passes first. Waits are always bounded this way;
// no test sleeps for correctness.
func (r *rt) eventually(what string, timeout time.Duration, ok func() bool) {
	r.Helper()
	if !testkit.Poll(timeout, 200*time.Millisecond, ok) {
		r.Fatalf("timed out after %s waiting for %s", timeout, what)
	}
}

// workerBinary builds cmd/worker once per test run (without -race: the
// race detector runs in this process, which hosts the emulator, and in the
// worker's own unit tests; the binary here is the production build).
func workerBinary(t testing.TB) string { return testkit.Binary(t, "../../cmd/worker") }

// proc is one run of the worker binary with its ops address.
type proc struct {
	*testkit.Process
	ops string
}

// startBinary starts bin, a build of the worker, with args and environ;
// its output goes to a file that is shown (tail) if the test fails. The
// process is killed when the test ends.
func startBinary(t testing.TB, bin, name string, environ []string, ops string, args ...string) *proc {
	t.Helper()
	p := &proc{Process: testkit.Start(t, bin, environ, args...), ops: ops}
	p.Name = name
	return p
}

// ready polls the worker's /readyz until it answers 200; it returns an
// error if the process exits or the deadline passes first. Safe to call
// from any goroutine.
func (p *proc) ready(timeout time.Duration) error {
	ok := testkit.Poll(timeout, 50*time.Millisecond, func() bool {
		if p.Exited() {
			return true
		}
		code, _ := httpGet("http://" + p.ops + "/readyz")
		return code == http.StatusOK
	})
	if p.Exited() {
		return fmt.Errorf("%s exited before it was ready: %v\n%s", p.Name, p.Err(), p.Tail(40))
	}
	if !ok {
		return fmt.Errorf("%s not ready within %s\n%s", p.Name, timeout, p.Tail(40))
	}
	return nil
}

var httpClient = &http.Client{Timeout: 15 * time.Second}

func httpGet(url string) (int, []byte) {
	resp, err := httpClient.Get(url)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// metric sums the samples of a Prometheus text-format metric whose labels
// include every given name="value" pair. It returns -1 when the endpoint
// does not answer.
func metric(ops, name string, labels ...string) float64 {
	code, body := httpGet("http://" + ops + "/metrics")
	if code != http.StatusOK {
		return -1
	}
	return sumMetric(string(body), name, labels...)
}

// sumMetric sums the samples of the counter or gauge family name in a
// Prometheus text exposition, parsed with expfmt, whose labels include every
// given name="value" pair. An exposition that does not parse is a broken
// /metrics endpoint: it panics, failing the test that asked.
func sumMetric(text, name string, labels ...string) float64 {
	mf := metricFamilies(text)[name]
	total := 0.0
	for _, m := range mf.GetMetric() {
		if hasLabels(m, labels...) {
			total += m.GetCounter().GetValue() + m.GetGauge().GetValue() + m.GetUntyped().GetValue()
		}
	}
	return total
}

// metricFamilies parses a Prometheus text exposition.
func metricFamilies(text string) map[string]*dto.MetricFamily {
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		panic(fmt.Sprintf("parse /metrics: %v", err))
	}
	return mfs
}

// hasLabels reports whether m has every given name="value" label pair.
func hasLabels(m *dto.Metric, labels ...string) bool {
	for i := 0; i+1 < len(labels); i += 2 {
		found := false
		for _, l := range m.GetLabel() {
			if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// ctxTimeout is a short-hand for a bounded background context.
func ctxTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}
