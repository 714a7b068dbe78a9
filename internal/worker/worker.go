// Package worker assembles the long-running worker: three stage consumers,
// the stuck-order sweep, the queue-depth sampler, the optional intake API
// and the ops endpoints (/metrics, /healthz, /readyz), with graceful
// shutdown. cmd/worker and cmd/devstack both run it, with the
// configuration package config reads (config.Worker).
//
// Files: worker.go (assembly), drain.go (running and the graceful drain),
// ops.go (health, readiness, metrics and console routes; the HTTP
// server), sweep.go (the stuck-order sweep and the queue-depth sampler).
package worker

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/cloudcommerce/cloudcommerce/internal/awsconf"
	"github.com/cloudcommerce/cloudcommerce/internal/stripe"
	"github.com/cloudcommerce/cloudcommerce/internal/wire"

	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"go.uber.org/zap"

	"github.com/cloudcommerce/cloudcommerce/internal/bus"
	"github.com/cloudcommerce/cloudcommerce/internal/config"
	"github.com/cloudcommerce/cloudcommerce/internal/delivery"
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

// Deps are what the worker is given rather than builds: the one
// dependency struct of the worker and the Lambda adapter.
type Deps = wire.Deps

// Worker is the assembled pipeline. Build it with New, run it with Run.
type Worker struct {
	cfg  config.Worker
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
	queues    map[pipeline.Stage]topology.StageQueue

	started  atomic.Bool
	draining atomic.Bool
}

// New builds the worker: it resolves the queue URLs and topic (failing
// loudly if they do not exist) and wires every adapter.
func New(ctx context.Context, cfg config.Worker, d Deps) (*Worker, error) {
	cfg.Fill()
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
		consumers: map[pipeline.Stage]*queue.Consumer{}}
	if w.queues, err = names.ResolveQueues(ctx, w.sqs); err != nil {
		return nil, fmt.Errorf("%w (run `worker provision` or check CLOUDCOMMERCE_PREFIX and permissions)", err)
	}
	carrier := d.Carrier
	if carrier == nil {
		carrier = sandbox.Carrier{Delay: cfg.CarrierDelay}
	}
	format, err := store.ParseFormat(cfg.OrderFormat)
	if err != nil {
		return nil, err
	}
	comp, err := wire.New(ctx, wire.Config{Names: names, TopicARN: cfg.TopicARN, Batching: cfg.BatchingOn(), Linger: cfg.BatchLinger,
		PublishBatch: cfg.PublishBatch, PaymentGateway: cfg.PaymentGateway, Stripe: stripe.Config{SecretKey: cfg.StripeSecretKey}, OrderFormat: format,
		StuckAfter: cfg.StuckAfter},
		withCarrier(d, carrier))
	if err != nil {
		return nil, err
	}
	w.comp = comp
	w.Store, w.Service, w.Publisher = comp.Store, comp.Service, comp.Publisher
	deleteLinger, receiveLinger := cfg.DeleteLinger, cfg.ReceiveLinger
	if !cfg.BatchingOn() {
		deleteLinger, receiveLinger = -1, -1
	}
	for _, st := range pipeline.Stages {
		qc := queue.Config{
			Stage: st, QueueURL: w.queues[st].URL, DLQURL: w.queues[st].DLQURL,
			Concurrency: cfg.Concurrency[st], Pollers: cfg.Pollers, WaitTime: cfg.WaitTime,
			Visibility: cfg.ReceiveVisibility, HandlerTimeout: cfg.HandlerTimeout, RetryBase: cfg.RetryBase,
			DeferBase: cfg.DeferBase, MaxReceives: topo.MaxReceives(st),
			DeleteLinger: deleteLinger, ReceiveLinger: receiveLinger,
		}
		if !cfg.BatchingOn() {
			qc.MaxReceive, qc.DeleteBatch = 1, 1
		}
		if d.Tracing != nil {
			qc.Middleware = []delivery.Middleware{trace.Middleware(d.Tracing, st)}
		}
		w.consumers[st] = queue.New(w.sqs, qc, w.Service.Handler(st), d.Log, d.Metrics)
	}
	w.Intake = &intake.Server{Service: w.Service, Store: w.Store, Publisher: w.Publisher, Log: d.Log, Metrics: d.Metrics,
		APIKey: cfg.APIKey, Notifications: d.Notifications, Orders: w.Store, Tracing: d.Tracing}
	w.Console = console.New(console.Config{Store: w.Store,
		SQS: w.sqs, Queues: w.queues, Notifications: d.Notifications, APIKey: cfg.APIKey, Log: d.Log})
	return w, nil
}

func withCarrier(d Deps, c pipeline.Carrier) Deps {
	d.Carrier = c
	return d
}

// QueueURL returns the URL of a stage's queue (dlq false) or its DLQ.
func (w *Worker) QueueURL(st pipeline.Stage, dlq bool) string {
	if dlq {
		return w.queues[st].DLQURL
	}
	return w.queues[st].URL
}
