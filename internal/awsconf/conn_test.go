package awsconf_test

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/cloudcommerce/cloudcommerce/internal/awsconf"
	"github.com/cloudcommerce/cloudcommerce/internal/metrics"
)

const testQueueURL = "http://localhost:4566/000000000000/conn-test"

// receiveServer is a local endpoint that answers every ReceiveMessage at
// once with ten orders (about 12 KB, more than the client's 4 KB read
// buffer, so a connection closed under it fails the read). It counts the
// connections it accepts and the requests whose body did not arrive whole.
type receiveServer struct {
	*httptest.Server
	accepted   atomic.Int64
	closed     atomic.Int64
	badBodies  atomic.Int64
	requests   atomic.Int64
	failFirstN int64 // answer this many requests with a 500 first
}

func newReceiveServer(t *testing.T, failFirst int64) *receiveServer {
	t.Helper()
	sum := md5.Sum([]byte(orderDoc))
	msgs := make([]string, 10)
	for i := range msgs {
		msgs[i] = fmt.Sprintf(`{"MessageId":"m%d","ReceiptHandle":"r%d","MD5OfBody":"%s","Body":%q,"Attributes":{"ApproximateReceiveCount":"1"}}`,
			i, i, hex.EncodeToString(sum[:]), orderDoc)
	}
	receive := []byte(`{"Messages":[` + strings.Join(msgs, ",") + `]}`)
	s := &receiveServer{failFirstN: failFirst}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var in struct{ QueueUrl string }
		body, err := io.ReadAll(r.Body)
		if err != nil || int64(len(body)) != r.ContentLength || json.Unmarshal(body, &in) != nil || in.QueueUrl != testQueueURL {
			s.badBodies.Add(1)
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		if s.requests.Add(1) <= s.failFirstN {
			w.Header().Set("X-Amzn-Query-Error", "InternalError;Receiver")
			w.WriteHeader(http.StatusInternalServerError)
			w.Write([]byte(`{"__type":"com.amazon.coral.service#InternalError","message":"try again"}`))
			return
		}
		w.Write(receive)
	}))
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			s.accepted.Add(1)
		case http.StateClosed:
			s.closed.Add(1)
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	return s
}

// TestConnectionsSurviveFastAnswers is the regression test of receives cut
// by our own client: many concurrent receives with multi-kilobyte answers
// from an endpoint that answers at once. Without awsconf's request-body
// wrapper, net/http's write loop sees io.EOF from smithy-go's closed body
// and closes connections under responses being read: reads fail (and are
// retried) and new connections are opened again and again. With it, every
// call succeeds on its first attempt and no connection is closed while the
// calls run: each is opened once and reused (the idle pool, 64 per host by
// default, holds more than the callers can use at once).
func TestConnectionsSurviveFastAnswers(t *testing.T) {
	t.Parallel()
	srv := newReceiveServer(t, 0)
	m := metrics.New()
	cfg, err := awsconf.Load(context.Background(), awsconf.Options{Endpoint: srv.URL, Region: "us-east-1", StaticCredentials: true,
		Requests: m.AWSRequests, Connections: m.AWSConnections})
	if err != nil {
		t.Fatal(err)
	}
	q := sqs.NewFromConfig(cfg)
	const callers, calls = 8, 300
	var failed atomic.Int64
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			for range calls {
				out, err := q.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: aws.String(testQueueURL), MaxNumberOfMessages: 10})
				if err != nil || len(out.Messages) != 10 {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()

	attempts := testutil.ToFloat64(m.AWSRequests.WithLabelValues("SQS", "ReceiveMessage", "ok"))
	cut := testutil.ToFloat64(m.AWSRequests.WithLabelValues("SQS", "ReceiveMessage", "network"))
	opened, closed := srv.accepted.Load(), srv.closed.Load()
	t.Logf("%d calls: %.0f attempts ok, %.0f failed reads, %d connections opened (%.4f per call), %d closed during the run",
		callers*calls, attempts, cut, opened, float64(opened)/(callers*calls), closed)
	if failed.Load() != 0 {
		t.Errorf("%d of %d receives failed", failed.Load(), callers*calls)
	}
	if attempts != callers*calls {
		t.Errorf("%.0f successful attempts, want exactly one per call (%d): the retryer hid failed attempts", attempts, callers*calls)
	}
	if cut != 0 {
		t.Errorf("%.0f attempts failed with a network error (responses cut by the client)", cut)
	}
	if closed != 0 {
		t.Errorf("%d of %d connections were closed while %d callers made calls: connections were not reused", closed, opened, callers)
	}
	if bad := srv.badBodies.Load(); bad != 0 {
		t.Errorf("%d requests arrived with an incomplete body", bad)
	}
	if got := testutil.ToFloat64(m.AWSConnections.WithLabelValues("SQS")); got != float64(opened) {
		t.Errorf("connections_opened_total{service=\"SQS\"} = %.0f, the server accepted %d", got, opened)
	}
}

// TestRetryResendsWrappedBody checks that a retried attempt sends the
// whole request body again: the wrapper keeps the body seekable, so the
// SDK rewinds it.
func TestRetryResendsWrappedBody(t *testing.T) {
	t.Parallel()
	srv := newReceiveServer(t, 2)
	m := metrics.New()
	cfg, err := awsconf.Load(context.Background(), awsconf.Options{Endpoint: srv.URL, Region: "us-east-1", StaticCredentials: true, Requests: m.AWSRequests})
	if err != nil {
		t.Fatal(err)
	}
	out, err := sqs.NewFromConfig(cfg).ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: aws.String(testQueueURL), MaxNumberOfMessages: 10})
	if err != nil {
		t.Fatalf("receive after two 500s: %v", err)
	}
	if len(out.Messages) != 10 {
		t.Errorf("got %d messages, want 10", len(out.Messages))
	}
	if got := testutil.ToFloat64(m.AWSRequests.WithLabelValues("SQS", "ReceiveMessage", "InternalError")); got != 2 {
		t.Errorf("%.0f attempts answered InternalError, want 2", got)
	}
	if bad := srv.badBodies.Load(); bad != 0 {
		t.Errorf("%d attempts arrived with an incomplete body", bad)
	}
}

// TestSDKLogsGoThroughZap checks that the SDK's own lines reach the
// logger given in Options (as structured entries with a level), here the
// debug lines the SDK writes for every attempt when asked to log retries.
func TestSDKLogsGoThroughZap(t *testing.T) {
	t.Parallel()
	srv := newReceiveServer(t, 1)
	core, logs := observer.New(zapcore.DebugLevel)
	cfg, err := awsconf.Load(context.Background(), awsconf.Options{Endpoint: srv.URL, Region: "us-east-1", StaticCredentials: true, Logger: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	cfg.ClientLogMode = aws.LogRetries
	if _, err := sqs.NewFromConfig(cfg).ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: aws.String(testQueueURL)}); err != nil {
		t.Fatal(err)
	}
	entries := logs.FilterMessage("aws sdk").FilterLoggerName("aws").All()
	if len(entries) == 0 {
		t.Fatalf("no SDK line reached the zap logger; got %v", logs.All())
	}
	for _, e := range entries {
		if e.Level != zapcore.DebugLevel {
			t.Errorf("retry line at %s, want debug: %v", e.Level, e.ContextMap())
		}
		if s, _ := e.ContextMap()["sdk_message"].(string); !strings.Contains(s, "retry") {
			t.Errorf("sdk_message %q does not say what the SDK logged", s)
		}
	}
}
