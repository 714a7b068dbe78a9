// Package wire assembles the stage handlers' dependencies — the DynamoDB
// store, the EventBridge publisher, the SNS notifier, the payment gateway
// and the carrier — into a pipeline.Service, the same way for the worker and
// for the Lambda adapter.
package wire

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	oteltrace "go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/cloudcommerce/cloudcommerce/internal/awsconf"
	"github.com/cloudcommerce/cloudcommerce/internal/bus"
	"github.com/cloudcommerce/cloudcommerce/internal/metrics"
	"github.com/cloudcommerce/cloudcommerce/internal/notify"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
	"github.com/cloudcommerce/cloudcommerce/internal/sandbox"
	"github.com/cloudcommerce/cloudcommerce/internal/store"
	"github.com/cloudcommerce/cloudcommerce/internal/stripe"
	"github.com/cloudcommerce/cloudcommerce/internal/topology"
)

// Config says how to build the stage handlers' dependencies. It has
// nothing Lambda-specific: the worker can build its service the same way.
type Config struct {
	Names topology.Names
	// TopicARN of the notifications topic; when empty it is looked up by
	// name with CreateTopic (idempotent).
	TopicARN string
	// Batching batches events and notifications of concurrent handlers,
	// each waiting at most Linger for company.
	Batching bool
	Linger   time.Duration
	// PublishBatch is "auto" or "off" (SNS PublishBatch).
	PublishBatch string
	// PaymentGateway is "sandbox" (the default) or "stripe".
	PaymentGateway string
	// OrderFormat is how the store writes orders (default store.FormatJSON).
	OrderFormat store.Format
	// StuckAfter is the age at which an order not done counts as stuck
	// (0: store.DefaultStuckAfter); see store.Store.SetStuckAfter.
	StuckAfter time.Duration
	// Stripe configures the stripe gateway.
	Stripe stripe.Config
}

// Deps are what the worker and the Lambda adapter are given rather than
// build: one struct serves both (worker.Deps and lambda.Deps are this
// type). Only AWS and Log are required.
type Deps struct {
	AWS aws.Config
	// LedgerAWS, when set, configures the sandbox payment ledger's client
	// (so its calls are counted apart, as an external provider's).
	LedgerAWS *aws.Config
	Log       *zap.Logger
	// Metrics, when set, observes transitions, batch sizes and handled
	// messages (the worker requires it; the function serves no /metrics,
	// tests read it).
	Metrics *metrics.Metrics
	// Payments and Carrier override the configured adapters (tests).
	Payments pipeline.PaymentGateway
	Carrier  pipeline.Carrier
	// Notifications, when set, serves GET /v1/notifications (the worker's
	// intake in devstack).
	Notifications notify.Log
	// Tracing, when set, traces each order from intake through every
	// stage and AWS call (trace.FromEnv); nil makes no spans. The worker
	// uses it.
	Tracing oteltrace.TracerProvider
}

// Components are the stage handlers' dependencies, assembled.
type Components struct {
	Service   *pipeline.Service
	Store     *store.Store
	Publisher *bus.Publisher
	Notifier  *notify.Notifier
	TopicARN  string
}

// New wires the store, the bus publisher, the notifier, the
// payment gateway and the carrier into a pipeline.Service, exactly as the
// worker runs it.
func New(ctx context.Context, cfg Config, d Deps) (*Components, error) {
	names := cfg.Names
	c := &Components{TopicARN: cfg.TopicARN}
	snsClient := sns.NewFromConfig(d.AWS)
	if c.TopicARN == "" {
		out, err := snsClient.CreateTopic(ctx, &sns.CreateTopicInput{Name: aws.String(names.Topic)})
		if err != nil {
			return nil, fmt.Errorf("look up topic %s: %w (or set CLOUDCOMMERCE_TOPIC_ARN)", names.Topic, err)
		}
		c.TopicARN = aws.ToString(out.TopicArn)
	}
	db := awsconf.DynamoDB(d.AWS)
	c.Store = store.NewFormat(db, store.Tables{Orders: names.Tables["orders"], Inventory: names.Tables["inventory"], Idempotency: names.Tables["idempotency"]}, cfg.OrderFormat)
	c.Store.SetStuckAfter(cfg.StuckAfter)
	batchMax, linger := 10, cfg.Linger
	if !cfg.Batching {
		batchMax, linger = 1, -1
	}
	onFlush := func(kind string) func(int) {
		if d.Metrics == nil {
			return nil
		}
		h := d.Metrics.BatchSize.WithLabelValues(kind)
		return func(n int) { h.Observe(float64(n)) }
	}
	c.Publisher = bus.New(eventbridge.NewFromConfig(d.AWS), bus.Config{Bus: names.Bus, Batch: batchMax, Linger: linger, OnFlush: onFlush("events")})
	c.Notifier = notify.New(snsClient, notify.Config{TopicARN: c.TopicARN, Batch: batchMax, Linger: linger, PublishBatch: cfg.PublishBatch,
		OnFlush: onFlush("notifications")}, d.Log)
	payments, carrier := d.Payments, d.Carrier
	if payments == nil {
		switch cfg.PaymentGateway {
		case "", "sandbox":
			ledger := db
			if d.LedgerAWS != nil {
				ledger = awsconf.DynamoDB(*d.LedgerAWS)
			}
			payments = sandbox.NewGateway(ledger, names.Tables["payments_ledger"])
		case "stripe":
			gw, err := stripe.New(cfg.Stripe)
			if err != nil {
				c.Close()
				return nil, err
			}
			payments = gw
		default:
			c.Close()
			return nil, fmt.Errorf("unknown payment gateway %q: want sandbox or stripe", cfg.PaymentGateway)
		}
	}
	if carrier == nil {
		carrier = sandbox.Carrier{}
	}
	c.Service = &pipeline.Service{Store: c.Store, Publisher: c.Publisher, Notifier: c.Notifier, Payments: payments, Carrier: carrier}
	if d.Metrics != nil {
		c.Service.Observer = d.Metrics.Observer()
	}
	return c, nil
}

// Close sends whatever the batchers still hold and waits for requests in
// flight. Handlers that returned have nothing pending: Publish and Notify
// return only once their entries are sent.
func (c *Components) Close() {
	c.Publisher.Close()
	c.Notifier.Close()
}

// StripeKeyFromSecret reads the Stripe secret key from a Secrets Manager
// secret whose SecretString is the key itself.
func StripeKeyFromSecret(ctx context.Context, cfg aws.Config, arn string) (string, error) {
	out, err := secretsmanager.NewFromConfig(cfg).GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn)})
	if err != nil {
		return "", fmt.Errorf("read the Stripe key from secret %s: %w", arn, err)
	}
	if out.SecretString == nil {
		return "", fmt.Errorf("secret %s has no string value: store the Stripe secret key as plain text", arn)
	}
	return *out.SecretString, nil
}
