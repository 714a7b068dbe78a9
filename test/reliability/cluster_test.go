package reliability

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/cloudcommerce/cloudcommerce/internal/dev/testkit"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
	"github.com/cloudcommerce/cloudcommerce/internal/sandbox"
)

// cluster is one provisioned topology (a unique prefix) and the worker
// processes that serve it.
type cluster struct {
	r   *rt
	env *testkit.Env
	// endpoint is what the workers use as AWS_ENDPOINT_URL; empty means
	// the test's own endpoint (a fault proxy replaces it).
	endpoint string
	// extra environment for every worker.
	extra []string
	n     int
}

// baseWorkerEnv is the configuration every suite's worker starts from:
// short long polls (the emulator's long poll does not wake when a message
// becomes visible again), a fast stuck-order sweep so orders a crash
// stranded move on within seconds, and no queue sampling.
var baseWorkerEnv = []string{
	"CLOUDCOMMERCE_LOG_LEVEL=info",
	"CLOUDCOMMERCE_WAIT_TIME=1s",
	"CLOUDCOMMERCE_HANDLER_TIMEOUT=5s",
	"CLOUDCOMMERCE_SHUTDOWN_TIMEOUT=10s",
	"CLOUDCOMMERCE_RETRY_BASE=1s",
	"CLOUDCOMMERCE_SWEEP_INTERVAL=2s",
	"CLOUDCOMMERCE_STUCK_AFTER=5s",
	"CLOUDCOMMERCE_QUEUE_SAMPLE_INTERVAL=off",
	"CLOUDCOMMERCE_INVENTORY_CONCURRENCY=8",
	"CLOUDCOMMERCE_PAYMENT_CONCURRENCY=8",
	"CLOUDCOMMERCE_SHIPPING_CONCURRENCY=8",
}

func newCluster(r *rt, extra ...string) *cluster {
	r.Helper()
	return &cluster{r: r, env: testkit.Provision(r), extra: extra}
}

func (c *cluster) setStock(stock map[string]int64) {
	c.r.Helper()
	ctx, cancel := ctxTimeout(30 * time.Second)
	defer cancel()
	for sku, n := range stock {
		if err := c.env.Store().SetStock(ctx, sku, n); err != nil {
			c.r.Fatal(err)
		}
	}
}

// worker is a worker process slot with fixed addresses, so a restarted
// worker answers where the killed one did.
type worker struct {
	c       *cluster
	name    string
	ops     string
	api     string
	extra   []string
	bin     string     // the worker build to run; empty: this release's
	mu      sync.Mutex // guards p and history (restarts run on their own goroutine)
	p       *proc
	history []*proc
}

func (c *cluster) worker(extra ...string) *worker {
	c.n++
	return &worker{c: c, name: fmt.Sprintf("worker%d", c.n), ops: testkit.FreeAddr(c.r), api: testkit.FreeAddr(c.r), extra: extra}
}

func (w *worker) environ() []string {
	e := append(os.Environ(), "CLOUDCOMMERCE_PREFIX="+w.c.env.Prefix, "CLOUDCOMMERCE_OPS_ADDR="+w.ops, "CLOUDCOMMERCE_INTAKE_ADDR="+w.api)
	e = append(e, baseWorkerEnv...)
	if w.c.endpoint != "" {
		e = append(e, "AWS_ENDPOINT_URL="+w.c.endpoint)
	}
	e = append(e, w.c.extra...)
	return append(e, w.extra...)
}

// start starts (or restarts) the worker and waits until it is ready,
// failing the test otherwise. Call it from the test goroutine only.
func (w *worker) start() *proc {
	w.c.r.Helper()
	if err := w.tryStart(1); err != nil {
		w.c.r.Fatal(err)
	}
	return w.p
}

