package dlq_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/cloudcommerce/cloudcommerce/internal/delivery"
	"github.com/cloudcommerce/cloudcommerce/internal/dev/awsfault"
	"github.com/cloudcommerce/cloudcommerce/internal/dev/emulator"
	"github.com/cloudcommerce/cloudcommerce/internal/dev/testkit"
	"github.com/cloudcommerce/cloudcommerce/internal/ops/dlq"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
)

// The redrive runs against the in-process emulator (or the endpoint in
// AWS_ENDPOINT_URL), with AWS's error answers from the fault endpoint in
// front of it.
func TestMain(m *testing.M) { emulator.RunTests(m) }

const stage = pipeline.StageInventory

// fixture is a provisioned topology, a fault endpoint in front of it and a
// manager whose SQS client goes through the fault endpoint.
type fixture struct {
	env        *testkit.Env
	proxy      *awsfault.Proxy
	mgr        *dlq.Manager
	queue, dlq string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	e := testkit.Provision(t)
	proxy, cfg := testkit.FaultEndpoint(t)
	f := &fixture{env: e, proxy: proxy, queue: e.QueueURL(stage, false), dlq: e.QueueURL(stage, true)}
	f.mgr = &dlq.Manager{SQS: sqs.NewFromConfig(cfg), Queues: map[pipeline.Stage]dlq.Queue{stage: {URL: f.queue, DLQURL: f.dlq}},
		Backoff: retry.NewExponentialJitterBackoff(20 * time.Millisecond)}
	return f
}

// seed sends n dead letters named <name>-<i> to the DLQ, each with the
// attributes the worker adds when it dead-letters a message and one of
// its own, and returns their bodies.
func seed(t testing.TB, e *testkit.Env, url, name string, n int) []string {
	t.Helper()
	var bodies []string
	for i := 0; i < n; i += 10 {
		var entries []types.SendMessageBatchRequestEntry
		for j := i; j < min(n, i+10); j++ {
			b := fmt.Sprintf("%s-%04d", name, j)
			bodies = append(bodies, b)
			entries = append(entries, types.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(j - i)), MessageBody: aws.String(b),
				MessageAttributes: map[string]types.MessageAttributeValue{
					delivery.AttrReason: {DataType: aws.String("String"), StringValue: aws.String("transient_exhausted")},
					delivery.AttrError:  {DataType: aws.String("String"), StringValue: aws.String("boom")},
					"trace":             {DataType: aws.String("String"), StringValue: aws.String("t-" + b)},
				}})
		}
		out, err := e.SQS.SendMessageBatch(context.Background(), &sqs.SendMessageBatchInput{QueueUrl: &url, Entries: entries})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Failed) > 0 {
			t.Fatalf("seed: %d entries failed: %s", len(out.Failed), aws.ToString(out.Failed[0].Code))
		}
	}
	return bodies
}

// drain receives and deletes every message of a queue (visible ones; the
// caller waits for hidden ones) and returns them by body.
func drain(t testing.TB, e *testkit.Env, url string) map[string][]types.Message {
	t.Helper()
	got := map[string][]types.Message{}
	for {
		out, err := e.SQS.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: &url, MaxNumberOfMessages: 10, WaitTimeSeconds: 1,
			MessageAttributeNames: []string{"All"}})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Messages) == 0 {
			return got
		}
		for _, m := range out.Messages {
			got[aws.ToString(m.Body)] = append(got[aws.ToString(m.Body)], m)
			if _, err := e.SQS.DeleteMessage(context.Background(), &sqs.DeleteMessageInput{QueueUrl: &url, ReceiptHandle: m.ReceiptHandle}); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// depth is a queue's messages, visible and hidden.
func depth(t testing.TB, e *testkit.Env, url string) (visible, hidden int) {
	t.Helper()
	out, err := e.SQS.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{QueueUrl: &url, AttributeNames: []types.QueueAttributeName{
		types.QueueAttributeNameApproximateNumberOfMessages, types.QueueAttributeNameApproximateNumberOfMessagesNotVisible}})
	if err != nil {
		t.Fatal(err)
	}
	visible, _ = strconv.Atoi(out.Attributes[string(types.QueueAttributeNameApproximateNumberOfMessages)])
	hidden, _ = strconv.Atoi(out.Attributes[string(types.QueueAttributeNameApproximateNumberOfMessagesNotVisible)])
	return visible, hidden
}

