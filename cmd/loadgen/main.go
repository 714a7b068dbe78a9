// Command loadgen places orders on a running CloudCommerce pipeline and
// measures it: orders/s, placed→final latency, outcomes, and AWS requests
// per order by operation from the workers' /metrics.
//
//	loadgen -target bus -prefix cc -rate 200 -orders 5000 -metrics http://127.0.0.1:9090/metrics
//	loadgen -target api -api-url http://127.0.0.1:8080 -prefix cc -concurrency 16 -orders 2000
//
// It needs AWS access to the topology's tables (AWS_ENDPOINT_URL and
// friends, as the worker does): it sets the stock of its SKUs, watches the
// orders become final, and with -target bus puts the events itself. Those
// calls use a client of its own, never counted in the worker's figures.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"golang.org/x/term"

	"github.com/cloudcommerce/cloudcommerce/internal/awsconf"
	"github.com/cloudcommerce/cloudcommerce/internal/config"
	"github.com/cloudcommerce/cloudcommerce/internal/dev/loadgen"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		cfg      loadgen.Config
		metrics  string
		jsonPath string
		idem     bool
		mix      = loadgen.DefaultMix()
	)
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.Target, "target", loadgen.TargetAPI, "where orders go: api (POST /v1/orders) or bus (PutEvents OrderPlaced)")
	fs.StringVar(&cfg.APIURL, "api-url", "http://127.0.0.1:8080", "intake API base URL (-target api)")
	fs.StringVar(&cfg.APIKey, "api-key", os.Getenv("CLOUDCOMMERCE_API_KEY"), "intake API key, if it requires one")
	fs.BoolVar(&idem, "idempotency-key", true, "send an Idempotency-Key with each API order")
	fs.StringVar(&cfg.Prefix, "prefix", envOr("CLOUDCOMMERCE_PREFIX", "cloudcommerce"), "resource name prefix of the topology")
	fs.Float64Var(&cfg.Rate, "rate", 0, "offered load in orders/s (open loop); 0 for closed loop with -concurrency producers")
	fs.IntVar(&cfg.Concurrency, "concurrency", 0, "closed loop: producers (default 8); open loop: most placements in flight (default 64)")
	fs.IntVar(&cfg.Orders, "orders", 1000, "orders to place")
	fs.DurationVar(&cfg.Timeout, "timeout", 5*time.Minute, "bound on the whole run, placing and waiting")
	fs.DurationVar(&cfg.ProducerLinger, "producer-linger", 5*time.Millisecond, "-target bus: how long due orders gather into one PutEvents (≤ 10)")
	fs.Uint64Var(&cfg.Seed, "seed", 1, "seed of the order mix")
	fs.Float64Var(&mix.Declined, "declined", mix.Declined, "share of orders with a declined card")
	fs.Float64Var(&mix.Transient, "transient", mix.Transient, "share of orders whose payment fails twice before it succeeds")
	fs.Float64Var(&mix.Scarce, "scarce", mix.Scarce, "share of orders that also ask for the scarce SKU")
	fs.Int64Var(&mix.ScarceStock, "scarce-stock", 0, "starting stock of the scarce SKU (default: a quarter of what is asked for)")
	fs.StringVar(&metrics, "metrics", "", "comma-separated worker /metrics URLs to read request counters from")
	fs.StringVar(&jsonPath, "json", "", "append the result as a JSON line to this file")
	fs.StringVar(&cfg.Label, "label", "", "name of the run in output and JSON")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	cfg.IdempotencyKey = &idem
	cfg.Mix = mix
	for _, u := range strings.Split(metrics, ",") {
		if u = strings.TrimSpace(u); u != "" {
			cfg.MetricsURLs = append(cfg.MetricsURLs, u)
		}
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	aws, err := awsconf.Load(ctx, config.AWS(os.Getenv))
	if err != nil {
		return err
	}
	cfg.AWS = aws
	cfg.Out = stdout
	if f, ok := stdout.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		cfg.Terminal = true
	}
	res, runErr := loadgen.Run(ctx, cfg)
	if res == nil {
		return runErr
	}
	fmt.Fprintln(stdout)
	res.Print(stdout)
	if jsonPath != "" {
		if err := loadgen.AppendJSON(jsonPath, res); err != nil {
			return errors.Join(runErr, fmt.Errorf("write %s: %w", jsonPath, err))
		}
	}
	return runErr
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
