package config

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
	"github.com/cloudcommerce/cloudcommerce/internal/stripe"
)

// Worker is the worker's configuration. Every field is read from one
// environment variable (named in its comment) and zero means its default.
type Worker struct {
	// Prefix of every AWS resource name. CLOUDCOMMERCE_PREFIX, default "cloudcommerce".
	Prefix string
	// OpsAddr serves /metrics, /healthz, /readyz. CLOUDCOMMERCE_OPS_ADDR, default ":9090".
	OpsAddr string
	// IntakeAddr, when set, serves the intake API. CLOUDCOMMERCE_INTAKE_ADDR, default off.
	IntakeAddr string
	// APIKey, when set, is required by the intake API. CLOUDCOMMERCE_API_KEY.
	APIKey string
	// Concurrency per stage: CLOUDCOMMERCE_INVENTORY_CONCURRENCY,
	// CLOUDCOMMERCE_PAYMENT_CONCURRENCY, CLOUDCOMMERCE_SHIPPING_CONCURRENCY, default 16 each.
	Concurrency map[pipeline.Stage]int
	// Pollers per stage. CLOUDCOMMERCE_POLLERS, default 1.
	Pollers int
	// WaitTime is the long-poll wait, 1s..20s. CLOUDCOMMERCE_WAIT_TIME, default 20s.
	WaitTime time.Duration
	// Visibility is the stage queues' visibility timeout (as provisioned),
	// the most ReceiveVisibility defaults to.
	// CLOUDCOMMERCE_VISIBILITY_TIMEOUT, default 30s.
	Visibility time.Duration
	// ReceiveVisibility is how long a received message stays hidden: each
	// receive asks SQS for it instead of the queue's timeout, and the
	// heartbeat extends a message still being handled at half of it, by
	// it. A receive whose response is lost on the way then costs this,
	// not the queue's timeout; a handler still running costs one
	// extension per half of it. CLOUDCOMMERCE_RECEIVE_VISIBILITY, default
	// 10s or Visibility if shorter.
	ReceiveVisibility time.Duration
	// HandlerTimeout bounds one message's handling. CLOUDCOMMERCE_HANDLER_TIMEOUT, default 20s.
	HandlerTimeout time.Duration
	// ShutdownTimeout is how long in-flight handlers may run after SIGTERM.
	// CLOUDCOMMERCE_SHUTDOWN_TIMEOUT, default 25s (ECS waits 30s).
	ShutdownTimeout time.Duration
	// Batching turns receive/delete/event/notification batching on.
	// CLOUDCOMMERCE_BATCHING, default true.
	Batching *bool
	// BatchLinger is how long a batched call waits for company. CLOUDCOMMERCE_BATCH_LINGER, default 10ms.
	BatchLinger time.Duration
	// ReceiveLinger is how long a poller waits after a receive that came
	// back partly filled before the next, so receives carry more messages.
	// CLOUDCOMMERCE_RECEIVE_LINGER, default 50ms; 0 turns it off.
	ReceiveLinger time.Duration
	// DeleteLinger is how long an acknowledgement waits for company in a
	// DeleteMessageBatch; it never holds up a handler.
	// CLOUDCOMMERCE_DELETE_LINGER, default 100ms.
	DeleteLinger time.Duration
	// RetryBase is the first back-off of a transient failure (doubling per
	// receive, up to 5m). CLOUDCOMMERCE_RETRY_BASE, default 1s.
	RetryBase time.Duration
	// DeferBase is the first hand-back of an event a newer release wrote
	// (growing by itself per receive; the last delivery the queue allows
	// comes 30m after the first: delivery.DeferDelay).
	// CLOUDCOMMERCE_DEFER_BASE, default 5s.
	DeferBase time.Duration
	// SweepInterval is how often stuck orders are looked for; "off" disables.
	// CLOUDCOMMERCE_SWEEP_INTERVAL, default 30s.
	SweepInterval time.Duration
	// StuckAfter is how long an order may sit in a non-final status before
	// the sweep re-publishes its event. CLOUDCOMMERCE_STUCK_AFTER, default 2m.
	StuckAfter time.Duration
	// QueueSampleInterval is how often queue depths are sampled.
	// CLOUDCOMMERCE_QUEUE_SAMPLE_INTERVAL, default 15s.
	QueueSampleInterval time.Duration
	// TopicARN of the notifications topic; when empty it is looked up by
	// name (CreateTopic is idempotent). CLOUDCOMMERCE_TOPIC_ARN.
	TopicARN string
	// PublishBatch: "auto" or "off" (SNS PublishBatch). CLOUDCOMMERCE_SNS_PUBLISH_BATCH, default auto.
	PublishBatch string
	// PaymentGateway is "sandbox" or "stripe". CLOUDCOMMERCE_PAYMENT_GATEWAY, default sandbox.
	PaymentGateway string
	// StripeSecretKey is the Stripe API key, for the stripe gateway.
	// CLOUDCOMMERCE_STRIPE_SECRET_KEY (from a secret store; never logged).
	StripeSecretKey string
	// CarrierDelay makes the sandbox carrier slow. CLOUDCOMMERCE_CARRIER_DELAY, default 0.
	CarrierDelay time.Duration
	// Pprof serves net/http/pprof at /debug/pprof/ on the ops address.
	// CLOUDCOMMERCE_PPROF, default false.
	Pprof bool
	// LogLevel is debug, info, warn or error. CLOUDCOMMERCE_LOG_LEVEL, default info.
	LogLevel string
}