func sortedKeys(m map[string][]types.Message) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// A redrive with nothing failing moves every message, page by page, as it
// first came (without the worker's dead-letter attributes).
func TestRedriveMovesEveryMessagePageByPage(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	bodies := seed(t, f.env, f.dlq, "ok", 25)
	var pages []dlq.Page
	rep, err := f.mgr.RedriveReport(context.Background(), stage, 0, func(p dlq.Page) { pages = append(pages, p) })
	if err != nil {
		t.Fatalf("redrive: %v", err)
	}
	if rep.Moved != 25 || len(rep.Unsent) != 0 {
		t.Fatalf("report = %+v, want 25 moved, none unsent", rep)
	}
	if rep.Method == dlq.MethodLoop && (len(pages) != 3 || pages[2].TotalMoved != 25 || pages[2].Of != 25) {
		t.Errorf("progress = %+v, want 3 pages ending at 25 of 25", pages)
	}
	moved := drain(t, f.env, f.queue)
	if got := sortedKeys(moved); !slices.Equal(got, bodies) {
		t.Fatalf("stage queue holds %d messages %v, want %v", len(got), got, bodies)
	}
	for b, ms := range moved {
		m := ms[0]
		if _, ok := m.MessageAttributes[delivery.AttrReason]; ok {
			t.Errorf("%s came back with the dead-letter reason attribute", b)
		}
		if v := aws.ToString(m.MessageAttributes["trace"].StringValue); v != "t-"+b {
			t.Errorf("%s: its own attribute trace = %q, want %q", b, v, "t-"+b)
		}
	}
	if v, h := depth(t, f.env, f.dlq); v+h != 0 {
		t.Errorf("DLQ still holds %d+%d messages", v, h)
	}
}

// Entries the stage queue refuses stay in the DLQ and are reported by id
// and AWS's reason; the others move. An entry AWS fails on its own side
// (SenderFault false) is sent again with back-off and moves once AWS takes
// it; one the caller is at fault for is not sent again.
func TestRedriveLeavesRefusedEntriesInTheDLQ(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	seed(t, f.env, f.dlq, "fine", 17)
	seed(t, f.env, f.dlq, "refused", 2)
	seed(t, f.env, f.dlq, "flaky", 3)
	seed(t, f.env, f.dlq, "broken", 1)
	refused := f.proxy.AddEntries(&awsfault.EntryFault{Service: "SQS", Operation: "SendMessageBatch", Match: "refused-",
		Code: "InvalidParameterValue", Message: "Value for parameter MessageBody is invalid. Reason: Message contains invalid characters.", SenderFault: true})
	// Two failures each, then accepted: within the redrive's attempts.
	flaky := f.proxy.AddEntries(&awsfault.EntryFault{Service: "SQS", Operation: "SendMessageBatch", Match: "flaky-", Times: 2,
		Code: "InternalError", Message: "We encountered an internal error. Please try again."})
	broken := f.proxy.AddEntries(&awsfault.EntryFault{Service: "SQS", Operation: "SendMessageBatch", Match: "broken-",
		Code: "InternalError", Message: "We encountered an internal error. Please try again."})
	peek, err := f.mgr.List(context.Background(), stage)
	if err != nil {
		t.Fatal(err)
	}
	if len(peek) != 23 {
		t.Fatalf("List = %d dead letters, want 23", len(peek))
	}

	rep, err := f.mgr.RedriveReport(context.Background(), stage, 100, nil)
	var ue *dlq.UnsentError
	if !errors.As(err, &ue) {
		t.Fatalf("redrive error = %v, want an *UnsentError", err)
	}
	if rep.Moved != 20 {
		t.Errorf("moved %d, want 20 (17 fine + 3 flaky after retries)", rep.Moved)
	}
	if got := refused.Hits(); got != 2 {
		t.Errorf("the refused entries were sent %d times, want 2 (once each: the caller's fault is not retried)", got)
	}
	if got := flaky.Hits(); got != 6 {
		t.Errorf("the flaky entries failed %d times, want 6 (twice each, then accepted)", got)
	}
	if got := broken.Hits(); got != dlq.EntryAttempts {
		t.Errorf("the broken entry was sent %d times, want %d (every attempt)", got, dlq.EntryAttempts)
	}
	want := map[string]string{}
	bodyOf := func(id string) string {
		for _, p := range peek {
			if p.MessageID == id {
				return "known"
			}
		}
		return ""
	}
	for _, u := range rep.Unsent {
		if bodyOf(u.MessageID) == "" {
			t.Errorf("unsent message id %q is no DLQ message id", u.MessageID)
		}
		want[u.MessageID] = u.Code
		if !strings.Contains(err.Error(), u.MessageID) {
			t.Errorf("the error does not name unsent message %s: %v", u.MessageID, err)
		}
	}
	codes := map[string]int{}
	for _, u := range rep.Unsent {
		codes[fmt.Sprintf("%s retryable=%t", u.Code, u.Retryable)]++
	}
	if len(rep.Unsent) != 3 || codes["InvalidParameterValue retryable=false"] != 2 || codes["InternalError retryable=true"] != 1 {
		t.Errorf("unsent = %+v, want the 2 refused (InvalidParameterValue) and the broken one (InternalError, retryable)", rep.Unsent)
	}

	// The DLQ holds exactly the unsent messages, visible again; the stage
	// queue holds every other one, once.
	left := drain(t, f.env, f.dlq)
	if got := sortedKeys(left); !slices.Equal(got, []string{"broken-0000", "refused-0000", "refused-0001"}) {
		t.Errorf("DLQ holds %v, want the broken and the two refused messages", got)
	}
	for _, ms := range left {
		if _, ok := want[aws.ToString(ms[0].MessageId)]; !ok {
			t.Errorf("DLQ message %s (%s) is not in the report", aws.ToString(ms[0].MessageId), aws.ToString(ms[0].Body))
		}
	}
	moved := drain(t, f.env, f.queue)
	if len(moved) != 20 {
		t.Errorf("stage queue holds %d distinct messages, want 20: %v", len(moved), sortedKeys(moved))
	}
	for b, ms := range moved {
		if len(ms) != 1 || strings.HasPrefix(b, "refused-") || strings.HasPrefix(b, "broken-") {
			t.Errorf("stage queue: %s ×%d", b, len(ms))
		}
	}
}

