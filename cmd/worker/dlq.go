package main

import (
	"context"
	"flag"

	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/cloudcommerce/cloudcommerce/internal/awsconf"
	"github.com/cloudcommerce/cloudcommerce/internal/config"
	"github.com/cloudcommerce/cloudcommerce/internal/ops/dlq"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
	"github.com/cloudcommerce/cloudcommerce/internal/topology"
)

var dlqCmd = &command{
	name:    "dlq",
	summary: "see and recover a stage's dead-lettered messages",
	subs: []*command{
		{
			name:    "list",
			summary: "show a stage's dead-lettered messages without consuming them",
			setup: func(fs *flag.FlagSet) func(context.Context, env, []string) error {
				stage := stageFlag(fs)
				maxN := fs.Int("max", 0, "list at most `N` messages (default 100)")
				asJSON := fs.Bool("json", false, "print a JSON array instead of a table")
				return func(ctx context.Context, e env, _ []string) error {
					c, err := dlqCommand(ctx, e, *stage, *maxN)
					if err != nil {
						return err
					}
					return c.List(ctx, *maxN, *asJSON)
				}
			},
		},
		{
			name:    "redrive",
			summary: "move a stage's dead-lettered messages back to its queue",
			detail: `Each page of up to ten messages is sent to the stage queue before it is
deleted from the DLQ, and only the messages the queue accepted are deleted:
a message the queue refuses (after retries with back-off where AWS calls the
error retryable) stays in the DLQ and is listed with AWS's reason, and the
command exits 1. Killed halfway (Ctrl-C, a lost session, SIGKILL), it leaves
every message in the stage queue or the DLQ, none lost; only the page in
flight may be in both, a duplicate the stage handlers absorb (they are
idempotent). Its messages stay hidden in the DLQ for 30 seconds; run the
command again after that to move the rest. It prints a line per page and a
summary; --json prints the summary as JSON (progress then goes to stderr).
Without --max, SQS's own message move task is used where the endpoint has one.`,
			setup: func(fs *flag.FlagSet) func(context.Context, env, []string) error {
				stage := stageFlag(fs)
				maxN := fs.Int("max", 0, "move at most `N` messages (default all)")
				asJSON := fs.Bool("json", false, "print the summary as a JSON object (progress goes to stderr)")
				return func(ctx context.Context, e env, _ []string) error {
					c, err := dlqCommand(ctx, e, *stage, *maxN)
					if err != nil {
						return err
					}
					return c.Redrive(ctx, *maxN, *asJSON)
				}
			},
		},
	},
}

func stageFlag(fs *flag.FlagSet) *string {
	return fs.String("stage", "", "`stage` whose DLQ to use: inventory, payment or shipping (required)")
}

// dlqCommand checks the flags and resolves the stage's queue names.
func dlqCommand(ctx context.Context, e env, stage string, maxN int) (dlq.Command, error) {
	st := pipeline.Stage(stage)
	valid := false
	for _, s := range pipeline.Stages {
		valid = valid || s == st
	}
	if !valid {
		return dlq.Command{}, usagef("--stage %q: want inventory, payment or shipping", stage)
	}
	if maxN < 0 {
		return dlq.Command{}, usagef("--max %d: must not be negative", maxN)
	}
	cfg, err := config.WorkerFromEnv(e.getenv)
	if err != nil {
		return dlq.Command{}, err
	}
	awsCfg, err := awsconf.Load(ctx, config.AWS(e.getenv))
	if err != nil {
		return dlq.Command{}, err
	}
	topo, err := topology.Load()
	if err != nil {
		return dlq.Command{}, err
	}
	names := topo.Names(cfg.Prefix)
	return dlq.Command{SQS: sqs.NewFromConfig(awsCfg), Stage: st, Out: e.stdout, Err: e.stderr,
		Names: dlq.Names{Queue: names.Queues[st], DLQ: names.DLQs[st]}}, nil
}
