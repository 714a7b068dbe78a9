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
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

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

// A recorder applied to a configuration that already records (a shipped
// component run inside a test process) replaces that recorder: each call is
// recorded once, as the component's, and the call itself still works.
func TestApplyReplacesTheRecorder(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		w.Write([]byte("{}"))
	}))
	defer srv.Close()
	dir := t.TempDir()
	outer, err := awsconf.NewRecorderAs(filepath.Join(dir, "outer.jsonl"), "observability.test", "", "")
	if err != nil {
		t.Fatal(err)
	}
	inner, err := awsconf.NewRecorderAs(filepath.Join(dir, "inner.jsonl"), "worker", "run", "")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := awsconf.Load(context.Background(), awsconf.Options{Endpoint: srv.URL, Region: "us-east-1", StaticCredentials: true, Record: outer})
	if err != nil {
		t.Fatal(err)
	}
	db := awsconf.DynamoDB(inner.Apply(cfg))
	if _, err := db.GetItem(context.Background(), &dynamodb.GetItemInput{TableName: aws.String("a-orders"),
		Key: map[string]types.AttributeValue{"k": &types.AttributeValueMemberS{Value: "v"}}}); err != nil {
		t.Fatalf("GetItem through the replaced recorder: %v", err)
	}
	if got := recordedLines(t, filepath.Join(dir, "inner.jsonl")); !slices.Equal(got, []string{"worker run DynamoDB.GetItem table:a-orders"}) {
		t.Errorf("applied recorder wrote %q, want the one GetItem as worker run", got)
	}
	if got := recordedLines(t, filepath.Join(dir, "outer.jsonl")); len(got) != 0 {
		t.Errorf("replaced recorder still wrote %q", got)
	}
}

// On ECS and EC2 the SDK fetches credentials over HTTP inside the first
// call that needs them. Those requests are not the call's: the request
// counter and the recorder see the call once.
func TestCredentialFetchesAreNotCountedAsTheCall(t *testing.T) {
	creds := make(chan struct{}, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/creds" {
			creds <- struct{}{}
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{"AccessKeyId":"AKIDEXAMPLE","SecretAccessKey":"secret","Token":"token","Expiration":"2099-01-01T00:00:00Z"}`))
			return
		}
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		w.Write([]byte("{}"))
	}))
	defer srv.Close()
	// The ECS container credentials provider, as on Fargate (a loopback
	// address is allowed over http).
	t.Setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", srv.URL+"/creds")
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN"} {
		t.Setenv(k, "")
	}
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	path := filepath.Join(t.TempDir(), "calls.jsonl")
	rec, err := awsconf.NewRecorderAs(path, "worker", "run", "")
	if err != nil {
		t.Fatal(err)
	}
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "requests_total"}, []string{"service", "operation", "outcome"})
	cfg, err := awsconf.Load(context.Background(), awsconf.Options{Endpoint: srv.URL, Region: "us-east-1", Requests: requests, Record: rec})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := awsconf.DynamoDB(cfg).GetItem(context.Background(), &dynamodb.GetItemInput{TableName: aws.String("c-orders"),
		Key: map[string]types.AttributeValue{"k": &types.AttributeValueMemberS{Value: "v"}}}); err != nil {
		t.Fatal(err)
	}
	if len(creds) != 1 {
		t.Fatalf("credentials fetched %d times, want once: the test does not exercise the credential provider", len(creds))
	}
	if got := testutil.ToFloat64(requests.WithLabelValues("DynamoDB", "GetItem", "ok")); got != 1 {
		t.Errorf("DynamoDB GetItem ok counted %v times, want 1", got)
	}
	if got := testutil.CollectAndCount(requests); got != 1 {
		t.Errorf("%d request series, want only DynamoDB GetItem ok", got)
	}
	if got := recordedLines(t, path); !slices.Equal(got, []string{"worker run DynamoDB.GetItem table:c-orders"}) {
		t.Errorf("recorded %q, want the one GetItem", got)
	}
}

func recordedLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if line == "" {
			continue
		}
		var c awsconf.Call
		if err := json.Unmarshal([]byte(line), &c); err != nil {
			t.Fatal(err)
		}
		got = append(got, strings.TrimSpace(c.Process+" "+c.Command)+" "+c.Service+"."+c.Operation+" "+strings.Join(c.Resources, ","))
	}
	return got
}
