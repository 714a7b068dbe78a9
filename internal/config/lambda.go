package config

import (
	"cmp"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
	"github.com/cloudcommerce/cloudcommerce/internal/stripe"
)

// Lambda is the Lambda function's configuration. Every field is read from one
// environment variable (named in its comment; the names and meanings are
// the worker's where both have the setting) and zero means its default.
type Lambda struct {
	// Prefix of every AWS resource name. CLOUDCOMMERCE_PREFIX, default "cloudcommerce".
	Prefix string
	// Stage pins the function to one stage queue. CLOUDCOMMERCE_STAGE:
	// inventory, payment or shipping; default empty, meaning any of the
	// three, chosen per record from its eventSourceARN. When set, only that
	// stage's queues are looked up at cold start, and a record from another
	// stage's queue is refused (reported as a batch item failure).
	Stage pipeline.Stage
	// Concurrency is how many records of one batch are handled at once.
	// CLOUDCOMMERCE_LAMBDA_CONCURRENCY, default 10, 1..1000.
	Concurrency int
	// HandlerTimeout bounds one record's handling. CLOUDCOMMERCE_HANDLER_TIMEOUT, default 20s.
	HandlerTimeout time.Duration
	// DeadlineMargin is kept free before the invocation's deadline for
	// dead-lettering, back-off and answering: handlers are cancelled that
	// long before it. CLOUDCOMMERCE_DEADLINE_MARGIN, default 3s.
	DeadlineMargin time.Duration
	// RetryBase is the first back-off of a transient failure, doubled per
	// receive up to RetryMax (5m). CLOUDCOMMERCE_RETRY_BASE, default 1s.
	RetryBase time.Duration
	RetryMax  time.Duration
	// DeferBase is the first hand-back of an event a newer release wrote
	// (see delivery.DeferDelay). CLOUDCOMMERCE_DEFER_BASE, default 5s.
	DeferBase time.Duration
	// Batching turns event and notification batching on. CLOUDCOMMERCE_BATCHING, default true.
	Batching *bool
	// BatchLinger is how long a batched call waits for company. CLOUDCOMMERCE_BATCH_LINGER, default 5ms.
	BatchLinger time.Duration
	// TopicARN of the notifications topic. CLOUDCOMMERCE_TOPIC_ARN; when
	// empty it is looked up by name at cold start (CreateTopic, which is
	// idempotent but needs sns:CreateTopic): set it in production.
	TopicARN string
	// PublishBatch: "auto" or "off" (SNS PublishBatch). CLOUDCOMMERCE_SNS_PUBLISH_BATCH, default auto.
	PublishBatch string
	// PaymentGateway is "sandbox" or "stripe". CLOUDCOMMERCE_PAYMENT_GATEWAY, default sandbox.
	PaymentGateway string
	// StripeSecretKey is the Stripe secret key. CLOUDCOMMERCE_STRIPE_SECRET_KEY.
	// A Lambda environment variable is stored in the function's
	// configuration (and Terraform state), so production sets
	// StripeSecretARN instead.
	StripeSecretKey string
	// StripeSecretARN is a Secrets Manager secret whose string is the Stripe
	// secret key, read once at cold start. CLOUDCOMMERCE_STRIPE_SECRET_ARN.
	StripeSecretARN string
	// LogLevel is debug, info, warn or error. CLOUDCOMMERCE_LOG_LEVEL, default info.
	LogLevel string
}