// tryStart starts the worker and waits until it is ready, starting it
// again (up to attempts times) if it exits first — as an orchestrator
// would while the network to AWS is out. Safe from any goroutine.
func (w *worker) tryStart(attempts int) error {
	var err error
	for i := 0; i < attempts; i++ {
		w.mu.Lock()
		bin := w.bin
		if bin == "" {
			bin = workerBinary(w.c.r)
		}
		w.p = startBinary(w.c.r, bin, fmt.Sprintf("%s-run%d", w.name, len(w.history)+1), w.environ(), w.ops, "run")
		w.history = append(w.history, w.p)
		p := w.p
		w.mu.Unlock()
		if err = p.ready(60 * time.Second); err == nil {
			return nil
		}
	}
	return err
}

// proc returns the current process.
func (w *worker) proc() *proc { w.mu.Lock(); defer w.mu.Unlock(); return w.p }

// grep counts matching output lines over every run of this worker.
func (w *worker) grep(s string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, p := range w.history {
		n += p.Grep(s)
	}
	return n
}

// --- intake API client ---

type apiResult struct {
	code int
	body []byte
}

// post sends a JSON body; code 0 means the request did not get an answer.
func post(url string, body []byte, header ...string) apiResult {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return apiResult{}
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return apiResult{}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return apiResult{code: resp.StatusCode, body: b}
}

// placeOrder posts an order with an Idempotency-Key, retrying (same key)
// through worker restarts and transient 503s until ctx ends. It returns
// the order id, or "" if ctx ended first.
func placeOrder(ctx context.Context, r *rt, api func() string, req pipeline.OrderRequest, key string) string {
	body, err := json.Marshal(req)
	if err != nil {
		r.Fatal(err)
	}
	for backoff := 50 * time.Millisecond; ctx.Err() == nil; backoff = min(2*backoff, time.Second) {
		res := post("http://"+api()+"/v1/orders", body, "Idempotency-Key", key)
		switch {
		case res.code == http.StatusAccepted:
			var out struct {
				OrderID string `json:"order_id"`
			}
			if err := json.Unmarshal(res.body, &out); err != nil || out.OrderID == "" {
				r.Errorf("POST /v1/orders: 202 with body %s", res.body)
				return ""
			}
			return out.OrderID
		case res.code == 0 || res.code >= 500:
			// Worker down or restarting, or a transient AWS error: retry
			// with the same key, which never creates a second order.
		default:
			r.Errorf("POST /v1/orders = %d %s", res.code, res.body)
			return ""
		}
		sleepCtx(ctx, backoff)
	}
	return ""
}

// cancelResult is what a cancellation request came back with.
type cancelResult struct {
	code   int             // 200, 409 or 0 when it got no final answer
	status pipeline.Status // the status the answer named
}

// cancelOrder asks the intake to cancel, retrying through restarts, 503s
// and 404s (an order put on the bus is stored only once the inventory
// stage sees it) until ctx ends.
func cancelOrder(ctx context.Context, api func() string, id string) cancelResult {
	for backoff := 50 * time.Millisecond; ctx.Err() == nil; backoff = min(2*backoff, time.Second) {
		res := post("http://"+api()+"/v1/orders/"+id+"/cancel", nil)
		switch res.code {
		case http.StatusOK:
			var v struct {
				Status pipeline.Status `json:"status"`
			}
			_ = json.Unmarshal(res.body, &v)
			return cancelResult{code: 200, status: v.Status}
		case http.StatusConflict:
			var p struct {
				Errors []struct {
					Field  string `json:"field"`
					Detail string `json:"detail"`
				} `json:"errors"`
			}
			_ = json.Unmarshal(res.body, &p)
			st := pipeline.Status("")
			for _, e := range p.Errors {
				if e.Field == "status" {
					st = pipeline.Status(e.Detail)
				}
			}
			return cancelResult{code: 409, status: st}
		}
		sleepCtx(ctx, backoff)
	}
	return cancelResult{}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// --- queues ---

// queueDepth returns visible + in flight + delayed messages of a queue.
func (c *cluster) queueDepth(url string) (int, error) {
	ctx, cancel := ctxTimeout(10 * time.Second)
	defer cancel()
	out, err := c.env.SQS.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url), AttributeNames: []sqstypes.QueueAttributeName{
		sqstypes.QueueAttributeNameApproximateNumberOfMessages, sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
		sqstypes.QueueAttributeNameApproximateNumberOfMessagesDelayed}})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, v := range out.Attributes {
		k, _ := strconv.Atoi(v)
		n += k
	}
	return n, nil
}