// WorkerEnv lists every environment variable the worker reads, with its
// default and meaning, for documentation and checks.
var WorkerEnv = []Var{
	{"AWS_REGION", "us-east-1", "AWS region (standard SDK variable)"},
	{"AWS_ENDPOINT_URL", "", "AWS endpoint override, e.g. LocalStack or the devstack emulator (standard SDK variable)"},
	{"AWS_MAX_ATTEMPTS", "3", "attempts per AWS call by the SDK's retryer, the only retry below the queue's (standard SDK variable)"},
	{"CLOUDCOMMERCE_PREFIX", "cloudcommerce", "prefix of every AWS resource name"},
	{"CLOUDCOMMERCE_OPS_ADDR", ":9090", "address of /metrics, /healthz, /readyz"},
	{"CLOUDCOMMERCE_INTAKE_ADDR", "", "address of the intake API; empty turns it off"},
	{"CLOUDCOMMERCE_API_KEY", "", "when set, the intake API requires Authorization: Bearer <key>"},
	{"CLOUDCOMMERCE_INVENTORY_CONCURRENCY", "16", "inventory handlers running at once"},
	{"CLOUDCOMMERCE_PAYMENT_CONCURRENCY", "16", "payment handlers running at once"},
	{"CLOUDCOMMERCE_SHIPPING_CONCURRENCY", "16", "shipping handlers running at once"},
	{"CLOUDCOMMERCE_POLLERS", "1", "concurrent long-polls per stage (raise only when receives come back full)"},
	{"CLOUDCOMMERCE_WAIT_TIME", "20s", "long-poll wait (1s..20s)"},
	{"CLOUDCOMMERCE_VISIBILITY_TIMEOUT", "30s", "the stage queues' visibility timeout; caps the default of CLOUDCOMMERCE_RECEIVE_VISIBILITY"},
	{"CLOUDCOMMERCE_RECEIVE_VISIBILITY", "10s", "how long a received message stays hidden (asked for on each receive, so a lost receive costs this); handlers still running at half of it are extended by it; at most CLOUDCOMMERCE_VISIBILITY_TIMEOUT by default"},
	{"CLOUDCOMMERCE_HANDLER_TIMEOUT", "20s", "deadline of one message's handling"},
	{"CLOUDCOMMERCE_SHUTDOWN_TIMEOUT", "25s", "time in-flight work gets after SIGTERM (keep below ECS stopTimeout)"},
	{"CLOUDCOMMERCE_BATCHING", "true", "batch receives, deletes, events and notifications; false for one per call"},
	{"CLOUDCOMMERCE_BATCH_LINGER", "10ms", "how long a batched PutEvents or PublishBatch waits for more entries"},
	{"CLOUDCOMMERCE_RECEIVE_LINGER", "50ms", "wait after a partly filled receive before the next, so receives carry more messages; 0 turns it off"},
	{"CLOUDCOMMERCE_DELETE_LINGER", "100ms", "how long an acknowledgement waits for more in a DeleteMessageBatch (never delays a handler)"},
	{"CLOUDCOMMERCE_RETRY_BASE", "1s", "first back-off of a transient failure, doubled per receive up to 5m"},
	{"CLOUDCOMMERCE_DEFER_BASE", "5s", "first hand-back of an event a newer release wrote, growing by itself per receive; the one before the last receive the queue allows holds it so that the last comes 30m after the first"},
	{"CLOUDCOMMERCE_SWEEP_INTERVAL", "30s", "how often stuck orders are re-published; off disables"},
	{"CLOUDCOMMERCE_STUCK_AFTER", "2m", "age at which a non-final order counts as stuck"},
	{"CLOUDCOMMERCE_QUEUE_SAMPLE_INTERVAL", "15s", "how often queue depths are sampled for metrics"},
	{"CLOUDCOMMERCE_TOPIC_ARN", "", "notifications topic ARN; looked up by name when empty"},
	{"CLOUDCOMMERCE_SNS_PUBLISH_BATCH", "auto", "auto uses SNS PublishBatch where the endpoint has it; off never"},
	{"CLOUDCOMMERCE_PAYMENT_GATEWAY", "sandbox", "payment provider adapter: sandbox or stripe"},
	{"CLOUDCOMMERCE_STRIPE_SECRET_KEY", "", "Stripe secret key, required with the stripe gateway (inject from a secret store)"},
	{"CLOUDCOMMERCE_CARRIER_DELAY", "0s", "artificial delay of the sandbox carrier (for testing slow handlers)"},
	{"CLOUDCOMMERCE_LOG_LEVEL", "info", "debug, info, warn or error"},
	{"CLOUDCOMMERCE_PPROF", "false", "serve Go's profiler at /debug/pprof/ on the ops address (keep that address private)"},
}

