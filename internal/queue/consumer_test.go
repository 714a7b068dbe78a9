package queue_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap/zaptest"

	"github.com/cloudcommerce/cloudcommerce/internal/awsconf"
	"github.com/cloudcommerce/cloudcommerce/internal/config"
	"github.com/cloudcommerce/cloudcommerce/internal/delivery"
	"github.com/cloudcommerce/cloudcommerce/internal/dev/awsfault"
	"github.com/cloudcommerce/cloudcommerce/internal/dev/emulator"
	"github.com/cloudcommerce/cloudcommerce/internal/dev/testkit"
	"github.com/cloudcommerce/cloudcommerce/internal/metrics"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
	"github.com/cloudcommerce/cloudcommerce/internal/queue"
)

func TestMain(m *testing.M) { emulator.RunTests(m) }

const stage = pipeline.StagePayment

// call is one run of a test handler.
type call struct {
	body     string
	receives int
	at       time.Time
}

// endpoint is a reverse proxy in front of the emulator through which the
// consumer talks: it keeps every SQS request body by operation, tells
// watchers when an operation has been answered, and can fail an entry of
// DeleteMessageBatch requests.
type endpoint struct {
	URL string

	mu       sync.Mutex
	requests map[string][]string // operation → request bodies as the emulator saw them, answered
	watchers map[string]chan string
	// fault, when set, fails one entry of DeleteMessageBatch requests
	// (see failEntry); failed is that entry's receipt, faulted how many
	// requests were answered so.
	fault   *deleteFault
	failed  string
	faulted int
}

func newEndpoint(t *testing.T) *endpoint {
	t.Helper()
	target, err := url.Parse(os.Getenv("AWS_ENDPOINT_URL"))
	if err != nil || target.Host == "" {
		t.Fatalf("emulator endpoint %q: %v", os.Getenv("AWS_ENDPOINT_URL"), err)
	}
	e := &endpoint{requests: map[string][]string{}, watchers: map[string]chan string{}}
	rp := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		_, op := awsfault.Operation(r, body)
		e.mu.Lock()
		fault := op == "DeleteMessageBatch" && e.fault != nil && e.faulted < e.fault.times &&
			(e.failed == "" || e.failed != "pending" && bytes.Contains(body, []byte(e.failed)))
		if fault {
			e.faulted++
			if e.failed == "" {
				e.failed = "pending"
			}
		}
		e.mu.Unlock()
		if fault {
			body = e.failEntry(t, w, r, target, body)
		} else {
			r.Body = io.NopCloser(bytes.NewReader(body))
			r.ContentLength = int64(len(body))
			rp.ServeHTTP(w, r)
		}
		e.mu.Lock()
		e.requests[op] = append(e.requests[op], string(body))
		ch := e.watchers[op]
		e.mu.Unlock()
		if ch != nil {
			select {
			case ch <- string(body):
			default:
			}
		}
	}))
	t.Cleanup(srv.Close)
	e.URL = srv.URL
	return e
}

// deleteFault is how DeleteMessageBatch entries fail: the first entry of
// the first request, and the same receipt in up to times-1 later ones.
type deleteFault struct {
	times       int
	code        string
	senderFault bool
}

// failEntry answers a DeleteMessageBatch as SQS does when one entry fails:
// the entry (the first one, or the receipt failed before) is not deleted (it
// is taken out of the request the emulator sees) and comes back under
// Failed with the fault's code; the others are deleted by the emulator. It
// returns the request body as the emulator saw it.
func (e *endpoint) failEntry(t *testing.T, w http.ResponseWriter, r *http.Request, target *url.URL, body []byte) []byte {
	var req struct {
		QueueURL string `json:"QueueUrl"`
		Entries  []struct {
			ID            string `json:"Id"`
			ReceiptHandle string `json:"ReceiptHandle"`
		} `json:"Entries"`
	}
	if err := json.Unmarshal(body, &req); err != nil || len(req.Entries) == 0 {
		t.Errorf("DeleteMessageBatch request %s: %v", body, err)
		http.Error(w, "bad request", http.StatusBadRequest)
		return body
	}
	e.mu.Lock()
	if e.failed == "pending" {
		e.failed = req.Entries[0].ReceiptHandle
	}
	victim, fault := req.Entries[0], *e.fault
	rest := req.Entries[1:]
	for i, en := range req.Entries {
		if en.ReceiptHandle == e.failed {
			victim = en
			rest = append(slices.Clone(req.Entries[:i]), req.Entries[i+1:]...)
		}
	}
	e.mu.Unlock()
	resp := map[string]any{"Successful": []any{}}
	forwarded := []byte(nil)
	if len(rest) > 0 {
		req.Entries = rest
		forwarded, _ = json.Marshal(req)
		fr, _ := http.NewRequestWithContext(r.Context(), http.MethodPost, target.String()+r.URL.Path, bytes.NewReader(forwarded))
		fr.Header = r.Header.Clone()
		fr.ContentLength = int64(len(forwarded))
		res, err := http.DefaultClient.Do(fr)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return forwarded
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		resp = map[string]any{}
		if res.StatusCode != http.StatusOK || json.Unmarshal(b, &resp) != nil {
			t.Errorf("emulator answered the rest of the batch with %d %s", res.StatusCode, b)
		}
	}
	failed, _ := resp["Failed"].([]any)
	resp["Failed"] = append(failed, map[string]any{"Id": victim.ID, "Code": fault.code, "Message": "entry failed", "SenderFault": fault.senderFault})
	out, _ := json.Marshal(resp)
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	w.Header().Set("Content-Length", strconv.Itoa(len(out)))
	_, _ = w.Write(out)
	return forwarded
}

