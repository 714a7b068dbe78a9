package awserrors

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/cloudcommerce/cloudcommerce/internal/delivery"
	"github.com/cloudcommerce/cloudcommerce/internal/dev/awsfault"
	"github.com/cloudcommerce/cloudcommerce/internal/dev/testkit"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
	"github.com/cloudcommerce/cloudcommerce/internal/sandbox"
	"github.com/cloudcommerce/cloudcommerce/internal/topology"
)

// Reactions the table expects.
const (
	// The SDK's retryer absorbs the errors (throttling and 5xx; by default
	// 4 attempts for DynamoDB, 3 for the others): no handler ever fails.
	sdkRetries = "retried by the SDK"
	// The handler fails (the SDK does not retry the error, or gave up) and
	// the message comes back after the consumer's back-off.
	visibilityRetry = "retried through the message's visibility"
)

// One order flows through the whole pipeline while one operation of one
// adapter answers with an AWS error; the table asserts the documented
// reaction and that the order ends SHIPPED with its stock reserved once,
// one charge and its two notifications.
func TestEveryAdapterThroughAWSErrors(t *testing.T) {
	t.Parallel()
	type fault struct {
		service, operation string
		match              func(topology.Names) string
		answer             awsfault.Response
		times              int
	}
	// Each fault matches only the calls of the adapter under test (the
	// intake shares the store and the publisher).
	inventoryTable := func(n topology.Names) string { return `"` + n.Tables["inventory"] + `"` }
	stageWrite := func(topology.Names) string { return `#s = :from` } // the stages' order writes, not the intake's create
	ledger := func(n topology.Names) string { return `"` + n.Tables["payments_ledger"] + `"` }
	reserved := func(topology.Names) string { return string(pipeline.EventInventoryReserved) }
	inventoryQueue := func(n topology.Names) string { return n.Queues[pipeline.StageInventory] + `"` }
	everyCall := func(topology.Names) string { return "" }
	cases := []struct {
		adapter string
		name    string
		fault   fault
		want    string
		// notifications may repeat (a redelivered message re-announces).
		atLeastOnce bool
	}{
		// The order store: the inventory stage's reservation transaction.
		{"store", "ThrottlingException", fault{"DynamoDB", "TransactWriteItems", inventoryTable, awsfault.DynamoDBThrottling, 2}, sdkRetries, false},
		{"store", "ProvisionedThroughputExceededException", fault{"DynamoDB", "TransactWriteItems", inventoryTable, awsfault.DynamoDBProvisionedThroughputExceeded, 2}, sdkRetries, false},
		{"store", "RequestLimitExceeded", fault{"DynamoDB", "TransactWriteItems", inventoryTable, awsfault.DynamoDBRequestLimitExceeded, 2}, sdkRetries, false},
		{"store", "InternalServerError", fault{"DynamoDB", "TransactWriteItems", inventoryTable, awsfault.DynamoDBInternalServerError, 2}, sdkRetries, false},
		{"store", "ServiceUnavailable", fault{"DynamoDB", "TransactWriteItems", inventoryTable, awsfault.DynamoDBServiceUnavailable, 2}, sdkRetries, false},
		{"store", "ThrottlingException past the SDK's attempts", fault{"DynamoDB", "TransactWriteItems", inventoryTable, awsfault.DynamoDBThrottling, 4}, visibilityRetry, false},
		{"store", "TransactionCanceledException TransactionConflict", fault{"DynamoDB", "TransactWriteItems", inventoryTable, awsfault.TransactionCanceled("TransactionConflict", "None"), 1}, visibilityRetry, false},
		{"store", "AccessDeniedException", fault{"DynamoDB", "TransactWriteItems", inventoryTable, awsfault.DynamoDBAccessDenied, 1}, visibilityRetry, false},
		{"store", "ValidationException", fault{"DynamoDB", "TransactWriteItems", inventoryTable, awsfault.DynamoDBValidation, 1}, visibilityRetry, false},
		{"store", "InternalServerError on a stage write past the SDK's attempts", fault{"DynamoDB", "PutItem", stageWrite, awsfault.DynamoDBInternalServerError, 4}, visibilityRetry, false},
		// The sandbox gateway's ledger (the payment stage's charge).
		{"ledger", "ProvisionedThroughputExceededException", fault{"DynamoDB", "PutItem", ledger, awsfault.DynamoDBProvisionedThroughputExceeded, 2}, sdkRetries, false},
		{"ledger", "AccessDeniedException", fault{"DynamoDB", "PutItem", ledger, awsfault.DynamoDBAccessDenied, 1}, visibilityRetry, false},
		// The event publisher: the inventory stage's InventoryReserved.
		{"bus", "ThrottlingException", fault{"EventBridge", "PutEvents", reserved, awsfault.EventBridgeThrottling, 2}, sdkRetries, false},
		{"bus", "InternalException past the SDK's attempts", fault{"EventBridge", "PutEvents", reserved, awsfault.EventBridgeInternal, 3}, visibilityRetry, false},
		{"bus", "AccessDeniedException", fault{"EventBridge", "PutEvents", reserved, awsfault.EventBridgeAccessDenied, 1}, visibilityRetry, false},
		{"bus", "ValidationException", fault{"EventBridge", "PutEvents", reserved, awsfault.EventBridgeValidation, 1}, visibilityRetry, false},
		// The notifier (on the emulator it publishes one by one: it has no
		// PublishBatch). SNS's 429 Throttled is a modelled error the SDK
		// does not retry.
		{"notifier", "Throttled", fault{"SNS", "Publish", everyCall, awsfault.SNSThrottled, 1}, visibilityRetry, false},
		{"notifier", "InternalError", fault{"SNS", "Publish", everyCall, awsfault.SNSInternalError, 2}, sdkRetries, false},
		{"notifier", "AuthorizationError", fault{"SNS", "Publish", everyCall, awsfault.SNSAuthorization, 1}, visibilityRetry, false},
		// The consumer's own calls.
		{"consumer", "ReceiveMessage RequestThrottled past the SDK's attempts", fault{"SQS", "ReceiveMessage", inventoryQueue, awsfault.SQSThrottled, 3}, "", false},
		{"consumer", "ReceiveMessage ServiceUnavailable", fault{"SQS", "ReceiveMessage", inventoryQueue, awsfault.SQSServiceUnavailable, 2}, "", false},
		{"consumer", "DeleteMessageBatch InternalError", fault{"SQS", "DeleteMessageBatch", inventoryQueue, awsfault.SQSInternalError, 2}, sdkRetries, false},
		// Past the SDK's attempts the delete is lost: the message comes back
		// after its visibility timeout and is handled again, idempotently.
		{"consumer", "DeleteMessageBatch InternalError past the SDK's attempts", fault{"SQS", "DeleteMessageBatch", inventoryQueue, awsfault.SQSInternalError, 3}, "redelivered", true},
	}
	for _, tc := range cases {
		t.Run(tc.adapter+"/"+tc.name, func(t *testing.T) {
			t.Parallel()
			r, rules := start(t, func(n topology.Names) []*awsfault.Rule {
				return []*awsfault.Rule{{Service: tc.fault.service, Operation: tc.fault.operation, Match: tc.fault.match(n), Times: tc.fault.times, Response: tc.fault.answer}}
			})
			sku := "SKU-" + r.env.Prefix
			r.setStock(t, sku, 5)
			code, id := r.place(t, sku)
			if code != http.StatusAccepted {
				t.Fatalf("place order: %d", code)
			}
			o := r.final(t, id)
			if o.Status != pipeline.StatusShipped {
				t.Fatalf("order %s ended %s (%s), want SHIPPED", id, o.Status, o.Reason)
			}
			// Nothing applied twice, nothing lost.
			if got := r.stock(t, sku); got != 4 {
				t.Errorf("stock %d after one order of one unit from 5", got)
			}
			if n := r.charges(t, id); n != 1 {
				t.Errorf("%d captures in the ledger, want 1", n)
			}
			notes := r.notified(t, id)
			for _, ev := range []string{"OrderConfirmed", "OrderShipped"} {
				if notes[ev] == 0 || (!tc.atLeastOnce && notes[ev] != 1) {
					t.Errorf("%s notifications: %d, want 1", ev, notes[ev])
				}
			}
			// Announcements and batched deletes may follow the final write.
			testkit.Eventually(t, "the fault is hit", 10*time.Second, func() bool { return rules[0].Hits() >= tc.fault.times })
			if hits := rules[0].Hits(); hits != tc.fault.times {
				t.Errorf("the fault answered %d requests, want %d", hits, tc.fault.times)
			}
			if n := r.deadLettered(); n != 0 {
				t.Errorf("%d messages dead-lettered, want none", n)
			}
			switch tc.want {
			case sdkRetries:
				if n := r.retried(); n != 0 {
					t.Errorf("%d handler runs failed and were retried; the SDK should have absorbed the errors", n)
				}
			case visibilityRetry:
				if n := r.retried(); n < 1 {
					t.Errorf("no handler run was retried through the visibility timeout")
				}
			case "redelivered":
				// After the queue's visibility timeout (30 s).
				testkit.Eventually(t, "the undeleted inventory message is handled again", 60*time.Second, func() bool {
					return r.handled(pipeline.StageInventory, "ok")+r.handled(pipeline.StageInventory, string(pipeline.OutcomeDuplicate)) >= 2
				})
				if n := r.handled(pipeline.StageInventory, string(pipeline.OutcomeDuplicate)); n != 1 {
					t.Errorf("the redelivered message was handled as a duplicate %d times, want 1", n)
				}
				if got := r.stock(t, sku); got != 4 {
					t.Errorf("stock %d after the redelivery, want 4", got)
				}
			}
			if code, body := r.ready(t); code != http.StatusOK {
				t.Errorf("/readyz %d %s after the fault passed", code, body)
			}
		})
	}
}

