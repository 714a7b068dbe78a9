package store_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/cloudcommerce/cloudcommerce/internal/awsconf"
	"github.com/cloudcommerce/cloudcommerce/internal/dev/testkit"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
	"github.com/cloudcommerce/cloudcommerce/internal/store"
)

// shipped is o moved through every stage with a charge and a tracking
// number, as a shipped order is stored.
func shipped(t *testing.T, o pipeline.Order) pipeline.Order {
	t.Helper()
	for _, to := range []pipeline.Status{pipeline.StatusReserved, pipeline.StatusPaid, pipeline.StatusShipped} {
		o = moved(t, o, to)
	}
	o.ChargeID, o.TrackingNumber, o.Carrier = "ch_3PzX9Lk2eZvKYlo2C0ffee01", "1Z999AA10123456784", "sandbox"
	return o
}

// An order of five lines, shipped, is stored under the 1 KB write unit in
// the compact format (and over it as JSON); both read back the same, and
// the sparse index keys follow the status.
func TestCompactOrderItemStaysUnderOneWriteUnit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := testkit.Provision(t)
	sizes := map[store.Format]int{}
	for _, f := range []store.Format{store.FormatJSON, store.FormatCompact} {
		st := e.StoreFormat(f)
		o := newOrder(t, "five-"+f.String(), "SKU-A", "SKU-B", "SKU-C", "SKU-D", "SKU-E")
		if _, err := st.Create(ctx, o, "", ""); err != nil {
			t.Fatal(err)
		}
		// JSON keeps the previous release's keys; compact puts an order
		// that is not overdue on the timeline only.
		legacy := f == store.FormatJSON
		if item := rawItem(t, e, o.ID); (item["open"] != nil) != legacy || item["outcome"] != nil || item["placed_bucket"] == nil {
			t.Fatalf("%s: a placed order's item has open=%v outcome=%v placed_bucket=%v; want placed_bucket, and open only in JSON", f, item["open"], item["outcome"], item["placed_bucket"])
		}
		final := shipped(t, o)
		if err := st.Apply(ctx, pipeline.Change{Order: final, From: pipeline.StatusPlaced}); err != nil {
			t.Fatal(err)
		}
		item := rawItem(t, e, o.ID)
		if item["open"] != nil || (item["outcome"] != nil) != legacy || (item["closed_at"] != nil) != legacy || item["placed_bucket"] == nil {
			t.Fatalf("%s: a shipped order's item has open=%v outcome=%v closed_at=%v placed_bucket=%v; want placed_bucket, and outcome and closed_at only in JSON", f, item["open"], item["outcome"], item["closed_at"], item["placed_bucket"])
		}
		_, hasUpdated := item["updated_at"]
		if hasUpdated != (f == store.FormatJSON) {
			t.Errorf("%s: item has updated_at (the by_status key): %v", f, hasUpdated)
		}
		sizes[f] = awsconf.ItemSize(item)
		got, err := st.Get(ctx, o.ID)
		if err != nil || got.Status != pipeline.StatusShipped || got.TrackingNumber != final.TrackingNumber || len(got.Items) != 5 || len(got.History) != 4 {
			t.Fatalf("%s: Get = %+v, %v", f, got, err)
		}
		// Either store reads what the other wrote.
		other := e.StoreFormat(1 - f)
		if again, err := other.Get(ctx, o.ID); err != nil || again.ID != o.ID || again.Total != got.Total {
			t.Fatalf("%s written, read by the other format: %+v, %v", f, again, err)
		}
	}
	t.Logf("a shipped order of five lines: %d bytes as JSON, %d compact", sizes[store.FormatJSON], sizes[store.FormatCompact])
	if sizes[store.FormatCompact] >= 1024 {
		t.Errorf("compact item is %d bytes; want under 1024 (one write unit)", sizes[store.FormatCompact])
	}
	if sizes[store.FormatCompact] >= sizes[store.FormatJSON] {
		t.Errorf("compact item (%d bytes) is not smaller than JSON (%d)", sizes[store.FormatCompact], sizes[store.FormatJSON])
	}
}

// The store keeps the document it is given byte for byte, so members a
// newer release adds survive a write by this one in either format.
func TestStoredDocumentKeepsUnknownMembers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := testkit.Provision(t)
	for _, f := range []store.Format{store.FormatJSON, store.FormatCompact} {
		st := e.StoreFormat(f)
		o := newOrder(t, "doc-"+f.String(), "SKU-A")
		doc, err := pipeline.EncodeOrder(o)
		if err != nil {
			t.Fatal(err)
		}
		doc = strings.TrimSuffix(doc, "}") + `,"from_the_future":{"x":1}}`
		if err := st.Apply(ctx, pipeline.Change{Order: o, From: pipeline.StatusPlaced, Upsert: true, Doc: doc}); err != nil {
			t.Fatal(err)
		}
		got, err := store.StoredDocument(rawItem(t, e, o.ID))
		if err != nil || got != doc {
			t.Fatalf("%s: stored document %q, %v; want %q", f, got, err, doc)
		}
	}
}

