package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudcommerce/cloudcommerce/internal/awsconf"
	"github.com/cloudcommerce/cloudcommerce/internal/stripe"
	"github.com/cloudcommerce/cloudcommerce/internal/wire"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	oteltrace "go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/cloudcommerce/cloudcommerce/internal/bus"
	"github.com/cloudcommerce/cloudcommerce/internal/intake"
	"github.com/cloudcommerce/cloudcommerce/internal/metrics"
	"github.com/cloudcommerce/cloudcommerce/internal/ops/console"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
	"github.com/cloudcommerce/cloudcommerce/internal/queue"
	"github.com/cloudcommerce/cloudcommerce/internal/sandbox"
	"github.com/cloudcommerce/cloudcommerce/internal/store"
	"github.com/cloudcommerce/cloudcommerce/internal/topology"
	"github.com/cloudcommerce/cloudcommerce/internal/trace"
)

// Deps are what the worker is given rather than builds.
type Deps struct {
	AWS aws.Config
	// LedgerAWS, when set, is the configuration of the sandbox payment
	// ledger's client (so its calls are counted apart, as an external
	// provider's).
	LedgerAWS *aws.Config
	Log       *zap.Logger
	Metrics   *metrics.Metrics
	// Payments and Carrier override the configured adapters (tests).
	Payments pipeline.PaymentGateway
	Carrier  pipeline.Carrier
	// Notifications, when set, serves GET /v1/notifications (devstack).
	Notifications intake.NotificationLog
	// Tracing, when set, traces each order from intake through every
	// stage and AWS call (trace.FromEnv); nil makes no spans.
	Tracing oteltrace.TracerProvider
}

// Worker is the assembled pipeline. Build it with New, run it with Run.
type Worker struct {
	cfg  Config
	log  *zap.Logger
	m    *metrics.Metrics
	topo *topology.Topology

	sqs       *sqs.Client
	Store     *store.Store
	Service   *pipeline.Service
	Publisher *bus.Publisher
	comp      *wire.Components
	Intake    *intake.Server
	Console   *console.Console

	consumers map[pipeline.Stage]*queue.Consumer
	queueURLs map[pipeline.Stage]string
	dlqURLs   map[pipeline.Stage]string

	started  atomic.Bool
	draining atomic.Bool
}

// New builds the worker: it resolves the queue URLs and topic (failing
// loudly if they do not exist) and wires every adapter.
func New(ctx context.Context, cfg Config, d Deps) (*Worker, error) {
	cfg.fill()
	topo, err := topology.Load()
	if err != nil {
		return nil, err
	}
	if d.Tracing != nil {
		d.AWS = awsconf.Traced(d.AWS, d.Tracing)
		if d.LedgerAWS != nil {
			l := awsconf.Traced(*d.LedgerAWS, d.Tracing)
			d.LedgerAWS = &l
		}
	}
	names := topo.Names(cfg.Prefix)
	w := &Worker{cfg: cfg, log: d.Log, m: d.Metrics, topo: topo, sqs: sqs.NewFromConfig(d.AWS),
		consumers: map[pipeline.Stage]*queue.Consumer{}, queueURLs: map[pipeline.Stage]string{}, dlqURLs: map[pipeline.Stage]string{}}
	for _, st := range pipeline.Stages {
		for _, q := range []struct {
			name string
			into map[pipeline.Stage]string
		}{{names.Queues[st], w.queueURLs}, {names.DLQs[st], w.dlqURLs}} {
			out, err := w.sqs.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(q.name)})
			if err != nil {
				return nil, fmt.Errorf("queue %s: %w (run `worker provision` or check CLOUDCOMMERCE_PREFIX and permissions)", q.name, err)
			}
			q.into[st] = aws.ToString(out.QueueUrl)
		}
	}
	carrier := d.Carrier
	if carrier == nil {
		carrier = sandbox.Carrier{Delay: cfg.CarrierDelay}
	}
	comp, err := wire.New(ctx, wire.Config{Names: names, TopicARN: cfg.TopicARN, Batching: cfg.BatchingOn(), Linger: cfg.BatchLinger,
		PublishBatch: cfg.PublishBatch, PaymentGateway: cfg.PaymentGateway, Stripe: stripe.Config{SecretKey: cfg.StripeSecretKey}},
		wire.Deps{AWS: d.AWS, LedgerAWS: d.LedgerAWS, Log: d.Log, Metrics: d.Metrics, Payments: d.Payments, Carrier: carrier})
	if err != nil {
		return nil, err
	}
	w.comp = comp
	w.Store, w.Service, w.Publisher = comp.Store, comp.Service, comp.Publisher
	db := awsconf.DynamoDB(d.AWS)
	deleteLinger, receiveLinger := cfg.DeleteLinger, cfg.ReceiveLinger
	if !cfg.BatchingOn() {
		deleteLinger, receiveLinger = -1, -1
	}
	for _, st := range pipeline.Stages {
		qc := queue.Config{
			Stage: st, QueueURL: w.queueURLs[st], DLQURL: w.dlqURLs[st],
			Concurrency: cfg.Concurrency[st], Pollers: cfg.Pollers, WaitTime: cfg.WaitTime,
			Visibility: cfg.ReceiveVisibility, HandlerTimeout: cfg.HandlerTimeout, RetryBase: cfg.RetryBase,
			DeleteLinger: deleteLinger, ReceiveLinger: receiveLinger,
		}
		if !cfg.BatchingOn() {
			qc.MaxReceive, qc.DeleteBatch = 1, 1
		}
		h := w.Service.Handler(st)
		if d.Tracing != nil {
			h = trace.Handler(d.Tracing, st, h)
		}
		w.consumers[st] = queue.New(w.sqs, qc, h, d.Log, d.Metrics)
	}
	w.Intake = &intake.Server{Service: w.Service, Store: w.Store, Publisher: w.Publisher, Log: d.Log, Metrics: d.Metrics,
		APIKey: cfg.APIKey, Notifications: d.Notifications, Tracing: d.Tracing}
	queues := map[pipeline.Stage]console.Queue{}
	for _, st := range pipeline.Stages {
		queues[st] = console.Queue{URL: w.queueURLs[st], DLQURL: w.dlqURLs[st]}
	}
	w.Console = console.New(console.Config{Store: w.Store, DynamoDB: db, OrdersTable: names.Tables["orders"], InventoryTable: names.Tables["inventory"],
		SQS: w.sqs, Queues: queues, Notifications: d.Notifications, APIKey: cfg.APIKey, Log: d.Log})
	return w, nil
}