// watch returns a channel that receives the body of each later answered
// request for op (the most recent ones, when the test falls behind).
func (e *endpoint) watch(op string) <-chan string {
	ch := make(chan string, 16)
	e.mu.Lock()
	e.watchers[op] = ch
	e.mu.Unlock()
	return ch
}

func (e *endpoint) bodies(op string) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.requests[op])
}

// harness is a stage queue with a DLQ (redrive policy, maxReceiveCount 5),
// a consumer of it reached through an endpoint, and a client of the
// emulator for the test's own looks at the queues.
type harness struct {
	t        *testing.T
	sqs      *sqs.Client // the test's, straight to the emulator
	url, dlq string
	ep       *endpoint
	m        *metrics.Metrics
	c        *queue.Consumer
	stop     context.CancelFunc
	done     chan struct{}
}

// start creates the queues (visibility timeout cfg.Visibility) and runs a
// consumer of h on them with cfg.
func start(t *testing.T, cfg queue.Config, h pipeline.Handler, setup ...func(*endpoint)) *harness {
	t.Helper()
	ctx := context.Background()
	awsCfg, err := awsconf.Load(ctx, config.AWS(os.Getenv))
	if err != nil {
		t.Fatal(err)
	}
	x := &harness{t: t, sqs: sqs.NewFromConfig(awsCfg), ep: newEndpoint(t), m: metrics.New(), done: make(chan struct{})}
	for _, f := range setup {
		f(x.ep)
	}
	name := testkit.Prefix()
	dlq, err := x.sqs.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name + "-dlq")})
	if err != nil {
		t.Fatal(err)
	}
	x.dlq = aws.ToString(dlq.QueueUrl)
	arn, err := x.sqs.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: dlq.QueueUrl, AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameQueueArn}})
	if err != nil {
		t.Fatal(err)
	}
	redrive, _ := json.Marshal(map[string]any{"deadLetterTargetArn": arn.Attributes[string(types.QueueAttributeNameQueueArn)], "maxReceiveCount": 5})
	q, err := x.sqs.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name), Attributes: map[string]string{
		string(types.QueueAttributeNameVisibilityTimeout): strconv.Itoa(int(cfg.Visibility / time.Second)),
		string(types.QueueAttributeNameRedrivePolicy):     string(redrive),
	}})
	if err != nil {
		t.Fatal(err)
	}
	x.url = aws.ToString(q.QueueUrl)

	cfg.Stage, cfg.QueueURL, cfg.DLQURL = stage, x.url, x.dlq
	client := sqs.NewFromConfig(awsCfg, func(o *sqs.Options) { o.BaseEndpoint = aws.String(x.ep.URL) })
	x.c = queue.New(client, cfg, h, zaptest.NewLogger(t), x.m)
	recv, stop := context.WithCancel(ctx)
	x.stop = stop
	go func() {
		defer close(x.done)
		x.c.Run(recv, context.Background())
	}()
	t.Cleanup(x.shutdown)
	return x
}

// shutdown stops receiving and waits for Run to return: every handler has
// returned and every delete has been sent by then.
func (x *harness) shutdown() {
	x.stop()
	select {
	case <-x.done:
	case <-time.After(30 * time.Second):
		x.t.Fatal("the consumer did not stop within 30s of the end of receiving")
	}
}

