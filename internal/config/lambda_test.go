package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/cloudcommerce/cloudcommerce/internal/config"
	"github.com/cloudcommerce/cloudcommerce/internal/stripe"
)

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func TestFromEnvDefaults(t *testing.T) {
	t.Parallel()
	c, err := config.LambdaFromEnv(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Prefix != "cloudcommerce" || c.Stage != "" || c.Concurrency != 10 || c.HandlerTimeout != 20*time.Second ||
		c.DeadlineMargin != 3*time.Second || c.PaymentGateway != "sandbox" || !c.BatchingOn() {
		t.Errorf("defaults: %+v", c)
	}
}

func TestFromEnvReportsEveryProblem(t *testing.T) {
	t.Parallel()
	_, err := config.LambdaFromEnv(env(map[string]string{
		"CLOUDCOMMERCE_PREFIX":             "bad prefix!",
		"CLOUDCOMMERCE_STAGE":              "billing",
		"CLOUDCOMMERCE_LAMBDA_CONCURRENCY": "0",
		"CLOUDCOMMERCE_HANDLER_TIMEOUT":    "soon",
		"CLOUDCOMMERCE_PAYMENT_GATEWAY":    "stripe",
		"CLOUDCOMMERCE_LOG_LEVEL":          "loud",
	}))
	if err == nil {
		t.Fatal("FromEnv accepted it")
	}
	for _, want := range []string{"CLOUDCOMMERCE_PREFIX", "CLOUDCOMMERCE_STAGE=\"billing\"", "CLOUDCOMMERCE_LAMBDA_CONCURRENCY", "CLOUDCOMMERCE_HANDLER_TIMEOUT",
		"needs CLOUDCOMMERCE_STRIPE_SECRET_ARN", "CLOUDCOMMERCE_LOG_LEVEL"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s:\n%v", want, err)
		}
	}
}

func TestFromEnvStripeKey(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		vars map[string]string
		want string // "" means valid
	}{
		{"key", map[string]string{stripe.EnvSecretKey: "sk_test_abc"}, ""},
		{"secret ARN", map[string]string{"CLOUDCOMMERCE_STRIPE_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:stripe-AbCdEf"}, ""},
		{"both", map[string]string{stripe.EnvSecretKey: "sk_test_abc", "CLOUDCOMMERCE_STRIPE_SECRET_ARN": "arn:aws:secretsmanager:x"}, "only one"},
		{"publishable key", map[string]string{stripe.EnvSecretKey: "pk_test_abc"}, "publishable"},
		{"secret name instead of ARN", map[string]string{"CLOUDCOMMERCE_STRIPE_SECRET_ARN": "stripe"}, "want the secret's ARN"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.vars["CLOUDCOMMERCE_PAYMENT_GATEWAY"] = "stripe"
			_, err := config.LambdaFromEnv(env(c.vars))
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("FromEnv: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("got %v, want an error saying %q", err, c.want)
			case err != nil && strings.Contains(err.Error(), "abc"):
				t.Errorf("error %q repeats the key", err)
			}
		})
	}
}

func TestEnvListsEveryVariableRead(t *testing.T) {
	t.Parallel()
	listed := map[string]bool{}
	for _, e := range config.LambdaEnv {
		listed[e.Name] = true
	}
	_, _ = config.LambdaFromEnv(func(k string) string {
		if !listed[k] {
			t.Errorf("FromEnv reads %s, which config.LambdaEnv does not document", k)
		}
		return ""
	})
}
