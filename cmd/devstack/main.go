// Command devstack runs the whole CloudCommerce pipeline in one process on
// an embedded AWS emulator: no Docker, no AWS account.
//
//	go run ./cmd/devstack                 serve the intake API until Ctrl-C
//	go run ./cmd/devstack --demo 200      place 200 sample orders, summarise, exit
//	go run ./cmd/devstack --emulator-only serve just the emulator, for the real worker binary
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/cloudcommerce/cloudcommerce/internal/config"
	"github.com/cloudcommerce/cloudcommerce/internal/logging"

	"github.com/cloudcommerce/cloudcommerce/internal/trace"

	"golang.org/x/term"

	"github.com/cloudcommerce/cloudcommerce/internal/dev/devstack"
	"github.com/cloudcommerce/cloudcommerce/internal/dev/emulator"
	"github.com/cloudcommerce/cloudcommerce/internal/worker"
)

func main() {
	stdout := emulator.SeparateStdout()
	if err := run(context.Background(), os.Args[1:], stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "devstack:", err)
		os.Exit(1)
	}
}

type options struct {
	addr, dataDir, emulatorAddr, prefix, logLevel, apiKey string
	demo                                                  int
	emulatorOnly, memory                                  bool
	timeout                                               time.Duration
	seed                                                  uint64
}