func (x *harness) send(body string) {
	x.t.Helper()
	if _, err := x.sqs.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: &x.url, MessageBody: &body}); err != nil {
		x.t.Fatal(err)
	}
}

// counts returns the queue's ApproximateNumberOfMessages and
// ApproximateNumberOfMessagesNotVisible.
func (x *harness) counts(url string) (visible, notVisible int) {
	x.t.Helper()
	out, err := x.sqs.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{QueueUrl: &url,
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameApproximateNumberOfMessages, types.QueueAttributeNameApproximateNumberOfMessagesNotVisible}})
	if err != nil {
		x.t.Fatal(err)
	}
	visible, _ = strconv.Atoi(out.Attributes[string(types.QueueAttributeNameApproximateNumberOfMessages)])
	notVisible, _ = strconv.Atoi(out.Attributes[string(types.QueueAttributeNameApproximateNumberOfMessagesNotVisible)])
	return visible, notVisible
}

// gone asserts that the stage queue holds nothing: no message visible or
// in flight, and a receive finds none.
func (x *harness) gone() {
	x.t.Helper()
	if v, nv := x.counts(x.url); v+nv != 0 {
		x.t.Errorf("the queue still holds %d visible and %d in-flight messages, want none", v, nv)
	}
	out, err := x.sqs.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: &x.url, MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
	if err != nil {
		x.t.Fatal(err)
	}
	if len(out.Messages) != 0 {
		x.t.Errorf("a receive found %d messages in the queue, want none", len(out.Messages))
	}
}

// recorder is a handler that records its calls, answers with answer, and
// tells calls about each.
type recorder struct {
	mu     sync.Mutex
	seen   []call
	calls  chan call
	answer func(call) (pipeline.Outcome, error)
}

func newRecorder(answer func(call) (pipeline.Outcome, error)) *recorder {
	return &recorder{calls: make(chan call, 100), answer: answer}
}

func (r *recorder) handle(_ context.Context, m pipeline.Message) (pipeline.Outcome, error) {
	c := call{body: string(m.Body), receives: m.ReceiveCount, at: time.Now()}
	r.mu.Lock()
	r.seen = append(r.seen, c)
	r.mu.Unlock()
	out, err := r.answer(c)
	r.calls <- c
	return out, err
}

func (r *recorder) all() []call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.seen)
}

// next waits for the handler's next call to return.
func (r *recorder) next(t *testing.T) call {
	t.Helper()
	select {
	case c := <-r.calls:
		return c
	case <-time.After(20 * time.Second):
		t.Fatal("the handler was not called within 20s")
		return call{}
	}
}

func TestASucceededMessageIsDeleted(t *testing.T) {
	t.Parallel()
	h := newRecorder(func(call) (pipeline.Outcome, error) { return pipeline.OutcomeOK, nil })
	x := start(t, queue.Config{Visibility: 30 * time.Second, WaitTime: time.Second}, h.handle)
	x.send(`{"n":1}`)
	if c := h.next(t); c.body != `{"n":1}` || c.receives != 1 {
		t.Fatalf("handler got %q on receive %d", c.body, c.receives)
	}
	x.shutdown()
	// Without the delete the message would sit in flight for 30s.
	x.gone()
	if n := len(h.all()); n != 1 {
		t.Errorf("handler ran %d times, want once", n)
	}
	if len(x.ep.bodies("DeleteMessageBatch")) == 0 {
		t.Error("no DeleteMessageBatch was sent")
	}
}

