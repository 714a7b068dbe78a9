package config_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cloudcommerce/cloudcommerce/internal/config"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
)

func envOf(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	c, err := config.WorkerFromEnv(envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Prefix != "cloudcommerce" || c.OpsAddr != ":9090" || c.ShutdownTimeout != 25*time.Second || c.Concurrency[pipeline.StagePayment] != 16 || !c.BatchingOn() {
		t.Fatalf("defaults = %+v", c)
	}
}

// A queue consumer built without the worker's configuration takes the
// values the worker would give it: the visibility each receive asks for is
// the worker's receive visibility, not the queue's own timeout.
func TestConsumerDefaultsAreTheWorkers(t *testing.T) {
	t.Parallel()
	c, err := config.WorkerFromEnv(envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	if config.DefaultVisibility != c.ReceiveVisibility {
		t.Errorf("DefaultVisibility = %s; the worker asks for %s on each receive", config.DefaultVisibility, c.ReceiveVisibility)
	}
	if config.DefaultWaitTime != c.WaitTime || config.DefaultPollers != c.Pollers || config.DefaultHandlerTimeout != c.HandlerTimeout ||
		config.DefaultRetryBase != c.RetryBase || config.DefaultConcurrency != c.Concurrency[pipeline.StageInventory] {
		t.Errorf("consumer defaults differ from the worker's: %+v", c)
	}
}

func TestConfigReadsEveryVariable(t *testing.T) {
	t.Parallel()
	c, err := config.WorkerFromEnv(envOf(map[string]string{
		"CLOUDCOMMERCE_PREFIX": "shop", "CLOUDCOMMERCE_PAYMENT_CONCURRENCY": "4", "CLOUDCOMMERCE_WAIT_TIME": "5s",
		"CLOUDCOMMERCE_BATCHING": "false", "CLOUDCOMMERCE_SWEEP_INTERVAL": "off", "CLOUDCOMMERCE_INTAKE_ADDR": "127.0.0.1:8080",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Prefix != "shop" || c.Concurrency[pipeline.StagePayment] != 4 || c.Concurrency[pipeline.StageShipping] != 16 || c.WaitTime != 5*time.Second || c.BatchingOn() || c.SweepInterval >= 0 {
		t.Fatalf("config = %+v", c)
	}
}

func TestEveryProblemIsReportedAtOnce(t *testing.T) {
	t.Parallel()
	_, err := config.WorkerFromEnv(envOf(map[string]string{
		"CLOUDCOMMERCE_WAIT_TIME": "45s", "CLOUDCOMMERCE_INVENTORY_CONCURRENCY": "zero", "CLOUDCOMMERCE_BATCHING": "maybe",
		"CLOUDCOMMERCE_HANDLER_TIMEOUT": "1m", "CLOUDCOMMERCE_PREFIX": "bad prefix!", "CLOUDCOMMERCE_LOG_LEVEL": "loud",
		"CLOUDCOMMERCE_PAYMENT_GATEWAY": "stripe",
	}))
	if err == nil {
		t.Fatal("bad configuration accepted")
	}
	for _, name := range []string{"CLOUDCOMMERCE_WAIT_TIME", "CLOUDCOMMERCE_INVENTORY_CONCURRENCY", "CLOUDCOMMERCE_BATCHING",
		"CLOUDCOMMERCE_HANDLER_TIMEOUT", "CLOUDCOMMERCE_PREFIX", "CLOUDCOMMERCE_LOG_LEVEL", "CLOUDCOMMERCE_STRIPE_SECRET_KEY"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error does not name %s:\n%v", name, err)
		}
	}
}

// docs/configuration.md is what the declarations generate: a variable
// added, renamed or re-documented without go generate fails here.
func TestConfigurationDocIsGenerated(t *testing.T) {
	t.Parallel()
	committed, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	if string(committed) != config.Markdown() {
		t.Fatal("docs/configuration.md differs from the declarations in internal/config: run go generate ./internal/config and commit the result")
	}
	for _, v := range config.WorkerEnv {
		if !strings.Contains(string(committed), "| `"+v.Name+"` |") {
			t.Errorf("docs/configuration.md has no row for %s", v.Name)
		}
	}
}

func TestReceiveVisibility(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		env  map[string]string
		want time.Duration
	}{
		{nil, 10 * time.Second},
		{map[string]string{"CLOUDCOMMERCE_VISIBILITY_TIMEOUT": "45s"}, 10 * time.Second},
		{map[string]string{"CLOUDCOMMERCE_VISIBILITY_TIMEOUT": "4s"}, 4 * time.Second},
		{map[string]string{"CLOUDCOMMERCE_VISIBILITY_TIMEOUT": "45s", "CLOUDCOMMERCE_RECEIVE_VISIBILITY": "5s"}, 5 * time.Second},
	} {
		c, err := config.WorkerFromEnv(envOf(tc.env))
		if err != nil {
			t.Fatal(err)
		}
		if c.ReceiveVisibility != tc.want {
			t.Errorf("%v: ReceiveVisibility = %s, want %s", tc.env, c.ReceiveVisibility, tc.want)
		}
	}
	_, err := config.WorkerFromEnv(envOf(map[string]string{"CLOUDCOMMERCE_RECEIVE_VISIBILITY": "1s"}))
	if err == nil || !strings.Contains(err.Error(), "CLOUDCOMMERCE_RECEIVE_VISIBILITY") {
		t.Errorf("a 1s receive visibility: err = %v, want one naming CLOUDCOMMERCE_RECEIVE_VISIBILITY", err)
	}
}

func TestAWSCallsCountsEveryCaller(t *testing.T) {
	t.Parallel()
	c, err := config.WorkerFromEnv(envOf(map[string]string{"CLOUDCOMMERCE_PAYMENT_CONCURRENCY": "4", "CLOUDCOMMERCE_POLLERS": "2"}))
	if err != nil {
		t.Fatal(err)
	}
	// 16 + 4 + 16 handlers, 3 × 2 pollers, 3 × 2 stage batchers, 4 others.
	if got, want := c.AWSCalls(), 36+6+6+4; got != want {
		t.Errorf("AWSCalls() = %d, want %d", got, want)
	}
}