// Errors that say a queue cannot be used (it is gone, access is denied,
// its KMS key is disabled) fail readiness with the cause instead of
// spinning; the answers are SQS's JSON errors with the awsQuery code the
// SDK reports from x-amzn-query-error.
func TestUnusableQueueFailsReadinessNamingTheCause(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		answer awsfault.Response
		cause  string
	}{
		{"QueueDoesNotExist", awsfault.SQSNonExistentQueue, "AWS.SimpleQueueService.NonExistentQueue"},
		{"AccessDenied", awsfault.SQSAccessDenied, "AccessDenied"},
		{"KMS.DisabledException", awsfault.SQSKMSDisabled, "KMS.DisabledException"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r, rules := start(t, func(n topology.Names) []*awsfault.Rule {
				return []*awsfault.Rule{{Service: "SQS", Operation: "ReceiveMessage", Match: n.Queues[pipeline.StagePayment] + `"`, Response: tc.answer}}
			})
			var body string
			testkit.Eventually(t, "readiness fails", 20*time.Second, func() bool {
				var code int
				code, body = r.ready(t)
				return code == http.StatusServiceUnavailable
			})
			if !strings.Contains(body, tc.cause) || !strings.Contains(body, "payment") {
				t.Errorf("/readyz body %s does not name the payment queue and %s", body, tc.cause)
			}
			if rules[0].Hits() == 0 {
				t.Fatal("the fault was never hit")
			}
		})
	}
}

