package lambda_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"go.uber.org/zap/zaptest"

	"github.com/cloudcommerce/cloudcommerce/internal/lambda"
	"github.com/cloudcommerce/cloudcommerce/internal/stripe"
)

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func TestFromEnvDefaults(t *testing.T) {
	t.Parallel()
	c, err := lambda.FromEnv(env(nil))
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
	_, err := lambda.FromEnv(env(map[string]string{
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
			_, err := lambda.FromEnv(env(c.vars))
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
	for _, e := range lambda.Env {
		listed[e.Name] = true
	}
	_, _ = lambda.FromEnv(func(k string) string {
		if !listed[k] {
			t.Errorf("FromEnv reads %s, which lambda.Env does not document", k)
		}
		return ""
	})
}

func TestStripeKeyFromSecretsManager(t *testing.T) {
	t.Parallel()
	f := setup(t)
	sm := secretsmanager.NewFromConfig(f.aws)
	secret := func(name, value string) string {
		out, err := sm.CreateSecret(context.Background(), &secretsmanager.CreateSecretInput{Name: aws.String(f.prefix + "-" + name), SecretString: aws.String(value)})
		if err != nil {
			t.Fatal(err)
		}
		return aws.ToString(out.ARN)
	}
	build := func(arn string) (*lambda.Handler, error) {
		return lambda.New(context.Background(), lambda.Config{Prefix: f.prefix, TopicARN: f.prov.TopicARN, PaymentGateway: "stripe", StripeSecretARN: arn},
			lambda.Deps{AWS: f.aws, Log: zaptest.NewLogger(t)})
	}

	h, err := build(secret("stripe-good", "sk_test_51QfK8cLkdIwHu7ixFAKE"))
	if err != nil {
		t.Fatalf("New with the key in Secrets Manager: %v", err)
	}
	defer h.Close()
	if _, ok := h.Service().Payments.(*stripe.Gateway); !ok {
		t.Errorf("payments gateway is %T, want *stripe.Gateway", h.Service().Payments)
	}

	badARN := secret("stripe-bad", "pk_test_notasecretkey")
	if _, err := build(badARN); err == nil || !strings.Contains(err.Error(), badARN) || strings.Contains(err.Error(), "notasecretkey") {
		t.Errorf("a publishable key in the secret: got %v, want an error naming the secret but not its value", err)
	}
}
