package awsconf_test

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/cloudcommerce/cloudcommerce/internal/awsconf"
	"github.com/cloudcommerce/cloudcommerce/internal/metrics"
)

// The SDK's own cost per call dominates the worker's CPU per order (every
// order makes several calls), so these measure one call of each kind the
// hot path makes, through the configuration the worker uses (request
// counting on), against a local server that answers at once with a canned
// response. ns/op includes the server's share: both run in this process.

const orderDoc = `{"order_id":"0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b","status":"PAID","customer":{"id":"cust-0042","email":"customer42@example.com","phone":"+14155550100"},"items":[{"sku":"SKU-WIDGET","quantity":2,"unit_price":{"amount":500,"currency":"USD"}},{"sku":"SKU-GADGET","quantity":1,"unit_price":{"amount":750,"currency":"USD"}}],"total":{"amount":1750,"currency":"USD"},"payment":{"token":"tok_visa"},"shipping_address":{"name":"Ada Lovelace","line1":"1 Market St","city":"San Francisco","postal_code":"94105","country":"US"},"placed_at":"2026-11-25T12:00:00Z","updated_at":"2026-11-25T12:00:00.05Z","history":{"PAID":"2026-11-25T12:00:00.05Z","PLACED":"2026-11-25T12:00:00Z","RESERVED":"2026-11-25T12:00:00.02Z"},"charge_id":"ch_0123456789abcdef01234567"}`

func cannedServer(b *testing.B) string {
	b.Helper()
	sum := md5.Sum([]byte(orderDoc))
	msgs := make([]string, 10)
	for i := range msgs {
		msgs[i] = fmt.Sprintf(`{"MessageId":"m%d","ReceiptHandle":"r%d","MD5OfBody":"%s","Body":%q,"Attributes":{"ApproximateReceiveCount":"1","SentTimestamp":"1795000000000"}}`,
			i, i, hex.EncodeToString(sum[:]), orderDoc)
	}
	receive := `{"Messages":[` + strings.Join(msgs, ",") + `]}`
	putEvents := `{"FailedEntryCount":0,"Entries":[` + strings.TrimSuffix(strings.Repeat(`{"EventId":"e"},`, 10), ",") + `]}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		target := r.Header.Get("X-Amz-Target")
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		switch {
		case strings.HasSuffix(target, "ReceiveMessage"):
			w.Write([]byte(receive))
		case strings.HasSuffix(target, "PutEvents"):
			w.Header().Set("Content-Type", "application/x-amz-json-1.1")
			w.Write([]byte(putEvents))
		default:
			w.Write([]byte("{}"))
		}
	}))
	b.Cleanup(srv.Close)
	return srv.URL
}

func benchConfig(b *testing.B) aws.Config {
	b.Helper()
	cfg, err := awsconf.Load(context.Background(), awsconf.Options{Endpoint: cannedServer(b), Region: "us-east-1", Requests: metrics.New().AWSRequests})
	if err != nil {
		b.Fatal(err)
	}
	return cfg
}

// BenchmarkSDKPutItem is a stage's conditional order write.
func BenchmarkSDKPutItem(b *testing.B) {
	db := awsconf.DynamoDB(benchConfig(b))
	in := &dynamodb.PutItemInput{TableName: aws.String("orders"), Item: map[string]types.AttributeValue{
		"order_id": &types.AttributeValueMemberS{Value: "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"}, "status": &types.AttributeValueMemberS{Value: "PAID"},
		"updated_at": &types.AttributeValueMemberS{Value: "2026-11-25T12:00:00.050000000Z"}, "customer_id": &types.AttributeValueMemberS{Value: "cust-0042"},
		"order": &types.AttributeValueMemberS{Value: orderDoc}},
		ConditionExpression: aws.String("#s = :from"), ExpressionAttributeNames: map[string]string{"#s": "status"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":from": &types.AttributeValueMemberS{Value: "RESERVED"}}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := db.PutItem(context.Background(), in); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSDKReceiveMessage10 is one receive returning ten messages
// (with the SDK's MD5 check of every body).
func BenchmarkSDKReceiveMessage10(b *testing.B) {
	q := sqs.NewFromConfig(benchConfig(b))
	in := &sqs.ReceiveMessageInput{QueueUrl: aws.String("http://localhost:4566/000000000000/q"), MaxNumberOfMessages: 10, WaitTimeSeconds: 1}
	b.ReportAllocs()
	for b.Loop() {
		out, err := q.ReceiveMessage(context.Background(), in)
		if err != nil || len(out.Messages) != 10 {
			b.Fatal(err)
		}
	}
}

// BenchmarkSDKPutEvents10 is one PutEvents carrying ten order events.
func BenchmarkSDKPutEvents10(b *testing.B) {
	eb := eventbridge.NewFromConfig(benchConfig(b))
	entries := make([]ebtypes.PutEventsRequestEntry, 10)
	for i := range entries {
		entries[i] = ebtypes.PutEventsRequestEntry{EventBusName: aws.String("bus"), Source: aws.String("cloudcommerce.orders"),
			DetailType: aws.String("PaymentCaptured"), Detail: aws.String(orderDoc)}
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := eb.PutEvents(context.Background(), &eventbridge.PutEventsInput{Entries: entries}); err != nil {
			b.Fatal(err)
		}
	}
}