// LambdaEnv lists every environment variable the function reads, with its
// default and meaning, for documentation and checks.
var LambdaEnv = []Var{
	{"AWS_REGION", "(set by Lambda)", "AWS region (standard SDK variable)"},
	{"CLOUDCOMMERCE_PREFIX", "cloudcommerce", "prefix of every AWS resource name"},
	{"CLOUDCOMMERCE_STAGE", "", "inventory, payment or shipping: the one stage queue this function serves; empty: any, by eventSourceARN"},
	{"CLOUDCOMMERCE_LAMBDA_CONCURRENCY", "10", "records of one batch handled at once"},
	{"CLOUDCOMMERCE_HANDLER_TIMEOUT", "20s", "deadline of one record's handling"},
	{"CLOUDCOMMERCE_DEADLINE_MARGIN", "3s", "time kept before the invocation deadline for dead-lettering and answering"},
	{"CLOUDCOMMERCE_RETRY_BASE", "1s", "first back-off of a transient failure, doubled per receive up to 5m"},
	{"CLOUDCOMMERCE_DEFER_BASE", "5s", "first hand-back of an event a newer release wrote, growing by itself per receive; the one before the last receive the queue allows holds it so that the last comes 30m after the first"},
	{"CLOUDCOMMERCE_BATCHING", "true", "batch events and notifications across the records of an invocation"},
	{"CLOUDCOMMERCE_BATCH_LINGER", "5ms", "how long a batched call waits for more entries"},
	{"CLOUDCOMMERCE_TOPIC_ARN", "", "notifications topic ARN; looked up by name (sns:CreateTopic) when empty"},
	{"CLOUDCOMMERCE_SNS_PUBLISH_BATCH", "auto", "auto uses SNS PublishBatch where the endpoint has it; off never"},
	{"CLOUDCOMMERCE_PAYMENT_GATEWAY", "sandbox", "payment provider adapter: sandbox or stripe"},
	{"CLOUDCOMMERCE_STRIPE_SECRET_ARN", "", "Secrets Manager secret holding the Stripe secret key (stripe gateway; preferred)"},
	{"CLOUDCOMMERCE_STRIPE_SECRET_KEY", "", "the Stripe secret key itself (stripe gateway; for local runs)"},
	{"CLOUDCOMMERCE_LOG_LEVEL", "info", "debug, info, warn or error"},
}

// Fill sets every zero field to its default.
func (c *Lambda) Fill() {
	c.Prefix = cmp.Or(c.Prefix, DefaultPrefix)
	c.PublishBatch = cmp.Or(c.PublishBatch, DefaultPublishBatch)
	c.PaymentGateway = cmp.Or(c.PaymentGateway, DefaultPaymentGateway)
	c.LogLevel = cmp.Or(c.LogLevel, DefaultLogLevel)
	c.Concurrency = cmp.Or(c.Concurrency, DefaultLambdaConcurrency)
	c.HandlerTimeout = cmp.Or(c.HandlerTimeout, DefaultHandlerTimeout)
	c.DeadlineMargin = cmp.Or(c.DeadlineMargin, DefaultDeadlineMargin)
	c.RetryBase = cmp.Or(c.RetryBase, DefaultRetryBase)
	c.DeferBase = cmp.Or(c.DeferBase, DefaultDeferBase)
	c.RetryMax = cmp.Or(c.RetryMax, DefaultRetryMax)
	c.BatchLinger = cmp.Or(c.BatchLinger, DefaultLambdaLinger)
	if c.Batching == nil {
		t := true
		c.Batching = &t
	}
}

// BatchingOn reports whether batching is on.
func (c Lambda) BatchingOn() bool { return c.Batching == nil || *c.Batching }

