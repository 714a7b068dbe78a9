package store_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/cloudcommerce/cloudcommerce/internal/awsconf"
	"github.com/cloudcommerce/cloudcommerce/internal/config"
	"github.com/cloudcommerce/cloudcommerce/internal/dev/testkit"
	"github.com/cloudcommerce/cloudcommerce/internal/metrics"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
	"github.com/cloudcommerce/cloudcommerce/internal/store"
)

// countedStore is a store whose every request is counted in
// cloudcommerce_aws_requests_total, as the worker counts them.
func countedStore(t *testing.T, e *testkit.Env) (*store.Store, *metrics.Metrics) {
	t.Helper()
	m := metrics.New()
	o := config.AWS(os.Getenv)
	o.Requests = m.AWSRequests
	cfg, err := awsconf.Load(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	n := e.Prov.Names
	return store.New(awsconf.DynamoDB(cfg), store.Tables{Orders: n.Tables["orders"], Inventory: n.Tables["inventory"], Idempotency: n.Tables["idempotency"]}), m
}

func requests(m *metrics.Metrics, op string) float64 {
	return testutil.ToFloat64(m.AWSRequests.WithLabelValues("DynamoDB", op, "ok"))
}

func rawItem(t *testing.T, e *testkit.Env, id string) map[string]types.AttributeValue {
	t.Helper()
	out, err := e.DDB.GetItem(context.Background(), &dynamodb.GetItemInput{TableName: aws.String(e.Prov.Names.Tables["orders"]),
		Key: map[string]types.AttributeValue{"order_id": &types.AttributeValueMemberS{Value: id}}, ConsistentRead: aws.Bool(true)})
	if err != nil || out.Item == nil {
		t.Fatalf("read item %s: %v", id, err)
	}
	return out.Item
}

func attr(item map[string]types.AttributeValue, name string) string {
	if v, ok := item[name].(*types.AttributeValueMemberS); ok {
		return v.Value
	}
	return ""
}

// The by_customer index costs one write per order: its keys are set by
// the write that creates the order (a PutItem, a transaction with the
// idempotency key, or the upsert of an order put straight on the bus) and
// every later write carries them unchanged, so DynamoDB does not write the
// index again. No write request is added for it: each step is still the
// one conditional write it was.
func TestCustomerIndexKeysComeFromTheCreatingWriteOnly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := testkit.Provision(t)
	st, m := countedStore(t, e)

	a := newOrder(t, "ix-put", "A")
	b := newOrder(t, "ix-keyed", "A")
	c := moved(t, newOrder(t, "ix-bus", "A"), pipeline.StatusReserved)
	if _, err := st.Create(ctx, a, "", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Create(ctx, b, "key-ix", "fp"); err != nil {
		t.Fatal(err)
	}
	if err := st.Apply(ctx, pipeline.Change{Order: c, From: pipeline.StatusPlaced, Upsert: true}); err != nil {
		t.Fatal(err)
	}
	if got := requests(m, "PutItem") + requests(m, "TransactWriteItems"); got != 3 {
		t.Fatalf("creating 3 orders took %v write requests, want 3", got)
	}
	keys := map[string][2]string{}
	for _, o := range []pipeline.Order{a, b, c} {
		item := rawItem(t, e, o.ID)
		want := [2]string{o.Customer.ID, o.PlacedAt.UTC().Format("2006-01-02T15:04:05.000000000Z")}
		if got := [2]string{attr(item, "customer_id"), attr(item, "placed_at")}; got != want {
			t.Fatalf("order %s created with index keys %v, want %v", o.ID, got, want)
		}
		keys[o.ID] = want
	}

	// Every later write: one request each, index keys unchanged.
	writes := 0
	for _, o := range []pipeline.Order{a, b} {
		prev := o
		for _, to := range []pipeline.Status{pipeline.StatusReserved, pipeline.StatusPaid, pipeline.StatusShipped} {
			next := moved(t, prev, to)
			if err := st.Apply(ctx, pipeline.Change{Order: next, From: prev.Status}); err != nil {
				t.Fatal(err)
			}
			writes++
			item := rawItem(t, e, o.ID)
			if got := [2]string{attr(item, "customer_id"), attr(item, "placed_at")}; got != keys[o.ID] {
				t.Fatalf("after %s→%s the index keys of %s are %v, want them as created: %v", prev.Status, to, o.ID, got, keys[o.ID])
			}
			prev = next
		}
	}
	if got := requests(m, "PutItem") + requests(m, "TransactWriteItems"); got != float64(3+writes) {
		t.Errorf("3 creations and %d transitions took %v write requests, want %d", writes, got, 3+writes)
	}
	for _, op := range []string{"UpdateItem", "BatchWriteItem"} {
		if got := requests(m, op); got != 0 {
			t.Errorf("%v %s requests: the index needs no write of its own", got, op)
		}
	}

	// The index lists the three orders, and a page of them costs one
	// Query and one BatchGetItem.
	queries, gets := requests(m, "Query"), requests(m, "BatchGetItem")
	page, err := st.ByCustomer(ctx, a.Customer.ID, 10, "")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range page.Orders {
		ids = append(ids, r.ID)
	}
	slices.Sort(ids)
	if !slices.Equal(ids, []string{"ix-bus", "ix-keyed", "ix-put"}) {
		t.Errorf("ByCustomer = %v, want the 3 orders", ids)
	}
	if dq, dg := requests(m, "Query")-queries, requests(m, "BatchGetItem")-gets; dq != 1 || dg != 1 {
		t.Errorf("one page took %v Query and %v BatchGetItem, want 1 and 1", dq, dg)
	}
}

// Pages follow placed time; a cursor resumes exactly after the last order
// of its page. (Placed times are distinct here: for orders of one customer
// placed in the same nanosecond, AWS pages by the LastEvaluatedKey, which
// names the order, but the emulator re-sorts equal index keys unstably on
// every query, so such a test would measure the emulator.)
func TestByCustomerPagesInPlacedOrder(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := testkit.Provision(t).Store()
	t0 := time.Date(2026, 11, 29, 8, 0, 0, 0, time.UTC)
	want := createOrders(t, st, "c-pages", "pg", 9, t0)
	var got []string
	cursor := ""
	for range 10 {
		page, err := st.ByCustomer(ctx, "c-pages", 2, cursor)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page.Orders {
			got = append(got, r.ID)
		}
		if cursor = page.Next; cursor == "" {
			break
		}
		if _, err := base64.RawURLEncoding.DecodeString(cursor); err != nil {
			t.Fatalf("cursor %q is not base64url", cursor)
		}
	}
	slices.Reverse(want)
	if !slices.Equal(got, want) {
		t.Fatalf("pages of 2 listed %v, want each order once, newest first: %v", got, want)
	}
	if _, err := st.ByCustomer(ctx, "c-pages", 0, ""); err == nil {
		t.Error("limit 0 accepted")
	}
	if _, err := st.ByCustomer(ctx, "c-pages", store.MaxPage+1, ""); err == nil {
		t.Errorf("limit %d accepted", store.MaxPage+1)
	}
}

// The status listing pages the same way, most recently changed first, and
// a cursor of one listing does not resume another.
func TestByStatusPagesAndCursorsStayWithTheirListing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := testkit.Provision(t).Store()
	t0 := time.Date(2026, 11, 29, 7, 0, 0, 0, time.UTC)
	want := createOrders(t, st, "c-status-pages", "sp", 5, t0)
	slices.Reverse(want)
	var got []string
	cursor := ""
	for range 10 {
		page, err := st.ByStatus(ctx, pipeline.StatusPlaced, 2, cursor)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page.Orders {
			got = append(got, r.ID)
			if r.Status != pipeline.StatusPlaced || r.CustomerID != "c-status-pages" || r.Total.Amount != 1250 {
				t.Errorf("row %+v: want PLACED, its customer and total", r)
			}
		}
		if cursor = page.Next; cursor == "" {
			break
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("status pages listed %v, want %v", got, want)
	}
	first, err := st.ByStatus(ctx, pipeline.StatusPlaced, 1, "")
	if err != nil || first.Next == "" {
		t.Fatalf("first page of 1: %+v, %v; want a cursor", first, err)
	}
	if _, err := st.ByStatus(ctx, pipeline.StatusShipped, 1, first.Next); !errors.Is(err, store.ErrBadCursor) {
		t.Errorf("a PLACED cursor on the SHIPPED listing: %v, want ErrBadCursor", err)
	}
	if _, err := st.ByCustomer(ctx, "c-status-pages", 1, first.Next); !errors.Is(err, store.ErrBadCursor) {
		t.Errorf("a status cursor on a customer listing: %v, want ErrBadCursor", err)
	}
}

// createOrders stores n PLACED orders of customer, ids prefix-0 … prefix-(n-1),
// placed a millisecond apart from t0, and returns their ids oldest first.
func createOrders(t *testing.T, st *store.Store, customer, prefix string, n int, t0 time.Time) []string {
	t.Helper()
	var ids []string
	for i := range n {
		req := testkit.Order("tok_visa", "A")
		req.Customer.ID = customer
		o, err := pipeline.NewOrder(fmt.Sprintf("%s-%d", prefix, i), req, t0.Add(time.Duration(i)*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Create(context.Background(), o, "", ""); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, o.ID)
	}
	return ids
}
