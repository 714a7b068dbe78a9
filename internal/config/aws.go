package config

import (
	"strings"

	"github.com/cloudcommerce/cloudcommerce/internal/awsconf"
)

// AWS reads the SDK connection facts from the standard variables:
// AWS_REGION (then AWS_DEFAULT_REGION, then us-east-1) and
// AWS_ENDPOINT_URL. When an endpoint is named (an emulator or LocalStack)
// and neither AWS_ACCESS_KEY_ID nor AWS_PROFILE is set, the clients use
// static dummy credentials, as those endpoints expect. Everything else
// (credentials, AWS_MAX_ATTEMPTS) the SDK reads itself.
//
// For the tests' IAM check: when awsconf.RecordCallsEnv names a file, every
// client records its calls there, with the Lambda function's
// CLOUDCOMMERCE_STAGE.
func AWS(getenv func(string) string) awsconf.Options {
	region := getenv("AWS_REGION")
	if region == "" {
		region = getenv("AWS_DEFAULT_REGION")
	}
	if region == "" {
		region = "us-east-1"
	}
	endpoint := getenv("AWS_ENDPOINT_URL")
	return awsconf.Options{
		Region:            region,
		Endpoint:          endpoint,
		StaticCredentials: endpoint != "" && getenv("AWS_ACCESS_KEY_ID") == "" && getenv("AWS_PROFILE") == "",
		RecordTo:          getenv(awsconf.RecordCallsEnv),
		RecordWrites:      getenv(awsconf.RecordWritesEnv) != "",
		RecordStage:       strings.TrimSpace(getenv("CLOUDCOMMERCE_STAGE")),
	}
}

// OpsAddr is the worker's ops address (CLOUDCOMMERCE_OPS_ADDR, default
// ":9090"), read alone so that the health check does not depend on the
// rest of the configuration being valid.
func OpsAddr(getenv func(string) string) string {
	if a := getenv("CLOUDCOMMERCE_OPS_ADDR"); a != "" {
		return a
	}
	return DefaultOpsAddr
}
