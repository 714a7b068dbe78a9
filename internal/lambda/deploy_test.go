package lambda_test

import (
	"context"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/cloudcommerce/cloudcommerce/internal/awsconf"
	"github.com/cloudcommerce/cloudcommerce/internal/config"
	"github.com/cloudcommerce/cloudcommerce/internal/delivery"
	"github.com/cloudcommerce/cloudcommerce/internal/dev/testkit"
	"github.com/cloudcommerce/cloudcommerce/internal/lambda"
	"github.com/cloudcommerce/cloudcommerce/internal/metrics"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
)

// The function, like the worker, keeps the members a newer release wrote
// through every stage: in the event each stage publishes and in the
// stored order.
func TestTheFunctionKeepsMembersANewerReleaseWrote(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.setStock(t, "SKU-N", 3)
	doc, err := pipeline.EncodeOrder(newOrder(t, "ord-newer-members", "tok_visa", "SKU-N"))
	if err != nil {
		t.Fatal(err)
	}
	members := map[string]string{
		"gift_note":                        `"Happy birthday"`,
		"customer.loyalty_tier":            `"gold"`,
		"items.0.gift_wrap":                `{"paper":"red"}`,
		"shipping_address.delivery_window": `["09:00","12:00"]`,
	}
	f.send(t, pipeline.StageInventory, testkit.RawEnvelope(t, string(pipeline.EventOrderPlaced), testkit.WithMembers(t, doc, members)))
	for _, st := range pipeline.Stages {
		ev, resp := f.deliver(t, st, 1)
		if got := failures(resp); len(got) != 0 {
			t.Fatalf("%s: failures %v", st, got)
		}
		if st == pipeline.StageInventory {
			continue
		}
		// The event the previous stage published carries them.
		detail := testkit.Member(t, ev.Records[0].Body, "detail")
		for path, want := range members {
			if got := testkit.Member(t, detail, path); got != want {
				t.Errorf("%s record: detail %s = %s, want %s", st, path, got, want)
			}
		}
	}
	env := &testkit.Env{DDB: awsconf.DynamoDB(f.aws), Prov: f.prov}
	stored := env.StoredDocument(t, "ord-newer-members")
	if s := testkit.Member(t, stored, "status"); s != `"SHIPPED"` {
		t.Fatalf("stored order is %s, want SHIPPED", s)
	}
	for path, want := range members {
		if got := testkit.Member(t, stored, path); got != want {
			t.Errorf("stored order: %s = %s, want %s\n%s", path, got, want, stored)
		}
	}
}

// Records a newer release wrote (a higher schema_version, a detail-type of
// the pipeline's source this release does not know) are reported as batch
// item failures with the hand-back's back-off set, neither acted on nor
// dead-lettered, and counted; a record from another source stays poison.
func TestTheFunctionHandsBackRecordsOfANewerRelease(t *testing.T) {
	t.Parallel()
	var charges atomic.Int64
	m := metrics.New()
	f := setup(t, func(c *config.Lambda, d *lambda.Deps) {
		c.DeferBase = time.Second
		d.Metrics = m
		d.Payments = gateway{fn: func(context.Context, pipeline.ChargeRequest) (string, error) {
			charges.Add(1)
			return "ch_x", nil
		}}
	})
	st := pipeline.StagePayment
	reserved := f.reserved(t, newOrder(t, "ord-newer-schema", "tok_visa", "SKU-1"))
	doc, err := pipeline.EncodeOrder(reserved)
	if err != nil {
		t.Fatal(err)
	}
	newerID := f.send(t, st, testkit.RawEnvelope(t, string(pipeline.EventInventoryReserved), testkit.WithMembers(t, doc, map[string]string{"schema_version": "999"})))
	unknownID := f.send(t, st, testkit.RawEnvelope(t, "OrderGiftWrapped", `{"order_id":"ord-newer-schema","paper":"red"}`))
	foreign := `{"version":"0","detail-type":"OrderGiftWrapped","source":"someone.else","detail":{"order_id":"ord-newer-schema"}}`
	f.send(t, st, foreign)

	deferredIDs := []string{newerID, unknownID}
	slices.Sort(deferredIDs)
	for round := 1; round <= 2; round++ {
		n := 3
		if round == 2 {
			n = 2 // the foreign record was dead-lettered in round 1
		}
		ev, resp := f.deliver(t, st, n)
		got := failures(resp)
		slices.Sort(got)
		if !slices.Equal(got, deferredIDs) {
			t.Fatalf("round %d: failures %v, want the two records of a newer release %v", round, got, deferredIDs)
		}
		for _, r := range ev.Records {
			if rc, _ := strconv.Atoi(r.Attributes["ApproximateReceiveCount"]); slices.Contains(deferredIDs, r.MessageId) && rc != round {
				t.Errorf("round %d: record %s on receive %d", round, r.MessageId, rc)
			}
		}
		// Handed back with a back-off: in flight, not visible at once.
		if visible, inFlight := f.counts(t, f.queueURL(st, false)); visible != 0 || inFlight != 2 {
			t.Errorf("round %d: right after the invocation the queue has %d visible and %d in-flight messages, want 0 and 2", round, visible, inFlight)
		}
		for _, reason := range pipeline.DeferReasons {
			if v := testutil.ToFloat64(m.Deferred.WithLabelValues(string(st), reason)); v != float64(round) {
				t.Errorf("round %d: %s deferrals counted %v", round, reason, v)
			}
		}
	}
	if n := charges.Load(); n != 0 {
		t.Errorf("the payment stage charged %d times for records it cannot read", n)
	}
	if o := f.order(t, reserved.ID); o.Status != pipeline.StatusReserved {
		t.Errorf("order is %s, want still RESERVED", o.Status)
	}
	dead := f.receiveDLQ(t, st, 1)
	if len(dead) != 1 || aws.ToString(dead[0].Body) != foreign {
		t.Fatalf("payment DLQ holds %d messages, want only the foreign one", len(dead))
	}
	if r := aws.ToString(dead[0].MessageAttributes[delivery.AttrReason].StringValue); r != pipeline.ReasonWrongEvent {
		t.Errorf("foreign record dead-lettered as %q, want %q", r, pipeline.ReasonWrongEvent)
	}
}
