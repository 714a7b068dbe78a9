package testkit

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/cloudcommerce/cloudcommerce/internal/config"
	"github.com/cloudcommerce/cloudcommerce/internal/metrics"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
	"github.com/cloudcommerce/cloudcommerce/internal/worker"
)

// WorkerConfig is the configuration of an in-process test worker on env:
// the defaults, one-second long polls, one poller, concurrency handlers per
// stage, and no stuck-order sweep or queue sampler (tests that need them
// turn them on).
func WorkerConfig(env *Env, concurrency int) config.Worker {
	cfg := config.WorkerDefaults()
	cfg.Prefix, cfg.WaitTime, cfg.SweepInterval, cfg.QueueSampleInterval = env.Prefix, time.Second, -1, -1
	cfg.Pollers = 1
	for _, st := range pipeline.Stages {
		cfg.Concurrency[st] = concurrency
	}
	return cfg
}

// InProcessWorker is a worker running in the test process, its intake and
// ops routes served by Server.
type InProcessWorker struct {
	*worker.Worker
	Metrics *metrics.Metrics
	Server  *httptest.Server
	stop    func()
}

// RunWorker builds a worker from cfg and d (a fresh metrics registry when
// d has none), serves its intake and ops routes, and runs it until Stop or
// the end of the test; a run that ends in an error fails the test.
func RunWorker(t testing.TB, cfg config.Worker, d worker.Deps) *InProcessWorker {
	t.Helper()
	if d.Metrics == nil {
		d.Metrics = metrics.New()
	}
	w, err := worker.New(context.Background(), cfg, d)
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
	p := &InProcessWorker{Worker: w, Metrics: d.Metrics, Server: srv}
	p.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("worker run: %v", err)
			}
			srv.Close()
		})
	}
	t.Cleanup(p.stop)
	return p
}

// Stop stops the worker (draining it as on SIGTERM) and its server; it is
// idempotent.
func (p *InProcessWorker) Stop() { p.stop() }