// QueueURL returns the URL of a stage's queue (dlq false) or its DLQ.
func (w *Worker) QueueURL(st pipeline.Stage, dlq bool) string {
	if dlq {
		return w.dlqURLs[st]
	}
	return w.queueURLs[st]
}

// ErrShutdownDeadline is returned by Run when handlers were still running
// at the shutdown deadline and had to be cancelled.
var ErrShutdownDeadline = errors.New("shutdown deadline passed with handlers still running")

// Run processes messages until ctx is cancelled (SIGTERM), then drains:
// it stops receiving, lets in-flight handlers finish within the shutdown
// timeout, hands back messages received but not started, flushes batched
// deletes, events and notifications, and returns nil — or
// ErrShutdownDeadline if handlers had to be cancelled.
func (w *Worker) Run(ctx context.Context) error {
	work, cancelWork := context.WithCancelCause(context.WithoutCancel(ctx))
	defer cancelWork(nil)
	var wg sync.WaitGroup
	for st, c := range w.consumers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.Run(ctx, work)
			w.log.Info("stage consumer stopped", zap.String("stage", string(st)))
		}()
	}
	var bg sync.WaitGroup
	if w.cfg.SweepInterval > 0 {
		bg.Add(1)
		go func() { defer bg.Done(); w.sweepLoop(ctx) }()
	}
	if w.cfg.QueueSampleInterval > 0 {
		bg.Add(1)
		go func() { defer bg.Done(); w.sampleLoop(ctx) }()
	}
	w.started.Store(true)
	w.m.Ready.Set(1)
	w.log.Info("worker running", zap.String("prefix", w.cfg.Prefix))

	<-ctx.Done()
	w.draining.Store(true)
	w.m.Ready.Set(0)
	w.log.Info("draining: receiving stopped, finishing in-flight work", zap.Duration("shutdown_timeout", w.cfg.ShutdownTimeout))
	done := make(chan struct{})
	go func() { wg.Wait(); bg.Wait(); close(done) }()
	var result error
	timer := time.NewTimer(w.cfg.ShutdownTimeout)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		cancelWork(queue.ErrShutdown)
		result = ErrShutdownDeadline
		w.log.Error("shutdown deadline passed; cancelling handlers, their messages will be redelivered")
		<-done
	}
	w.comp.Close()
	w.log.Info("worker stopped")
	return result
}