// WorkerDefaults returns the worker's configuration with every default
// filled in.
func WorkerDefaults() Worker {
	c := Worker{}
	c.Fill()
	return c
}

// Fill sets every zero field to its default.
func (c *Worker) Fill() {
	c.Prefix = cmp.Or(c.Prefix, DefaultPrefix)
	c.OpsAddr = cmp.Or(c.OpsAddr, DefaultOpsAddr)
	c.PublishBatch = cmp.Or(c.PublishBatch, DefaultPublishBatch)
	c.PaymentGateway = cmp.Or(c.PaymentGateway, DefaultPaymentGateway)
	c.LogLevel = cmp.Or(c.LogLevel, DefaultLogLevel)
	if c.Concurrency == nil {
		c.Concurrency = map[pipeline.Stage]int{}
	}
	for _, st := range pipeline.Stages {
		c.Concurrency[st] = cmp.Or(c.Concurrency[st], DefaultConcurrency)
	}
	c.Pollers = cmp.Or(c.Pollers, DefaultPollers)
	c.WaitTime = cmp.Or(c.WaitTime, DefaultWaitTime)
	c.Visibility = cmp.Or(c.Visibility, DefaultVisibility)
	c.ReceiveVisibility = cmp.Or(c.ReceiveVisibility, min(DefaultReceiveVisibility, c.Visibility))
	c.HandlerTimeout = cmp.Or(c.HandlerTimeout, DefaultHandlerTimeout)
	c.ShutdownTimeout = cmp.Or(c.ShutdownTimeout, DefaultShutdownTimeout)
	c.BatchLinger = cmp.Or(c.BatchLinger, DefaultBatchLinger)
	c.ReceiveLinger = cmp.Or(c.ReceiveLinger, DefaultReceiveLinger)
	c.DeleteLinger = cmp.Or(c.DeleteLinger, DefaultDeleteLinger)
	c.RetryBase = cmp.Or(c.RetryBase, DefaultRetryBase)
	c.DeferBase = cmp.Or(c.DeferBase, DefaultDeferBase)
	c.SweepInterval = cmp.Or(c.SweepInterval, DefaultSweepInterval)
	c.StuckAfter = cmp.Or(c.StuckAfter, DefaultStuckAfter)
	c.QueueSampleInterval = cmp.Or(c.QueueSampleInterval, DefaultSampleInterval)
	if c.Batching == nil {
		t := true
		c.Batching = &t
	}
}

// BatchingOn reports whether batching is on.
func (c Worker) BatchingOn() bool { return c.Batching == nil || *c.Batching }

// AWSCalls is the most AWS calls the worker makes at once: every handler,
// every poller, and the callers of their own (per stage a delete batcher
// and a visibility batcher; the event and notification batchers, the sweep
// and the queue sampler). It sizes the AWS clients' idle connections per
// host, so a steady load reuses connections instead of closing them after a
// burst.
func (c Worker) AWSCalls() int {
	n := len(pipeline.Stages)*(c.Pollers+2) + 4
	for _, k := range c.Concurrency {
		n += k
	}
	return n
}