// A SendMessageBatch that fails as a whole is retried by the SDK where AWS
// calls the error retryable, and then ends the redrive: the page stays in
// the DLQ, reported message by message with AWS's code.
func TestRedriveStopsOnAFailedBatchAndKeepsThePage(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		answer    awsfault.Response
		code      string
		attempts  int
		retryable bool
	}{
		{"throttled", awsfault.SQSThrottled, "RequestThrottled", 3, true},
		{"internal error", awsfault.SQSInternalError, "InternalError", 3, true},
		{"service unavailable", awsfault.SQSServiceUnavailable, "ServiceUnavailable", 3, true},
		{"KMS key disabled", awsfault.SQSKMSDisabled, "KMS.DisabledException", 1, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			bodies := seed(t, f.env, f.dlq, "page", 14)
			f.proxy.Add(&awsfault.Rule{Service: "SQS", Operation: "SendMessageBatch", Response: tc.answer})
			var pages []dlq.Page
			rep, err := f.mgr.RedriveReport(context.Background(), stage, 14, func(p dlq.Page) { pages = append(pages, p) })
			if err == nil || !strings.Contains(err.Error(), tc.code) {
				t.Fatalf("redrive error = %v, want one with %s", err, tc.code)
			}
			if n := f.proxy.Requests("SQS", "SendMessageBatch"); n != tc.attempts {
				t.Errorf("SendMessageBatch was tried %d times, want %d", n, tc.attempts)
			}
			if rep.Moved != 0 || len(rep.Unsent) != 10 || len(pages) != 1 || pages[0].Unsent != 10 {
				t.Fatalf("report = %+v, pages %+v; want the first page of 10 unsent, none moved", rep, pages)
			}
			for _, u := range rep.Unsent {
				if u.Code != tc.code || u.Retryable != tc.retryable || u.MessageID == "" {
					t.Errorf("unsent %+v, want code %s, retryable %t", u, tc.code, tc.retryable)
				}
			}
			if got := sortedKeys(drain(t, f.env, f.dlq)); !slices.Equal(got, bodies) {
				t.Errorf("DLQ holds %v, want all %d seeded messages", got, len(bodies))
			}
			if v, h := depth(t, f.env, f.queue); v+h != 0 {
				t.Errorf("stage queue holds %d+%d messages, want none", v, h)
			}
		})
	}
}

