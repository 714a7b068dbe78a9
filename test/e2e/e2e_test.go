// Package e2e drives the built worker binary the way a user runs it: the
// emulator (in this test process, or whatever AWS_ENDPOINT_URL names),
// `worker provision` and `worker run` as separate processes, orders placed
// through EventBridge PutEvents and through the intake API.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/cloudcommerce/cloudcommerce/internal/bus"
	"github.com/cloudcommerce/cloudcommerce/internal/dev/emulator"
	"github.com/cloudcommerce/cloudcommerce/internal/dev/testkit"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
)

func TestMain(m *testing.M) { emulator.RunTests(m) }

func workerBinary(t *testing.T) string { return testkit.Binary(t, "../../cmd/worker") }

func env(prefix string, extra ...string) []string {
	e := append(os.Environ(), "CLOUDCOMMERCE_PREFIX="+prefix, "CLOUDCOMMERCE_LOG_LEVEL=info")
	return append(e, extra...)
}

func TestWorkerBinaryDoesNotLinkTheEmulator(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "version", "-m", workerBinary(t)).CombinedOutput()
	if err != nil {
		t.Fatalf("go version -m: %v\n%s", err, out)
	}
	if strings.Contains(string(out), "kumo") {
		t.Fatalf("the production worker links the emulator:\n%s", out)
	}
	if !strings.Contains(string(out), "aws-sdk-go-v2/service/sqs") {
		t.Fatalf("unexpected module list:\n%s", out)
	}
}

func TestProvisionIsIdempotent(t *testing.T) {
	t.Parallel()
	bin, prefix := workerBinary(t), testkit.Prefix()
	for i, want := range []string{"created", "up to date"} {
		cmd := exec.Command(bin, "provision")
		cmd.Env = env(prefix)
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), want) {
			t.Fatalf("provision run %d: %v\n%s\nwant %q", i+1, err, out, want)
		}
	}
}

func TestBadConfigurationIsReportedAllAtOnce(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(workerBinary(t), "run")
	cmd.Env = env(testkit.Prefix(), "CLOUDCOMMERCE_WAIT_TIME=forever", "CLOUDCOMMERCE_PAYMENT_CONCURRENCY=0", "CLOUDCOMMERCE_OPS_ADDR=nohost")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatal("worker started with a bad configuration")
	}
	for _, name := range []string{"CLOUDCOMMERCE_WAIT_TIME", "CLOUDCOMMERCE_PAYMENT_CONCURRENCY", "CLOUDCOMMERCE_OPS_ADDR"} {
		if !strings.Contains(string(out), name) {
			t.Errorf("error output does not name %s:\n%s", name, out)
		}
	}
}

