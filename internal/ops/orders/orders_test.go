package orders_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cloudcommerce/cloudcommerce/internal/awsconf"
	"github.com/cloudcommerce/cloudcommerce/internal/dev/awsfault"
	"github.com/cloudcommerce/cloudcommerce/internal/dev/emulator"
	"github.com/cloudcommerce/cloudcommerce/internal/dev/testkit"
	"github.com/cloudcommerce/cloudcommerce/internal/ops/orders"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
	"github.com/cloudcommerce/cloudcommerce/internal/store"
)

// The commands read orders the store wrote to a topology's tables on the
// in-process emulator (or the endpoint in AWS_ENDPOINT_URL).
func TestMain(m *testing.M) { emulator.RunTests(m) }

var t0 = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

// place creates an order, placed at at, and moves it through path, one
// conditional write per step 50ms apart, as the stages would.
func place(t *testing.T, st *store.Store, id, customer string, at time.Time, edit func(*pipeline.Order), path ...pipeline.Status) pipeline.Order {
	t.Helper()
	req := testkit.Order("tok_visa", "SKU-A", "SKU-B")
	req.Customer.ID = customer
	o, err := pipeline.NewOrder(id, req, at)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Create(context.Background(), o, "", ""); err != nil {
		t.Fatal(err)
	}
	for _, to := range path {
		n := o
		n.Status, n.UpdatedAt = to, o.UpdatedAt.Add(50*time.Millisecond)
		n.History = map[pipeline.Status]time.Time{to: n.UpdatedAt}
		for k, v := range o.History {
			n.History[k] = v
		}
		if to.Final() && edit != nil {
			edit(&n)
		}
		if err := st.Apply(context.Background(), pipeline.Change{Order: n, From: o.Status}); err != nil {
			t.Fatalf("order %s %s→%s: %v", id, o.Status, to, err)
		}
		o = n
	}
	return o
}

func TestShowPrintsTheOrderAsStored(t *testing.T) {
	t.Parallel()
	e := testkit.Provision(t)
	st := e.Store()
	id := e.Prefix + "-shipped"
	o := place(t, st, id, "cust-show", t0, func(o *pipeline.Order) { o.TrackingNumber, o.Carrier = "TRK-9", "SandboxPost" },
		pipeline.StatusReserved, pipeline.StatusPaid, pipeline.StatusShipped)
	var out bytes.Buffer
	c := orders.Command{Store: st, Out: &out}
	if err := c.Show(context.Background(), id, false); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, want := range []string{"order     " + id, "status    SHIPPED", "customer  cust-show", "tracking  TRK-9 (SandboxPost)",
		"SKU-A", "SKU-B", "+150ms", "OrderConfirmed", "OrderShipped", "total     " + pipeline.FormatMoney(o.Total)} {
		if !strings.Contains(text, want) {
			t.Errorf("show text lacks %q:\n%s", want, text)
		}
	}
	out.Reset()
	if err := c.Show(context.Background(), id, true); err != nil {
		t.Fatal(err)
	}
	var d orders.Detail
	if err := json.Unmarshal(out.Bytes(), &d); err != nil {
		t.Fatalf("show --json: %v\n%s", err, out.String())
	}
	var events []string
	for _, n := range d.Notifications {
		events = append(events, n.Event)
	}
	if d.OrderID != id || d.Status != pipeline.StatusShipped || d.TrackingNumber != "TRK-9" || !slices.Equal(events, []string{"OrderConfirmed", "OrderShipped"}) {
		t.Errorf("show --json = %+v, notifications %v", d, events)
	}
}

// An unknown or malformed id is ErrUnknownOrder; a store that fails is
// another error, never "no such order".
func TestShowTellsAMissingOrderFromAFailedRead(t *testing.T) {
	t.Parallel()
	e := testkit.Provision(t)
	var out bytes.Buffer
	c := orders.Command{Store: e.Store(), Out: &out}
	for _, id := range []string{e.Prefix + "-none", "bad id!", strings.Repeat("x", 129)} {
		if err := c.Show(context.Background(), id, false); !errors.Is(err, orders.ErrUnknownOrder) {
			t.Errorf("show %q = %v, want ErrUnknownOrder", id, err)
		}
	}
	place(t, e.Store(), e.Prefix+"-there", "cust-x", t0, nil)
	proxy, cfg := testkit.FaultEndpoint(t)
	proxy.Add(&awsfault.Rule{Service: "DynamoDB", Operation: "GetItem", Response: awsfault.DynamoDBAccessDenied})
	n := e.Prov.Names.Tables
	denied := orders.Command{Store: store.New(awsconf.DynamoDB(cfg), store.Tables{Orders: n["orders"], Inventory: n["inventory"], Idempotency: n["idempotency"]}), Out: &out}
	err := denied.Show(context.Background(), e.Prefix+"-there", false)
	if err == nil || errors.Is(err, orders.ErrUnknownOrder) || !strings.Contains(err.Error(), "AccessDenied") {
		t.Errorf("show with reads denied = %v, want the AccessDenied error", err)
	}
}

