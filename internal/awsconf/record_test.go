package awsconf_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	snstypes "github.com/aws/aws-sdk-go-v2/service/sns/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/cloudcommerce/cloudcommerce/internal/awsconf"
)

// The recorder names each call's resources from its input, whatever the
// endpoint answers, and writes each distinct call once.
func TestRecorderNamesTheResourcesOfEachCall(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError) // the call is recorded before it is sent
	}))
	defer srv.Close()
	path := filepath.Join(t.TempDir(), "calls.jsonl")
	rec, err := awsconf.NewRecorderAs(path, "worker", "dlq redrive", "")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := awsconf.Load(context.Background(), awsconf.Options{Endpoint: srv.URL, Region: "us-east-1", Record: rec})
	if err != nil {
		t.Fatal(err)
	}
	cfg.RetryMaxAttempts = 1
	ctx := context.Background()
	db, q, topic := awsconf.DynamoDB(cfg), sqs.NewFromConfig(cfg), sns.NewFromConfig(cfg)
	key := map[string]types.AttributeValue{"k": &types.AttributeValueMemberS{Value: "v"}}
	for i := 0; i < 2; i++ { // the second round adds no lines
		_, _ = db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
			{Put: &types.Put{TableName: aws.String("p-orders"), Item: key}},
			{Update: &types.Update{TableName: aws.String("p-inventory"), Key: key, UpdateExpression: aws.String("SET a = :a")}},
		}})
		_, _ = db.Query(ctx, &dynamodb.QueryInput{TableName: aws.String("p-orders"), IndexName: aws.String("by_status")})
		_, _ = q.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String("http://localhost:4566/000000000000/p-inventory"),
			Entries: []sqstypes.DeleteMessageBatchRequestEntry{{Id: aws.String("0"), ReceiptHandle: aws.String("r")}}})
		_, _ = q.StartMessageMoveTask(ctx, &sqs.StartMessageMoveTaskInput{SourceArn: aws.String("arn:aws:sqs:us-east-1:000000000000:p-inventory-dlq"),
			DestinationArn: aws.String("arn:aws:sqs:us-east-1:000000000000:p-inventory")})
		_, _ = topic.PublishBatch(ctx, &sns.PublishBatchInput{TopicArn: aws.String("arn:aws:sns:us-east-1:000000000000:p-notifications"),
			PublishBatchRequestEntries: []snstypes.PublishBatchRequestEntry{{Id: aws.String("0"), Message: aws.String("m")}}})
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var got []string
	for sc := bufio.NewScanner(f); sc.Scan(); {
		var c awsconf.Call
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			t.Fatal(err)
		}
		if c.Process != "worker" || c.Command != "dlq redrive" {
			t.Errorf("recorded as %q %q, want worker, dlq redrive", c.Process, c.Command)
		}
		got = append(got, c.Service+"."+c.Operation+" "+strings.Join(c.Resources, ","))
	}
	want := []string{
		"DynamoDB.TransactWriteItems PutItem@table:p-orders,UpdateItem@table:p-inventory",
		"DynamoDB.Query index:p-orders/index/by_status",
		"SQS.DeleteMessageBatch queue:p-inventory",
		"SQS.StartMessageMoveTask queue:p-inventory,queue:p-inventory-dlq",
		"SNS.PublishBatch topic:p-notifications",
	}
	if !slices.Equal(got, want) {
		t.Errorf("recorded\n %q\nwant\n %q", got, want)
	}
}
