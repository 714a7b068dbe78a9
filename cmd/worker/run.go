package main

import (
	"context"
	"errors"
	"flag"
	"net/http"
	"os/signal"
	"syscall"
	"time"

	"github.com/cloudcommerce/cloudcommerce/internal/awsconf"
	"github.com/cloudcommerce/cloudcommerce/internal/config"
	"github.com/cloudcommerce/cloudcommerce/internal/logging"
	"github.com/cloudcommerce/cloudcommerce/internal/metrics"
	"github.com/cloudcommerce/cloudcommerce/internal/trace"
	"github.com/cloudcommerce/cloudcommerce/internal/worker"
)

var runCmd = &command{
	name:    "run",
	summary: "process orders until SIGTERM (the default command)",
	setup: func(*flag.FlagSet) func(context.Context, env, []string) error {
		return func(ctx context.Context, e env, _ []string) error { return runWorker(ctx, e.getenv) }
	},
}

func runWorker(ctx context.Context, getenv func(string) string) error {
	config.ApplyGCDefault(getenv)
	cfg, err := config.WorkerFromEnv(getenv)
	if err != nil {
		return err
	}
	log, err := logging.New(cfg.LogLevel)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	m := metrics.New()
	conn := config.AWS(getenv)
	conn.Requests, conn.Contention, conn.Connections = m.AWSRequests, m.AWSContention, m.AWSConnections
	conn.IdleConnsPerHost, conn.Logger = cfg.AWSCalls(), log
	awsCfg, err := awsconf.Load(ctx, conn)
	if err != nil {
		return err
	}
	conn.ServiceLabel = "sandbox-ledger"
	ledgerCfg, err := awsconf.Load(ctx, conn)
	if err != nil {
		return err
	}
	sigCtx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	// Tracing follows the standard OTEL_* variables and is off by default.
	tp, err := trace.FromEnv(ctx, getenv, "cloudcommerce-worker")
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = tp.Shutdown(sctx)
	}()
	deps := worker.Deps{AWS: awsCfg, LedgerAWS: &ledgerCfg, Log: log, Metrics: m}
	if tp.Enabled {
		deps.Tracing = tp
	}
	startCtx, cancel := context.WithTimeout(sigCtx, 30*time.Second)
	w, err := worker.New(startCtx, cfg, deps)
	cancel()
	if err != nil {
		return err
	}
	// The HTTP servers outlive the drain so /readyz can report it and
	// Prometheus can scrape the last figures.
	httpCtx, stopHTTP := context.WithCancel(context.WithoutCancel(ctx))
	defer stopHTTP()
	errc := make(chan error, 2)
	ops := http.NewServeMux()
	w.OpsRoutes(ops)
	go func() { errc <- worker.Serve(httpCtx, cfg.OpsAddr, ops, 5*time.Second, nil) }()
	servers := 1
	if cfg.IntakeAddr != "" {
		servers++
		// The intake stops taking orders as soon as SIGTERM arrives, before
		// the worker flushes and closes its event publisher.
		go func() { errc <- worker.Serve(sigCtx, cfg.IntakeAddr, w.Intake.Handler(), 5*time.Second, nil) }()
	}
	runErr := make(chan error, 1)
	go func() { runErr <- w.Run(sigCtx) }()
	select {
	case err := <-runErr:
		stopHTTP()
		return errors.Join(err, drainServers(errc, servers))
	case err := <-errc:
		// An HTTP server failed to start: stop the worker and report it.
		stop()
		<-runErr
		stopHTTP()
		return errors.Join(err, drainServers(errc, servers-1))
	}
}

func drainServers(errc <-chan error, n int) error {
	var errs []error
	for i := 0; i < n; i++ {
		errs = append(errs, <-errc)
	}
	return errors.Join(errs...)
}
