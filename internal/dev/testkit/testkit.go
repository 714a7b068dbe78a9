// Package testkit gives tests a provisioned topology under a unique prefix
// on whatever endpoint the environment names (the in-process emulator by
// default; LocalStack or AWS when AWS_ENDPOINT_URL or credentials point
// there), plus small helpers to read queues and the notifications topic.
package testkit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/cloudcommerce/cloudcommerce/internal/awsconf"
	"github.com/cloudcommerce/cloudcommerce/internal/config"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
	"github.com/cloudcommerce/cloudcommerce/internal/store"
	"github.com/cloudcommerce/cloudcommerce/internal/topology"
)

// Env is a provisioned topology for one test.
type Env struct {
	AWS    aws.Config
	Prefix string
	Prov   *topology.Provisioned
	SQS    *sqs.Client
	DDB    *dynamodb.Client
	EB     *eventbridge.Client
	SNS    *sns.Client
}

// Prefix returns a unique resource prefix (the emulator's state is global
// per process and never reset, so every test gets its own names).
func Prefix() string {
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	return "t" + hex.EncodeToString(b)
}

// Provision provisions the topology under a fresh prefix.
func Provision(t testing.TB) *Env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg, err := awsconf.Load(ctx, config.AWS(os.Getenv))
	if err != nil {
		t.Fatal(err)
	}
	topo, err := topology.Load()
	if err != nil {
		t.Fatal(err)
	}
	e := &Env{AWS: cfg, Prefix: Prefix(), SQS: sqs.NewFromConfig(cfg), DDB: awsconf.DynamoDB(cfg), EB: eventbridge.NewFromConfig(cfg), SNS: sns.NewFromConfig(cfg)}
	e.Prov, err = topo.Provision(ctx, topology.Clients{SQS: e.SQS, DynamoDB: e.DDB, EventBridge: e.EB, SNS: e.SNS}, e.Prefix)
	if err != nil {
		t.Fatalf("provision %s: %v", e.Prefix, err)
	}
	return e
}

// Store returns a store on the env's tables (writing store.FormatJSON).
func (e *Env) Store() *store.Store { return e.StoreFormat(store.FormatJSON) }

// StoreFormat returns a store on the env's tables writing orders in f.
func (e *Env) StoreFormat(f store.Format) *store.Store {
	n := e.Prov.Names
	return store.NewFormat(e.DDB, store.Tables{Orders: n.Tables["orders"], Inventory: n.Tables["inventory"], Idempotency: n.Tables["idempotency"]}, f)
}

// QueueURL returns the URL of a stage queue or its DLQ.
func (e *Env) QueueURL(st pipeline.Stage, dlq bool) string {
	if dlq {
		return e.Prov.QueueURLs[e.Prov.Names.DLQs[st]]
	}
	return e.Prov.QueueURLs[e.Prov.Names.Queues[st]]
}

// SubscribeQueue creates a queue subscribed to the notifications topic and
// returns its URL.
func (e *Env) SubscribeQueue(t testing.TB) string {
	t.Helper()
	ctx := context.Background()
	name := e.Prefix + "-inbox"
	out, err := e.SQS.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: &name})
	if err != nil {
		t.Fatal(err)
	}
	attrs, err := e.SQS.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: out.QueueUrl, AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameQueueArn}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.SNS.Subscribe(ctx, &sns.SubscribeInput{TopicArn: aws.String(e.Prov.TopicARN), Protocol: aws.String("sqs"),
		Endpoint: aws.String(attrs.Attributes[string(types.QueueAttributeNameQueueArn)])}); err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.QueueUrl)
}

// Receive reads (and deletes) messages from url until want have arrived or
// the timeout passes, and returns what arrived.
func (e *Env) Receive(t testing.TB, url string, want int, timeout time.Duration) []types.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var got []types.Message
	for len(got) < want && ctx.Err() == nil {
		out, err := e.SQS.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &url, MaxNumberOfMessages: 10, WaitTimeSeconds: 1,
			MessageAttributeNames: []string{"All"}, MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameAll}})
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			t.Fatal(err)
		}
		for _, m := range out.Messages {
			got = append(got, m)
			_, _ = e.SQS.DeleteMessage(context.Background(), &sqs.DeleteMessageInput{QueueUrl: &url, ReceiptHandle: m.ReceiptHandle})
		}
	}
	return got
}

// Notification is an SNS notification as delivered to an SQS subscriber.
type Notification struct {
	Subject           string `json:"Subject"`
	Message           string `json:"Message"`
	MessageAttributes map[string]struct {
		Type  string `json:"Type"`
		Value string `json:"Value"`
	} `json:"MessageAttributes"`
}

// Attr returns a message attribute's value.
func (n Notification) Attr(name string) string { return n.MessageAttributes[name].Value }

// Notifications decodes SNS envelopes from messages.
func Notifications(t testing.TB, msgs []types.Message) []Notification {
	t.Helper()
	out := make([]Notification, 0, len(msgs))
	for _, m := range msgs {
		var n Notification
		if err := json.Unmarshal([]byte(aws.ToString(m.Body)), &n); err != nil {
			t.Fatalf("notification body %q: %v", aws.ToString(m.Body), err)
		}
		out = append(out, n)
	}
	return out
}

// Order returns a valid order request for the given SKUs (1 unit each) and
// payment token.
func Order(token string, skus ...string) pipeline.OrderRequest {
	items := make([]pipeline.Item, len(skus))
	for i, s := range skus {
		items[i] = pipeline.Item{SKU: s, Quantity: 1, UnitPrice: pipeline.Money{Amount: 1250, Currency: "USD"}}
	}
	return pipeline.OrderRequest{
		Customer:        pipeline.Customer{ID: "cust-1", Email: "ada@example.com", Phone: "+14155550100"},
		Items:           items,
		Payment:         pipeline.Payment{Token: token},
		ShippingAddress: pipeline.Address{Name: "Ada Lovelace", Line1: "1 Main St", City: "London", PostalCode: "N1 1AA", Country: "GB"},
	}
}

// Envelope wraps an event in the EventBridge envelope SQS delivers.
func Envelope(t testing.TB, ev pipeline.Event) string {
	t.Helper()
	detail, err := pipeline.EncodeDetail(ev)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(pipeline.Envelope{Version: "0", ID: Prefix(), DetailType: string(ev.Type), Source: pipeline.EventSource,
		Account: "000000000000", Time: time.Now().UTC(), Region: "us-east-1", Resources: []string{}, Detail: json.RawMessage(detail)})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var recorders sync.Map // process+command -> *awsconf.Recorder

// RecordedAs returns cfg for a shipped component run inside the test
// process: when awsconf.RecordCallsEnv is set, its calls are recorded as
// those of process and command (e.g. "worker", "run"), as the shipped binary
// would record them; otherwise cfg itself.
func RecordedAs(t testing.TB, cfg aws.Config, process, command string) aws.Config {
	t.Helper()
	path := os.Getenv(awsconf.RecordCallsEnv)
	if path == "" {
		return cfg
	}
	key := process + "\x00" + command
	r, ok := recorders.Load(key)
	if !ok {
		rec, err := awsconf.NewRecorderAs(path, process, command, "")
		if err != nil {
			t.Fatal(err)
		}
		r, _ = recorders.LoadOrStore(key, rec)
	}
	return r.(*awsconf.Recorder).Apply(cfg)
}