// WorkerFromEnv reads the worker's configuration from getenv and validates it, reporting
// every problem at once.
func WorkerFromEnv(getenv func(string) string) (Worker, error) {
	var c Worker
	r := newReader(getenv)
	c.Prefix = r.String("CLOUDCOMMERCE_PREFIX")
	c.OpsAddr = r.String("CLOUDCOMMERCE_OPS_ADDR")
	c.IntakeAddr = r.String("CLOUDCOMMERCE_INTAKE_ADDR")
	c.APIKey = r.String("CLOUDCOMMERCE_API_KEY")
	c.TopicARN = r.String("CLOUDCOMMERCE_TOPIC_ARN")
	c.PublishBatch = r.String("CLOUDCOMMERCE_SNS_PUBLISH_BATCH")
	c.PaymentGateway = r.String("CLOUDCOMMERCE_PAYMENT_GATEWAY")
	c.StripeSecretKey = r.String(stripe.EnvSecretKey)
	c.LogLevel = r.String("CLOUDCOMMERCE_LOG_LEVEL")
	c.Concurrency = map[pipeline.Stage]int{}
	for _, st := range pipeline.Stages {
		n := 0
		r.Int("CLOUDCOMMERCE_"+strings.ToUpper(string(st))+"_CONCURRENCY", &n, 1, 1000)
		c.Concurrency[st] = n
	}
	r.Int("CLOUDCOMMERCE_POLLERS", &c.Pollers, 1, 32)
	r.Duration("CLOUDCOMMERCE_WAIT_TIME", &c.WaitTime, false)
	r.Duration("CLOUDCOMMERCE_VISIBILITY_TIMEOUT", &c.Visibility, false)
	r.Duration("CLOUDCOMMERCE_RECEIVE_VISIBILITY", &c.ReceiveVisibility, false)
	r.Duration("CLOUDCOMMERCE_HANDLER_TIMEOUT", &c.HandlerTimeout, false)
	r.Duration("CLOUDCOMMERCE_SHUTDOWN_TIMEOUT", &c.ShutdownTimeout, false)
	r.Duration("CLOUDCOMMERCE_BATCH_LINGER", &c.BatchLinger, false)
	r.Duration("CLOUDCOMMERCE_RECEIVE_LINGER", &c.ReceiveLinger, true)
	r.Duration("CLOUDCOMMERCE_DELETE_LINGER", &c.DeleteLinger, false)
	r.Duration("CLOUDCOMMERCE_RETRY_BASE", &c.RetryBase, false)
	r.Duration("CLOUDCOMMERCE_DEFER_BASE", &c.DeferBase, false)
	r.Duration("CLOUDCOMMERCE_SWEEP_INTERVAL", &c.SweepInterval, true)
	r.Duration("CLOUDCOMMERCE_STUCK_AFTER", &c.StuckAfter, false)
	r.Duration("CLOUDCOMMERCE_QUEUE_SAMPLE_INTERVAL", &c.QueueSampleInterval, true)
	r.NonNegativeDuration("CLOUDCOMMERCE_CARRIER_DELAY", &c.CarrierDelay)
	r.Bool("CLOUDCOMMERCE_BATCHING", &c.Batching)
	var pprof *bool
	r.Bool("CLOUDCOMMERCE_PPROF", &pprof)
	c.Pprof = pprof != nil && *pprof
	c.Fill()
	if err := errors.Join(r.Err(), c.Validate()); err != nil {
		return c, fmt.Errorf("invalid configuration:\n%w", err)
	}
	return c, nil
}

// Validate checks the filled configuration, reporting every problem.
func (c Worker) Validate() error {
	var errs []error
	if c.WaitTime > 20*time.Second || c.WaitTime < time.Second {
		errs = append(errs, fmt.Errorf("CLOUDCOMMERCE_WAIT_TIME=%s: SQS long polls wait 1s to 20s", c.WaitTime))
	}
	if c.Visibility > 12*time.Hour || c.Visibility < 2*time.Second {
		errs = append(errs, fmt.Errorf("CLOUDCOMMERCE_VISIBILITY_TIMEOUT=%s: must be 2s to 12h", c.Visibility))
	}
	if c.ReceiveVisibility > 12*time.Hour || c.ReceiveVisibility < 2*time.Second {
		errs = append(errs, fmt.Errorf("CLOUDCOMMERCE_RECEIVE_VISIBILITY=%s: must be 2s to 12h", c.ReceiveVisibility))
	}
	if c.HandlerTimeout > c.ShutdownTimeout {
		errs = append(errs, fmt.Errorf("CLOUDCOMMERCE_HANDLER_TIMEOUT=%s exceeds CLOUDCOMMERCE_SHUTDOWN_TIMEOUT=%s: a handler started just before SIGTERM could not finish", c.HandlerTimeout, c.ShutdownTimeout))
	}
	for _, a := range []struct{ name, v string }{{"CLOUDCOMMERCE_OPS_ADDR", c.OpsAddr}, {"CLOUDCOMMERCE_INTAKE_ADDR", c.IntakeAddr}} {
		if a.v == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a.v); err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: want host:port such as :9090", a.name, a.v))
		}
	}
	switch c.PaymentGateway {
	case "sandbox":
	case "stripe":
		if err := (stripe.Config{SecretKey: c.StripeSecretKey}).Validate(); err != nil {
			errs = append(errs, err)
		}
	default:
		errs = append(errs, fmt.Errorf("CLOUDCOMMERCE_PAYMENT_GATEWAY=%q: want sandbox or stripe", c.PaymentGateway))
	}
	errs = append(errs, sharedProblems(c.Prefix, c.PublishBatch, c.LogLevel)...)
	return errors.Join(errs...)
}
