package floor_test

import (
	"bufio"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	snstypes "github.com/aws/aws-sdk-go-v2/service/sns/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/cloudcommerce/cloudcommerce/internal/awsconf"
	"github.com/cloudcommerce/cloudcommerce/internal/bus"
	"github.com/cloudcommerce/cloudcommerce/internal/config"
	"github.com/cloudcommerce/cloudcommerce/internal/logging"
	"github.com/cloudcommerce/cloudcommerce/internal/metrics"
	"github.com/cloudcommerce/cloudcommerce/internal/notify"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
)

// serveEnv, when set in the environment of this test binary, makes it the
// canned endpoint instead of running tests: it prints its URL and serves
// until its standard input closes. The endpoint runs in its own process so
// that getrusage of the benchmark process counts the client's CPU only, as
// /proc counts the worker's apart from the emulator's.
const serveEnv = "CLOUDCOMMERCE_FLOOR_SERVE"

func TestMain(m *testing.M) {
	if os.Getenv(serveEnv) != "" {
		if err := serve(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	// The worker's runtime default (GOGC 400 unless GOGC is set).
	config.ApplyGCDefault(os.Getenv)
	os.Exit(m.Run())
}

// order is a realistic order at the given status: two lines, a phone
// number (so notifications go to two channels), its history so far.
func order(status pipeline.Status) pipeline.Order {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	o, err := pipeline.NewOrder("0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", pipeline.OrderRequest{
		Customer: pipeline.Customer{ID: "cust-0042", Email: "customer42@example.com", Phone: "+14155550100"},
		Items: []pipeline.Item{
			{SKU: "SKU-WIDGET", Quantity: 2, UnitPrice: pipeline.Money{Amount: 500, Currency: "USD"}},
			{SKU: "SKU-GADGET", Quantity: 1, UnitPrice: pipeline.Money{Amount: 750, Currency: "USD"}},
		},
		Payment:         pipeline.Payment{Token: "tok_visa"},
		ShippingAddress: pipeline.Address{Name: "Ada Lovelace", Line1: "1 Market St", City: "San Francisco", PostalCode: "94105", Country: "US"},
	}, now)
	if err != nil {
		panic(err)
	}
	steps := []pipeline.Status{pipeline.StatusReserved, pipeline.StatusPaid, pipeline.StatusShipped}
	for i, st := range steps {
		at := now.Add(time.Duration(i+1) * 20 * time.Millisecond)
		o.Status, o.UpdatedAt, o.History[st] = st, at, at
		switch st {
		case pipeline.StatusPaid:
			o.ChargeID = "ch_0123456789abcdef01234567"
		case pipeline.StatusShipped:
			o.Carrier, o.TrackingNumber = "sandbox-carrier", "1Z999AA10123456784"
		}
		if st == status {
			break
		}
	}
	return o
}

// envelope is a stage message body: the EventBridge envelope around an
// order, as SQS delivers it (about 1.5 KB).
func envelope(t pipeline.EventType, o pipeline.Order) string {
	detail, err := pipeline.EncodeDetail(pipeline.Event{Type: t, Order: o})
	if err != nil {
		panic(err)
	}
	body, err := json.Marshal(pipeline.Envelope{Version: "0", ID: "6a7e8feb-b491-4cf7-a9f1-bf3703467718", DetailType: string(t),
		Source: pipeline.EventSource, Account: "000000000000", Time: o.UpdatedAt, Region: "us-east-1", Resources: []string{}, Detail: json.RawMessage(detail)})
	if err != nil {
		panic(err)
	}
	return string(body)
}

// receiptHandle is shaped like SQS's (a few hundred base64 characters).
func receiptHandle(i int) string {
	return fmt.Sprintf("AQEB%03dwJnKyrHigUMZj6rYigCgxlaS3SLy0a+Y6bXx1hFZdNkfVe6v4ZjNQx0WFv8b6AJpCXDvGbaVDjnKKm4lhdYpwfjRE3hKSgRHUMeMqbN5bxlJXsSBM6FuRUDKSiEcVD1Fo5n2Wz9nsdVNB7dUyLkCDGgqNUPRyeB0bpMNPRfQjdQBQt6rzRAl3gzfdOXBOEtCIZcUgxr3Vgxw8sPWpuqAqUkKM6kD7zPFBiKFTlx4u5dWHwD6OdmDHIaXnmvNjuLbRU9x2+DUKBQbL8lWLMNLNOjEk4cFNuY7hZkJHdBIhlA9EKbiZXaP0AvGmMf3rcTO3QWhQ", i)
}

const requestID = "7a62c49f-347e-4fc4-9331-6e8eEXAMPLE"

// responses are the canned answers by operation, with the content type
// each protocol uses.
func responses() map[string][2]string {
	receipt := make([]string, 10)
	msgs := make([]string, 10)
	for i := range msgs {
		body := envelope(pipeline.EventInventoryReserved, order(pipeline.StatusReserved))
		sum := md5.Sum([]byte(body))
		receipt[i] = receiptHandle(i)
		msgs[i] = fmt.Sprintf(`{"MessageId":"0b9d43a6-5e1f-4c1e-9d3e-2f7a8c9b10%02d","ReceiptHandle":%q,"MD5OfBody":"%s","Body":%q,"Attributes":{"ApproximateReceiveCount":"1","SentTimestamp":"1795000000000"}}`,
			i, receipt[i], hex.EncodeToString(sum[:]), body)
	}
	ok, entries, published := make([]string, 10), make([]string, 10), make([]string, 10)
	for i := range ok {
		ok[i] = fmt.Sprintf(`{"Id":"%d"}`, i)
		entries[i] = fmt.Sprintf(`{"EventId":"5f6b1c2e-8d4a-4e2b-9f1c-3a7d6e5b40%02d"}`, i)
		published[i] = fmt.Sprintf(`<member><Id>%d</Id><MessageId>8a1f3c7e-6b2d-5e4f-9a0b-1c2d3e4f50%02d</MessageId></member>`, i, i)
	}
	const dynamo, sqsJSON, events, xml = "application/x-amz-json-1.0", "application/x-amz-json-1.0", "application/x-amz-json-1.1", "text/xml"
	return map[string][2]string{
		"DynamoDB_20120810.PutItem":            {dynamo, `{}`},
		"DynamoDB_20120810.TransactWriteItems": {dynamo, `{}`},
		"DynamoDB_20120810.GetItem":            {dynamo, `{"Item":{"sku":{"S":"SKU-SCARCE"},"available":{"N":"0"}}}`},
		"AmazonSQS.ReceiveMessage":             {sqsJSON, `{"Messages":[` + strings.Join(msgs, ",") + `]}`},
		"AmazonSQS.DeleteMessageBatch":         {sqsJSON, `{"Successful":[` + strings.Join(ok, ",") + `],"Failed":[]}`},
		"AmazonSQS.ChangeMessageVisibility":    {sqsJSON, `{}`},
		"AWSEvents.PutEvents":                  {events, `{"FailedEntryCount":0,"Entries":[` + strings.Join(entries, ",") + `]}`},
		"Publish": {xml, `<PublishResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><PublishResult><MessageId>8a1f3c7e-6b2d-5e4f-9a0b-1c2d3e4f5a6b</MessageId></PublishResult><ResponseMetadata><RequestId>` +
			requestID + `</RequestId></ResponseMetadata></PublishResponse>`},
		"PublishBatch": {xml, `<PublishBatchResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><PublishBatchResult><Successful>` + strings.Join(published, "") +
			`</Successful><Failed/></PublishBatchResult><ResponseMetadata><RequestId>` + requestID + `</RequestId></ResponseMetadata></PublishBatchResponse>`},
	}
}

// serve is the canned endpoint: JSON protocols are told apart by
// X-Amz-Target, SNS's query protocol by its Action field.
func serve() error {
	canned := responses()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		op := r.Header.Get("X-Amz-Target")
		if op == "" {
			if err := r.ParseForm(); err == nil {
				op = r.PostForm.Get("Action")
			}
		} else {
			_, _ = io.Copy(io.Discard, r.Body)
		}
		resp, ok := canned[op]
		if !ok {
			http.Error(w, "no canned response for "+op, http.StatusNotImplemented)
			return
		}
		h := w.Header()
		h.Set("Content-Type", resp[0])
		h.Set("Content-Length", strconv.Itoa(len(resp[1])))
		h.Set("X-Amzn-Requestid", requestID)
		_, _ = io.WriteString(w, resp[1])
	})}
	go func() { _ = srv.Serve(ln) }()
	fmt.Printf("http://%s\n", ln.Addr())
	_, _ = io.Copy(io.Discard, os.Stdin)
	return srv.Close()
}

