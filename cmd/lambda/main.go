// Command lambda is the CloudCommerce stage processor for AWS Lambda: one
// binary (bootstrap, on the provided.al2023 runtime) behind SQS event
// source mappings of the inventory, payment and shipping queues, running
// the same stage handlers as the ECS worker and answering with partial
// batch responses (ReportBatchItemFailures). See docs/lambda.md.
//
// Build it for arm64 without the RPC mode the al2023 runtime never uses:
//
//	GOOS=linux GOARCH=arm64 CGO_ENABLED=0 go build -tags lambda.norpc -trimpath -ldflags=-s -o bootstrap ./cmd/lambda
//
// Configuration comes from the environment only (package config);
// `bootstrap help` lists it.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/cloudcommerce/cloudcommerce/internal/logging"

	awslambda "github.com/aws/aws-lambda-go/lambda"
	"go.uber.org/zap"

	"github.com/cloudcommerce/cloudcommerce/internal/awsconf"
	"github.com/cloudcommerce/cloudcommerce/internal/config"
	"github.com/cloudcommerce/cloudcommerce/internal/lambda"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "lambda:", err)
		os.Exit(1)
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, `usage: bootstrap [help]

Runs as an AWS Lambda function (AWS_LAMBDA_RUNTIME_API must be set) serving
SQS events of the stage queues.

environment:`)
	for _, e := range config.LambdaEnv {
		d := e.Default
		if d == "" {
			d = "-"
		}
		fmt.Fprintf(w, "  %-34s %-16s %s\n", e.Name, d, e.Meaning)
	}
}

// run wires the handler at cold start and serves invocations; it returns
// only on a configuration or start-up error (then Lambda reports an init
// failure and retries the cold start on the next event).
func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "help", "-h", "--help":
			usage(stdout)
			return nil
		}
		usage(stdout)
		return fmt.Errorf("unknown argument %q", args[0])
	}
	cfg, err := config.LambdaFromEnv(getenv)
	if err != nil {
		return err
	}
	log, err := logging.New(cfg.LogLevel)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	if getenv("AWS_LAMBDA_RUNTIME_API") == "" {
		usage(stdout)
		return fmt.Errorf("AWS_LAMBDA_RUNTIME_API is not set: this binary runs inside AWS Lambda (the worker is the long-running alternative)")
	}
	awsOpts := config.AWS(getenv)
	awsOpts.Logger = log
	awsCfg, err := awsconf.Load(ctx, awsOpts)
	if err != nil {
		return err
	}
	// Cold start has Lambda's init phase (10s) to finish.
	initCtx, cancel := context.WithTimeout(ctx, 8*time.Second)
	h, err := lambda.New(initCtx, cfg, lambda.Deps{AWS: awsCfg, Log: log})
	cancel()
	if err != nil {
		return err
	}
	log.Info("function ready", zap.String("prefix", cfg.Prefix), zap.String("stage", string(cfg.Stage)), zap.String("payment_gateway", cfg.PaymentGateway))
	awslambda.StartWithOptions(h.Handle, awslambda.WithContext(ctx))
	return nil
}
