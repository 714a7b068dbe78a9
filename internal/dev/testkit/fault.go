package testkit

import (
	"context"
	"os"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/cloudcommerce/cloudcommerce/internal/awsconf"
	"github.com/cloudcommerce/cloudcommerce/internal/dev/awsfault"
)

// FaultEndpoint starts a fault endpoint in front of the endpoint in
// AWS_ENDPOINT_URL (the emulator the test binary hosts), closed when the
// test ends, and returns it with an AWS configuration whose requests go
// through it.
func FaultEndpoint(t testing.TB) (*awsfault.Proxy, aws.Config) {
	t.Helper()
	p, err := awsfault.New(os.Getenv("AWS_ENDPOINT_URL"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	cfg, err := awsconf.Load(context.Background(), awsconf.Options{Endpoint: p.URL})
	if err != nil {
		t.Fatal(err)
	}
	return p, cfg
}