// endpoint starts the canned endpoint in a child process and returns its
// URL and PID.
func endpoint(b *testing.B) (string, int) {
	b.Helper()
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), serveEnv+"=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = stdin.Close()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		b.Fatalf("canned endpoint did not start: %v", err)
	}
	return strings.TrimSpace(line), cmd.Process.Pid
}

// workerConfig builds the SDK configuration as the worker's run command
// does (cmd/worker/run.go): the standard variables read by config.AWS,
// pointed at the canned endpoint, with requests and connections counted,
// the idle pool sized by the worker's default configuration and the SDK's
// log lines through the worker's logger.
func workerConfig(b *testing.B, url string) aws.Config {
	b.Helper()
	env := map[string]string{"AWS_ENDPOINT_URL": url, "AWS_REGION": "us-east-1"}
	getenv := func(k string) string { return env[k] }
	wc, err := config.WorkerFromEnv(getenv)
	if err != nil {
		b.Fatal(err)
	}
	log, err := logging.New(wc.LogLevel)
	if err != nil {
		b.Fatal(err)
	}
	m := metrics.New()
	conn := config.AWS(getenv)
	conn.Requests, conn.Connections = m.AWSRequests, m.AWSConnections
	conn.IdleConnsPerHost, conn.Logger = wc.AWSCalls(), log
	cfg, err := awsconf.Load(context.Background(), conn)
	if err != nil {
		b.Fatal(err)
	}
	return cfg
}

