package testkit

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
)

// Helpers for what a newer release of the pipeline writes: order documents
// with members this release does not know, events of detail-types it does
// not know, and the rule that routes them.

// WithMembers returns doc, a JSON object, with members set at dotted
// paths: "gift_note" at the top, "customer.tier" in an object member,
// "items.0.wrap" in an array element. Each value is raw JSON.
func WithMembers(t testing.TB, doc string, members map[string]string) string {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(doc), &v); err != nil {
		t.Fatalf("WithMembers: %v", err)
	}
	for path, raw := range members {
		var val any
		if err := json.Unmarshal([]byte(raw), &val); err != nil {
			t.Fatalf("WithMembers %s: %v", path, err)
		}
		parts := strings.Split(path, ".")
		cur := v
		for _, p := range parts[:len(parts)-1] {
			switch c := cur.(type) {
			case map[string]any:
				cur = c[p]
			case []any:
				i, _ := strconv.Atoi(p)
				cur = c[i]
			}
		}
		obj, ok := cur.(map[string]any)
		if !ok {
			t.Fatalf("WithMembers: %s is not inside an object of %s", path, doc)
		}
		obj[parts[len(parts)-1]] = val
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Member returns the raw JSON at a dotted path of doc (as WithMembers
// names them), compacted, or "" when there is none.
func Member(t testing.TB, doc, path string) string {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(doc), &v); err != nil {
		t.Fatalf("Member: %v in %s", err, doc)
	}
	for _, p := range strings.Split(path, ".") {
		switch c := v.(type) {
		case map[string]any:
			var ok bool
			if v, ok = c[p]; !ok {
				return ""
			}
		case []any:
			i, err := strconv.Atoi(p)
			if err != nil || i < 0 || i >= len(c) {
				return ""
			}
			v = c[i]
		default:
			return ""
		}
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// RawEnvelope is the body SQS delivers for an EventBridge event of the
// pipeline's source with detailType and detail as they are.
func RawEnvelope(t testing.TB, detailType, detail string) string {
	t.Helper()
	b, err := json.Marshal(pipeline.Envelope{Version: "0", ID: Prefix(), DetailType: detailType, Source: pipeline.EventSource,
		Account: "000000000000", Time: time.Now().UTC(), Region: "us-east-1", Resources: []string{}, Detail: json.RawMessage(detail)})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// PutRaw puts an event of the pipeline's source with detailType and
// detail as they are on the env's bus.
func (e *Env) PutRaw(t testing.TB, detailType, detail string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := e.EB.PutEvents(ctx, &eventbridge.PutEventsInput{Entries: []ebtypes.PutEventsRequestEntry{{
		EventBusName: aws.String(e.Prov.Names.Bus), Source: aws.String(pipeline.EventSource), DetailType: aws.String(detailType), Detail: aws.String(detail)}}})
	if err != nil {
		t.Fatalf("put %s on the bus: %v", detailType, err)
	}
	if out.FailedEntryCount != 0 {
		t.Fatalf("put %s on the bus: %s", detailType, aws.ToString(out.Entries[0].ErrorMessage))
	}
}

// Route adds a rule, as a newer release's topology would, that sends the
// pipeline's events of detailTypes to a stage queue. (On AWS the queue's
// policy would need a statement for the rule too; the emulator does not
// check it.)
func (e *Env) Route(t testing.TB, name string, st pipeline.Stage, detailTypes ...string) {
	t.Helper()
	e.route(t, name, e.Prov.QueueARNs[e.Prov.Names.Queues[st]], map[string]any{"source": []string{pipeline.EventSource}, "detail-type": detailTypes})
}

// Tap creates a queue that receives every event of the pipeline's source
// on the env's bus, and returns its URL.
func (e *Env) Tap(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := e.SQS.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(e.Prefix + "-tap")})
	if err != nil {
		t.Fatal(err)
	}
	attrs, err := e.SQS.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: out.QueueUrl, AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameQueueArn}})
	if err != nil {
		t.Fatal(err)
	}
	e.route(t, "tap", attrs.Attributes[string(types.QueueAttributeNameQueueArn)], map[string]any{"source": []string{pipeline.EventSource}})
	return aws.ToString(out.QueueUrl)
}

func (e *Env) route(t testing.TB, name, arn string, eventPattern map[string]any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pattern, _ := json.Marshal(eventPattern)
	rule := e.Prefix + "-" + name
	if _, err := e.EB.PutRule(ctx, &eventbridge.PutRuleInput{Name: &rule, EventBusName: aws.String(e.Prov.Names.Bus),
		EventPattern: aws.String(string(pattern)), State: ebtypes.RuleStateEnabled}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.EB.PutTargets(ctx, &eventbridge.PutTargetsInput{Rule: &rule, EventBusName: aws.String(e.Prov.Names.Bus),
		Targets: []ebtypes.Target{{Id: aws.String(name), Arn: aws.String(arn)}}}); err != nil {
		t.Fatal(err)
	}
}

// StoredDocument returns the order document stored for id, as it is in
// the table (not decoded), or "" when there is no such order.
func (e *Env) StoredDocument(t testing.TB, id string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := e.DDB.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(e.Prov.Names.Tables["orders"]), ConsistentRead: aws.Bool(true),
		Key: map[string]ddbtypes.AttributeValue{"order_id": &ddbtypes.AttributeValueMemberS{Value: id}}})
	if err != nil {
		t.Fatal(err)
	}
	doc, _ := out.Item["order"].(*ddbtypes.AttributeValueMemberS)
	if doc == nil {
		return ""
	}
	return doc.Value
}

// Depth returns the messages of a queue: visible, in flight and delayed.
func (e *Env) Depth(t testing.TB, url string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := e.SQS.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url), AttributeNames: []types.QueueAttributeName{
		types.QueueAttributeNameApproximateNumberOfMessages, types.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
		types.QueueAttributeNameApproximateNumberOfMessagesDelayed}})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, v := range out.Attributes {
		k, _ := strconv.Atoi(v)
		n += k
	}
	return n
}
