package reliability

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cloudcommerce/cloudcommerce/internal/dev/testkit"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
	"github.com/cloudcommerce/cloudcommerce/internal/sandbox"
)

// TestGracefulShutdownUnderLoad sends SIGTERM to a worker busy with orders
// (shipping handlers in flight behind a 1.5 s carrier) and proves the
// drain by its effects, not its timing:
//   - every shipping handler started before SIGTERM completes: the
//     worker starts every message it receives (it reserves a pool slot
//     before each receive) unless it hands it back, so by the time it has
//     exited it must have shipped at least as many orders as it had
//     received shipping messages just before SIGTERM, less any of those it
//     says it handed back;
//   - /readyz answers 503 at least once between SIGTERM and the exit, and
//     never 200 after the first 503;
//   - the worker exits 0 within its shutdown timeout;
//   - messages received but not started (a receive in flight at SIGTERM
//     returns them) are visible in their queue at once: read from the
//     queues right after the exit, each stage queue holds at least as many
//     messages received before as the worker says it handed back, and no
//     message is in flight;
//   - a second worker finishes the rest with zero duplicate or conflict
//     outcomes: nothing the first completed comes back.
func TestGracefulShutdownUnderLoad(t *testing.T) {
	t.Parallel()
	r := newRT(t)
	const shutdownTimeout = 10 * time.Second
	c := newCluster(r, "CLOUDCOMMERCE_CARRIER_DELAY=1500ms", "CLOUDCOMMERCE_SHIPPING_CONCURRENCY=32", "CLOUDCOMMERCE_SWEEP_INTERVAL=off")
	// The load goes straight onto the inventory queue, all of it before
	// SIGTERM: the inventory stage then goes quiet while the shipping stage
	// still works through its backlog behind the slow carrier. A quiet
	// inventory stage with every pool slot free has its poller parked in a
	// long poll, so the deliveries sent right after SIGTERM are received by
	// a receive in flight and must be handed back unstarted: the hand-back
	// is exercised by construction, not by luck of timing.
	const load = 300
	m := mix{Orders: load, Stock: map[string]int64{"SKU-T": 1000}}
	c.setStock(m.Stock)
	w1 := c.worker("CLOUDCOMMERCE_RECEIVE_LINGER=0")
	w1.start()
	begin := time.Now()
	accepted := map[string]*planned{}
	tag := fmt.Sprintf("%x", r.IntN(1<<30))
	placed := func(prefix string, i int) string {
		o, err := pipeline.NewOrder(fmt.Sprintf("%s-%s-%d", prefix, tag, i), testkit.Order(sandbox.TokenVisa, "SKU-T"), time.Now())
		if err != nil {
			r.Fatal(err)
		}
		accepted[o.ID] = &planned{id: o.ID}
		return testkit.Envelope(r, pipeline.Event{Type: pipeline.EventOrderPlaced, Order: o})
	}
	for i := range load {
		c.send(pipeline.StageInventory, placed("load", i))
	}
	ship, inv := string(pipeline.StageShipping), string(pipeline.StageInventory)
	r.eventually("every order reserved, the inventory stage quiet, shipping handlers in flight", 2*time.Minute, func() bool {
		return metric(w1.ops, "cloudcommerce_stage_messages_received_total", "stage", inv) >= load &&
			metric(w1.ops, "cloudcommerce_stage_in_flight_messages", "stage", inv) == 0 &&
			metric(w1.ops, "cloudcommerce_stage_in_flight_messages", "stage", ship) > 0 &&
			metric(w1.ops, "cloudcommerce_order_transitions_total", "to", "SHIPPED") >= 10
	})

	p := w1.proc()
	// Watch /readyz from before SIGTERM until the exit.
	var termSent atomic.Bool
	var afterTerm []int // codes answered after SIGTERM was sent
	watch := make(chan struct{})
	go func() {
		defer close(watch)
		for !p.Exited() {
			after := termSent.Load()
			code, _ := httpGet("http://" + w1.ops + "/readyz")
			if after && code != 0 {
				afterTerm = append(afterTerm, code)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()

	// What is in flight right now: one scrape, then SIGTERM at once.
	code, body := httpGet("http://" + w1.ops + "/metrics")
	if code != http.StatusOK {
		r.Fatalf("/metrics = %d before SIGTERM", code)
	}
	inFlight := sumMetric(string(body), "cloudcommerce_stage_in_flight_messages", "stage", ship)
	shippedBefore := sumMetric(string(body), "cloudcommerce_order_transitions_total", "to", "SHIPPED")
	receivedBefore := sumMetric(string(body), "cloudcommerce_stage_messages_received_total", "stage", ship)
	if inFlight < 1 {
		r.Fatalf("no shipping handler in flight at SIGTERM (%v): the drain would not be tested", inFlight)
	}
	termSent.Store(true)
	r.Logf("SIGTERM after %s with %v shipping handlers in flight and %v orders shipped", time.Since(begin).Round(time.Millisecond), inFlight, shippedBefore)
	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		r.Fatal(err)
	}

	// Now new OrderPlaced deliveries arrive on the quiet inventory queue,
	// where the parked long poll takes them after receiving has stopped.
	injecting := make(chan struct{})
	go func() {
		defer close(injecting)
		for i := 0; i < 20 && !p.Exited(); i++ {
			if err := c.trySend(pipeline.StageInventory, placed("drain", i)); err != nil {
				r.Errorf("send OrderPlaced while the worker drains: %v", err)
				return
			}
		}
	}()

	exitErr, took, exited := p.Wait(shutdownTimeout + 10*time.Second)
	<-watch
	<-injecting
	if !exited {
		r.Fatalf("worker did not exit within %s of SIGTERM", shutdownTimeout+10*time.Second)
	}

	// Read the queues first: "at once" means right after the exit.
	handedBack := loggedCounts(r, p, "handed back unstarted messages", "messages")
	total := 0
	for _, st := range pipeline.Stages {
		stranded, again := c.inFlightAfterExit(c.env.QueueURL(st, false))
		r.Logf("%s queue right after the exit: %d messages received before are visible again (the worker handed back %d), %d stranded in flight",
			st, again, handedBack[string(st)], stranded)
		if stranded != 0 {
			r.Errorf("%s queue has %d messages in flight after the worker exited: they return only after the visibility timeout", st, stranded)
		}
		if again < handedBack[string(st)] {
			r.Errorf("%s: the worker handed back %d unstarted messages but only %d received messages are visible again", st, handedBack[string(st)], again)
		}
		total += handedBack[string(st)]
	}
	if total == 0 {
		r.Errorf("the worker handed back no unstarted message: the hand-back was not exercised")
	}

	// Exit 0 is the worker's own statement that in-flight work finished
	// within CLOUDCOMMERCE_SHUTDOWN_TIMEOUT (past it, it cancels handlers
	// and exits non-zero); the wall time is logged, not asserted.
	if exitErr != nil {
		r.Errorf("worker exited with %v after SIGTERM, want 0", exitErr)
	}
	r.Logf("worker exited after %s; /readyz after SIGTERM: %v", took.Round(time.Millisecond), afterTerm)
	first503 := -1
	for i, code := range afterTerm {
		if code == http.StatusServiceUnavailable && first503 < 0 {
			first503 = i
		}
		if code == http.StatusOK && first503 >= 0 {
			r.Errorf("/readyz answered 200 after answering 503 while draining (answers %v)", afterTerm)
			break
		}
	}
	if first503 < 0 {
		r.Errorf("/readyz never answered 503 between SIGTERM and the exit (%d answers: %v)", len(afterTerm), afterTerm)
	}

	// The drain: every handler in flight at SIGTERM finished its work.
	orders, err := c.orders()
	if err != nil {
		r.Fatal(err)
	}
	shipped := 0
	for _, o := range orders {
		if o.Status == pipeline.StatusShipped {
			shipped++
		}
	}
	r.Logf("shipping: %v messages received and %v orders shipped before SIGTERM (%v in flight), %d orders shipped at the exit, %d messages handed back",
		receivedBefore, shippedBefore, inFlight, shipped, handedBack[ship])
	if want := receivedBefore - float64(handedBack[ship]); float64(shipped) < want || receivedBefore <= shippedBefore {
		r.Errorf("%d orders shipped by the exit, want at least %v: %v shipping messages received before SIGTERM (%v of them still in flight), %d handed back: handlers were abandoned",
			shipped, want, receivedBefore, inFlight, handedBack[ship])
	}

	r.Logf("SIGTERM and exit done %s after the start", time.Since(begin).Round(time.Millisecond))
	w2 := c.worker()
	w2.start()
	settle(c, expect{stock: m.Stock, accepted: accepted})
	for _, outcome := range []string{"duplicate", "conflict"} {
		if v := metric(w2.ops, "cloudcommerce_stage_messages_handled_total", "outcome", outcome); v != 0 {
			r.Errorf("the second worker handled %v deliveries as %s: a message completed before SIGTERM came back", v, outcome)
		}
	}
}

// loggedCounts sums an integer field of the process's JSON log lines with
// the given message, by their stage field.
func loggedCounts(r *rt, p *proc, msg, field string) map[string]int {
	r.Helper()
	f, err := os.Open(p.LogPath())
	if err != nil {
		r.Fatal(err)
	}
	defer f.Close()
	out := map[string]int{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var fields map[string]any
		if json.Unmarshal(sc.Bytes(), &fields) != nil || fields["msg"] != msg {
			continue
		}
		n, ok := fields[field].(float64)
		stage, _ := fields["stage"].(string)
		if !ok {
			r.Errorf("log line %q has no number %q: %s", msg, field, sc.Bytes())
			continue
		}
		out[stage] += int(n)
	}
	return out
}