// Orders written in the previous layout (a whole item with the JSON
// document and no sparse index keys, as the previous release's PutItem
// leaves it) are found by the sweep's read at once (by_status) and by every
// listing once the migration has run; a second run changes nothing.
func TestMigrationIndexesOrdersOfThePreviousLayout(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := testkit.Provision(t)
	st := e.StoreFormat(store.FormatCompact)
	long := time.Now().Add(-time.Hour).UTC()
	ids := map[pipeline.Status]string{}
	for i, status := range pipeline.AllStatuses {
		o := newOrder(t, fmt.Sprintf("old-%d", i), "SKU-A")
		o.Customer.ID = "old-layout-customer"
		o.PlacedAt, o.UpdatedAt, o.Status = long, long.Add(time.Duration(i)*time.Second), status
		putPreviousLayout(t, e, o)
		ids[status] = o.ID
	}
	for _, status := range []pipeline.Status{pipeline.StatusPlaced, pipeline.StatusReserved, pipeline.StatusPaid} {
		if got := listed(t, st, status); !slices.Contains(got, ids[status]) {
			t.Fatalf("before the migration the sweep's read of %s finds %v; want %s (by_status)", status, got, ids[status])
		}
	}
	if page, err := st.ByStatus(ctx, pipeline.StatusShipped, 10, ""); err != nil || len(page.Orders) != 0 {
		t.Fatalf("before the migration the timeline lists %+v, %v; want nothing (no keys yet)", page.Orders, err)
	}
	var pages int
	p, err := st.Migrate(ctx, "", func(store.MigrateProgress) { pages++ })
	if err != nil || p.Scanned != len(ids) || p.Reindexed != len(ids) || pages == 0 || p.Cursor != "" {
		t.Fatalf("Migrate = %+v (%d pages), %v; want %d scanned and re-indexed", p, pages, err, len(ids))
	}
	if p, err := st.Migrate(ctx, "", nil); err != nil || p.Reindexed != 0 {
		t.Fatalf("second Migrate = %+v, %v; want nothing re-indexed", p, err)
	}
	for status, id := range ids {
		page, err := st.ByStatus(ctx, status, 10, "")
		if err != nil || len(page.Orders) != 1 || page.Orders[0].ID != id {
			t.Errorf("ByStatus(%s) = %+v, %v; want %s", status, page.Orders, err, id)
		}
		if n, _, err := st.CountByStatus(ctx, status, 0); err != nil || n != 1 {
			t.Errorf("CountByStatus(%s) = %d, %v; want 1", status, n, err)
		}
		if got := listed(t, st, status); !slices.Contains(got, id) {
			t.Errorf("ListByStatus(%s) = %v; want %s", status, got, id)
		}
	}
	page, err := st.ByCustomer(ctx, "old-layout-customer", 100, "")
	if err != nil || len(page.Orders) != len(ids) {
		t.Errorf("ByCustomer = %d orders, %v; want %d", len(page.Orders), err, len(ids))
	}
	// The sweep's read of by_open alone: without by_status it finds the
	// migrated orders too.
	for _, status := range []pipeline.Status{pipeline.StatusPlaced, pipeline.StatusReserved, pipeline.StatusPaid} {
		if got, err := st.OpenIDs(ctx, status); err != nil || !slices.Contains(got, ids[status]) {
			t.Errorf("by_open lists %v, %v for %s; want %s", got, err, status, ids[status])
		}
	}
}

// putPreviousLayout writes o as the previous release's PutItem does.
func putPreviousLayout(t *testing.T, e *testkit.Env, o pipeline.Order) {
	t.Helper()
	doc, err := pipeline.EncodeOrder(o)
	if err != nil {
		t.Fatal(err)
	}
	const layout = "2006-01-02T15:04:05.000000000Z"
	sv := func(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
	_, err = e.DDB.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String(e.Prov.Names.Tables["orders"]), Item: map[string]types.AttributeValue{
		"order_id": sv(o.ID), "status": sv(string(o.Status)), "updated_at": sv(o.UpdatedAt.UTC().Format(layout)),
		"customer_id": sv(o.Customer.ID), "placed_at": sv(o.PlacedAt.UTC().Format(layout)), "order": sv(doc),
	}})
	if err != nil {
		t.Fatal(err)
	}
}

// listed is what the sweep reads: the orders in status last changed
// before now (cancelled ones within the day before).
func listed(t *testing.T, st *store.Store, status pipeline.Status) []string {
	t.Helper()
	var after time.Time
	if status == pipeline.StatusCancelled {
		after = time.Now().Add(-24 * time.Hour)
	}
	list, err := st.ListByStatus(context.Background(), status, after, time.Now(), 500)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, o := range list {
		ids = append(ids, o.ID)
	}
	return ids
}
