// Package awsconf builds the AWS SDK configuration every component shares:
// region, endpoint and credentials as the caller's Options say (package
// config reads them from the SDK's standard variables), the SDK's own
// retryer (never a second one stacked on it), the SDK's HTTP client with an
// idle pool sized to the caller's concurrency and request bodies handed
// over so that connections survive fast answers (see sendBody), the SDK's
// log lines through the caller's zap logger, a middleware that counts
// every request attempt by service,
// operation and outcome, and (Traced) one that makes a client span of every
// call made within a traced context.
package awsconf

import (
	"context"
	"errors"
	"fmt"

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
	"github.com/cloudcommerce/cloudcommerce/internal/metrics"
	"github.com/cloudcommerce/cloudcommerce/internal/trace"
)

// Options adjust Load.
type Options struct {
	// Endpoint, when set, is every client's base endpoint (an emulator or
	// LocalStack). Empty leaves it to the SDK.
	Endpoint string
	// Region of every client. Empty leaves it to the SDK.
	Region string
	// StaticCredentials makes the clients sign with static dummy
	// credentials, as emulators and LocalStack expect.
	StaticCredentials bool
	// Requests, if set, counts every attempt by service, operation, outcome.
	Requests *prometheus.CounterVec
	// Contention, if set with Requests, also counts the attempts that lost
	// to contention (Contention) by service, operation and reason.
	Contention *prometheus.CounterVec
	// ServiceLabel, if set, replaces the service label of counted requests
	// (the sandbox payment ledger counts as "sandbox-ledger", standing for
	// an external provider, not as the pipeline's DynamoDB).
	ServiceLabel string
	// Record, if set, records every call.
	Record *Recorder
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
	// RecordTo, if set and Record is not, names the file to which every
	// call is recorded by the process's one recorder for that file (package
	// config sets it from RecordCallsEnv, so every client of a binary run
	// with the variable set records).
	RecordTo string
	// RecordWrites makes RecordTo's recorder also record each DynamoDB
	// write request (package config sets it from RecordWritesEnv).
	RecordWrites bool
	// RecordStage is recorded with every call of RecordTo's recorder:
	// CLOUDCOMMERCE_STAGE, which pins a Lambda function to its stage.
	RecordStage string
}

// Load returns the shared SDK configuration.
func Load(ctx context.Context, o Options) (aws.Config, error) {
	var opts []func(*config.LoadOptions) error
	if o.Region != "" {
		opts = append(opts, config.WithRegion(o.Region))
	}
	if o.Endpoint != "" {
		opts = append(opts, config.WithBaseEndpoint(o.Endpoint))
	}
	if o.StaticCredentials {
		opts = append(opts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("test", "test", "")))
	}
	opts = append(opts, config.WithHTTPClient(httpClient(o.IdleConnsPerHost)))
	apiOptions := []func(*middleware.Stack) error{sendBody(o.Connections, o.ServiceLabel)}
	if o.Requests != nil {
		apiOptions = append(apiOptions, countRequests(o.Requests, o.Contention, o.ServiceLabel))
	}
	rec := o.Record
	if rec == nil && o.RecordTo != "" {
		var err error
		if rec, err = processRecorder(o.RecordTo, o.RecordStage, o.RecordWrites); err != nil {
			return aws.Config{}, err
		}
	}
	if rec != nil {
		apiOptions = append(apiOptions, rec.middleware)
	}
	if o.Logger != nil {
		opts = append(opts, config.WithLogger(logging.SDK(o.Logger)))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("load AWS configuration: %w", err)
	}
	// Added to the loaded configuration, not through config.WithAPIOptions:
	// LoadDefaultConfig hands those to the clients of the credential
	// providers too (ECS container credentials, IMDS), whose requests run
	// inside the calling operation and would be counted and recorded a
	// second time under its name.
	cfg.APIOptions = append(cfg.APIOptions, apiOptions...)
	return cfg, nil
}

// countRequests adds a deserialize-step middleware: it runs once per
// attempt (below the retryer), so retries are counted as the requests they
// are.
func countRequests(c, contention *prometheus.CounterVec, label string) func(*middleware.Stack) error {
	// Every call is counted: its counter is looked up once per service,
	// operation and outcome, not hashed from the labels each time.
	type key struct{ svc, op, outcome string }
	counters := metrics.NewChildren(func(k key) prometheus.Counter { return c.WithLabelValues(k.svc, k.op, k.outcome) })
	var lost *metrics.Children[key, prometheus.Counter]
	if contention != nil {
		lost = metrics.NewChildren(func(k key) prometheus.Counter { return contention.WithLabelValues(k.svc, k.op, k.outcome) })
	}
	return func(s *middleware.Stack) error {
		return s.Deserialize.Add(middleware.DeserializeMiddlewareFunc("cloudcommerceCountRequests",
			func(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (middleware.DeserializeOutput, middleware.Metadata, error) {
				out, md, err := next.HandleDeserialize(ctx, in)
				svc := label
				if svc == "" {
					svc = awsmiddleware.GetServiceID(ctx)
				}
				k := key{svc, awsmiddleware.GetOperationName(ctx), Outcome(err)}
				counters.Get(k).Inc()
				if _, ok := Contention(err); ok && lost != nil {
					lost.Get(k).Inc()
				}
				return out, md, err
			}), middleware.Before)
	}
}

// Outcome names an AWS call's outcome: "ok", the contention reason
// (Contention), the API error code, or "network" for transport failures.
func Outcome(err error) string {
	if err == nil {
		return "ok"
	}
	if reason, ok := Contention(err); ok {
		return reason
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
		if o.BaseEndpoint != nil {
			o.DisableValidateResponseChecksum = true
		}
	})
}