// A listing longer than one store page reads page after page: the newest
// first, each order once, as many as asked.
func TestListReadsAcrossPages(t *testing.T) {
	t.Parallel()
	e := testkit.Provision(t)
	st := e.Store()
	customer := e.Prefix + "-many"
	total := store.MaxPage + 20
	var want []string
	for i := 0; i < total; i++ {
		id := fmt.Sprintf("%s-%03d", e.Prefix, i)
		place(t, st, id, customer, t0.Add(time.Duration(i)*time.Minute), nil)
		want = append([]string{id}, want...)
	}
	var out bytes.Buffer
	c := orders.Command{Store: st, Out: &out}
	limit := store.MaxPage + 10
	if err := c.ListByCustomer(context.Background(), customer, limit, true); err != nil {
		t.Fatal(err)
	}
	var rows []store.OrderRow
	if err := json.Unmarshal(out.Bytes(), &rows); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rows {
		got = append(got, r.ID)
	}
	if !slices.Equal(got, want[:limit]) {
		t.Errorf("list --customer --limit %d = %d orders %v…, want the %d newest in order", limit, len(got), got[:min(3, len(got))], limit)
	}
	for _, bad := range []int{0, orders.MaxList + 1} {
		if err := c.ListByCustomer(context.Background(), customer, bad, false); err == nil || !strings.Contains(err.Error(), "--limit") {
			t.Errorf("--limit %d: %v, want an error naming --limit", bad, err)
		}
	}
	if err := c.ListByCustomer(context.Background(), "no spaces allowed", 5, false); err == nil || !strings.Contains(err.Error(), "--customer") {
		t.Errorf("bad customer id: %v, want an error naming --customer", err)
	}
}

// Listing by status shows the orders in that status, most recently
// changed first, as a table; an unknown status names the valid ones.
func TestListByStatusShowsOrdersInThatStatus(t *testing.T) {
	t.Parallel()
	e := testkit.Provision(t)
	st := e.Store()
	reason := func(o *pipeline.Order) { o.Reason = "out_of_stock: SKU-B" }
	r1 := place(t, st, e.Prefix+"-r1", "c1", t0, reason, pipeline.StatusRejected)
	r2 := place(t, st, e.Prefix+"-r2", "c2", t0.Add(time.Hour), reason, pipeline.StatusRejected)
	place(t, st, e.Prefix+"-p1", "c3", t0.Add(2*time.Hour), nil)
	var out bytes.Buffer
	c := orders.Command{Store: st, Out: &out}
	if err := c.ListByStatus(context.Background(), pipeline.StatusRejected, orders.MaxList, false); err != nil {
		t.Fatal(err)
	}
	// Other tests' orders share no table with these (each has its own
	// prefix), so the listing is exactly this test's rejected orders.
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "ORDER") || !strings.HasPrefix(lines[1], r2.ID+" ") || !strings.HasPrefix(lines[2], r1.ID+" ") {
		t.Errorf("list --status REJECTED:\n%s\nwant a header, then %s, then %s", out.String(), r2.ID, r1.ID)
	}
	out.Reset()
	if err := c.ListByStatus(context.Background(), pipeline.StatusShipped, 5, false); err != nil || strings.TrimSpace(out.String()) != "no orders" {
		t.Errorf("list --status SHIPPED = %q, %v; want no orders", out.String(), err)
	}
	if err := c.ListByStatus(context.Background(), "LOST", 5, false); err == nil || !strings.Contains(err.Error(), "SHIPPED") {
		t.Errorf("unknown status: %v, want an error listing the valid statuses", err)
	}
}
