// Package trace wires OpenTelemetry tracing through the order pipeline.
//
// A trace begins at intake: the HTTP server span (otelhttp) is the parent,
// and its W3C traceparent is written into the order (pipeline.Order.Trace),
// which the domain copies into every event it emits. Because the order
// snapshot is the detail of every EventBridge event, and the event is the
// SQS message body, the context rides through EventBridge and SQS without
// relying on message attributes (EventBridge → SQS delivery drops them).
// Handler wraps each stage handler (Middleware is the same as a delivery
// middleware): it reads detail.trace from the message's decoded event and
// runs the handler in a consumer span that is a child of the intake
// span, so one order is one connected trace across the three stages. AWS
// calls made with the handler's context become client spans under it (see
// awsconf.Traced).
//
// Tracing is off unless the standard OTEL_* environment asks for it (see
// FromEnv); when it is off nothing here costs more than a no-op.
package trace

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	oteltrace "go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// InstrumentationName names the tracer of every span CloudCommerce makes.
const InstrumentationName = "github.com/cloudcommerce/cloudcommerce"

// Propagator is the only propagation format used: W3C trace context. It is
// passed explicitly wherever it is needed; the OpenTelemetry globals are
// never set or read.
var Propagator propagation.TextMapPropagator = propagation.TraceContext{}

// Provider is a tracer provider with a way to flush and stop it.
type Provider struct {
	oteltrace.TracerProvider
	// Enabled is false when the environment turned tracing off.
	Enabled  bool
	shutdown func(context.Context) error
}

// Shutdown flushes spans still buffered and stops the exporter. Call it
// once, after the worker has drained, with a bounded context.
func (p *Provider) Shutdown(ctx context.Context) error {
	if p == nil || p.shutdown == nil {
		return nil
	}
	return p.shutdown(ctx)
}

// Disabled returns a provider that makes no spans.
func Disabled() *Provider {
	return &Provider{TracerProvider: noop.NewTracerProvider()}
}

// FromEnv builds the tracer provider the standard OpenTelemetry environment
// asks for, reading it through getenv:
//
//   - OTEL_SDK_DISABLED=true, or OTEL_TRACES_EXPORTER=none: off.
//   - OTEL_TRACES_EXPORTER unset: "otlp" when OTEL_EXPORTER_OTLP_ENDPOINT or
//     OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set, otherwise off (the default).
//   - otlp: OTLP over HTTP/protobuf; the exporter reads the other
//     OTEL_EXPORTER_OTLP_* variables (endpoint, headers, timeout,
//     compression, certificates) itself. OTEL_EXPORTER_OTLP_PROTOCOL=grpc
//     is rejected: this build carries the HTTP exporter only (port 4318).
//   - console: spans as JSON lines on stdout, for debugging.
//
// The SDK reads OTEL_TRACES_SAMPLER(_ARG) and OTEL_BSP_*; the resource reads
// OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES, with service.name
// defaulting to service.
func FromEnv(ctx context.Context, getenv func(string) string, service string) (*Provider, error) {
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		return Disabled(), nil
	}
	names := strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER"))
	if names == "" {
		if getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" && getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" {
			return Disabled(), nil
		}
		names = "otlp"
	}
	var opts []sdktrace.TracerProviderOption
	var errs []error
	for _, name := range strings.Split(names, ",") {
		switch name = strings.TrimSpace(strings.ToLower(name)); name {
		case "none":
			return Disabled(), nil
		case "otlp":
			proto := getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
			if proto == "" {
				proto = getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
			}
			if proto != "" && proto != "http/protobuf" {
				errs = append(errs, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL=%q: this worker exports OTLP over http/protobuf only (collector port 4318)", proto))
				continue
			}
			exp, err := otlptracehttp.New(ctx)
			if err != nil {
				errs = append(errs, fmt.Errorf("OTLP trace exporter: %w", err))
				continue
			}
			opts = append(opts, sdktrace.WithBatcher(exp))
		case "console":
			exp, err := stdouttrace.New(stdouttrace.WithWriter(io.Writer(os.Stdout)))
			if err != nil {
				errs = append(errs, fmt.Errorf("console trace exporter: %w", err))
				continue
			}
			opts = append(opts, sdktrace.WithBatcher(exp))
		default:
			errs = append(errs, fmt.Errorf("OTEL_TRACES_EXPORTER=%q: want otlp, console or none", name))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", service)),
		resource.WithFromEnv(), resource.WithTelemetrySDK())
	if err != nil {
		return nil, fmt.Errorf("trace resource: %w", err)
	}
	tp := sdktrace.NewTracerProvider(append(opts, sdktrace.WithResource(res))...)
	return &Provider{TracerProvider: tp, Enabled: true, shutdown: tp.Shutdown}, nil
}

// OrNoop returns tp, or a provider that makes no spans when tp is nil.
func OrNoop(tp oteltrace.TracerProvider) oteltrace.TracerProvider {
	if tp == nil {
		return noop.NewTracerProvider()
	}
	return tp
}

// Traceparent returns the W3C traceparent of the span in ctx, or "" when
// there is none.
func Traceparent(ctx context.Context) string {
	if !oteltrace.SpanContextFromContext(ctx).IsValid() {
		return ""
	}
	c := propagation.MapCarrier{}
	Propagator.Inject(ctx, c)
	return c.Get("traceparent")
}

// WithTraceparent returns ctx carrying the remote span context of a W3C
// traceparent; an empty or invalid one leaves ctx as it is.
func WithTraceparent(ctx context.Context, traceparent string) context.Context {
	if traceparent == "" {
		return ctx
	}
	return Propagator.Extract(ctx, propagation.MapCarrier{"traceparent": traceparent})
}
