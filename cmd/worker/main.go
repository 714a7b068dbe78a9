// Command worker is the CloudCommerce production binary: it runs the three
// stage consumers (inventory, payment, shipping), provisions the topology,
// answers the container health check and manages dead letters.
//
//	worker run            process orders until SIGTERM (the default)
//	worker provision      create the queues, rules, tables and topic (idempotent)
//	worker healthcheck    exit 0 when the worker on CLOUDCOMMERCE_OPS_ADDR is healthy
//	worker dlq list --stage S [--max N] [--json]
//	                      show dead-lettered messages without consuming them
//	worker dlq redrive --stage S [--max N]
//	                      move dead-lettered messages back to the stage queue
//
// Configuration comes from the environment only; see `worker help`.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/cloudcommerce/cloudcommerce/internal/logging"

	"github.com/cloudcommerce/cloudcommerce/internal/trace"

	"github.com/cloudcommerce/cloudcommerce/internal/ops/dlq"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"

	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/cloudcommerce/cloudcommerce/internal/awsconf"
	"github.com/cloudcommerce/cloudcommerce/internal/metrics"
	"github.com/cloudcommerce/cloudcommerce/internal/topology"
	"github.com/cloudcommerce/cloudcommerce/internal/worker"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}

// defaultGCPercent is the worker's garbage-collection target when GOGC is
// not set: the heap may grow to five times the live heap between
// collections instead of twice. The live heap is small (a few MB), so this
// costs tens of MB of memory and saves most of the collector's CPU, which
// under load was about a tenth of the worker's (see BENCHMARKS.md).
const defaultGCPercent = 400

func gcDefault() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, `usage: worker [run|provision|healthcheck|help]

  run          process orders until SIGTERM (default)
  provision    create the topology on the configured endpoint (idempotent)
  healthcheck  exit 0 when the local worker answers /healthz
  dlq list --stage S [--max N] [--json]
               show a stage's dead-lettered messages without consuming them
  dlq redrive --stage S [--max N]
               move dead-lettered messages back to the stage queue (all by default)

environment:`)
	for _, e := range worker.Env {
		fmt.Fprintf(w, "  %-38s %-14s %s\n", e.Name, orDash(e.Default), e.Meaning)
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmd := "run"
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "run":
		gcDefault()
		return runWorker(ctx)
	case "provision":
		return provision(ctx, stdout)
	case "healthcheck":
		return healthcheck(ctx)
	case "dlq":
		return deadLetters(ctx, args, stdout, stderr)
	case "help", "-h", "--help":
		usage(stdout)
		return nil
	}
	usage(stderr)
	return fmt.Errorf("unknown command %q", cmd)
}

