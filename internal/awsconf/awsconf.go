// Package awsconf builds the AWS SDK configuration every component shares:
// region and endpoint from the SDK's standard environment (AWS_REGION,
// AWS_ENDPOINT_URL), the SDK's own retryer (never a second one stacked on
// it), the SDK's HTTP client with an idle pool sized to the caller's
// concurrency and request bodies handed over so that connections survive
// fast answers (see sendBody), the SDK's log lines through the caller's
// zap logger, a middleware that counts every request attempt by service,
// operation and outcome, and (Traced) one that makes a client span of every
// call made within a traced context.
package awsconf

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	oteltrace "go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/cloudcommerce/cloudcommerce/internal/logging"
	"github.com/cloudcommerce/cloudcommerce/internal/trace"
)

// Options adjust Load.
type Options struct {
	// Endpoint overrides AWS_ENDPOINT_URL (used by the embedded emulator).
	Endpoint string
	// Region overrides AWS_REGION; if both are empty, us-east-1.
	Region string
	// Requests, if set, counts every attempt by service, operation, outcome.
	Requests *prometheus.CounterVec
	// ServiceLabel, if set, replaces the service label of counted requests
	// (the sandbox payment ledger counts as "sandbox-ledger", standing for
	// an external provider, not as the pipeline's DynamoDB).
	ServiceLabel string
	// Connections, if set, counts the connections the HTTP transport
	// opens, by service (ServiceLabel applies): with connections reused it
	// grows with the concurrency, not with the requests.
	Connections *prometheus.CounterVec
	// IdleConnsPerHost is how many idle connections are kept per host:
	// the most calls the caller makes at once (for the worker: handlers +
	// pollers + batchers). The service clients made from one
	// configuration share one pool (in the SDK's default "legacy" defaults
	// mode; another mode gives each client a copy). Zero means
	// DefaultIdleConnsPerHost.
	IdleConnsPerHost int
	// Logger, if set, receives the SDK's own log lines (at warn or debug)
	// instead of the SDK's default, a plain line on stderr.
	Logger *zap.Logger
}

// Load returns the shared SDK configuration. When an endpoint is configured
// (an emulator or LocalStack) and no credentials are in the environment, it
// uses static dummy credentials, as those endpoints expect.
func Load(ctx context.Context, o Options) (aws.Config, error) {
	var opts []func(*config.LoadOptions) error
	region := o.Region
	if region == "" {
		region = os.Getenv("AWS_REGION")
	}
	if region == "" {
		region = os.Getenv("AWS_DEFAULT_REGION")
	}
	if region == "" {
		region = "us-east-1"
	}
	opts = append(opts, config.WithRegion(region))
	endpoint := o.Endpoint
	if endpoint != "" {
		opts = append(opts, config.WithBaseEndpoint(endpoint))
	} else {
		endpoint = os.Getenv("AWS_ENDPOINT_URL")
	}
	if endpoint != "" && os.Getenv("AWS_ACCESS_KEY_ID") == "" && os.Getenv("AWS_PROFILE") == "" {
		opts = append(opts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("test", "test", "")))
	}
	opts = append(opts, config.WithHTTPClient(httpClient(o.IdleConnsPerHost)))
	apiOptions := []func(*middleware.Stack) error{sendBody(o.Connections, o.ServiceLabel)}
	if o.Requests != nil {
		apiOptions = append(apiOptions, countRequests(o.Requests, o.ServiceLabel))
	}
	opts = append(opts, config.WithAPIOptions(apiOptions))
	if o.Logger != nil {
		opts = append(opts, config.WithLogger(logging.SDK(o.Logger)))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("load AWS configuration: %w", err)
	}
	return cfg, nil
}

// countRequests adds a deserialize-step middleware: it runs once per
// attempt (below the retryer), so retries are counted as the requests they
// are.
func countRequests(c *prometheus.CounterVec, label string) func(*middleware.Stack) error {
	return func(s *middleware.Stack) error {
		return s.Deserialize.Add(middleware.DeserializeMiddlewareFunc("cloudcommerceCountRequests",
			func(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (middleware.DeserializeOutput, middleware.Metadata, error) {
				out, md, err := next.HandleDeserialize(ctx, in)
				svc := label
				if svc == "" {
					svc = awsmiddleware.GetServiceID(ctx)
				}
				c.WithLabelValues(svc, awsmiddleware.GetOperationName(ctx), Outcome(err)).Inc()
				return out, md, err
			}), middleware.Before)
	}
}

// Outcome names an AWS call's outcome: "ok", the API error code, or
// "network" for transport failures.
func Outcome(err error) string {
	if err == nil {
		return "ok"
	}
	var api smithy.APIError
	if errors.As(err, &api) {
		return api.ErrorCode()
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return "canceled"
	}
	return "network"
}

// Traced returns a copy of cfg whose clients make a client span named
// "<Service>.<Operation>" (as otelaws does) for every AWS call made with a
// context that already holds a span: a stage handler's or the intake's. The
// span covers the whole call, retries included. Calls outside a trace
// (long polls, batched deletes and events flushed on their batcher's own
// context, the queue sampler) make no span, so idle polling does not flood
// the trace backend with one-span traces.
func Traced(cfg aws.Config, tp oteltrace.TracerProvider) aws.Config {
	if tp == nil {
		return cfg
	}
	tr := tp.Tracer(trace.InstrumentationName)
	cfg = cfg.Copy()
	cfg.APIOptions = append(append([]func(*middleware.Stack) error(nil), cfg.APIOptions...), func(s *middleware.Stack) error {
		// After the service metadata is registered (Initialize, Before),
		// above the retry loop (Finalize).
		return s.Initialize.Add(middleware.InitializeMiddlewareFunc("cloudcommerceTrace",
			func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				if !oteltrace.SpanContextFromContext(ctx).IsValid() {
					return next.HandleInitialize(ctx, in)
				}
				svc, op := awsmiddleware.GetServiceID(ctx), awsmiddleware.GetOperationName(ctx)
				ctx, span := tr.Start(ctx, svc+"."+op, oteltrace.WithSpanKind(oteltrace.SpanKindClient), oteltrace.WithAttributes(
					attribute.String("rpc.system", "aws-api"), attribute.String("rpc.service", svc), attribute.String("rpc.method", op),
					attribute.String("cloud.region", awsmiddleware.GetRegion(ctx))))
				defer span.End()
				out, md, err := next.HandleInitialize(ctx, in)
				if id, ok := awsmiddleware.GetRequestIDMetadata(md); ok {
					span.SetAttributes(attribute.String("aws.request_id", id))
				}
				if err != nil {
					span.RecordError(err)
					span.SetStatus(codes.Error, Outcome(err))
				}
				return out, md, err
			}), middleware.After)
	})
	return cfg
}

// DynamoDB returns a DynamoDB client for cfg. Against a custom endpoint
// (an emulator or LocalStack) the response CRC32 check is off: emulators do
// not all compute it, and a mismatch there only produces noise.
func DynamoDB(cfg aws.Config) *dynamodb.Client {
	return dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) {
		if o.BaseEndpoint != nil || os.Getenv("AWS_ENDPOINT_URL") != "" {
			o.DisableValidateResponseChecksum = true
		}
	})
}