// A message that must be dead-lettered is not lost when the DLQ refuses
// it (its KMS key is disabled): it stays on its queue, is retried, and
// lands in the DLQ once the DLQ takes it.
func TestDeadLetteringSurvivesAKMSError(t *testing.T) {
	t.Parallel()
	r, rules := start(t, func(n topology.Names) []*awsfault.Rule {
		return []*awsfault.Rule{{Service: "SQS", Operation: "SendMessage", Match: n.DLQs[pipeline.StageInventory] + `"`, Times: 1, Response: awsfault.SQSKMSDisabled}}
	})
	ctx := context.Background()
	if _, err := r.env.SQS.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(r.env.QueueURL(pipeline.StageInventory, false)),
		MessageBody: aws.String("not an event")}); err != nil {
		t.Fatal(err)
	}
	msgs := r.env.Receive(t, r.env.QueueURL(pipeline.StageInventory, true), 1, 30*time.Second)
	if len(msgs) != 1 || aws.ToString(msgs[0].Body) != "not an event" {
		t.Fatalf("DLQ holds %d messages, want the poison message", len(msgs))
	}
	if reason := msgs[0].MessageAttributes[delivery.AttrReason]; aws.ToString(reason.StringValue) == "" {
		t.Errorf("the dead-lettered message has no %s attribute", delivery.AttrReason)
	}
	if rules[0].Hits() != 1 {
		t.Errorf("the DLQ refused %d sends, want 1", rules[0].Hits())
	}
	if n := testutil.ToFloat64(r.m.Received.WithLabelValues(string(pipeline.StageInventory))); n < 2 {
		t.Errorf("the poison message was received %v times, want it back after the refused dead-lettering", n)
	}
	testkit.Eventually(t, "the dead-lettering is counted", 5*time.Second, func() bool { return r.handled(pipeline.StageInventory, "dead_lettered") >= 1 })
	if n := r.handled(pipeline.StageInventory, "dead_lettered"); n != 1 {
		t.Errorf("dead-lettered %d times, want 1", n)
	}
	// Nothing is left on the stage queue once the batched delete is sent.
	testkit.Eventually(t, "the inventory queue is empty", 10*time.Second, func() bool {
		out, err := r.env.SQS.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(r.env.QueueURL(pipeline.StageInventory, false)),
			AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameApproximateNumberOfMessages, types.QueueAttributeNameApproximateNumberOfMessagesNotVisible}})
		if err != nil {
			t.Fatal(err)
		}
		return out.Attributes[string(types.QueueAttributeNameApproximateNumberOfMessages)] == "0" &&
			out.Attributes[string(types.QueueAttributeNameApproximateNumberOfMessagesNotVisible)] == "0"
	})
}