// notVisible returns the messages of a queue that are in flight.
func (c *cluster) notVisible(url string) int {
	ctx, cancel := ctxTimeout(10 * time.Second)
	defer cancel()
	out, err := c.env.SQS.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url), AttributeNames: []sqstypes.QueueAttributeName{
		sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible}})
	if err != nil {
		c.r.Fatal(err)
	}
	n, _ := strconv.Atoi(out.Attributes[string(sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible)])
	return n
}

// dlqURLs returns every dead-letter queue of the topology: the stage
// queues' DLQs and the EventBridge rule targets' DLQs.
func (c *cluster) dlqURLs() map[string]string {
	out := map[string]string{}
	for _, st := range pipeline.Stages {
		out[string(st)+" DLQ"] = c.env.QueueURL(st, true)
	}
	for name, url := range c.env.Prov.QueueURLs {
		if strings.HasSuffix(name, "-target-dlq") {
			out[strings.TrimPrefix(name, c.env.Prefix+"-")] = url
		}
	}
	return out
}

// send puts a raw body straight onto a stage queue, as a duplicate or
// hostile delivery would arrive.
func (c *cluster) send(st pipeline.Stage, body string) {
	c.r.Helper()
	if err := c.trySend(st, body); err != nil {
		c.r.Fatalf("send to %s queue: %v", st, err)
	}
}

func (c *cluster) trySend(st pipeline.Stage, body string) error {
	ctx, cancel := ctxTimeout(10 * time.Second)
	defer cancel()
	_, err := c.env.SQS.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(c.env.QueueURL(st, false)), MessageBody: aws.String(body)})
	return err
}

// peek receives up to 10 messages of a queue with a short visibility,
// without deleting them.
func (c *cluster) peek(url string) []sqstypes.Message {
	ctx, cancel := ctxTimeout(10 * time.Second)
	defer cancel()
	out, err := c.env.SQS.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: 10, VisibilityTimeout: 1,
		MessageAttributeNames: []string{"All"}, MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameAll}})
	if err != nil {
		c.r.Fatal(err)
	}
	return out.Messages
}

// drain receives and deletes every message of a queue, returning them.
func (c *cluster) drain(url string, want int, timeout time.Duration) []sqstypes.Message {
	c.r.Helper()
	return c.env.Receive(c.r, url, want, timeout)
}

func (c *cluster) ledger() []sandbox.Entry {
	c.r.Helper()
	ctx, cancel := ctxTimeout(30 * time.Second)
	defer cancel()
	entries, err := sandbox.NewGateway(c.env.DDB, c.env.Prov.Names.Tables["payments_ledger"]).Entries(ctx)
	if err != nil {
		c.r.Fatal(err)
	}
	return entries
}

// orders returns every stored order, by id.
func (c *cluster) orders() (map[string]pipeline.Order, error) {
	ctx, cancel := ctxTimeout(60 * time.Second)
	defer cancel()
	// Every item of the table, read by key: no index (each format keeps
	// its own) decides what the test sees.
	var ids []string
	var start map[string]ddbtypes.AttributeValue
	for {
		page, err := c.env.DDB.Scan(ctx, &dynamodb.ScanInput{TableName: aws.String(c.env.Prov.Names.Tables["orders"]),
			ProjectionExpression: aws.String("order_id"), ExclusiveStartKey: start, ConsistentRead: aws.Bool(true)})
		if err != nil {
			return nil, err
		}
		for _, it := range page.Items {
			if id, ok := it["order_id"].(*ddbtypes.AttributeValueMemberS); ok && pipeline.ValidID(id.Value) {
				ids = append(ids, id.Value)
			}
		}
		if page.LastEvaluatedKey == nil {
			break
		}
		start = page.LastEvaluatedKey
	}
	got, _, err := c.env.Store().GetMany(ctx, ids, 4)
	if err != nil {
		return nil, err
	}
	out := make(map[string]pipeline.Order, len(got))
	for id, o := range got {
		out[id] = o.Order
	}
	return out, nil
}