func TestOrdersFlowThroughTheBuiltWorker(t *testing.T) {
	t.Parallel()
	bin := workerBinary(t)
	e := testkit.Provision(t)
	ctx := context.Background()
	st := e.Store()
	for sku, n := range map[string]int64{"WIDGET": 100, "SCARCE": 0} {
		if err := st.SetStock(ctx, sku, n); err != nil {
			t.Fatal(err)
		}
	}
	inbox := e.SubscribeQueue(t)
	ops, api := testkit.FreeAddr(t), testkit.FreeAddr(t)
	w := testkit.Start(t, bin, env(e.Prefix, "CLOUDCOMMERCE_OPS_ADDR="+ops, "CLOUDCOMMERCE_INTAKE_ADDR="+api,
		"CLOUDCOMMERCE_WAIT_TIME=1s", "CLOUDCOMMERCE_SHUTDOWN_TIMEOUT=10s", "CLOUDCOMMERCE_HANDLER_TIMEOUT=5s"), "run")
	testkit.Eventually(t, "/readyz", 30*time.Second, func() bool {
		resp, err := http.Get("http://" + ops + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	hc := exec.Command(bin, "healthcheck")
	hc.Env = env(e.Prefix, "CLOUDCOMMERCE_OPS_ADDR="+ops)
	if out, err := hc.CombinedOutput(); err != nil {
		t.Fatalf("worker healthcheck: %v\n%s", err, out)
	}

	// 1. Straight onto the bus, as any producer may.
	direct, err := pipeline.NewOrder("bus-order-1", testkit.Order("tok_visa", "WIDGET"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	entry, err := bus.Entry(e.Prov.Names.Bus, pipeline.Event{Type: pipeline.EventOrderPlaced, Order: direct})
	if err != nil {
		t.Fatal(err)
	}
	out, err := e.EB.PutEvents(ctx, &eventbridge.PutEventsInput{Entries: []ebtypes.PutEventsRequestEntry{entry}})
	if err != nil || out.FailedEntryCount != 0 {
		t.Fatalf("PutEvents: %v %+v", err, out)
	}
	// 2. Through the intake API: a good card, a declined card, a sold-out SKU.
	place := func(token, sku string) string {
		body, _ := json.Marshal(testkit.Order(token, sku))
		resp, err := http.Post("http://"+api+"/v1/orders", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var r struct {
			OrderID string `json:"order_id"`
			Status  string `json:"status"`
		}
		if resp.StatusCode != 202 || json.Unmarshal(b, &r) != nil || r.Status != "PLACED" {
			t.Fatalf("POST /v1/orders = %d %s", resp.StatusCode, b)
		}
		return r.OrderID
	}
	good, declined, soldOut := place("tok_visa", "WIDGET"), place("tok_chargeDeclined", "WIDGET"), place("tok_visa", "SCARCE")
	want := map[string]pipeline.Status{"bus-order-1": pipeline.StatusShipped, good: pipeline.StatusShipped, declined: pipeline.StatusPaymentFailed, soldOut: pipeline.StatusRejected}
	for id, status := range want {
		testkit.Eventually(t, id+" to be "+string(status), 60*time.Second, func() bool {
			o, err := st.Get(ctx, id)
			return err == nil && o.Status == status
		})
	}
	shipped, _ := st.Get(ctx, good)
	if shipped.TrackingNumber == "" || len(shipped.Timeline()) != 4 {
		t.Fatalf("shipped order = %+v", shipped)
	}
	if n, _ := st.Stock(ctx, "WIDGET"); n != 98 {
		t.Fatalf("WIDGET stock = %d, want 98 (two shipped, the declined one released)", n)
	}
	// Notifications: confirmed + shipped for each shipped order, one each
	// for the declined and rejected ones.
	notes := testkit.Notifications(t, e.Receive(t, inbox, 6, 30*time.Second))
	got := map[string]bool{}
	for _, n := range notes {
		got[n.Attr("order_id")+" "+n.Attr("event")] = true
		if n.Attr("channel") == "" || n.Subject == "" || n.Message == "" {
			t.Errorf("notification lacks channel, subject or text: %+v", n)
		}
	}
	for _, k := range []string{"bus-order-1 OrderConfirmed", "bus-order-1 OrderShipped", good + " OrderConfirmed", good + " OrderShipped", declined + " PaymentFailed", soldOut + " OrderRejected"} {
		if !got[k] {
			t.Errorf("missing notification %s (got %v)", k, got)
		}
	}

	// Finding them again: the customer's orders through the API, one
	// order and the lists from the command line.
	resp, err := http.Get("http://" + api + "/v1/orders?customer_id=cust-1&limit=100")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var list struct {
		Orders []struct {
			OrderID string          `json:"order_id"`
			Status  pipeline.Status `json:"status"`
		} `json:"orders"`
		NextCursor *string `json:"next_cursor"`
	}
	if resp.StatusCode != 200 || json.Unmarshal(b, &list) != nil || len(list.Orders) != len(want) || list.NextCursor != nil {
		t.Fatalf("GET /v1/orders?customer_id=cust-1 = %d %s, want the %d orders on one page", resp.StatusCode, b, len(want))
	}
	for _, o := range list.Orders {
		if o.Status != want[o.OrderID] {
			t.Errorf("GET /v1/orders lists %s as %s, want %s", o.OrderID, o.Status, want[o.OrderID])
		}
	}
	cli := func(wantExit int, args ...string) string {
		cmd := exec.Command(bin, args...)
		cmd.Env = env(e.Prefix)
		out, err := cmd.CombinedOutput()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != wantExit {
			t.Fatalf("worker %s: exit %d, want %d\n%s", strings.Join(args, " "), code, wantExit, out)
		}
		return string(out)
	}
	out2 := cli(0, "orders", "show", good)
	for _, w := range []string{"SHIPPED", shipped.TrackingNumber, "OrderConfirmed", "OrderShipped", "WIDGET"} {
		if !strings.Contains(out2, w) {
			t.Errorf("worker orders show %s lacks %q:\n%s", good, w, out2)
		}
	}
	if out2 := cli(0, "orders", "list", "--status", "SHIPPED", "--json"); !strings.Contains(out2, `"order_id": "`+good+`"`) || strings.Contains(out2, declined) {
		t.Errorf("worker orders list --status SHIPPED:\n%s\nwant %s and not %s", out2, good, declined)
	}
	if out2 := cli(0, "orders", "list", "--customer", "cust-1"); !strings.Contains(out2, soldOut) || !strings.Contains(out2, "REJECTED") {
		t.Errorf("worker orders list --customer cust-1 lacks the rejected order %s:\n%s", soldOut, out2)
	}
	if out2 := cli(1, "orders", "show", "no-such-order"); !strings.Contains(out2, "no such order") {
		t.Errorf("worker orders show no-such-order: %s", out2)
	}

	// SIGTERM: drain and exit 0 within the shutdown timeout.
	if err := w.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w.Done():
		if err := w.Err(); err != nil {
			t.Fatalf("worker exited with %v after SIGTERM", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("worker did not exit within the drain deadline")
	}
}

func TestDeadLettersCanBeListedAndRedriven(t *testing.T) {
	t.Parallel()
	bin := workerBinary(t)
	e := testkit.Provision(t)
	ctx := context.Background()
	if err := e.Store().SetStock(ctx, "WIDGET", 10); err != nil {
		t.Fatal(err)
	}
	// An order whose message exhausted its receives earlier (say, during
	// an outage) sits in the inventory DLQ.
	o, err := pipeline.NewOrder("redrive-me", testkit.Order("tok_visa", "WIDGET"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	dlqURL := e.QueueURL(pipeline.StageInventory, true)
	if _, err := e.SQS.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &dlqURL, MessageBody: aws.String(testkit.Envelope(t, pipeline.Event{Type: pipeline.EventOrderPlaced, Order: o}))}); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) string {
		cmd := exec.Command(bin, args...)
		cmd.Env = env(e.Prefix)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("worker %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	for i := 0; i < 2; i++ { // listing twice shows it twice: listing does not consume
		var list []struct {
			OrderID   string `json:"order_id"`
			EventType string `json:"event_type"`
			Reason    string `json:"reason"`
		}
		out := run("dlq", "list", "--stage", "inventory", "--json")
		if err := json.Unmarshal([]byte(out), &list); err != nil || len(list) != 1 || list[0].OrderID != "redrive-me" || list[0].EventType != "OrderPlaced" || list[0].Reason == "" {
			t.Fatalf("dlq list #%d = %s (%v)", i+1, out, err)
		}
	}
	if out := run("dlq", "redrive", "--stage", "inventory"); !strings.Contains(out, "moved 1 ") {
		t.Fatalf("dlq redrive = %s", out)
	}
	if out := run("dlq", "list", "--stage", "inventory"); !strings.Contains(out, "is empty") {
		t.Fatalf("DLQ not empty after redrive: %s", out)
	}
	testkit.Start(t, bin, env(e.Prefix, "CLOUDCOMMERCE_OPS_ADDR="+testkit.FreeAddr(t), "CLOUDCOMMERCE_WAIT_TIME=1s"), "run")
	testkit.Eventually(t, "the redriven order to ship", 60*time.Second, func() bool {
		got, err := e.Store().Get(ctx, "redrive-me")
		return err == nil && got.Status == pipeline.StatusShipped
	})
	cmd := exec.Command(bin, "dlq", "list", "--stage", "billing")
	cmd.Env = env(e.Prefix)
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "inventory, payment or shipping") {
		t.Fatalf("bad stage accepted: %s", out)
	}
}
