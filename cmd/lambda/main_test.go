package main

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/cloudcommerce/cloudcommerce/internal/config"
	"github.com/cloudcommerce/cloudcommerce/internal/dev/emulator"
	"github.com/cloudcommerce/cloudcommerce/internal/dev/testkit"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
)

func TestMain(m *testing.M) { emulator.RunTests(m) }

// buildBootstrap builds the function as docs/lambda.md deploys it: a
// binary named bootstrap, the name its recorded AWS calls carry.
func buildBootstrap(t *testing.T, env []string) string {
	t.Helper()
	bin := testkit.Build(t, ".", env, "-tags", "lambda.norpc", "-trimpath")
	out := filepath.Join(filepath.Dir(bin), "bootstrap")
	if err := os.Rename(bin, out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestBuildsForLambdaArm64 builds the deployment artifact exactly as
// docs/lambda.md says and checks what went into it.
func TestBuildsForLambdaArm64(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	t.Parallel()
	bin := buildBootstrap(t, []string{"GOOS=linux", "GOARCH=arm64", "CGO_ENABLED=0"})
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatalf("bootstrap is not an ELF binary: %v", err)
	}
	defer f.Close()
	if f.Machine != elf.EM_AARCH64 {
		t.Errorf("bootstrap is for %s, want aarch64 (the functions run on arm64)", f.Machine)
	}
	if f.Section(".interp") != nil {
		t.Error("bootstrap is dynamically linked; provided.al2023 needs CGO_ENABLED=0")
	}
	info, err := exec.Command(testkit.GoTool(t), "version", "-m", bin).CombinedOutput()
	if err != nil {
		t.Fatalf("go version -m: %v\n%s", err, info)
	}
	for _, banned := range []string{"sivchari/kumo", "internal/dev/emulator"} {
		if bytes.Contains(info, []byte(banned)) {
			t.Errorf("bootstrap contains %s: the emulator must never ship", banned)
		}
	}
	for _, want := range []string{"github.com/aws/aws-lambda-go", "-tags=lambda.norpc", "CGO_ENABLED=0", "GOARCH=arm64"} {
		if !bytes.Contains(info, []byte(want)) {
			t.Errorf("go version -m does not show %s:\n%s", want, info)
		}
	}
	// Packages, not only modules: nothing of the emulator is linked in.
	deps, err := exec.Command(testkit.GoTool(t), "list", "-tags", "lambda.norpc", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, deps)
	}
	if bytes.Contains(deps, []byte("internal/dev/emulator")) || bytes.Contains(deps, []byte("sivchari/kumo")) {
		t.Error("cmd/lambda depends on the emulator")
	}
}

func TestHelpListsTheEnvironment(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	if err := run(context.Background(), []string{"help"}, func(string) string { return "" }, &out); err != nil {
		t.Fatal(err)
	}
	for _, e := range config.LambdaEnv {
		if !strings.Contains(out.String(), e.Name) {
			t.Errorf("help does not list %s", e.Name)
		}
	}
}

func TestRunRefusesBadConfigurationAndLifeOutsideLambda(t *testing.T) {
	t.Parallel()
	err := run(context.Background(), nil, func(k string) string {
		return map[string]string{"CLOUDCOMMERCE_STAGE": "billing", "CLOUDCOMMERCE_PAYMENT_GATEWAY": "paypal"}[k]
	}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "CLOUDCOMMERCE_STAGE") || !strings.Contains(err.Error(), "CLOUDCOMMERCE_PAYMENT_GATEWAY") {
		t.Errorf("bad configuration: got %v, want both problems named", err)
	}
	err = run(context.Background(), nil, func(string) string { return "" }, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "AWS_LAMBDA_RUNTIME_API") {
		t.Errorf("outside Lambda: got %v", err)
	}
}

// runtimeAPI is a stand-in for Lambda's runtime API
// (/2018-06-01/runtime/invocation/…): it hands the function queued events
// and collects its answers.
type runtimeAPI struct {
	events    chan []byte
	responses chan invocationResult
	seq       int
	mu        sync.Mutex
}

type invocationResult struct {
	id    string
	body  []byte
	error bool
}

func (r *runtimeAPI) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	const base = "/2018-06-01/runtime/invocation/"
	switch {
	case req.Method == http.MethodGet && req.URL.Path == base+"next":
		select {
		case ev := <-r.events:
			r.mu.Lock()
			r.seq++
			id := fmt.Sprintf("req-%d", r.seq)
			r.mu.Unlock()
			w.Header().Set("Lambda-Runtime-Aws-Request-Id", id)
			w.Header().Set("Lambda-Runtime-Deadline-Ms", strconv.FormatInt(time.Now().Add(30*time.Second).UnixMilli(), 10))
			w.Header().Set("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:000000000000:function:cloudcommerce-payment")
			w.Header().Set("Lambda-Runtime-Trace-Id", "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1")
			_, _ = w.Write(ev)
		case <-req.Context().Done():
		}
	case req.Method == http.MethodPost && strings.HasPrefix(req.URL.Path, base):
		rest := strings.TrimPrefix(req.URL.Path, base)
		id, kind, _ := strings.Cut(rest, "/")
		body, _ := io.ReadAll(req.Body)
		w.WriteHeader(http.StatusAccepted)
		r.responses <- invocationResult{id: id, body: body, error: kind == "error"}
	default:
		http.NotFound(w, req)
	}
}

