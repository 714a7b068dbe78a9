package awserrors

import (
	"bytes"
	"context"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/cloudcommerce/cloudcommerce/internal/awsconf"
	"github.com/cloudcommerce/cloudcommerce/internal/batch"
	"github.com/cloudcommerce/cloudcommerce/internal/dev/awsfault"
	"github.com/cloudcommerce/cloudcommerce/internal/dev/testkit"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
	"github.com/cloudcommerce/cloudcommerce/internal/worker"
)

// An SQS brownout: every DeleteMessageBatch takes a second. Orders keep
// arriving; each stage's acknowledgements pile up behind the slow deletes.
// The batcher sends at most batch.DefaultMaxFlushes deletes per stage at
// once and makes the handlers wait for room beyond its item bound, so the
// batchers' goroutines and the heap stay bounded, and every order still
// reaches a final status (a message whose delete came too late is
// delivered again and handled idempotently). The emulator and the fault
// endpoint run in this process too, so goroutines are counted where the
// batchers run them.
//
// Not parallel: the goroutines and the heap are the process's, so the test
// runs alone (Go starts the parallel tests after the others).
func TestSlowDeletesKeepGoroutinesAndHeapBounded(t *testing.T) {
	env := testkit.Provision(t)
	proxy, err := awsfault.New(os.Getenv("AWS_ENDPOINT_URL"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Close)
	proxy.Add(&awsfault.Rule{Service: "SQS", Operation: "DeleteMessageBatch", Delay: time.Second})
	cfg, err := awsconf.Load(context.Background(), awsconf.Options{Endpoint: proxy.URL})
	if err != nil {
		t.Fatal(err)
	}
	wc := testkit.WorkerConfig(env, 16)
	wc.RetryBase, wc.TopicARN = 100*time.Millisecond, env.Prov.TopicARN
	w := testkit.RunWorker(t, wc, worker.Deps{AWS: cfg, LedgerAWS: &cfg, Log: zaptest.NewLogger(t, zaptest.Level(zap.ErrorLevel))})
	r := &rig{env: env, proxy: proxy, w: w.Worker, m: w.Metrics, srv: w.Server}
	if err := env.Store().SetStock(context.Background(), "SKU-A", 100_000); err != nil {
		t.Fatal(err)
	}

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	baseGoroutines, baseHeap := batchGoroutines(), ms.HeapInuse
	var peakGoroutines int
	var peakHeap uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			peakGoroutines, peakHeap = max(peakGoroutines, batchGoroutines()), max(peakHeap, ms.HeapInuse)
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()

	// 240 orders from 20 clients at once: each stage acknowledges far
	// faster than the slow deletes drain.
	const orders = 240
	ids := make(chan string, orders)
	var placing sync.WaitGroup
	for c := 0; c < 20; c++ {
		placing.Add(1)
		go func() {
			defer placing.Done()
			for i := 0; i < orders/20; i++ {
				if code, id := r.place(t, "SKU-A"); code == 202 {
					ids <- id
				} else {
					t.Errorf("place: HTTP %d", code)
				}
			}
		}()
	}
	placing.Wait()
	close(ids)
	for id := range ids {
		if o := r.final(t, id); o.Status != pipeline.StatusShipped {
			t.Errorf("order %s is %s, want SHIPPED", id, o.Status)
		}
	}
	close(stop)
	<-sampled

	deletes, peakDeletes := proxy.Requests("SQS", "DeleteMessageBatch"), proxy.PeakConcurrent("SQS", "DeleteMessageBatch")
	t.Logf("%d slow DeleteMessageBatch calls, at most %d at once; batcher goroutines %d → peak %d; heap in use %.1f → peak %.1f MB",
		deletes, peakDeletes, baseGoroutines, peakGoroutines, float64(baseHeap)/1e6, float64(peakHeap)/1e6)
	if limit := len(pipeline.Stages) * batch.DefaultMaxFlushes; peakDeletes > limit {
		t.Errorf("%d DeleteMessageBatch calls at once; want at most %d (%d stages × %d flushes)", peakDeletes, limit, len(pipeline.Stages), batch.DefaultMaxFlushes)
	}
	if deletes < len(pipeline.Stages) {
		t.Errorf("only %d DeleteMessageBatch calls: the slow path was not exercised", deletes)
	}
	// The worker's batchers: a deleter per stage, the event publisher and
	// the notifier, each at most DefaultMaxFlushes flushers.
	if limit := (len(pipeline.Stages) + 2) * batch.DefaultMaxFlushes; peakGoroutines > limit {
		t.Errorf("%d batcher goroutines at once (%d before the orders); want at most %d", peakGoroutines, baseGoroutines, limit)
	}
	if peakHeap > baseHeap+256<<20 {
		t.Errorf("heap grew from %.1f to %.1f MB", float64(baseHeap)/1e6, float64(peakHeap)/1e6)
	}
}

// batchGoroutines counts the goroutines running a batcher's flusher.
func batchGoroutines() int {
	var buf bytes.Buffer
	_ = pprof.Lookup("goroutine").WriteTo(&buf, 2)
	n := 0
	for _, g := range strings.Split(buf.String(), "\n\n") {
		if strings.Contains(g, "/internal/batch.(*Batcher[...]).flusher") {
			n++
		}
	}
	return n
}
