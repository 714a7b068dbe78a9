package config

import (
	"cmp"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
	"github.com/cloudcommerce/cloudcommerce/internal/stripe"
)

// Lambda is the Lambda function's configuration. Each field is one
// environment variable, declared by its tags (env.go); the names and
// meanings are the worker's where both have the setting.
type Lambda struct {
	Prefix string `env:"CLOUDCOMMERCE_PREFIX" envDefault:"cloudcommerce" doc:"prefix of every AWS resource name"`
	// Stage pins the function to one stage queue: only that stage's queues
	// are looked up at cold start, and a record from another stage's queue
	// is refused (reported as a batch item failure).
	Stage pipeline.Stage `env:"CLOUDCOMMERCE_STAGE" doc:"inventory, payment or shipping: the one stage queue this function serves; empty: any, by eventSourceARN"`
	// Concurrency is how many records of one batch are handled at once.
	Concurrency    int           `env:"CLOUDCOMMERCE_LAMBDA_CONCURRENCY" envDefault:"10" range:"1,1000" doc:"records of one batch handled at once"`
	HandlerTimeout time.Duration `env:"CLOUDCOMMERCE_HANDLER_TIMEOUT" envDefault:"20s" doc:"deadline of one record's handling"`
	// DeadlineMargin: handlers are cancelled that long before the
	// invocation's deadline, for dead-lettering, back-off and answering.
	DeadlineMargin time.Duration `env:"CLOUDCOMMERCE_DEADLINE_MARGIN" envDefault:"3s" doc:"time kept before the invocation deadline for dead-lettering and answering"`
	RetryBase      time.Duration `env:"CLOUDCOMMERCE_RETRY_BASE" envDefault:"1s" doc:"first back-off of a transient failure, doubled per receive up to 5m"`
	DeferBase      time.Duration `env:"CLOUDCOMMERCE_DEFER_BASE" envDefault:"5s" doc:"first hand-back of an event a newer release wrote, growing by itself per receive; the one before the last receive the queue allows holds it so that the last comes 30m after the first (docs/deploying.md)"`
	// RetryMax caps the back-off (not an environment variable).
	RetryMax    time.Duration
	Batching    *bool         `env:"CLOUDCOMMERCE_BATCHING" envDefault:"true" doc:"batch events and notifications across the records of an invocation"`
	BatchLinger time.Duration `env:"CLOUDCOMMERCE_BATCH_LINGER" envDefault:"5ms" doc:"how long a batched call waits for more entries"`
	// TopicARN: when empty the topic is looked up by name at cold start
	// (CreateTopic, idempotent but needs sns:CreateTopic): set it in production.
	TopicARN       string `env:"CLOUDCOMMERCE_TOPIC_ARN" doc:"notifications topic ARN; looked up by name (sns:CreateTopic) when empty"`
	PublishBatch   string `env:"CLOUDCOMMERCE_SNS_PUBLISH_BATCH" envDefault:"auto" doc:"auto uses SNS PublishBatch where the endpoint has it; off never"`
	OrderFormat    string `env:"CLOUDCOMMERCE_ORDER_FORMAT" envDefault:"json" doc:"how orders are stored: json (every release reads it) or compact (smaller items; only once no release older than this one runs, see docs/deploying.md)"`
	PaymentGateway string `env:"CLOUDCOMMERCE_PAYMENT_GATEWAY" envDefault:"sandbox" doc:"payment provider adapter: sandbox or stripe"`
	// StuckAfter must be the sweeping worker's: in the compact format a
	// write of an order older than it puts the order on by_open.
	StuckAfter time.Duration `env:"CLOUDCOMMERCE_STUCK_AFTER" envDefault:"2m" doc:"the sweeping worker's CLOUDCOMMERCE_STUCK_AFTER: in the compact order format a write of an order not done and older than this puts it on the by_open index the sweep reads"`
	// StripeSecretARN is read once at cold start. A Lambda environment
	// variable is stored in the function's configuration (and Terraform
	// state), so production sets it rather than StripeSecretKey.
	StripeSecretARN string `env:"CLOUDCOMMERCE_STRIPE_SECRET_ARN" doc:"Secrets Manager secret holding the Stripe secret key (stripe gateway; preferred)"`
	StripeSecretKey string `env:"CLOUDCOMMERCE_STRIPE_SECRET_KEY" doc:"the Stripe secret key itself (stripe gateway; for local runs)"`
	LogLevel        string `env:"CLOUDCOMMERCE_LOG_LEVEL" envDefault:"info" doc:"debug, info, warn or error"`
}

// LambdaEnv lists every environment variable the function reads, with its
// default and meaning.
var LambdaEnv = append([]Var{{"AWS_REGION", "(set by Lambda)", "AWS region (standard SDK variable)"}}, vars(reflect.TypeOf(Lambda{}))...)

// Fill sets every zero field to its declared default.
func (c *Lambda) Fill() {
	fill(c)
	c.RetryMax = cmp.Or(c.RetryMax, DefaultRetryMax)
}

// BatchingOn reports whether batching is on.
func (c Lambda) BatchingOn() bool { return c.Batching == nil || *c.Batching }

// LambdaFromEnv reads the function's configuration from getenv and
// validates it, reporting every problem at once.
func LambdaFromEnv(getenv func(string) string) (Lambda, error) {
	var c Lambda
	_, errs := load(&c, getenv)
	c.Stage = pipeline.Stage(strings.TrimSpace(string(c.Stage)))
	c.StripeSecretARN = strings.TrimSpace(c.StripeSecretARN)
	c.Fill()
	if err := errors.Join(errors.Join(errs...), c.Validate()); err != nil {
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
	errs = append(errs, sharedProblems(c.Prefix, c.PublishBatch, c.LogLevel, c.OrderFormat)...)
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
