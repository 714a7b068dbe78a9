package reliability

import (
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/cloudcommerce/cloudcommerce/internal/dev/awsfault"
	"github.com/cloudcommerce/cloudcommerce/internal/dev/testkit"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
)

// nextRelease is how the proof's "next release" differs from this one, as
// a real next release would: a higher schema_version, an order member it
// writes (written_by_next: the statuses a task of that release wrote), and
// an event type this release does not know (OrderReceiptRequested,
// published after each shipment and routed to the shipping queue by an
// extra rule, which the next release's shipping stage acknowledges). Each
// edit names text of this tree that must be there exactly once, so a
// change to it fails the build of the next release loudly instead of
// testing something else.
var nextRelease = []struct{ file, old, new string }{
	{"internal/pipeline/codec.go", "const SchemaVersion = 2\n", "const SchemaVersion = 3\n"},
	{"internal/pipeline/order.go", "\tTrace string `json:\"trace,omitempty\"`\n",
		"\tTrace string `json:\"trace,omitempty\"`\n\t// WrittenByNext lists the statuses a task of this release wrote.\n\tWrittenByNext []Status `json:\"written_by_next,omitempty\"`\n"},
	{"internal/pipeline/codec.go", "\tw.SchemaVersion = SchemaVersion\n",
		"\tw.SchemaVersion = SchemaVersion\n\tif !slices.Contains(w.WrittenByNext, o.Status) {\n\t\tw.WrittenByNext = append(slices.Clip(w.WrittenByNext), o.Status)\n\t}\n"},
	{"internal/pipeline/event.go", "\tEventOrderCancelRequested EventType = \"OrderCancelRequested\"\n",
		"\tEventOrderCancelRequested EventType = \"OrderCancelRequested\"\n\tEventReceiptRequested EventType = \"OrderReceiptRequested\"\n"},
	{"internal/pipeline/event.go", "EventOrderCancelled, EventOrderCancelRequested}", "EventOrderCancelled, EventOrderCancelRequested, EventReceiptRequested}"},
	{"internal/pipeline/stage.go", "h, accepts = s.shipping, []EventType{EventPaymentCaptured}", "h, accepts = s.shipping, []EventType{EventPaymentCaptured, EventReceiptRequested}"},
	{"internal/pipeline/handlers.go", "func (s *Service) shipping(ctx context.Context, ev Event) (Outcome, error) {\n",
		"func (s *Service) shipping(ctx context.Context, ev Event) (Outcome, error) {\n\tif ev.Type == EventReceiptRequested {\n\t\treturn OutcomeOK, nil\n\t}\n"},
	{"internal/pipeline/handlers.go", "\ts.observer().Transitioned(StatusPaid, StatusShipped)\n\ts.observer().Finished(next, next.UpdatedAt.Sub(next.PlacedAt))\n\tif err := s.announce(ctx, next, doc); err != nil {\n\t\treturn \"\", err\n\t}\n",
		"\ts.observer().Transitioned(StatusPaid, StatusShipped)\n\ts.observer().Finished(next, next.UpdatedAt.Sub(next.PlacedAt))\n\tif err := s.announce(ctx, next, doc); err != nil {\n\t\treturn \"\", err\n\t}\n\tif err := s.Publisher.Publish(ctx, Event{Type: EventReceiptRequested, Order: next}); err != nil {\n\t\treturn \"\", err\n\t}\n"},
}

