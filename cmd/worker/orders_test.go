package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cloudcommerce/cloudcommerce/internal/dev/emulator"
	"github.com/cloudcommerce/cloudcommerce/internal/dev/testkit"
	"github.com/cloudcommerce/cloudcommerce/internal/ops/orders"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
	"github.com/cloudcommerce/cloudcommerce/internal/store"
)

// The orders commands read tables on the in-process emulator (or the
// endpoint in AWS_ENDPOINT_URL).
func TestMain(m *testing.M) { emulator.RunTests(m) }

// ordersEnv is a provisioned topology and the environment a worker
// process on it would have.
type ordersEnv struct {
	st     *store.Store
	getenv func(string) string
}

func newOrdersEnv(t *testing.T) ordersEnv {
	t.Helper()
	e := testkit.Provision(t)
	vars := map[string]string{"CLOUDCOMMERCE_PREFIX": e.Prefix}
	for _, k := range []string{"AWS_ENDPOINT_URL", "AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} {
		vars[k] = os.Getenv(k)
	}
	return ordersEnv{st: e.Store(), getenv: func(k string) string { return vars[k] }}
}

func (o ordersEnv) run(args ...string) (string, error) {
	var out, errOut bytes.Buffer
	err := run(context.Background(), args, env{stdout: &out, stderr: &errOut, getenv: o.getenv})
	return out.String(), err
}

// advance records the order's moves through statuses, one conditional
// write each, as the stages would, a few milliseconds apart.
func advance(t *testing.T, st *store.Store, o pipeline.Order, edit func(*pipeline.Order), path ...pipeline.Status) pipeline.Order {
	t.Helper()
	for _, to := range path {
		n := o
		n.Status, n.UpdatedAt = to, o.UpdatedAt.Add(40*time.Millisecond)
		n.History = map[pipeline.Status]time.Time{to: n.UpdatedAt}
		for k, v := range o.History {
			n.History[k] = v
		}
		if to.Final() && edit != nil {
			edit(&n)
		}
		if err := st.Apply(context.Background(), pipeline.Change{Order: n, From: o.Status}); err != nil {
			t.Fatalf("order %s %s→%s: %v", o.ID, o.Status, to, err)
		}
		o = n
	}
	return o
}

func placed(t *testing.T, st *store.Store, id, customer string, at time.Time) pipeline.Order {
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
	return o
}

// One order in each final status, and what `orders show` must say of it.
func TestOrdersShowEachFinalStatus(t *testing.T) {
	t.Parallel()
	e := newOrdersEnv(t)
	t0 := time.Date(2026, 11, 29, 9, 0, 0, 0, time.UTC)
	P, R, Y := pipeline.StatusPlaced, pipeline.StatusReserved, pipeline.StatusPaid
	cases := []struct {
		status  pipeline.Status
		path    []pipeline.Status
		edit    func(*pipeline.Order)
		text    []string // lines the text output must have
		notices []string // events, in order
	}{
		{pipeline.StatusShipped, []pipeline.Status{R, Y, pipeline.StatusShipped},
			func(o *pipeline.Order) { o.TrackingNumber, o.Carrier, o.ChargeID = "TRK-123", "sandbox-post", "ch_1" },
			[]string{"status SHIPPED", "tracking TRK-123 (sandbox-post)"}, []string{"OrderConfirmed", "OrderShipped"}},
		{pipeline.StatusRejected, []pipeline.Status{pipeline.StatusRejected},
			func(o *pipeline.Order) { o.Reason = "out_of_stock: SKU-B" },
			[]string{"status REJECTED", "reason out_of_stock: SKU-B"}, []string{"OrderRejected"}},
		{pipeline.StatusPaymentFailed, []pipeline.Status{R, pipeline.StatusPaymentFailed},
			func(o *pipeline.Order) { o.Reason = "card_declined" },
			[]string{"status PAYMENT_FAILED", "reason card_declined"}, []string{"PaymentFailed"}},
		{pipeline.StatusCancelled, []pipeline.Status{R, Y, pipeline.StatusCancelled},
			func(o *pipeline.Order) { o.Reason, o.ChargeID, o.RefundID = "customer_request", "ch_2", "re_2" },
			[]string{"status CANCELLED", "reason customer_request", "refunded yes"}, []string{"OrderConfirmed", "OrderCancelled"}},
	}
	for i, c := range cases {
		o := placed(t, e.st, "show-"+strings.ToLower(string(c.status)), "c-show", t0.Add(time.Duration(i)*time.Minute))
		final := advance(t, e.st, o, c.edit, c.path...)
		out, err := e.run("orders", "show", o.ID)
		if err != nil {
			t.Fatalf("orders show %s: %v", o.ID, err)
		}
		out = squeeze(out)
		want := append([]string{"order " + o.ID + "\n", "customer c-show\n", "total " + pipeline.FormatMoney(o.Total) + "\n",
			"SKU-A 1 × 12.50 USD 12.50 USD\n", "SKU-B 1 × 12.50 USD 12.50 USD\n", "\ntimeline\n", "\nnotifications\n"}, c.text...)
		for _, s := range append([]pipeline.Status{P}, c.path...) {
			want = append(want, "\n"+stampOf(final.History[s])+" +"+final.History[s].Sub(o.PlacedAt).String()+" "+string(s)+"\n")
		}
		for _, ev := range c.notices {
			want = append(want, ev+" email,sms ")
		}
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("orders show %s (%s) lacks %q:\n%s", o.ID, c.status, w, out)
			}
		}
		if c.status != pipeline.StatusShipped && strings.Contains(out, "tracking") {
			t.Errorf("orders show %s (%s) shows a tracking number:\n%s", o.ID, c.status, out)
		}

		out, err = e.run("orders", "show", "--json", o.ID)
		if err != nil {
			t.Fatal(err)
		}
		var d orders.Detail
		if err := json.Unmarshal([]byte(out), &d); err != nil {
			t.Fatalf("orders show --json is not JSON: %v\n%s", err, out)
		}
		var events []string
		for _, n := range d.Notifications {
			events = append(events, n.Event)
			if !n.At.Equal(final.History[n.Status]) || len(n.Channels) == 0 || n.Subject == "" {
				t.Errorf("notice %+v: want the time of its transition %s, channels and a subject", n, n.Status)
			}
		}
		if d.Status != c.status || d.OrderID != o.ID || d.Total != o.Total || len(d.Items) != 2 || len(d.History) != len(c.path)+1 ||
			d.TrackingNumber != final.TrackingNumber || d.Reason != final.Reason || !slices.Equal(events, c.notices) {
			t.Errorf("orders show --json %s = %+v\nwant status %s, 2 items, %d history entries, notifications %v", o.ID, d, c.status, len(c.path)+1, c.notices)
		}
	}
}