// cpuTime is this process's user + system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procCPU is a process's utime + stime from /proc/<pid>/stat.
func procCPU(b *testing.B, pid int) time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond // USER_HZ 100
}

// measure warms call up (connection opened, pools filled), then reports
// CPU µs per call of this process (the client) and of the endpoint
// process, beside the allocations per call, twice: seq makes one call
// after another; par8 makes them from 8 goroutines at once, as the
// worker's handlers and pollers do, so that wake-ups and the runtime's
// network polling are shared between calls.
func measure(b *testing.B, pid int, call func() error) {
	b.Helper()
	for range 20 {
		if err := call(); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("seq", func(b *testing.B) { calls(b, pid, 1, call) })
	b.Run("par8", func(b *testing.B) { calls(b, pid, 8, call) })
}

func calls(b *testing.B, pid, callers int, call func() error) {
	b.ReportAllocs()
	b.ResetTimer()
	cpu0, srv0 := cpuTime(b), procCPU(b, pid)
	if callers == 1 {
		for i := 0; i < b.N; i++ {
			if err := call(); err != nil {
				b.Fatal(err)
			}
		}
	} else {
		b.SetParallelism(max(1, callers/runtime.GOMAXPROCS(0)))
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := call(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	b.StopTimer()
	cpu, srv := cpuTime(b)-cpu0, procCPU(b, pid)-srv0
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/op")
	b.ReportMetric(float64(srv.Microseconds())/float64(b.N), "endpoint-cpu-µs/op")
}

func strAttr(v string) ddbtypes.AttributeValue { return &ddbtypes.AttributeValueMemberS{Value: v} }

// orderItem is the orders-table item a stage writes (store.orderItem).
func orderItem(b *testing.B, o pipeline.Order) map[string]ddbtypes.AttributeValue {
	doc, err := json.Marshal(o)
	if err != nil {
		b.Fatal(err)
	}
	return map[string]ddbtypes.AttributeValue{"order_id": strAttr(o.ID), "status": strAttr(string(o.Status)),
		"updated_at": strAttr(o.UpdatedAt.UTC().Format("2006-01-02T15:04:05.000000000Z07:00")), "customer_id": strAttr(o.Customer.ID), "order": strAttr(string(doc))}
}

// BenchmarkPutItem is a stage's conditional order write (store.Apply
// without stock): about 1 KB of order document.
func BenchmarkPutItem(b *testing.B) {
	url, pid := endpoint(b)
	db := awsconf.DynamoDB(workerConfig(b, url))
	in := &dynamodb.PutItemInput{TableName: aws.String("cc-orders"), Item: orderItem(b, order(pipeline.StatusPaid)),
		ConditionExpression: aws.String("#s = :from"), ExpressionAttributeNames: map[string]string{"#s": "status"},
		ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":from": strAttr(string(pipeline.StatusReserved))}}
	measure(b, pid, func() error { _, err := db.PutItem(context.Background(), in); return err })
}

// BenchmarkLedgerPutItem is the sandbox payment ledger's entry (one per
// charge, made in the worker's process by its own client).
func BenchmarkLedgerPutItem(b *testing.B) {
	url, pid := endpoint(b)
	db := awsconf.DynamoDB(workerConfig(b, url))
	in := &dynamodb.PutItemInput{TableName: aws.String("cc-sandbox-ledger"), Item: map[string]ddbtypes.AttributeValue{
		"idempotency_key": strAttr("0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"), "kind": strAttr("capture"), "order_id": strAttr("0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"),
		"id": strAttr("ch_0123456789abcdef01234567"), "amount": &ddbtypes.AttributeValueMemberN{Value: "1750"}, "currency": strAttr("USD"),
		"created_at": strAttr("2026-11-25T12:00:00.04Z")}, ConditionExpression: aws.String("attribute_not_exists(idempotency_key)")}
	measure(b, pid, func() error { _, err := db.PutItem(context.Background(), in); return err })
}

// BenchmarkTransactWriteItems is the inventory stage's reservation: two
// stock updates and the order write in one transaction.
func BenchmarkTransactWriteItems(b *testing.B) {
	url, pid := endpoint(b)
	db := awsconf.DynamoDB(workerConfig(b, url))
	o := order(pipeline.StatusReserved)
	items := make([]ddbtypes.TransactWriteItem, 0, 3)
	for _, l := range o.Items {
		items = append(items, ddbtypes.TransactWriteItem{Update: &ddbtypes.Update{TableName: aws.String("cc-inventory"),
			Key: map[string]ddbtypes.AttributeValue{"sku": strAttr(l.SKU)}, UpdateExpression: aws.String("SET available = available - :q"),
			ConditionExpression:       aws.String("attribute_exists(sku) AND available >= :q"),
			ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":q": &ddbtypes.AttributeValueMemberN{Value: strconv.FormatInt(l.Quantity, 10)}}}})
	}
	items = append(items, ddbtypes.TransactWriteItem{Put: &ddbtypes.Put{TableName: aws.String("cc-orders"), Item: orderItem(b, o),
		ConditionExpression: aws.String("#s = :from"), ExpressionAttributeNames: map[string]string{"#s": "status"},
		ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":from": strAttr(string(pipeline.StatusPlaced))}}})
	in := &dynamodb.TransactWriteItemsInput{TransactItems: items}
	measure(b, pid, func() error { _, err := db.TransactWriteItems(context.Background(), in); return err })
}

