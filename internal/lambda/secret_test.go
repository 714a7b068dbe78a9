package lambda_test

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"go.uber.org/zap/zaptest"

	"github.com/cloudcommerce/cloudcommerce/internal/config"
	"github.com/cloudcommerce/cloudcommerce/internal/lambda"
	"github.com/cloudcommerce/cloudcommerce/internal/stripe"
)

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
		return lambda.New(context.Background(), config.Lambda{Prefix: f.prefix, TopicARN: f.prov.TopicARN, PaymentGateway: "stripe", StripeSecretARN: arn},
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