func runWorker(ctx context.Context) error {
	cfg, err := worker.FromEnv(os.Getenv)
	if err != nil {
		return err
	}
	log, err := logging.New(cfg.LogLevel)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	m := metrics.New()
	awsCfg, err := awsconf.Load(ctx, awsconf.Options{Requests: m.AWSRequests, Connections: m.AWSConnections, IdleConnsPerHost: cfg.AWSCalls(), Logger: log})
	if err != nil {
		return err
	}
	ledgerCfg, err := awsconf.Load(ctx, awsconf.Options{Requests: m.AWSRequests, Connections: m.AWSConnections, IdleConnsPerHost: cfg.AWSCalls(), Logger: log, ServiceLabel: "sandbox-ledger"})
	if err != nil {
		return err
	}
	sigCtx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	// Tracing follows the standard OTEL_* variables and is off by default.
	tp, err := trace.FromEnv(ctx, os.Getenv, "cloudcommerce-worker")
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

func provision(ctx context.Context, stdout io.Writer) error {
	cfg, err := worker.FromEnv(os.Getenv)
	if err != nil {
		return err
	}
	awsCfg, err := awsconf.Load(ctx, awsconf.Options{})
	if err != nil {
		return err
	}
	topo, err := topology.Load()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	p, err := topo.Provision(ctx, topology.Clients{SQS: sqs.NewFromConfig(awsCfg), DynamoDB: awsconf.DynamoDB(awsCfg),
		EventBridge: eventbridge.NewFromConfig(awsCfg), SNS: sns.NewFromConfig(awsCfg)}, cfg.Prefix)
	if err != nil {
		return err
	}
	if len(p.Created) == 0 {
		fmt.Fprintf(stdout, "topology %q is up to date; nothing to create\n", cfg.Prefix)
	} else {
		fmt.Fprintf(stdout, "created %d resources for %q:\n  %s\n", len(p.Created), cfg.Prefix, strings.Join(p.Created, "\n  "))
	}
	fmt.Fprintf(stdout, "topic: %s\n", p.TopicARN)
	return nil
}

// healthcheck asks the local worker's /healthz; for container health checks,
// where there is no curl.
func healthcheck(ctx context.Context) error {
	addr := os.Getenv("CLOUDCOMMERCE_OPS_ADDR")
	if addr == "" {
		addr = ":9090"
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("CLOUDCOMMERCE_OPS_ADDR=%q: %w", addr, err)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(host, port)+"/healthz", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("unhealthy: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("unhealthy: /healthz answered %s", resp.Status)
	}
	return nil
}

func deadLetters(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "list" && args[0] != "redrive") {
		usage(stderr)
		return errors.New("dlq needs a subcommand: list or redrive")
	}
	sub := args[0]
	fs := flag.NewFlagSet("dlq "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	stage := fs.String("stage", "", "stage whose DLQ to use: inventory, payment or shipping")
	maxN := fs.Int("max", 0, "at most this many messages (list default 100; redrive default all)")
	asJSON := fs.Bool("json", false, "list as JSON")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	st := pipeline.Stage(*stage)
	valid := false
	for _, s := range pipeline.Stages {
		valid = valid || s == st
	}
	if !valid {
		return fmt.Errorf("--stage %q: want inventory, payment or shipping", *stage)
	}
	if *maxN < 0 {
		return fmt.Errorf("--max %d: must not be negative", *maxN)
	}
	cfg, err := worker.FromEnv(os.Getenv)
	if err != nil {
		return err
	}
	awsCfg, err := awsconf.Load(ctx, awsconf.Options{})
	if err != nil {
		return err
	}
	topo, err := topology.Load()
	if err != nil {
		return err
	}
	names := topo.Names(cfg.Prefix)
	client := sqs.NewFromConfig(awsCfg)
	url := func(name string) (string, error) {
		out, err := client.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: &name})
		if err != nil {
			return "", fmt.Errorf("queue %s: %w", name, err)
		}
		return *out.QueueUrl, nil
	}
	var q dlq.Queue
	if q.URL, err = url(names.Queues[st]); err != nil {
		return err
	}
	if q.DLQURL, err = url(names.DLQs[st]); err != nil {
		return err
	}
	peek := *maxN
	if peek == 0 {
		peek = 100
	}
	m := &dlq.Manager{SQS: client, Queues: map[pipeline.Stage]dlq.Queue{st: q}, PeekLimit: peek}
	if sub == "redrive" {
		n, err := m.Redrive(ctx, st, *maxN)
		fmt.Fprintf(stdout, "moved %d messages from %s back to %s\n", n, names.DLQs[st], names.Queues[st])
		return err
	}
	list, err := m.List(ctx, st)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if list == nil {
			list = []dlq.DeadLetter{}
		}
		return enc.Encode(list)
	}
	if len(list) == 0 {
		fmt.Fprintf(stdout, "%s is empty\n", names.DLQs[st])
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MESSAGE ID\tORDER ID\tEVENT\tRECEIVES\tREASON\tSENT")
	for _, d := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", d.MessageID, orDash(d.OrderID), orDash(d.Event), d.ReceiveCount, d.Reason, d.SentAt.Format(time.RFC3339))
	}
	return tw.Flush()
}