// BenchmarkGetItem is the stock read that explains a rejection.
func BenchmarkGetItem(b *testing.B) {
	url, pid := endpoint(b)
	db := awsconf.DynamoDB(workerConfig(b, url))
	in := &dynamodb.GetItemInput{TableName: aws.String("cc-inventory"), Key: map[string]ddbtypes.AttributeValue{"sku": strAttr("SKU-SCARCE")}, ConsistentRead: aws.Bool(true)}
	measure(b, pid, func() error { _, err := db.GetItem(context.Background(), in); return err })
}

const queueURL = "http://127.0.0.1:4566/000000000000/cc-payment"

// BenchmarkReceiveMessage10 is a stage poller's receive that returns ten
// messages (the SDK checks every body's MD5).
func BenchmarkReceiveMessage10(b *testing.B) {
	url, pid := endpoint(b)
	q := sqs.NewFromConfig(workerConfig(b, url))
	in := &sqs.ReceiveMessageInput{QueueUrl: aws.String(queueURL), MaxNumberOfMessages: 10, WaitTimeSeconds: 20,
		MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameApproximateReceiveCount, sqstypes.MessageSystemAttributeNameSentTimestamp},
		MessageAttributeNames:       []string{"All"}}
	measure(b, pid, func() error {
		out, err := q.ReceiveMessage(context.Background(), in)
		if err == nil && len(out.Messages) != 10 {
			err = fmt.Errorf("received %d messages, want 10", len(out.Messages))
		}
		return err
	})
}