func parse(args []string, getenv func(string) string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("devstack", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.addr, "addr", "127.0.0.1:8080", "address of the intake API, /metrics and /healthz")
	fs.StringVar(&o.dataDir, "data-dir", "./.devstack", "where the emulator keeps its state between runs")
	fs.BoolVar(&o.memory, "memory", false, "keep no state on disk (ignore --data-dir)")
	fs.IntVar(&o.demo, "demo", 0, "place this many sample orders, print a summary and exit (0: serve until Ctrl-C)")
	fs.DurationVar(&o.timeout, "timeout", 3*time.Minute, "with --demo: how long orders may take to become final")
	fs.Uint64Var(&o.seed, "seed", 1, "with --demo: seed of the order mix")
	fs.BoolVar(&o.emulatorOnly, "emulator-only", false, "serve only the provisioned emulator on --emulator-addr")
	fs.StringVar(&o.emulatorAddr, "emulator-addr", "", "address of the emulator's AWS endpoint (default 127.0.0.1:4566 with --emulator-only, a free port otherwise)")
	fs.StringVar(&o.prefix, "prefix", "cloudcommerce", "resource name prefix")
	fs.StringVar(&o.apiKey, "api-key", "", "API key the intake API and the console require (default $CLOUDCOMMERCE_API_KEY; none: open)")
	fs.StringVar(&o.logLevel, "log-level", "", "worker log level: debug, info, warn, error (default warn; error with --demo, where expected retries would crowd the progress)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.apiKey == "" {
		o.apiKey = getenv("CLOUDCOMMERCE_API_KEY")
	}
	if o.logLevel == "" {
		o.logLevel = "warn"
		if o.demo > 0 {
			o.logLevel = "error"
		}
	}
	if o.demo < 0 {
		return o, errors.New("--demo must not be negative")
	}
	if o.emulatorAddr == "" {
		o.emulatorAddr = "127.0.0.1:0"
		if o.emulatorOnly {
			o.emulatorAddr = "127.0.0.1:4566"
		}
	}
	if o.memory {
		o.dataDir = ""
	}
	return o, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parse(args, os.Getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	dataDir := o.dataDir
	if dataDir != "" {
		if dataDir, err = filepath.Abs(dataDir); err != nil {
			return err
		}
	}
	// kumo reads its settings at init: this re-executes the program with
	// them set, once.
	if err := emulator.Prepare(o.emulatorAddr, dataDir); err != nil {
		return err
	}
	log, err := logging.New(o.logLevel)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	cfg := config.WorkerDefaults()
	// Local defaults that make a laptop run feel instant: short long polls
	// (the emulator does not wake a poll when a retried message returns),
	// quick retries and a quick sweep for orders a restart left mid-stage.
	cfg.WaitTime, cfg.RetryBase, cfg.SweepInterval, cfg.StuckAfter, cfg.QueueSampleInterval = 2*time.Second, 500*time.Millisecond, 10*time.Second, 30*time.Second, 5*time.Second
	cfg.Prefix, cfg.APIKey = o.prefix, o.apiKey
	opts := devstack.Options{Prefix: o.prefix, Worker: cfg, Log: log}
	tp, err := trace.FromEnv(ctx, os.Getenv, "cloudcommerce-devstack")
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = tp.Shutdown(sctx)
	}()
	if tp.Enabled {
		opts.Tracing = tp
	}
	s, err := devstack.Provision(ctx, opts)
	if err != nil {
		return err
	}
	defer s.Close()
	if o.emulatorOnly {
		fmt.Fprintf(stdout, "emulator ready with topology %q provisioned\n", o.prefix)
		fmt.Fprintf(stdout, "export AWS_ENDPOINT_URL=%s AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test CLOUDCOMMERCE_PREFIX=%s\n", s.Emulator.URL, o.prefix)
		<-ctx.Done()
		return nil
	}
	if err := s.StartWorker(ctx, opts); err != nil {
		return err
	}
	if err := s.SeedInventory(ctx, s.Worker.Store, devstack.SeedStock); err != nil {
		return err
	}
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	httpCtx, stopHTTP := context.WithCancel(context.WithoutCancel(ctx))
	defer stopHTTP()
	bound := make(chan string, 1)
	httpErr := make(chan error, 1)
	go func() { httpErr <- worker.Serve(httpCtx, o.addr, s.Handler(), 5*time.Second, bound) }()
	var base string
	select {
	case a := <-bound:
		base = "http://" + a
	case err := <-httpErr:
		return err
	}
	runErr := make(chan error, 1)
	go func() { runErr <- s.Run(runCtx) }()

	if o.demo == 0 {
		fmt.Fprintf(stdout, "CloudCommerce devstack: intake API, /metrics and /healthz on %s (data in %s)\n", base, orMemory(dataDir))
		fmt.Fprintf(stdout, "AWS endpoint for other tools: %s\n", s.Emulator.URL)
		auth := ""
		if o.apiKey != "" {
			auth = ` -H "Authorization: Bearer $CLOUDCOMMERCE_API_KEY"`
			fmt.Fprintf(stdout, "the API and %s/console need the API key (the console has a sign-in form)\n", base)
		}
		fmt.Fprintf(stdout, "try: curl -s%s %s/v1/inventory/SKU-WIDGET\nCtrl-C to stop\n", auth, base)
		go printNotifications(runCtx, s, stdout)
		<-ctx.Done()
		fmt.Fprintln(stdout, "stopping: draining in-flight orders")
		stopRun()
		err := <-runErr
		stopHTTP()
		return errors.Join(err, <-httpErr)
	}

	fmt.Fprintf(stdout, "placing %d orders through %s/v1/orders\n", o.demo, base)
	res, demoErr := s.RunDemo(ctx, devstack.DemoOptions{Orders: o.demo, BaseURL: base, Timeout: o.timeout, Out: stdout, Terminal: isTerminal(stdout), Seed: o.seed, APIKey: o.apiKey})
	stopRun()
	runE := <-runErr
	stopHTTP()
	<-httpErr
	if demoErr != nil {
		return demoErr
	}
	res.Print(stdout)
	if len(res.Stuck) > 0 {
		return fmt.Errorf("%d of %d orders are not final after %s", len(res.Stuck), res.Orders, o.timeout)
	}
	if res.Orders < o.demo {
		return fmt.Errorf("only %d of %d orders could be placed", res.Orders, o.demo)
	}
	return runE
}

func orMemory(dir string) string {
	if dir == "" {
		return "memory"
	}
	return dir
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func printNotifications(ctx context.Context, s *devstack.Stack, out io.Writer) {
	ch := s.Inbox.Subscribe()
	for {
		select {
		case <-ctx.Done():
			return
		case n := <-ch:
			fmt.Fprintf(out, "notification %-15s order %s: %s\n", n.Event, n.OrderID, n.Subject)
		}
	}
}