// A throttled request that succeeds on the SDK's retry moves everything.
func TestRedriveRidesOutABriefThrottle(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	bodies := seed(t, f.env, f.dlq, "later", 12)
	f.proxy.Add(&awsfault.Rule{Service: "SQS", Operation: "SendMessageBatch", Times: 2, Response: awsfault.SQSThrottled})
	n, err := f.mgr.Redrive(context.Background(), stage, 12)
	if err != nil || n != 12 {
		t.Fatalf("redrive = %d, %v; want 12 moved", n, err)
	}
	if got := sortedKeys(drain(t, f.env, f.queue)); !slices.Equal(got, bodies) {
		t.Errorf("stage queue holds %v", got)
	}
}

// SQS's own move task, where the endpoint has it: a task that fails is
// reported with SQS's reason, and the messages stay in the DLQ; a throttled
// start is an error, not a silent fallback.
func TestMoveTaskFailureIsReported(t *testing.T) {
	t.Parallel()
	json := func(body string) awsfault.Response {
		r := awsfault.SQS(200, "", "", "", "")
		r.Body = body
		return r
	}
	t.Run("task failed", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		bodies := seed(t, f.env, f.dlq, "task", 5)
		f.proxy.Add(&awsfault.Rule{Service: "SQS", Operation: "StartMessageMoveTask", Response: json(`{"TaskHandle":"h-1"}`)})
		f.proxy.Add(&awsfault.Rule{Service: "SQS", Operation: "ListMessageMoveTasks", Response: json(`{"Results":[{"TaskHandle":"h-1","Status":"FAILED",` +
			`"FailureReason":"AWS.SimpleQueueService.NonExistentQueue","ApproximateNumberOfMessagesMoved":0,"ApproximateNumberOfMessagesToMove":5}]}`)})
		rep, err := f.mgr.RedriveReport(context.Background(), stage, 0, nil)
		if err == nil || !strings.Contains(err.Error(), "NonExistentQueue") || rep.Method != dlq.MethodMoveTask {
			t.Fatalf("redrive = %+v, %v; want the move task's failure reason", rep, err)
		}
		if got := sortedKeys(drain(t, f.env, f.dlq)); !slices.Equal(got, bodies) {
			t.Errorf("DLQ holds %v, want all 5", got)
		}
	})
	t.Run("start throttled", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		seed(t, f.env, f.dlq, "task", 5)
		f.proxy.Add(&awsfault.Rule{Service: "SQS", Operation: "StartMessageMoveTask", Response: awsfault.SQSThrottled})
		_, err := f.mgr.RedriveReport(context.Background(), stage, 0, nil)
		if err == nil || !strings.Contains(err.Error(), "RequestThrottled") {
			t.Fatalf("redrive error = %v, want RequestThrottled", err)
		}
		if n := f.proxy.Requests("SQS", "SendMessageBatch"); n != 0 {
			t.Errorf("fell back to the loop on a throttle (%d SendMessageBatch)", n)
		}
		if v, h := depth(t, f.env, f.dlq); v+h != 5 {
			t.Errorf("DLQ holds %d+%d, want 5", v, h)
		}
	})
}

// A message dead-lettered again while the redrive runs (it fails at once)
// is not moved round and round: the redrive moves what the DLQ held when
// it began.
func TestRedriveMovesOnlyWhatTheDLQHeldWhenItBegan(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	seed(t, f.env, f.dlq, "old", 15)
	var late []string
	rep, err := f.mgr.RedriveReport(context.Background(), stage, 0, func(p dlq.Page) {
		if p.Number == 1 {
			late = seed(t, f.env, f.dlq, "new", 3)
		}
	})
	if err != nil || rep.Moved != 15 {
		t.Fatalf("redrive = %+v, %v; want 15 moved", rep, err)
	}
	if got := sortedKeys(drain(t, f.env, f.dlq)); !slices.Equal(got, late) {
		t.Errorf("DLQ holds %v, want the 3 sent after the redrive began", got)
	}
}