// BenchmarkDeleteMessageBatch10 acknowledges ten messages.
func BenchmarkDeleteMessageBatch10(b *testing.B) {
	url, pid := endpoint(b)
	q := sqs.NewFromConfig(workerConfig(b, url))
	entries := make([]sqstypes.DeleteMessageBatchRequestEntry, 10)
	for i := range entries {
		entries[i] = sqstypes.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: aws.String(receiptHandle(i))}
	}
	in := &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(queueURL), Entries: entries}
	measure(b, pid, func() error {
		out, err := q.DeleteMessageBatch(context.Background(), in)
		if err == nil && len(out.Successful) != 10 {
			err = fmt.Errorf("%d deletes succeeded, want 10", len(out.Successful))
		}
		return err
	})
}

// BenchmarkChangeMessageVisibility is the back-off of a transient failure.
func BenchmarkChangeMessageVisibility(b *testing.B) {
	url, pid := endpoint(b)
	q := sqs.NewFromConfig(workerConfig(b, url))
	in := &sqs.ChangeMessageVisibilityInput{QueueUrl: aws.String(queueURL), ReceiptHandle: aws.String(receiptHandle(0)), VisibilityTimeout: 1}
	measure(b, pid, func() error { _, err := q.ChangeMessageVisibility(context.Background(), in); return err })
}

// BenchmarkPutEvents10 is one PutEvents carrying ten stage events
// (bus.Entry, as the publisher builds them).
func BenchmarkPutEvents10(b *testing.B) {
	url, pid := endpoint(b)
	eb := eventbridge.NewFromConfig(workerConfig(b, url))
	entries := make([]ebtypes.PutEventsRequestEntry, 10)
	for i := range entries {
		e, err := bus.Entry("cc-orders", pipeline.Event{Type: pipeline.EventPaymentCaptured, Order: order(pipeline.StatusPaid)})
		if err != nil {
			b.Fatal(err)
		}
		entries[i] = e
	}
	in := &eventbridge.PutEventsInput{Entries: entries}
	measure(b, pid, func() error {
		out, err := eb.PutEvents(context.Background(), in)
		if err == nil && (out.FailedEntryCount != 0 || len(out.Entries) != 10) {
			err = fmt.Errorf("PutEvents: %d failed of %d", out.FailedEntryCount, len(out.Entries))
		}
		return err
	})
}

const topicARN = "arn:aws:sns:us-east-1:000000000000:cc-notifications"

func notification(b *testing.B) pipeline.Notification {
	n, ok := pipeline.NotificationFor(order(pipeline.StatusShipped))
	if !ok {
		b.Fatal("no notification for a shipped order")
	}
	return n
}

// BenchmarkPublish is one customer notification with its four message
// attributes (notify's fallback where PublishBatch is missing).
func BenchmarkPublish(b *testing.B) {
	url, pid := endpoint(b)
	c := sns.NewFromConfig(workerConfig(b, url))
	n := notification(b)
	in := &sns.PublishInput{TopicArn: aws.String(topicARN), Subject: aws.String(n.Subject), Message: aws.String(n.Text), MessageAttributes: notify.Attributes(n)}
	measure(b, pid, func() error { _, err := c.Publish(context.Background(), in); return err })
}

// BenchmarkPublishBatch10 is ten notifications in one PublishBatch.
func BenchmarkPublishBatch10(b *testing.B) {
	url, pid := endpoint(b)
	c := sns.NewFromConfig(workerConfig(b, url))
	n := notification(b)
	entries := make([]snstypes.PublishBatchRequestEntry, 10)
	for i := range entries {
		entries[i] = snstypes.PublishBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), Subject: aws.String(n.Subject), Message: aws.String(n.Text), MessageAttributes: notify.Attributes(n)}
	}
	in := &sns.PublishBatchInput{TopicArn: aws.String(topicARN), PublishBatchRequestEntries: entries}
	measure(b, pid, func() error {
		out, err := c.PublishBatch(context.Background(), in)
		if err == nil && len(out.Successful) != 10 {
			err = fmt.Errorf("%d published, want 10", len(out.Successful))
		}
		return err
	})
}