// nextReleaseBinary copies what the worker is built from (go.mod, cmd,
// internal, the embedded topology; no tests) to a temporary directory,
// applies nextRelease and builds the worker there.
func nextReleaseBinary(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	copyFile := func(rel string) {
		b, err := os.ReadFile(filepath.Join(root, rel))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dst, rel)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, rel), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"go.mod", "go.sum", "deploy/topology.go", "deploy/topology.json"} {
		copyFile(f)
	}
	for _, dir := range []string{"cmd", "internal"} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || strings.HasSuffix(path, "_test.go") {
				return err
			}
			rel, _ := filepath.Rel(root, path)
			copyFile(rel)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range nextRelease {
		path := filepath.Join(dst, e.file)
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(string(b), e.old); n != 1 {
			t.Fatalf("next release: %s holds %d copies of %q, want 1: update the edit to this tree", e.file, n, e.old)
		}
		if err := os.WriteFile(path, []byte(strings.Replace(string(b), e.old, e.new, 1)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return testkit.Build(t, filepath.Join(dst, "cmd", "worker"), []string{"CGO_ENABLED=0"})
}

// tapped is one event seen on the bus.
type tapped struct {
	Type          string
	OrderID       string
	Status        pipeline.Status
	SchemaVersion int
}

// TestRollingDeployAndRollback runs this release and a next release
// (nextRelease) on the same queues under continuous load, as an ECS
// rolling deployment and a rollback do: two tasks of this release; one
// task of the next release started, then one old task stopped with
// SIGTERM; again; then a rollback: a task of this release started and one
// of the next stopped. Then:
//   - every order is final, none charged twice, stock balances per SKU,
//     every DLQ is empty (settle's invariants);
//   - every order a task of the next release wrote (an event of
//     schema_version 3 on the bus) keeps written_by_next in its stored
//     document, also where a task of this release wrote a later status
//     (stored schema_version 2): at least one such order;
//   - tasks of this release deferred deliveries (newer_schema,
//     unknown_event): the hand-back was exercised, and every deferred
//     message was still handled (the queues and DLQs are empty).
func TestRollingDeployAndRollback(t *testing.T) {
	t.Parallel()
	r := newRT(t)
	begin := time.Now()
	next := nextReleaseBinary(r)
	r.Logf("next release built in %s", time.Since(begin).Round(time.Millisecond))
	workerBinary(r) // built before the clock of the run starts

	// A short first hand-back, so the run's deferrals end within seconds;
	// no sweep, so every event on the bus is a stage's write (the sweep
	// re-publishes orders in the encoding of the task that runs it).
	// 1 s long polls: the emulator wakes a parked long poll only on a send,
	// not when a handed-back message turns visible again (KUMO.md), so with
	// 20 s polls the task that just handed a message back, polling again at
	// once, tends to receive it again, and a message of the next release
	// can use up its receives on old tasks while a next-release task runs.
	// SQS answers a waiting poll as soon as a message is visible.
	c := newCluster(r, "CLOUDCOMMERCE_DEFER_BASE=1s", "CLOUDCOMMERCE_SWEEP_INTERVAL=off", "CLOUDCOMMERCE_WAIT_TIME=1s")
	// The workers' long polls are answered as SQS answers them, as soon as
	// a message is visible again: the emulator wakes a parked long poll
	// only on a send, so the task that handed a message back, starting its
	// next receive in step with the hand-back's whole seconds, would take
	// it back nearly every time, and a deferred message would not reach a
	// task of the other release as it does on SQS.
	lp, err := awsfault.New(os.Getenv("AWS_ENDPOINT_URL"))
	if err != nil {
		r.Fatal(err)
	}
	r.Cleanup(lp.Close)
	lp.AnswerLongPolls(100 * time.Millisecond)
	c.endpoint = lp.URL
	c.env.Route(r, "receipt-requested", pipeline.StageShipping, "OrderReceiptRequested")
	tap := c.env.Tap(r)
	const orders, rate = 360, 9.0
	m := defaultMix(orders, rate)
	// Events a task of the next release wrote are handed back by the old
	// tasks, so an old task writes a later status of such an order through
	// the intake: a cancellation.
	m.Cancel = 0.25
	// No transient payment errors: their back-off doubles with the
	// message's receive count, which the old tasks' hand-backs raise too,
	// so an order both handed back and retried could wait past the run's
	// deadline. Transient retries are proven by the other load tests; this
	// one is about two releases side by side.
	m.Transient = 0
	c.setStock(m.Stock)
	plan := plan(r, m)

	var mu sync.Mutex
	var live []*worker
	deferred := map[string]float64{} // reason → sum over the old tasks' last scrapes
	api := func() string {
		mu.Lock()
		defer mu.Unlock()
		if len(live) == 0 {
			return "127.0.0.1:1"
		}
		return live[r.IntN(len(live))].api
	}
	start := func(bin string) *worker {
		w := c.worker()
		w.bin = bin
		w.start()
		mu.Lock()
		live = append(live, w)
		mu.Unlock()
		return w
	}
	scrape := func(w *worker) {
		if w.bin != "" {
			return
		}
		for _, reason := range pipeline.DeferReasons {
			if v := metric(w.ops, "cloudcommerce_deliveries_deferred_total", "reason", reason); v > 0 {
				deferred[reason] += v
			}
		}
	}
	stop := func(w *worker) {
		mu.Lock()
		for i, x := range live {
			if x == w {
				live = append(live[:i], live[i+1:]...)
				break
			}
		}
		mu.Unlock()
		scrape(w)
		if err, took, ok := w.proc().Terminate(30 * time.Second); !ok || err != nil {
			r.Errorf("%s did not exit cleanly after SIGTERM (exited %v after %s: %v)", w.name, ok, took, err)
		}
	}

	old1, old2 := start(""), start("")
	run := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	loaded := make(chan *outcome, 1)
	go func() { loaded <- drive(ctx, c, m, plan, api) }()
	// The steps are paced through the load (pacing, not a correctness
	// wait): each leaves a few seconds of two releases side by side.
	step := func(what string, at time.Duration) {
		sleepCtx(ctx, time.Until(run.Add(at)))
		r.Logf("%s at %s", what, time.Since(run).Round(time.Millisecond))
	}
	step("deploy: next release task 1 starts, old task 1 stops", 6*time.Second)
	new1 := start(next)
	stop(old1)
	step("deploy: next release task 2 starts, old task 2 stops", 14*time.Second)
	start(next)
	stop(old2)
	step("rollback: an old task starts, next release task 1 stops", 24*time.Second)
	old3 := start("")
	stop(new1)
	res := <-loaded
	r.Logf("load done after %s: %d orders accepted, %d not", time.Since(run).Round(time.Millisecond), len(res.accepted), res.lost)
	if res.lost > 0 {
		r.Fatalf("%d orders were never accepted", res.lost)
	}
	// A message of the next release that old tasks keep receiving is
	// handed back with a delay that grows by the defer base each time, and
	// the emulator wakes a parked long poll only on a send, not when a
	// delay ends (KUMO.md): on a loaded machine a chain of hand-backs can
	// take longer than the usual two minutes to reach the remaining task
	// of the next release.
	final := settle(c, expect{stock: m.Stock, accepted: res.accepted, cancels: res.cancels, queueWithin: 5 * time.Minute})
	scrape(old3)

	// What the bus carried: who wrote each status of each order.
	events := drainTap(c, tap)
	newer := map[string][]tapped{}
	receipts := 0
	for _, e := range events {
		if e.Type == "OrderReceiptRequested" {
			receipts++
		}
		if e.SchemaVersion == 3 {
			newer[e.OrderID] = append(newer[e.OrderID], e)
		}
	}
	keptByOld := 0
	for id, evs := range newer {
		o, ok := final[id]
		if !ok {
			r.Errorf("order %s: events of the next release (%v) but no stored order", id, evs)
			continue
		}
		doc := c.env.StoredDocument(r, id)
		marks := testkit.Member(r, doc, "written_by_next")
		if marks == "" || marks == "null" {
			r.Errorf("order %s (%s): the next release wrote %v, but the stored document lacks written_by_next:\n%s", id, o.Status, evs, doc)
			continue
		}
		if testkit.Member(r, doc, "schema_version") == "2" {
			keptByOld++
		}
	}
	if len(newer) == 0 || keptByOld == 0 {
		r.Errorf("%d orders written by the next release, %d of them last written by this release: the path where an old task keeps a new member was not exercised", len(newer), keptByOld)
	}
	if receipts == 0 {
		r.Error("the next release published no OrderReceiptRequested: the unknown event type was not exercised")
	}
	total := deferred[pipeline.ReasonNewerSchema] + deferred[pipeline.ReasonUnknownEvent]
	if total <= 0 {
		r.Errorf("the old tasks deferred nothing (%v): the hand-back was not exercised", deferred)
	}
	r.Logf("rolling deploy and rollback: %d orders (%s) in %s; %d events on the bus, %d of the next release (%d orders), %d OrderReceiptRequested; "+
		"%d orders the next release wrote were last written by this release and kept its member; deferred by old tasks: newer_schema %v, unknown_event %v",
		len(final), statusCounts(final), time.Since(begin).Round(time.Second), len(events), countEvents(newer), len(newer), receipts,
		keptByOld, deferred[pipeline.ReasonNewerSchema], deferred[pipeline.ReasonUnknownEvent])
}

func countEvents(m map[string][]tapped) int {
	n := 0
	for _, evs := range m {
		n += len(evs)
	}
	return n
}

// drainTap receives and deletes every event of the tap queue until it is
// empty, and decodes what the proof needs of each.
func drainTap(c *cluster, url string) []tapped {
	c.r.Helper()
	var out []tapped
	empty := 0
	for empty < 3 {
		ctx, cancel := ctxTimeout(30 * time.Second)
		res, err := c.env.SQS.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
		cancel()
		if err != nil {
			c.r.Fatal(err)
		}
		if len(res.Messages) == 0 {
			empty++
			continue
		}
		empty = 0
		var done []sqstypes.DeleteMessageBatchRequestEntry
		for i, msg := range res.Messages {
			var env struct {
				DetailType string `json:"detail-type"`
				Detail     struct {
					OrderID       string          `json:"order_id"`
					Status        pipeline.Status `json:"status"`
					SchemaVersion int             `json:"schema_version"`
				} `json:"detail"`
			}
			if err := json.Unmarshal([]byte(aws.ToString(msg.Body)), &env); err != nil {
				c.r.Fatalf("tap: %v in %s", err, aws.ToString(msg.Body))
			}
			out = append(out, tapped{Type: env.DetailType, OrderID: env.Detail.OrderID, Status: env.Detail.Status, SchemaVersion: env.Detail.SchemaVersion})
			done = append(done, sqstypes.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: msg.ReceiptHandle})
		}
		ctx, cancel = ctxTimeout(30 * time.Second)
		_, err = c.env.SQS.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(url), Entries: done})
		cancel()
		if err != nil {
			c.r.Fatal(err)
		}
	}
	return out
}
