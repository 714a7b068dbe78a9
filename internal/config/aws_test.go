package config_test

import (
	"testing"

	"github.com/cloudcommerce/cloudcommerce/internal/config"
)

func TestAWSReadsTheStandardVariables(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name   string
		vars   map[string]string
		region string
		static bool
	}{
		{"nothing set: real AWS in us-east-1, the SDK's own credentials", nil, "us-east-1", false},
		{"AWS_DEFAULT_REGION when AWS_REGION is unset", map[string]string{"AWS_DEFAULT_REGION": "eu-west-1"}, "eu-west-1", false},
		{"AWS_REGION wins", map[string]string{"AWS_REGION": "eu-central-1", "AWS_DEFAULT_REGION": "eu-west-1"}, "eu-central-1", false},
		{"an emulator without credentials gets dummy ones", map[string]string{"AWS_ENDPOINT_URL": "http://127.0.0.1:4566"}, "us-east-1", true},
		{"an endpoint with keys keeps them", map[string]string{"AWS_ENDPOINT_URL": "http://ls:4566", "AWS_ACCESS_KEY_ID": "AKIA"}, "us-east-1", false},
		{"an endpoint with a profile keeps it", map[string]string{"AWS_ENDPOINT_URL": "http://ls:4566", "AWS_PROFILE": "dev"}, "us-east-1", false},
	} {
		o := config.AWS(env(c.vars))
		if o.Region != c.region || o.Endpoint != c.vars["AWS_ENDPOINT_URL"] || o.StaticCredentials != c.static {
			t.Errorf("%s: got region %q endpoint %q static %v, want %q %q %v", c.name, o.Region, o.Endpoint, o.StaticCredentials, c.region, c.vars["AWS_ENDPOINT_URL"], c.static)
		}
	}
}

func TestOpsAddrDefault(t *testing.T) {
	t.Parallel()
	if got := config.OpsAddr(env(nil)); got != ":9090" {
		t.Errorf("default ops address %q, want :9090", got)
	}
	if got := config.OpsAddr(env(map[string]string{"CLOUDCOMMERCE_OPS_ADDR": "127.0.0.1:9191"})); got != "127.0.0.1:9191" {
		t.Errorf("ops address %q, want 127.0.0.1:9191", got)
	}
}

// The recording variable and the Lambda's stage reach every client's
// recorder through the options; unset, nothing is recorded.
func TestAWSPassesTheCallRecording(t *testing.T) {
	t.Parallel()
	if o := config.AWS(env(nil)); o.RecordTo != "" || o.RecordStage != "" {
		t.Errorf("nothing set: record to %q as stage %q, want nothing recorded", o.RecordTo, o.RecordStage)
	}
	o := config.AWS(env(map[string]string{"CLOUDCOMMERCE_TEST_RECORD_CALLS": "/tmp/calls.jsonl", "CLOUDCOMMERCE_STAGE": "payment"}))
	if o.RecordTo != "/tmp/calls.jsonl" || o.RecordStage != "payment" {
		t.Errorf("record to %q as stage %q, want /tmp/calls.jsonl as payment", o.RecordTo, o.RecordStage)
	}
}