func TestATransientFailureIsRetriedAfterTheBackOff(t *testing.T) {
	t.Parallel()
	h := newRecorder(func(c call) (pipeline.Outcome, error) {
		if c.receives == 1 {
			return "", errors.New("throttled")
		}
		return pipeline.OutcomeOK, nil
	})
	var backOffs <-chan string
	x := start(t, queue.Config{Visibility: 30 * time.Second, WaitTime: time.Second, RetryBase: time.Second},
		h.handle, func(e *endpoint) { backOffs = e.watch("ChangeMessageVisibility") })
	x.send(`{"n":2}`)
	if c := h.next(t); c.receives != 1 {
		t.Fatalf("first call on receive %d", c.receives)
	}
	var req struct{ VisibilityTimeout int }
	select {
	case b := <-backOffs:
		if err := json.Unmarshal([]byte(b), &req); err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no ChangeMessageVisibility after a transient failure")
	}
	backedOff := time.Now()
	// RetryBase 1s on the first receive: a back-off in [0.5s, 1s], rounded
	// up to whole seconds.
	if req.VisibilityTimeout != 1 {
		t.Errorf("back-off visibility %ds, want 1s", req.VisibilityTimeout)
	}
	if v, nv := x.counts(x.url); v != 0 || nv != 1 {
		t.Errorf("right after the back-off the queue has %d visible and %d in-flight messages, want 0 and 1", v, nv)
	}
	// It comes back after the back-off, well before the queue's 30s
	// visibility timeout, as the second receive.
	again := h.next(t)
	if again.receives != 2 || again.body != `{"n":2}` {
		t.Fatalf("second call got %q on receive %d, want the message on receive 2", again.body, again.receives)
	}
	if gap := again.at.Sub(backedOff); gap < 500*time.Millisecond {
		t.Errorf("the message came back %v after its 1s back-off was set", gap)
	}
	x.shutdown()
	x.gone()
}

func TestAPermanentFailureIsDeadLetteredWithItsReason(t *testing.T) {
	t.Parallel()
	cause := errors.New("no such detail-type")
	h := newRecorder(func(call) (pipeline.Outcome, error) {
		return "", pipeline.Permanent(pipeline.ReasonMalformed, cause)
	})
	x := start(t, queue.Config{Visibility: 30 * time.Second, WaitTime: time.Second}, h.handle)
	body := `{"detail-type":"Nonsense","detail":{"order_id":"o-poison"}}`
	x.send(body)
	h.next(t)
	x.shutdown()
	x.gone()
	got := receiveAll(t, x.sqs, x.dlq, 1)
	if len(got) != 1 {
		t.Fatalf("%d messages in the DLQ, want 1", len(got))
	}
	if b := aws.ToString(got[0].Body); b != body {
		t.Errorf("DLQ body %q, want %q", b, body)
	}
	for name, want := range map[string]string{
		delivery.AttrReason:      pipeline.ReasonMalformed,
		delivery.AttrSourceQueue: x.url,
		delivery.AttrReceives:    "1",
	} {
		if v := aws.ToString(got[0].MessageAttributes[name].StringValue); v != want {
			t.Errorf("DLQ attribute %s = %q, want %q", name, v, want)
		}
	}
	if v := aws.ToString(got[0].MessageAttributes[delivery.AttrError].StringValue); !strings.Contains(v, cause.Error()) {
		t.Errorf("DLQ attribute %s = %q, want the handler's error", delivery.AttrError, v)
	}
	if n := len(h.all()); n != 1 {
		t.Errorf("handler ran %d times, want once (a permanent failure is never retried)", n)
	}
}