// Order ids and SKUs longer than DynamoDB accepts in a key (2048 bytes for
// a partition key; AWS answers ValidationException, which the fault
// endpoint sends for them here) are answered 400 or 404 at the API, never
// 503: they name nothing that can exist.
func TestOversizedKeysAreRefusedAtTheAPI(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("a", 2049)
	longish := strings.Repeat("b", 300) // over the ids' 128, under DynamoDB's limit
	r, _ := start(t, func(topology.Names) []*awsfault.Rule {
		var rules []*awsfault.Rule
		for _, op := range []string{"GetItem", "PutItem", "UpdateItem", "TransactWriteItems"} {
			rules = append(rules, &awsfault.Rule{Service: "DynamoDB", Operation: op, Match: long, Response: awsfault.DynamoDBValidation})
		}
		return rules
	})
	do := func(method, path, body string) int {
		req, err := http.NewRequest(method, r.srv.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	order, _ := json.Marshal(testkit.Order(sandbox.TokenVisa, long))
	for _, tc := range []struct {
		method, path, body string
		want               int
	}{
		{"GET", "/v1/orders/" + long, "", http.StatusNotFound},
		{"POST", "/v1/orders/" + long + "/cancel", "", http.StatusNotFound},
		{"GET", "/v1/orders/" + longish, "", http.StatusNotFound},
		{"POST", "/v1/orders/" + longish + "/cancel", "", http.StatusNotFound},
		{"GET", "/v1/inventory/" + long, "", http.StatusBadRequest},
		{"PUT", "/v1/inventory/" + long, `{"available":1}`, http.StatusBadRequest},
		{"POST", "/v1/orders", string(order), http.StatusBadRequest},
	} {
		if got := do(tc.method, tc.path, tc.body); got != tc.want {
			t.Errorf("%s %.40s…: %d, want %d", tc.method, tc.path, got, tc.want)
		}
	}
}
