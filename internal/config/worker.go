package config

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"reflect"
	"time"

	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
	"github.com/cloudcommerce/cloudcommerce/internal/stripe"
)

// Worker is the worker's configuration. Each field is one environment
// variable, declared by its tags (env.go): name, default, meaning, range.
type Worker struct {
	Prefix     string `env:"CLOUDCOMMERCE_PREFIX" envDefault:"cloudcommerce" doc:"prefix of every AWS resource name"`
	OpsAddr    string `env:"CLOUDCOMMERCE_OPS_ADDR" envDefault:":9090" doc:"address of /metrics, /healthz, /readyz"`
	IntakeAddr string `env:"CLOUDCOMMERCE_INTAKE_ADDR" doc:"address of the intake API; empty turns it off"`
	APIKey     string `env:"CLOUDCOMMERCE_API_KEY" doc:"when set, the intake API requires Authorization: Bearer <key>"`

	InventoryConcurrency int `env:"CLOUDCOMMERCE_INVENTORY_CONCURRENCY" envDefault:"16" range:"1,1000" doc:"inventory handlers running at once"`
	PaymentConcurrency   int `env:"CLOUDCOMMERCE_PAYMENT_CONCURRENCY" envDefault:"16" range:"1,1000" doc:"payment handlers running at once"`
	ShippingConcurrency  int `env:"CLOUDCOMMERCE_SHIPPING_CONCURRENCY" envDefault:"16" range:"1,1000" doc:"shipping handlers running at once"`
	// Concurrency is the three above by stage (Fill sets it from them).
	Concurrency map[pipeline.Stage]int `env:"-"`

	Pollers    int           `env:"CLOUDCOMMERCE_POLLERS" envDefault:"1" range:"1,32" doc:"concurrent long-polls per stage (raise only when receives come back full)"`
	WaitTime   time.Duration `env:"CLOUDCOMMERCE_WAIT_TIME" envDefault:"20s" doc:"long-poll wait (1s..20s)"`
	Visibility time.Duration `env:"CLOUDCOMMERCE_VISIBILITY_TIMEOUT" envDefault:"30s" doc:"the stage queues' visibility timeout; caps the default of CLOUDCOMMERCE_RECEIVE_VISIBILITY"`
	// ReceiveVisibility is asked for on each receive instead of the queue's
	// timeout, and the heartbeat extends a message still being handled at
	// half of it, by it: a receive whose response is lost costs this, not
	// the queue's timeout. Unset, it is at most Visibility.
	ReceiveVisibility time.Duration `env:"CLOUDCOMMERCE_RECEIVE_VISIBILITY" envDefault:"10s" doc:"how long a received message stays hidden (asked for on each receive, so a lost receive costs this, not the queue's timeout); handlers still running at half of it are extended by it; at most CLOUDCOMMERCE_VISIBILITY_TIMEOUT by default"`
	HandlerTimeout    time.Duration `env:"CLOUDCOMMERCE_HANDLER_TIMEOUT" envDefault:"20s" doc:"deadline of one message's handling"`
	ShutdownTimeout   time.Duration `env:"CLOUDCOMMERCE_SHUTDOWN_TIMEOUT" envDefault:"25s" doc:"time in-flight work gets after SIGTERM (keep below the ECS stopTimeout of 30s)"`
	Batching          *bool         `env:"CLOUDCOMMERCE_BATCHING" envDefault:"true" doc:"batch receives, deletes, events and notifications; false for one per call"`
	BatchLinger       time.Duration `env:"CLOUDCOMMERCE_BATCH_LINGER" envDefault:"10ms" doc:"how long a batched PutEvents or SNS PublishBatch waits for more entries"`
	ReceiveLinger     time.Duration `env:"CLOUDCOMMERCE_RECEIVE_LINGER" envDefault:"50ms" off:"true" doc:"wait after a partly filled receive before the next, so receives (and the deletes and events after them) carry more messages; 0 turns it off"`
	DeleteLinger      time.Duration `env:"CLOUDCOMMERCE_DELETE_LINGER" envDefault:"100ms" doc:"how long an acknowledgement waits for more in a DeleteMessageBatch; it never delays a handler"`
	RetryBase         time.Duration `env:"CLOUDCOMMERCE_RETRY_BASE" envDefault:"1s" doc:"first back-off of a transient failure, doubled per receive up to 5m"`
	DeferBase         time.Duration `env:"CLOUDCOMMERCE_DEFER_BASE" envDefault:"5s" doc:"first hand-back of an event a newer release wrote, growing by itself per receive; the one before the last receive the queue allows holds it so that the last comes 30m after the first (docs/deploying.md)"`
	SweepInterval     time.Duration `env:"CLOUDCOMMERCE_SWEEP_INTERVAL" envDefault:"30s" off:"true" doc:"how often stuck orders are re-published; off disables"`
	StuckAfter        time.Duration `env:"CLOUDCOMMERCE_STUCK_AFTER" envDefault:"2m" doc:"age at which an order not done counts as stuck; in the compact order format also the age past which a write puts such an order on the by_open index the sweep reads"`
	// QueueSampleInterval: "off" or "0" turns the sampling off.
	QueueSampleInterval time.Duration `env:"CLOUDCOMMERCE_QUEUE_SAMPLE_INTERVAL" envDefault:"15s" off:"true" doc:"how often queue depths are sampled for metrics"`
	TopicARN            string        `env:"CLOUDCOMMERCE_TOPIC_ARN" doc:"notifications topic ARN; looked up by name when empty"`
	PublishBatch        string        `env:"CLOUDCOMMERCE_SNS_PUBLISH_BATCH" envDefault:"auto" doc:"auto uses SNS PublishBatch where the endpoint has it; off never"`
	OrderFormat         string        `env:"CLOUDCOMMERCE_ORDER_FORMAT" envDefault:"json" doc:"how orders are stored: json (every release reads it) or compact (smaller items; only once no release older than this one runs, see docs/deploying.md)"`
	PaymentGateway      string        `env:"CLOUDCOMMERCE_PAYMENT_GATEWAY" envDefault:"sandbox" doc:"payment provider adapter: sandbox or stripe (docs/stripe.md)"`
	// StripeSecretKey comes from a secret store and is never logged.
	StripeSecretKey string        `env:"CLOUDCOMMERCE_STRIPE_SECRET_KEY" doc:"Stripe secret key, required with the stripe gateway (inject it from a secret store)"`
	CarrierDelay    time.Duration `env:"CLOUDCOMMERCE_CARRIER_DELAY" envDefault:"0s" zero:"ok" doc:"artificial delay of the sandbox carrier (for testing slow handlers)"`
	LogLevel        string        `env:"CLOUDCOMMERCE_LOG_LEVEL" envDefault:"info" doc:"debug, info, warn or error"`
	Pprof           bool          `env:"CLOUDCOMMERCE_PPROF" envDefault:"false" doc:"serve Go's profiler at /debug/pprof/ on the ops address (keep that address private)"`
}