func TestASlowHandlersMessageIsKeptInvisible(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	h := newRecorder(func(call) (pipeline.Outcome, error) {
		select {
		case started <- struct{}{}:
		default:
		}
		<-release
		return pipeline.OutcomeOK, nil
	})
	var extensions <-chan string
	x := start(t, queue.Config{Visibility: 2 * time.Second, WaitTime: time.Second, HandlerTimeout: time.Minute}, h.handle,
		func(e *endpoint) { extensions = e.watch("ChangeMessageVisibilityBatch") })
	x.send(`{"n":4}`)
	select {
	case <-started:
	case <-time.After(20 * time.Second):
		t.Fatal("the handler was not called within 20s")
	}
	// Another receiver polls the queue while the handler runs.
	rctx, stopRival := context.WithCancel(context.Background())
	var stolen []types.Message
	rival, theft := make(chan struct{}), make(chan struct{}, 1)
	go func() {
		defer close(rival)
		for rctx.Err() == nil {
			out, err := x.sqs.ReceiveMessage(rctx, &sqs.ReceiveMessageInput{QueueUrl: &x.url, MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
			if err == nil && len(out.Messages) > 0 {
				stolen = append(stolen, out.Messages...)
				select {
				case theft <- struct{}{}:
				default:
				}
			}
		}
	}()
	// Three extensions are made at least 1s apart (half the visibility),
	// the first 1s after the receive: by the third the 2s visibility the
	// message was received with has long run out.
	for i := range 3 {
		select {
		case <-extensions:
		case <-theft:
			stopRival()
			close(release)
			t.Fatalf("another receiver got the message while its handler ran (after %d visibility extensions)", i)
		case <-time.After(30 * time.Second):
			stopRival()
			close(release)
			t.Fatalf("%d visibility extensions within 30s, want 3", i)
		}
	}
	if v, nv := x.counts(x.url); v != 0 || nv != 1 {
		t.Errorf("after three extensions the queue has %d visible and %d in-flight messages, want 0 and 1", v, nv)
	}
	stopRival()
	<-rival
	close(release)
	if len(stolen) != 0 {
		t.Errorf("another receiver got the message %d times while its handler ran", len(stolen))
	}
	batches := x.ep.bodies("ChangeMessageVisibilityBatch")
	if len(batches) < 3 {
		t.Errorf("%d ChangeMessageVisibilityBatch requests, want at least 3", len(batches))
	}
	for _, b := range batches {
		if !strings.Contains(b, `"VisibilityTimeout":2`) {
			t.Errorf("extension %s does not set the 2s visibility", b)
		}
	}
	h.next(t)
	x.shutdown()
	x.gone()
	if n := len(h.all()); n != 1 {
		t.Errorf("handler ran %d times, want once", n)
	}
	if n := testutil.ToFloat64(x.m.Extended.WithLabelValues(string(stage))); n < 3 {
		t.Errorf("%v visibility extensions counted, want at least 3", n)
	}
}

func TestAFailedDeleteEntryIsResubmitted(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		fault deleteFault
		// sent is how many times the failed receipt is sent in all; kept,
		// whether its message is left in flight (to come back after its
		// visibility timeout).
		sent int
		kept bool
	}{
		{"once on the service's side", deleteFault{times: 1, code: "InternalError"}, 2, false},
		{"every time on the service's side", deleteFault{times: 100, code: "InternalError"}, 3, true},
		{"for the request's sake", deleteFault{times: 100, code: "ReceiptHandleIsInvalid", senderFault: true}, 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newRecorder(func(call) (pipeline.Outcome, error) { return pipeline.OutcomeOK, nil })
			x := start(t, queue.Config{Visibility: 30 * time.Second, WaitTime: time.Second, DeleteLinger: 200 * time.Millisecond},
				h.handle, func(e *endpoint) { e.mu.Lock(); e.fault = &tc.fault; e.mu.Unlock() })
			for i := range 3 {
				x.send(`{"n":` + strconv.Itoa(i) + `}`)
			}
			for range 3 {
				h.next(t)
			}
			x.shutdown()
			x.ep.mu.Lock()
			failed, faulted := x.ep.failed, x.ep.faulted
			x.ep.mu.Unlock()
			if failed == "" || failed == "pending" {
				t.Fatalf("no DeleteMessageBatch entry was failed (%q)", failed)
			}
			sent := 0
			for _, op := range []string{"DeleteMessageBatch", "DeleteMessage"} {
				for _, b := range x.ep.bodies(op) {
					if strings.Contains(b, failed) {
						sent++
					}
				}
			}
			// Faulted requests reach the log without the failed entry.
			if sent+faulted != tc.sent {
				t.Errorf("the failed entry's receipt was sent %d times, want %d", sent+faulted, tc.sent)
			}
			if n := testutil.ToFloat64(x.m.AckFailures.WithLabelValues(string(stage), "delete")); n != float64(faulted) || faulted != min(tc.fault.times, tc.sent) {
				t.Errorf("%v delete failures counted, %d entries failed, want %d", n, faulted, min(tc.fault.times, tc.sent))
			}
			if tc.kept {
				// Only the failed entry's message is left, in flight.
				if v, nv := x.counts(x.url); v != 0 || nv != 1 {
					t.Errorf("the queue has %d visible and %d in-flight messages, want only the undeleted one in flight", v, nv)
				}
			} else {
				// Without the resubmission its message would be in flight for 30s.
				x.gone()
			}
			if n := len(h.all()); n != 3 {
				t.Errorf("handler ran %d times, want 3", n)
			}
		})
	}
}

// receiveAll receives (and deletes) from url until n messages are in hand
// or 10s pass.
func receiveAll(t *testing.T, c *sqs.Client, url string, n int) []types.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var got []types.Message
	for len(got) < n && ctx.Err() == nil {
		out, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &url, MaxNumberOfMessages: 10, WaitTimeSeconds: 1, MessageAttributeNames: []string{"All"}})
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			t.Fatal(err)
		}
		for _, m := range out.Messages {
			got = append(got, m)
			if _, err := c.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: &url, ReceiptHandle: m.ReceiptHandle}); err != nil {
				t.Fatal(err)
			}
		}
	}
	return got
}