// squeeze collapses each line's runs of spaces (the table padding) to one.
func squeeze(out string) string {
	lines := strings.Split(out, "\n")
	for i, l := range lines {
		lines[i] = strings.Join(strings.Fields(l), " ")
	}
	return strings.Join(lines, "\n")
}

func stampOf(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

func TestOrdersListByStatusAndByCustomer(t *testing.T) {
	t.Parallel()
	e := newOrdersEnv(t)
	t0 := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	var mine []string
	for i := range 5 {
		o := placed(t, e.st, "list-"+string(rune('a'+i)), "c-list", t0.Add(time.Duration(i)*time.Minute))
		mine = append(mine, o.ID)
		if i%2 == 0 {
			advance(t, e.st, o, nil, pipeline.StatusReserved, pipeline.StatusPaid, pipeline.StatusShipped)
		}
	}
	other := placed(t, e.st, "list-other", "c-other", t0.Add(time.Hour))
	advance(t, e.st, other, nil, pipeline.StatusReserved, pipeline.StatusPaid, pipeline.StatusShipped)

	out, err := e.run("orders", "list", "--customer", "c-list", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var rows []store.OrderRow
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	var got []string
	for _, r := range rows {
		got = append(got, r.ID)
		wantStatus := pipeline.StatusPlaced
		if idx := slices.Index(mine, r.ID); idx%2 == 0 {
			wantStatus = pipeline.StatusShipped
		}
		if r.Status != wantStatus || r.CustomerID != "c-list" || r.Total.Amount == 0 {
			t.Errorf("row %+v: want status %s, customer c-list and a total", r, wantStatus)
		}
	}
	want := slices.Clone(mine)
	slices.Reverse(want)
	if !slices.Equal(got, want) {
		t.Errorf("orders list --customer c-list = %v, want newest placed first %v", got, want)
	}

	// --limit across the store's pages: 3 of 5.
	out, err = e.run("orders", "list", "--customer", "c-list", "--limit", "3")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "ORDER") || !strings.HasPrefix(lines[1], want[0]+" ") || !strings.HasPrefix(lines[3], want[2]+" ") {
		t.Errorf("orders list --customer c-list --limit 3:\n%s\nwant a header and %v", out, want[:3])
	}

	out, err = e.run("orders", "list", "--status", "SHIPPED")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{mine[0], mine[2], mine[4], other.ID} {
		if !strings.Contains(out, id+" ") {
			t.Errorf("orders list --status SHIPPED lacks %s:\n%s", id, out)
		}
	}
	rowsOut := strings.Split(strings.TrimSpace(out), "\n")[1:]
	if len(rowsOut) != 4 {
		t.Errorf("orders list --status SHIPPED has %d rows, want the 4 shipped orders:\n%s", len(rowsOut), out)
	}
	for _, l := range rowsOut {
		if f := strings.Fields(l); f[1] != "SHIPPED" {
			t.Errorf("orders list --status SHIPPED lists %s", l)
		}
	}
	if out, err := e.run("orders", "list", "--status", "CANCELLED"); err != nil || strings.TrimSpace(out) != "no orders" {
		t.Errorf("orders list --status CANCELLED = %q, %v; want \"no orders\"", out, err)
	}
}

// An unknown order and every bad flag: exit 1 with a message that says
// what is wrong.
func TestOrdersMistakesExit1(t *testing.T) {
	t.Parallel()
	e := newOrdersEnv(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"orders", "show", "no-such-order"}, "order no-such-order: no such order"},
		{[]string{"orders", "show", "bad id!"}, "no such order"},
		{[]string{"orders", "show"}, "missing ID"},
		{[]string{"orders", "show", "--bogus", "x"}, "-bogus"},
		{[]string{"orders", "list"}, "exactly one of --status S and --customer ID"},
		{[]string{"orders", "list", "--status", "PLACED", "--customer", "c-1"}, "exactly one of"},
		{[]string{"orders", "list", "--status", "LOST"}, `--status "LOST"`},
		{[]string{"orders", "list", "--customer", "c-1", "--limit", "0"}, "--limit 0: want 1 to 1000"},
		{[]string{"orders", "list", "--customer", "c-1", "--limit", "many"}, `invalid value "many"`},
		{[]string{"orders", "list", "--customer", "c 1"}, "customer ids are"},
		{[]string{"orders", "peek"}, `unknown command "orders peek"`},
	} {
		_, err := e.run(c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) || exitStatus(err) != 1 {
			t.Errorf("worker %s: %v (exit %d), want exit 1 with %q", strings.Join(c.args, " "), err, exitStatus(err), c.want)
		}
	}
}