// WorkerEnv lists every environment variable the worker reads, with its
// default and meaning: the SDK's own, then Worker's declarations.
var WorkerEnv = append(vars(reflect.TypeOf(SDK{})), vars(reflect.TypeOf(Worker{}))...)

// SDK declares, for documentation, the standard variables the AWS SDK
// reads itself (AWS reads the region and endpoint from them too).
type SDK struct {
	Region      string `env:"AWS_REGION" envDefault:"us-east-1" doc:"AWS region (standard SDK variable)"`
	Endpoint    string `env:"AWS_ENDPOINT_URL" doc:"endpoint override: LocalStack, the devstack emulator (standard SDK variable)"`
	MaxAttempts int    `env:"AWS_MAX_ATTEMPTS" envDefault:"3" doc:"attempts per AWS call by the SDK's retryer, the only retry below the queue's (standard SDK variable)"`
}

// WorkerDefaults returns the worker's configuration with every default
// filled in.
func WorkerDefaults() Worker {
	c := Worker{}
	c.Fill()
	return c
}

// Fill sets every zero field to its declared default; the per-stage
// concurrency map is completed from the per-stage fields.
func (c *Worker) Fill() {
	receiveVisibilityUnset := c.ReceiveVisibility == 0
	fill(c)
	if receiveVisibilityUnset {
		c.ReceiveVisibility = min(c.ReceiveVisibility, c.Visibility)
	}
	if c.Concurrency == nil {
		c.Concurrency = map[pipeline.Stage]int{}
	}
	for st, n := range map[pipeline.Stage]int{pipeline.StageInventory: c.InventoryConcurrency, pipeline.StagePayment: c.PaymentConcurrency, pipeline.StageShipping: c.ShippingConcurrency} {
		c.Concurrency[st] = cmp.Or(c.Concurrency[st], n)
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

// WorkerFromEnv reads the worker's configuration from getenv and validates
// it, reporting every problem at once.
func WorkerFromEnv(getenv func(string) string) (Worker, error) {
	var c Worker
	set, errs := load(&c, getenv)
	if !set["CLOUDCOMMERCE_RECEIVE_VISIBILITY"] {
		c.ReceiveVisibility = 0 // its default depends on the visibility timeout
	}
	c.Fill()
	if err := errors.Join(errors.Join(errs...), c.Validate()); err != nil {
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
	errs = append(errs, sharedProblems(c.Prefix, c.PublishBatch, c.LogLevel, c.OrderFormat)...)
	return errors.Join(errs...)
}
