package awsconf

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cloudcommerce/cloudcommerce/internal/metrics"
)

// DefaultIdleConnsPerHost is the idle connections a client keeps per host
// when Options.IdleConnsPerHost is zero: enough for the worker's default
// concurrency (3 stages × 16 handlers, their pollers and batchers), where
// the SDK's own default (10) closes a connection after nearly every call of
// a burst above ten.
const DefaultIdleConnsPerHost = 64

// httpClient is the SDK's own buildable client (its dialer, TLS and timeout
// defaults; it stays a *BuildableClient, so a service client can still
// apply its defaults-mode and read-timeout settings to a copy) with the
// idle pool sized to perHost.
func httpClient(perHost int) *awshttp.BuildableClient {
	if perHost <= 0 {
		perHost = DefaultIdleConnsPerHost
	}
	return awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
		t.MaxIdleConnsPerHost = perHost
		t.MaxIdleConns = max(t.MaxIdleConns, perHost)
	})
}

// sendBody adds the middleware that hands every request body to net/http
// without an io.WriterTo, and (when opened is set) counts the connections
// the transport opens, by service.
//
// With an io.WriterTo body, net/http's check for left-over bytes can meet
// smithy-go's already-closed body, take its io.EOF for a failed write and
// close the connection under a response still being read (a ReceiveMessage
// of ten orders then fails and waits out its visibility timeout). The
// mechanism, and the report for smithy-go: docs/upstream-smithy-writeto.md.
//
// It sits last in the deserialize step, right before the client handler
// builds the net/http request, so no other middleware replaces the stream
// after it; SetStream returns a copy, so a retried attempt starts again
// from the original stream. It is a middleware rather than a wrapper of
// the HTTP client because a wrapper would no longer be an
// *awshttp.BuildableClient, and the service clients apply their own HTTP
// settings (defaults-mode and read timeouts) only to one of those.
func sendBody(opened *prometheus.CounterVec, label string) func(*middleware.Stack) error {
	var counters *metrics.Children[string, prometheus.Counter] // looked up once per service, not per request
	if opened != nil {
		counters = metrics.NewChildren(func(svc string) prometheus.Counter { return opened.WithLabelValues(svc) })
	}
	return func(s *middleware.Stack) error {
		return s.Deserialize.Add(middleware.DeserializeMiddlewareFunc("cloudcommerceSendBody",
			func(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (middleware.DeserializeOutput, middleware.Metadata, error) {
				if req, ok := in.Request.(*smithyhttp.Request); ok {
					if rs, ok := req.GetStream().(io.ReadSeeker); ok {
						if _, hasWriteTo := rs.(io.WriterTo); hasWriteTo {
							r, err := req.SetStream(readSeeker{rs})
							if err != nil {
								return middleware.DeserializeOutput{}, middleware.Metadata{}, fmt.Errorf("wrap request body: %w", err)
							}
							in.Request = r
						}
					}
				}
				if opened != nil {
					svc := label
					if svc == "" {
						svc = awsmiddleware.GetServiceID(ctx)
					}
					c := counters.Get(svc)
					// A dial made for this request reports here even when
					// another request ends up using the connection (GotConn
					// would call that one "reused"), so every connection
					// opened is counted once.
					ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{ConnectDone: func(_, _ string, err error) {
						if err == nil {
							c.Inc()
						}
					}})
				}
				return next.HandleDeserialize(ctx, in)
			}), middleware.After)
	}
}

// readSeeker exposes only Read and Seek of a request body (see sendBody).
type readSeeker struct{ r io.ReadSeeker }

func (b readSeeker) Read(p []byte) (int, error) { return b.r.Read(p) }

func (b readSeeker) Seek(offset int64, whence int) (int64, error) { return b.r.Seek(offset, whence) }