// LambdaFromEnv reads the function's configuration from getenv and validates it, reporting
// every problem at once.
func LambdaFromEnv(getenv func(string) string) (Lambda, error) {
	var c Lambda
	r := newReader(getenv)
	c.Prefix = r.String("CLOUDCOMMERCE_PREFIX")
	c.Stage = pipeline.Stage(strings.TrimSpace(r.String("CLOUDCOMMERCE_STAGE")))
	r.Int("CLOUDCOMMERCE_LAMBDA_CONCURRENCY", &c.Concurrency, 1, 1000)
	r.Duration("CLOUDCOMMERCE_HANDLER_TIMEOUT", &c.HandlerTimeout, false)
	r.Duration("CLOUDCOMMERCE_DEADLINE_MARGIN", &c.DeadlineMargin, false)
	r.Duration("CLOUDCOMMERCE_RETRY_BASE", &c.RetryBase, false)
	r.Duration("CLOUDCOMMERCE_DEFER_BASE", &c.DeferBase, false)
	r.Duration("CLOUDCOMMERCE_BATCH_LINGER", &c.BatchLinger, false)
	r.Bool("CLOUDCOMMERCE_BATCHING", &c.Batching)
	c.TopicARN = r.String("CLOUDCOMMERCE_TOPIC_ARN")
	c.PublishBatch = r.String("CLOUDCOMMERCE_SNS_PUBLISH_BATCH")
	c.PaymentGateway = r.String("CLOUDCOMMERCE_PAYMENT_GATEWAY")
	c.StripeSecretKey = r.String(stripe.EnvSecretKey)
	c.StripeSecretARN = strings.TrimSpace(r.String("CLOUDCOMMERCE_STRIPE_SECRET_ARN"))
	c.LogLevel = r.String("CLOUDCOMMERCE_LOG_LEVEL")
	c.Fill()
	if err := errors.Join(r.Err(), c.Validate()); err != nil {
		return c, fmt.Errorf("invalid configuration:\n%w", err)
	}
	return c, nil
}

// Validate checks the filled configuration, reporting every problem.
func (c Lambda) Validate() error {
	var errs []error
	if c.Stage != "" && !knownStage(c.Stage) {
		errs = append(errs, fmt.Errorf("CLOUDCOMMERCE_STAGE=%q: want inventory, payment or shipping, or leave it empty", c.Stage))
	}
	if c.Concurrency < 1 || c.Concurrency > 1000 {
		errs = append(errs, fmt.Errorf("CLOUDCOMMERCE_LAMBDA_CONCURRENCY=%d: want 1 to 1000", c.Concurrency))
	}
	if c.HandlerTimeout > 15*time.Minute {
		errs = append(errs, fmt.Errorf("CLOUDCOMMERCE_HANDLER_TIMEOUT=%s: a Lambda invocation lasts at most 15m", c.HandlerTimeout))
	}
	switch c.PaymentGateway {
	case "sandbox":
	case "stripe":
		switch {
		case c.StripeSecretKey == "" && c.StripeSecretARN == "":
			errs = append(errs, errors.New("CLOUDCOMMERCE_PAYMENT_GATEWAY=stripe needs CLOUDCOMMERCE_STRIPE_SECRET_ARN (a Secrets Manager secret holding the key) or CLOUDCOMMERCE_STRIPE_SECRET_KEY"))
		case c.StripeSecretKey != "" && c.StripeSecretARN != "":
			errs = append(errs, errors.New("set only one of CLOUDCOMMERCE_STRIPE_SECRET_ARN and CLOUDCOMMERCE_STRIPE_SECRET_KEY"))
		case c.StripeSecretKey != "":
			if err := (stripe.Config{SecretKey: c.StripeSecretKey}).Validate(); err != nil {
				errs = append(errs, err)
			}
		case !strings.HasPrefix(c.StripeSecretARN, "arn:"):
			errs = append(errs, fmt.Errorf("CLOUDCOMMERCE_STRIPE_SECRET_ARN=%q: want the secret's ARN (arn:aws:secretsmanager:…)", c.StripeSecretARN))
		}
	default:
		errs = append(errs, fmt.Errorf("CLOUDCOMMERCE_PAYMENT_GATEWAY=%q: want sandbox or stripe", c.PaymentGateway))
	}
	errs = append(errs, sharedProblems(c.Prefix, c.PublishBatch, c.LogLevel)...)
	return errors.Join(errs...)
}

func knownStage(st pipeline.Stage) bool {
	for _, s := range pipeline.Stages {
		if s == st {
			return true
		}
	}
	return false
}
