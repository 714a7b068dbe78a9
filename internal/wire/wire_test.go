package wire_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"go.uber.org/zap/zaptest"

	"github.com/cloudcommerce/cloudcommerce/internal/awsconf"
	"github.com/cloudcommerce/cloudcommerce/internal/dev/awsfault"
	"github.com/cloudcommerce/cloudcommerce/internal/dev/emulator"
	"github.com/cloudcommerce/cloudcommerce/internal/dev/testkit"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
	"github.com/cloudcommerce/cloudcommerce/internal/sandbox"
	"github.com/cloudcommerce/cloudcommerce/internal/wire"
)

// The components are wired on a topology on the in-process emulator (or
// the endpoint in AWS_ENDPOINT_URL).
func TestMain(m *testing.M) { emulator.RunTests(m) }

func proxyConfig(t *testing.T) (*awsfault.Proxy, aws.Config) {
	t.Helper()
	p, cfg := testkit.FaultEndpoint(t)
	return p, cfg
}

// The service New wires writes orders to the topology's table, publishes
// to its bus (whose rule routes OrderPlaced to the inventory queue),
// notifies on its topic (looked up by name when no ARN is given) and
// charges through the sandbox ledger on the ledger's own client.
func TestNewWiresEachComponentToTheTopology(t *testing.T) {
	t.Parallel()
	e := testkit.Provision(t)
	ledgerProxy, ledgerCfg := proxyConfig(t)
	c, err := wire.New(context.Background(), wire.Config{Names: e.Prov.Names, Batching: true, Linger: 5 * time.Millisecond},
		wire.Deps{AWS: e.AWS, LedgerAWS: &ledgerCfg, Log: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.TopicARN != e.Prov.TopicARN {
		t.Errorf("topic ARN = %q, want the provisioned %q", c.TopicARN, e.Prov.TopicARN)
	}
	ctx := context.Background()
	inbox := e.SubscribeQueue(t)

	o, err := pipeline.NewOrder(e.Prefix+"-o1", testkit.Order(sandbox.TokenVisa, "SKU-A"), time.Now().UTC())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Store.Create(ctx, o, "", ""); err != nil {
		t.Fatalf("create through the wired store: %v", err)
	}
	if got, err := e.Store().Get(ctx, o.ID); err != nil || got.ID != o.ID {
		t.Errorf("the order is not in the topology's orders table: %v", err)
	}

	if err := c.Service.Publisher.Publish(ctx, pipeline.Event{Type: pipeline.EventOrderPlaced, Order: o}); err != nil {
		t.Fatalf("publish: %v", err)
	}
	msgs := e.Receive(t, e.QueueURL(pipeline.StageInventory, false), 1, 10*time.Second)
	if len(msgs) != 1 {
		t.Fatalf("inventory queue received %d events, want 1", len(msgs))
	}
	if ev, err := pipeline.DecodeEvent([]byte(aws.ToString(msgs[0].Body))); err != nil || ev.Order.ID != o.ID {
		t.Errorf("inventory queue event %v, %v; want order %s", ev.Order.ID, err, o.ID)
	}

	paid := o
	paid.Status = pipeline.StatusPaid
	n, ok := pipeline.NotificationFor(paid)
	if !ok {
		t.Fatal("no notification for a paid order")
	}
	if err := c.Service.Notifier.Notify(ctx, n); err != nil {
		t.Fatalf("notify: %v", err)
	}
	if got := testkit.Notifications(t, e.Receive(t, inbox, 1, 10*time.Second)); len(got) != 1 {
		t.Errorf("the topic delivered %d notifications, want 1", len(got))
	}

	id, err := c.Service.Payments.Charge(ctx, pipeline.ChargeRequest{IdempotencyKey: o.ID, OrderID: o.ID, Amount: o.Total, Token: sandbox.TokenVisa})
	if err != nil {
		t.Fatalf("charge: %v", err)
	}
	if n := ledgerProxy.Requests("DynamoDB", "PutItem"); n != 1 {
		t.Errorf("the ledger client made %d PutItem calls, want the charge's 1", n)
	}
	entries, err := sandbox.NewGateway(awsconf.DynamoDB(e.AWS), e.Prov.Names.Tables["payments_ledger"]).Entries(ctx)
	if err != nil || len(entries) != 1 || entries[0].ID != id || entries[0].Amount != o.Total {
		t.Errorf("ledger = %+v, %v; want the one charge %s of %s", entries, err, id, o.Total)
	}
}

// Configuration mistakes are errors that name what is wrong.
func TestNewRejectsWhatItCannotWire(t *testing.T) {
	t.Parallel()
	e := testkit.Provision(t)
	_, err := wire.New(context.Background(), wire.Config{Names: e.Prov.Names, TopicARN: e.Prov.TopicARN, PaymentGateway: "paypal"}, wire.Deps{AWS: e.AWS, Log: zaptest.NewLogger(t)})
	if err == nil || !strings.Contains(err.Error(), `"paypal"`) {
		t.Errorf("unknown gateway: %v, want an error naming it", err)
	}
	_, err = wire.New(context.Background(), wire.Config{Names: e.Prov.Names, TopicARN: e.Prov.TopicARN, PaymentGateway: "stripe"}, wire.Deps{AWS: e.AWS, Log: zaptest.NewLogger(t)})
	if err == nil || !strings.Contains(err.Error(), "stripe") {
		t.Errorf("stripe without a key: %v, want a stripe configuration error", err)
	}
	// A topic that cannot be looked up says how to name it instead.
	p, cfg := proxyConfig(t)
	p.Add(&awsfault.Rule{Service: "SNS", Operation: "CreateTopic", Response: awsfault.SNSAuthorization})
	_, err = wire.New(context.Background(), wire.Config{Names: e.Prov.Names}, wire.Deps{AWS: cfg, Log: zaptest.NewLogger(t)})
	if err == nil || !strings.Contains(err.Error(), "AuthorizationError") || !strings.Contains(err.Error(), "CLOUDCOMMERCE_TOPIC_ARN") {
		t.Errorf("topic lookup denied: %v, want the AuthorizationError and the variable that avoids it", err)
	}
}

// Payments and Carrier given in Deps replace the sandbox adapters.
func TestDepsOverrideTheAdapters(t *testing.T) {
	t.Parallel()
	e := testkit.Provision(t)
	carrier := sandbox.Carrier{Delay: time.Millisecond}
	gw := sandbox.NewGateway(awsconf.DynamoDB(e.AWS), e.Prov.Names.Tables["payments_ledger"])
	c, err := wire.New(context.Background(), wire.Config{Names: e.Prov.Names, TopicARN: e.Prov.TopicARN, PaymentGateway: "stripe"},
		wire.Deps{AWS: e.AWS, Log: zaptest.NewLogger(t), Payments: gw, Carrier: carrier})
	if err != nil {
		t.Fatalf("with Payments given the gateway setting is not used: %v", err)
	}
	defer c.Close()
	if c.Service.Payments != gw || c.Service.Carrier != carrier {
		t.Errorf("service adapters = %T %T, want the given ones", c.Service.Payments, c.Service.Carrier)
	}
}
