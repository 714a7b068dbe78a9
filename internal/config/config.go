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

// Settings that are not environment variables.
const (
	// DefaultMaxReceive is a stage queue's maxReceiveCount as provisioned.
	DefaultMaxReceive = 10
	// DefaultRetryMax caps the back-off of a transient failure.
	DefaultRetryMax = 5 * time.Minute
	// DefaultDeleteBatch is the most entries of one DeleteMessageBatch.
	DefaultDeleteBatch = 10
)

// The worker's declared defaults (Worker's tags), which the queue package
// takes for a consumer built without the worker's configuration, so that it
// behaves as the worker does: the consumer's visibility is what each
// receive asks for, which the worker sets from ReceiveVisibility (not the
// queue's own timeout, Visibility).
var (
	workerDefaults = WorkerDefaults()

	DefaultOpsAddr        = workerDefaults.OpsAddr
	DefaultConcurrency    = workerDefaults.InventoryConcurrency
	DefaultPollers        = workerDefaults.Pollers
	DefaultWaitTime       = workerDefaults.WaitTime
	DefaultVisibility     = workerDefaults.ReceiveVisibility
	DefaultHandlerTimeout = workerDefaults.HandlerTimeout
	DefaultRetryBase      = workerDefaults.RetryBase
	DefaultDeferBase      = workerDefaults.DeferBase
	DefaultReceiveLinger  = workerDefaults.ReceiveLinger
	DefaultDeleteLinger   = workerDefaults.DeleteLinger
)

// sharedProblems checks the settings the worker and the Lambda function
// share: the resource prefix, SNS PublishBatch, the log level and the
// order format.
func sharedProblems(prefix, publishBatch, logLevel, orderFormat string) []error {
	var errs []error
	if !ValidPrefix(prefix) {
		errs = append(errs, fmt.Errorf("CLOUDCOMMERCE_PREFIX=%q: want 1-40 letters, digits, - or _", prefix))
	}
	if publishBatch != "auto" && publishBatch != "off" {
		errs = append(errs, fmt.Errorf("CLOUDCOMMERCE_SNS_PUBLISH_BATCH=%q: want auto or off", publishBatch))
	}
	if orderFormat != "json" && orderFormat != "compact" {
		errs = append(errs, fmt.Errorf("CLOUDCOMMERCE_ORDER_FORMAT=%q: want json or compact", orderFormat))
	}
	switch logLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("CLOUDCOMMERCE_LOG_LEVEL=%q: want debug, info, warn or error", logLevel))
	}
	return errs
}

// ValidPrefix reports whether p is usable as the prefix of AWS resource
// names: 1-40 letters, digits, - or _.
func ValidPrefix(p string) bool {
	if p == "" || len(p) > 40 {
		return false
	}
	for _, c := range p {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