func attr(m map[string]sqstypes.MessageAttributeValue, name string) string {
	return aws.ToString(m[name].StringValue)
}

// inFlightAfterExit reads a queue right after its consumer exited. It
// returns how many of its messages are stranded in flight although no
// consumer is running (received by someone and neither deleted nor handed
// back, so they return only after their 30 s visibility timeout), and how
// many visible messages had been received before (handed back, or
// retried). It receives everything receivable now (holding it for 15 s),
// compares the in-flight count with what it holds, and hands its messages
// back at once. (The emulator counts a message handed back with
// visibility 0 as in flight until the next receive, so the count alone
// would not do.)
//
// Its receives are not retried: a retried receive whose first attempt the
// endpoint served would leave messages in flight that the count would
// blame on the consumer. When a receive fails, what its attempt took is
// unknowable, so the measurement is made once more after that attempt's
// hold has expired (16 s: still well inside the visibility timeout of
// anything the consumer stranded before it exited).
func (c *cluster) inFlightAfterExit(url string) (stranded, receivedBefore int) {
	c.r.Helper()
	client := sqs.NewFromConfig(c.env.AWS, func(o *sqs.Options) { o.RetryMaxAttempts = 1 })
	var err error
	for attempt := 1; attempt <= 2; attempt++ {
		if stranded, receivedBefore, err = c.measureInFlight(client, url); err == nil {
			return stranded, receivedBefore
		}
		c.r.Logf("measuring %s (attempt %d): %v", url, attempt, err)
		if attempt == 1 {
			time.Sleep(16 * time.Second) // until what the failed receive took is visible again
		}
	}
	c.r.Fatalf("could not count the messages in flight in %s: %v", url, err)
	return 0, 0
}

func (c *cluster) measureInFlight(client *sqs.Client, url string) (stranded, receivedBefore int, err error) {
	ctx, cancel := ctxTimeout(30 * time.Second)
	defer cancel()
	var held []sqstypes.ChangeMessageVisibilityBatchRequestEntry
	defer func() {
		// Hand back what this measurement holds (the default client, with
		// retries: a repeated hand-back is harmless).
		for len(held) > 0 {
			k := min(10, len(held))
			if _, herr := c.env.SQS.ChangeMessageVisibilityBatch(ctx, &sqs.ChangeMessageVisibilityBatchInput{QueueUrl: aws.String(url), Entries: held[:k]}); herr != nil && err == nil {
				err = fmt.Errorf("hand back: %w", herr)
			}
			held = held[k:]
		}
	}()
	for {
		out, rerr := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: 10, VisibilityTimeout: 15,
			MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameApproximateReceiveCount}})
		if rerr != nil {
			return 0, 0, fmt.Errorf("receive: %w", rerr)
		}
		if len(out.Messages) == 0 {
			break
		}
		for _, m := range out.Messages {
			if n, _ := strconv.Atoi(m.Attributes[string(sqstypes.MessageSystemAttributeNameApproximateReceiveCount)]); n >= 2 {
				receivedBefore++
			}
			held = append(held, sqstypes.ChangeMessageVisibilityBatchRequestEntry{Id: aws.String(strconv.Itoa(len(held))), ReceiptHandle: m.ReceiptHandle})
		}
	}
	// Approximate counts settle within seconds on SQS.
	testkit.Poll(5*time.Second, 200*time.Millisecond, func() bool { stranded = c.notVisible(url) - len(held); return stranded == 0 })
	return stranded, receivedBefore, nil
}