// Ready returns nil when the worker is receiving on every stage.
func (w *Worker) Ready() error {
	if !w.started.Load() {
		return errors.New("starting")
	}
	if w.draining.Load() {
		return errors.New("draining")
	}
	var errs []error
	for _, st := range pipeline.Stages {
		if err := w.consumers[st].Healthy(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// OpsRoutes registers /metrics, /healthz, /readyz and the operations
// console (/console) on mux.
func (w *Worker) OpsRoutes(mux *http.ServeMux) {
	w.Console.Routes(mux)
	mux.Handle("GET /metrics", promhttp.HandlerFor(w.m.Registry, promhttp.HandlerOpts{Registry: w.m.Registry}))
	mux.HandleFunc("GET /healthz", func(rw http.ResponseWriter, _ *http.Request) {
		writeStatus(rw, http.StatusOK, "ok", nil)
	})
	mux.HandleFunc("GET /readyz", func(rw http.ResponseWriter, _ *http.Request) {
		if err := w.Ready(); err != nil {
			writeStatus(rw, http.StatusServiceUnavailable, "unready", err)
			return
		}
		writeStatus(rw, http.StatusOK, "ready", nil)
	})
	if w.cfg.Pprof {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
}

func writeStatus(rw http.ResponseWriter, code int, status string, err error) {
	body := map[string]string{"status": status}
	if err != nil {
		body["reason"] = err.Error()
	}
	rw.Header().Set("Content-Type", "application/json")
	rw.WriteHeader(code)
	_ = json.NewEncoder(rw).Encode(body)
}

// Serve runs an HTTP server on addr until ctx is done, then shuts it down
// gracefully within grace. ready, if not nil, receives the bound address.
func Serve(ctx context.Context, addr string, h http.Handler, grace time.Duration, ready chan<- string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	if ready != nil {
		ready <- ln.Addr().String()
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve %s: %w", addr, err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shut down %s: %w", addr, err)
	}
	return nil
}

// sweepLoop re-publishes the event that moves on each order stuck in a
// non-final status, and finishes refunds of cancelled orders. The handlers
// are idempotent, so a spurious re-publish is harmless.
func (w *Worker) sweepLoop(ctx context.Context) {
	t := time.NewTicker(w.cfg.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if n, err := w.Sweep(ctx, time.Now().Add(-w.cfg.StuckAfter)); err != nil {
			w.log.Warn("stuck-order sweep failed", zap.Error(err))
		} else if n > 0 {
			w.log.Info("stuck orders moved on", zap.Int("orders", n))
		}
	}
}

// Sweep re-publishes events for orders last changed before olderThan and
// still in progress, and returns how many it moved on.
func (w *Worker) Sweep(ctx context.Context, olderThan time.Time) (int, error) {
	total := 0
	for _, st := range []pipeline.Status{pipeline.StatusPlaced, pipeline.StatusReserved, pipeline.StatusPaid} {
		orders, err := w.Store.ListByStatus(ctx, st, time.Time{}, olderThan, 500)
		if err != nil {
			return total, err
		}
		var events []pipeline.Event
		for _, o := range orders {
			if ev, ok := pipeline.NextEvent(o); ok {
				events = append(events, ev)
			}
		}
		if len(events) == 0 {
			continue
		}
		if err := w.Publisher.Publish(ctx, events...); err != nil {
			return total, fmt.Errorf("re-publish %s orders: %w", st, err)
		}
		w.m.Republished.WithLabelValues(string(st)).Add(float64(len(events)))
		total += len(events)
	}
	// Cancelled-after-paid orders whose refund did not get recorded.
	cancelled, err := w.Store.ListByStatus(ctx, pipeline.StatusCancelled, olderThan.Add(-24*time.Hour), olderThan, 500)
	if err != nil {
		return total, err
	}
	for _, o := range cancelled {
		if o.ChargeID == "" || o.RefundID != "" {
			continue
		}
		if _, err := w.Service.Cancel(ctx, o.ID); err != nil {
			var se *pipeline.StatusError
			if !errors.As(err, &se) {
				return total, err
			}
		}
		w.m.Republished.WithLabelValues(string(pipeline.StatusCancelled)).Inc()
		total++
	}
	return total, nil
}

// sampleLoop samples queue depths for the backlog metrics.
func (w *Worker) sampleLoop(ctx context.Context) {
	t := time.NewTicker(w.cfg.QueueSampleInterval)
	defer t.Stop()
	for {
		w.SampleQueues(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// SampleQueues reads the approximate depths of every stage queue and DLQ.
func (w *Worker) SampleQueues(ctx context.Context) {
	for _, st := range pipeline.Stages {
		for kind, url := range map[string]string{"main": w.queueURLs[st], "dlq": w.dlqURLs[st]} {
			out, err := w.sqs.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url), AttributeNames: []sqstypes.QueueAttributeName{
				sqstypes.QueueAttributeNameApproximateNumberOfMessages, sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
				sqstypes.QueueAttributeNameApproximateNumberOfMessagesDelayed}})
			if err != nil {
				if ctx.Err() == nil {
					w.log.Debug("queue sample failed", zap.String("stage", string(st)), zap.Error(err))
				}
				continue
			}
			for state, attr := range map[string]sqstypes.QueueAttributeName{"visible": sqstypes.QueueAttributeNameApproximateNumberOfMessages,
				"in_flight": sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible, "delayed": sqstypes.QueueAttributeNameApproximateNumberOfMessagesDelayed} {
				n, _ := strconv.ParseFloat(out.Attributes[string(attr)], 64)
				w.m.QueueMessages.WithLabelValues(string(st), kind, state).Set(n)
			}
		}
	}
}
