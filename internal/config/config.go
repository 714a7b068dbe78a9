// Package config is the one place that reads the environment. It turns
// the variables of the worker (Worker), the Lambda adapter (Lambda), the
// AWS SDK connection (AWS) and the Go runtime (GCPercent) into typed
// settings, fills the defaults, which are defined here once, and checks
// everything at once, naming every variable that is wrong.
//
// Every reader takes a getenv function (os.Getenv in the mains, a map in
// tests); no other package calls os.Getenv for its configuration.
package config

import (
	"fmt"
	"time"
)

// Defaults shared by the worker, its stage consumers and the Lambda
// adapter. The queue package takes its own defaults from here, so a
// consumer built without the worker's configuration behaves as the worker
// does.
const (
	DefaultPrefix      = "cloudcommerce"
	DefaultOpsAddr     = ":9090"
	DefaultConcurrency = 16
	DefaultPollers     = 1
	DefaultMaxReceive  = 10
	DefaultWaitTime    = 20 * time.Second
	DefaultVisibility  = 30 * time.Second
	// DefaultReceiveVisibility is capped by the queue's visibility timeout.
	DefaultReceiveVisibility = 10 * time.Second
	DefaultHandlerTimeout    = 20 * time.Second
	DefaultShutdownTimeout   = 25 * time.Second
	DefaultBatchLinger       = 10 * time.Millisecond
	DefaultReceiveLinger     = 50 * time.Millisecond
	DefaultDeleteBatch       = 10
	DefaultDeleteLinger      = 100 * time.Millisecond
	DefaultRetryBase         = time.Second
	DefaultRetryMax          = 5 * time.Minute
	// DefaultDeferBase is the first hand-back of an event a newer release
	// wrote (see delivery.DeferDelay).
	DefaultDeferBase      = 5 * time.Second
	DefaultSweepInterval  = 30 * time.Second
	DefaultStuckAfter     = 2 * time.Minute
	DefaultSampleInterval = 15 * time.Second
	DefaultPublishBatch   = "auto"
	DefaultPaymentGateway = "sandbox"
	DefaultLogLevel       = "info"

	// Lambda-only defaults.
	DefaultLambdaConcurrency = 10
	DefaultDeadlineMargin    = 3 * time.Second
	DefaultLambdaLinger      = 5 * time.Millisecond
)

// Var is one environment variable a component reads: its name, its
// default as written in the README ("" for none) and what it means.
type Var struct{ Name, Default, Meaning string }

// sharedProblems checks the settings the worker and the Lambda function
// share: the resource prefix, SNS PublishBatch and the log level.
func sharedProblems(prefix, publishBatch, logLevel string) []error {
	var errs []error
	if !ValidPrefix(prefix) {
		errs = append(errs, fmt.Errorf("CLOUDCOMMERCE_PREFIX=%q: want 1-40 letters, digits, - or _", prefix))
	}
	if publishBatch != "auto" && publishBatch != "off" {
		errs = append(errs, fmt.Errorf("CLOUDCOMMERCE_SNS_PUBLISH_BATCH=%q: want auto or off", publishBatch))
	}
	switch logLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("CLOUDCOMMERCE_LOG_LEVEL=%q: want debug, info, warn or error", logLevel))
	}
	return errs
}
