package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/cloudcommerce/cloudcommerce/internal/dev/awsfault"
	"github.com/cloudcommerce/cloudcommerce/internal/dev/testkit"
	"github.com/cloudcommerce/cloudcommerce/internal/ops/dlq"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
)

// counts is a queue's messages, visible and hidden (in flight).
type counts struct{ visible, hidden int }

func (c counts) total() int { return c.visible + c.hidden }

func (c counts) String() string {
	return fmt.Sprintf("%d (%d visible, %d in flight)", c.total(), c.visible, c.hidden)
}

func queueCounts(t *testing.T, e *testkit.Env, url string) counts {
	t.Helper()
	out, err := e.SQS.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{QueueUrl: &url, AttributeNames: []types.QueueAttributeName{
		types.QueueAttributeNameApproximateNumberOfMessages, types.QueueAttributeNameApproximateNumberOfMessagesNotVisible}})
	if err != nil {
		t.Fatal(err)
	}
	v, _ := strconv.Atoi(out.Attributes[string(types.QueueAttributeNameApproximateNumberOfMessages)])
	h, _ := strconv.Atoi(out.Attributes[string(types.QueueAttributeNameApproximateNumberOfMessagesNotVisible)])
	return counts{v, h}
}

// A redrive SIGKILLed halfway loses nothing: every dead letter is then in
// the stage queue or the DLQ, only the page in flight may be in both, and
// running the redrive again moves the rest. The built binary runs against
// the emulator this test hosts.
func TestKilledRedriveLosesNothingAndARerunFinishes(t *testing.T) {
	t.Parallel()
	const n = 3000
	e := testkit.Provision(t)
	queue, dlqURL := e.QueueURL(pipeline.StageInventory, false), e.QueueURL(pipeline.StageInventory, true)
	ctx := context.Background()
	want := map[string]bool{}
	for i := 0; i < n; i += 10 {
		entries := make([]types.SendMessageBatchRequestEntry, 10)
		for j := range entries {
			b := fmt.Sprintf("dead-letter-%05d", i+j)
			want[b] = true
			entries[j] = types.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(j)), MessageBody: aws.String(b)}
		}
		out, err := e.SQS.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: &dlqURL, Entries: entries})
		if err != nil || len(out.Failed) > 0 {
			t.Fatalf("seed the DLQ: %v %v", err, out)
		}
	}
	before := [2]counts{queueCounts(t, e, queue), queueCounts(t, e, dlqURL)}
	t.Logf("before:       stage queue %v, DLQ %v", before[0], before[1])
	if before[0].total() != 0 || before[1].total() != n {
		t.Fatalf("before the redrive: stage queue %v, DLQ %v; want 0 and %d", before[0], before[1], n)
	}

	bin := testkit.Binary(t, ".")
	vars := []string{"CLOUDCOMMERCE_PREFIX=" + e.Prefix}
	for _, k := range []string{"AWS_ENDPOINT_URL", "AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} {
		vars = append(vars, k+"="+os.Getenv(k))
	}
	p := testkit.Start(t, bin, vars, "dlq", "redrive", "--stage", "inventory")
	// Kill it a good way in: after 40 pages of its 300.
	testkit.Eventually(t, "40 pages of progress", time.Minute, func() bool { return p.Grep("page ") >= 40 || p.Exited() })
	if p.Exited() {
		t.Fatalf("the redrive finished before it could be killed (%v):\n%s", p.Err(), p.Tail(5))
	}
	p.Kill()
	killedAt := time.Now()
	pages := p.Grep("page ")
	atKill := [2]counts{queueCounts(t, e, queue), queueCounts(t, e, dlqURL)}
	t.Logf("at the kill:  stage queue %v, DLQ %v (after %d pages of progress; last line %q)", atKill[0], atKill[1], pages, lastLine(p.Output()))
	both := atKill[0].total() + atKill[1].total() - n
	if both < 0 || both > 10 {
		t.Errorf("at the kill the queues hold %d messages together, want %d to %d (the page in flight may be in both)", n+both, n, n+10)
	}
	if atKill[0].total() < 10*pages {
		t.Errorf("the stage queue holds %d, but %d pages of 10 were reported moved", atKill[0].total(), pages)
	}
	if strings.Contains(p.Output(), "moved "+strconv.Itoa(n)) {
		t.Errorf("a killed redrive printed a summary:\n%s", p.Tail(3))
	}

	// The page in flight is hidden in the DLQ for the redrive's visibility
	// timeout (30s), and the rerun says so if it starts before; the
	// emulator only notices the timeout on a receive, so the test waits it
	// out rather than watching the count. Then the rerun moves the rest
	// and prints its report.
	time.Sleep(time.Until(killedAt.Add(31 * time.Second)))
	rerunCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(rerunCtx, bin, "dlq", "redrive", "--stage", "inventory", "--json")
	cmd.Env = vars
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("rerun: %v\n%s\n%s", err, stdout.String(), stderr.String())
	}
	var rep dlq.Report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("rerun --json printed no report: %v\n%s", err, stdout.String())
	}
	if rep.Moved != atKill[1].total() || len(rep.Unsent) != 0 || rep.Error != "" {
		t.Errorf("rerun report = %+v, want %d moved (what the DLQ held) and nothing unsent", rep, atKill[1].total())
	}
	if got := strings.Count(stderr.String(), "page "); got != rep.Pages || got == 0 {
		t.Errorf("rerun printed %d progress lines on stderr for %d pages", got, rep.Pages)
	}
	after := [2]counts{queueCounts(t, e, queue), queueCounts(t, e, dlqURL)}
	t.Logf("after rerun:  stage queue %v, DLQ %v (rerun moved %d in %d pages)", after[0], after[1], rep.Moved, rep.Pages)
	if after[1].total() != 0 {
		t.Errorf("the DLQ still holds %v after the rerun", after[1])
	}

	// Every dead letter is in the stage queue; at most one page twice.
	seen := map[string]int{}
	for {
		out, err := e.SQS.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &queue, MaxNumberOfMessages: 10, WaitTimeSeconds: 1, VisibilityTimeout: 300})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Messages) == 0 {
			break
		}
		for _, m := range out.Messages {
			seen[aws.ToString(m.Body)]++
		}
	}
	dups := 0
	for b := range want {
		switch c := seen[b]; {
		case c == 0:
			t.Errorf("%s was lost", b)
		case c > 1:
			dups += c - 1
		}
	}
	t.Logf("stage queue: %d distinct of %d dead letters, %d duplicates", len(seen), n, dups)
	if len(seen) != n || dups > 10 || dups != both {
		t.Errorf("stage queue: %d distinct, %d duplicates; want %d distinct and the %d of the page in flight at most", len(seen), dups, n, both)
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// `worker dlq redrive` with messages the stage queue refuses (AWS's
// per-entry answers from the fault endpoint) moves the rest, lists each
// refused message with its code, exits 1, and says the same in --json.
func TestRedriveListsRefusedMessagesAndFails(t *testing.T) {
	t.Parallel()
	e := testkit.Provision(t)
	proxy, err := awsfault.New(os.Getenv("AWS_ENDPOINT_URL"))
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	proxy.AddEntries(&awsfault.EntryFault{Service: "SQS", Operation: "SendMessageBatch", Match: "refused",
		Code: "InvalidParameterValue", Message: "Message contains invalid characters.", SenderFault: true})
	dlqURL := e.QueueURL(pipeline.StageInventory, true)
	vars := map[string]string{"CLOUDCOMMERCE_PREFIX": e.Prefix, "AWS_ENDPOINT_URL": proxy.URL}
	for _, k := range []string{"AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} {
		vars[k] = os.Getenv(k)
	}
	redrive := func(args ...string) (string, string, error) {
		var o, x bytes.Buffer
		err := run(context.Background(), append([]string{"dlq", "redrive", "--stage", "inventory"}, args...), env{stdout: &o, stderr: &x, getenv: func(k string) string { return vars[k] }})
		return o.String(), x.String(), err
	}
	sendDL := func(body string) string {
		out, err := e.SQS.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: &dlqURL, MessageBody: aws.String(body)})
		if err != nil {
			t.Fatal(err)
		}
		return aws.ToString(out.MessageId)
	}
	for i := range 12 {
		sendDL(fmt.Sprintf("fine-%d", i))
	}
	refused := sendDL("refused-1")

	out, _, err := redrive("--max", "100")
	if err == nil || exitStatus(err) != 1 {
		t.Fatalf("redrive with a refused message: %v (exit %d), want exit 1\n%s", err, exitStatus(err), out)
	}
	for _, want := range []string{"page 1: moved ", "moved 12 messages from " + e.Prefix, "not moved, still in " + e.Prefix, refused, "InvalidParameterValue", "Message contains invalid characters."} {
		if !strings.Contains(out, want) {
			t.Errorf("redrive output lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(err.Error(), refused) {
		t.Errorf("the error does not name %s: %v", refused, err)
	}

	out, progress, err := redrive("--max", "100", "--json")
	if err == nil || exitStatus(err) != 1 {
		t.Fatalf("redrive --json: %v, want exit 1", err)
	}
	var rep dlq.Report
	if jerr := json.Unmarshal([]byte(out), &rep); jerr != nil {
		t.Fatalf("redrive --json printed %q: %v", out, jerr)
	}
	if rep.Moved != 0 || len(rep.Unsent) != 1 || rep.Unsent[0].MessageID != refused || rep.Unsent[0].Code != "InvalidParameterValue" || rep.Unsent[0].Retryable || rep.Error == "" {
		t.Errorf("redrive --json report = %+v, want the refused message unsent and nothing else", rep)
	}
	if !strings.Contains(progress, "page 1:") {
		t.Errorf("redrive --json progress on stderr = %q", progress)
	}
	if v := queueCounts(t, e, dlqURL); v.total() != 1 {
		t.Errorf("DLQ holds %v, want the refused message", v)
	}
}

// The redrive's help says what a failure or a kill leaves behind.
func TestRedriveHelpStatesWhatAKillLeaves(t *testing.T) {
	t.Parallel()
	out, _, err := runArgs("dlq", "redrive", "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"--json", "none lost", "page in", "idempotent", "exits 1", "run the\ncommand again"} {
		if !strings.Contains(out, want) {
			t.Errorf("dlq redrive --help lacks %q:\n%s", want, out)
		}
	}
}