// TestBinaryServesAnInvocation runs the built function against a stand-in
// runtime API and the emulator: the wire format of the event and of the
// partial batch response, and the cold-start wiring from the environment.
func TestBinaryServesAnInvocation(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	t.Parallel()
	bin := buildBootstrap(t, []string{"CGO_ENABLED=0"})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// A provisioned topology with one good, one poison and one transient
	// payment message waiting.
	e := testkit.Provision(t)
	prefix, sqsc, prov, names, st := e.Prefix, e.SQS, e.Prov, e.Prov.Names, e.Store()
	queueURL := prov.QueueURLs[names.Queues[pipeline.StagePayment]]
	sent := map[string]string{}
	for _, token := range []string{"tok_visa", "tok_processingError"} {
		o, err := pipeline.NewOrder("ord-"+token, pipeline.OrderRequest{
			Customer:        pipeline.Customer{ID: "cust-1", Email: "ada@example.com"},
			Items:           []pipeline.Item{{SKU: "SKU-1", Quantity: 1, UnitPrice: pipeline.Money{Amount: 1250, Currency: "USD"}}},
			Payment:         pipeline.Payment{Token: token},
			ShippingAddress: pipeline.Address{Name: "Ada Lovelace", Line1: "1 Main St", City: "London", PostalCode: "N1 1AA", Country: "GB"},
		}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		o.Status = pipeline.StatusReserved
		if err := st.Apply(ctx, pipeline.Change{Order: o, From: pipeline.StatusPlaced, Upsert: true}); err != nil {
			t.Fatal(err)
		}
		detail, _ := pipeline.EncodeDetail(pipeline.Event{Type: pipeline.EventInventoryReserved, Order: o})
		body, _ := json.Marshal(pipeline.Envelope{Version: "0", ID: "e-" + token, DetailType: string(pipeline.EventInventoryReserved),
			Source: pipeline.EventSource, Account: "000000000000", Time: time.Now().UTC(), Region: "us-east-1", Detail: json.RawMessage(detail)})
		out, err := sqsc.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &queueURL, MessageBody: aws.String(string(body))})
		if err != nil {
			t.Fatal(err)
		}
		sent[token] = aws.ToString(out.MessageId)
	}
	if _, err := sqsc.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &queueURL, MessageBody: aws.String("not an event")}); err != nil {
		t.Fatal(err)
	}
	var ev events.SQSEvent
	for len(ev.Records) < 3 && ctx.Err() == nil {
		out, err := sqsc.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &queueURL, MaxNumberOfMessages: 10, WaitTimeSeconds: 1,
			MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameAll}})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range out.Messages {
			ev.Records = append(ev.Records, events.SQSMessage{MessageId: aws.ToString(m.MessageId), ReceiptHandle: aws.ToString(m.ReceiptHandle),
				Body: aws.ToString(m.Body), Md5OfBody: aws.ToString(m.MD5OfBody), Attributes: m.Attributes,
				EventSourceARN: prov.QueueARNs[names.Queues[pipeline.StagePayment]], EventSource: "aws:sqs", AWSRegion: "us-east-1"})
		}
	}
	payload, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}

	api := &runtimeAPI{events: make(chan []byte, 1), responses: make(chan invocationResult, 1)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: api, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	p := testkit.Start(t, bin, append(os.Environ(),
		"AWS_LAMBDA_RUNTIME_API="+ln.Addr().String(),
		"CLOUDCOMMERCE_PREFIX="+prefix,
		"CLOUDCOMMERCE_STAGE=payment",
		"CLOUDCOMMERCE_TOPIC_ARN="+prov.TopicARN,
	))

	api.events <- payload
	select {
	case res := <-api.responses:
		if res.error {
			t.Fatalf("function error: %s\nlogs:\n%s", res.body, p.Output())
		}
		want := `{"batchItemFailures":[{"itemIdentifier":"` + sent["tok_processingError"] + `"}]}`
		if strings.TrimSpace(string(res.body)) != want {
			t.Fatalf("response %s, want %s\nlogs:\n%s", res.body, want, p.Output())
		}
	case <-p.Done():
		t.Fatalf("function exited: %v\nlogs:\n%s", p.Err(), p.Output())
	case <-ctx.Done():
		t.Fatalf("no answer\nlogs:\n%s", p.Output())
	}
	if o, err := st.Get(ctx, "ord-tok_visa"); err != nil || o.Status != pipeline.StatusPaid {
		t.Errorf("good order: %v %v, want PAID", o.Status, err)
	}
}
