package main

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/cloudcommerce/cloudcommerce/internal/awsconf"
	"github.com/cloudcommerce/cloudcommerce/internal/config"
	"github.com/cloudcommerce/cloudcommerce/internal/topology"
)

var provisionCmd = &command{
	name:    "provision",
	summary: "create the queues, rules, tables and topic on the configured endpoint (idempotent)",
	setup: func(*flag.FlagSet) func(context.Context, env, []string) error {
		return provision
	},
}

func provision(ctx context.Context, e env, _ []string) error {
	cfg, err := config.WorkerFromEnv(e.getenv)
	if err != nil {
		return err
	}
	awsCfg, err := awsconf.Load(ctx, config.AWS(e.getenv))
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
		EventBridge: eventbridge.NewFromConfig(awsCfg), SNS: sns.NewFromConfig(awsCfg), Progress: e.stdout}, cfg.Prefix)
	if err != nil {
		return err
	}
	if len(p.Created) == 0 {
		fmt.Fprintf(e.stdout, "topology %q is up to date; nothing to create\n", cfg.Prefix)
	} else {
		fmt.Fprintf(e.stdout, "created %d resources for %q:\n  %s\n", len(p.Created), cfg.Prefix, strings.Join(p.Created, "\n  "))
	}
	fmt.Fprintf(e.stdout, "topic: %s\n", p.TopicARN)
	return nil
}
