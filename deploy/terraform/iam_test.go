package terraform_test

// IAM from observed calls. The shipped binaries record every AWS call they
// make when CLOUDCOMMERCE_TEST_RECORD_CALLS names a file (internal/awsconf,
// record.go); the suites that run them (test/e2e: the worker's stages,
// intake, sweep and queue sampling, `dlq list`/`redrive`, `orders
// show`/`list`, and
// `healthcheck`, which calls no AWS API (it asks the worker's /healthz);
// test/observability: the console and ops routes, in-process but recorded
// as the worker's; test/reliability: the worker under faults; cmd/lambda:
// the Lambda bootstrap) leave one JSON line per distinct call.
// testdata/observed-calls.json is that recording with the per-run resource
// prefixes replaced by what topology.json names. Refresh it after a change
// to what the code calls:
//
//	rm -f /tmp/calls.jsonl
//	CLOUDCOMMERCE_TEST_RECORD_CALLS=/tmp/calls.jsonl go test -count=1 \
//	    ./test/e2e/ ./test/observability/ ./test/reliability/ ./cmd/lambda/
//	CLOUDCOMMERCE_OBSERVED_CALLS_FROM=/tmp/calls.jsonl go test -count=1 \
//	    -run TestObservedCallsAreGranted ./deploy/terraform/
//
// `worker provision` is left out: it creates the topology on emulators and
// LocalStack; on AWS, Terraform creates every resource and no role the
// code runs under may create or reconfigure them.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
)

const observedCallsFile = "testdata/observed-calls.json"

// observedCall is one distinct call of a shipped surface, in the names of
// topology.json: "queue/<stage>", "dlq/<stage>", "ruledlq/<rule>",
// "table/<role>", "table/<role>/index/<name>", "bus", "topic", "secret".
// Transaction items are "<ItemAction>@table/<role>".
type observedCall struct {
	Process   string   `json:"process"`
	Command   string   `json:"command,omitempty"`
	Stage     string   `json:"stage,omitempty"`
	Service   string   `json:"service"`
	Operation string   `json:"operation"`
	Resources []string `json:"resources,omitempty"`
}

// grantedWithoutCall is the one place for what a role grants that no
// shipped code calls directly: action -> resource kind -> reason. A kind is
// the part of a resource before "/" ("queue", "dlq", "table", ...) or a
// whole symbolic resource.
var grantedWithoutCall = map[string]map[string]string{
	"dynamodb:DeleteItem": {
		"table": "a PUT that lowers a SKU's shard count deletes the surplus shard items in its transaction (internal/store tests); no recorded suite lowers one",
	},
	"sqs:ChangeMessageVisibility": {
		"ruledlq": "dlq list hands peeked messages back (as on the stage DLQs); not run on rule-target DLQs by the suites",
	},
	"sqs:ListMessageMoveTasks": {
		"dlq":     "dlq redrive follows the move task it started; the emulator refuses StartMessageMoveTask, so the suites see the fallback",
		"ruledlq": "as on the stage DLQs",
	},
	"sqs:GetQueueAttributes": {
		"ruledlq": "StartMessageMoveTask needs GetQueueAttributes on the source; dlq list/redrive of rule-target DLQs",
	},
	"sqs:ReceiveMessage": {
		"ruledlq": "StartMessageMoveTask needs ReceiveMessage on the source; dlq list/redrive of rule-target DLQs",
	},
	"sqs:DeleteMessage": {
		"ruledlq": "StartMessageMoveTask needs DeleteMessage on the source; dlq list/redrive of rule-target DLQs",
	},
	"sqs:GetQueueUrl": {
		"ruledlq": "dlq list/redrive of rule-target DLQs (not run by the suites)",
	},
	"sqs:StartMessageMoveTask": {
		"ruledlq": "dlq redrive of rule-target DLQs (not run by the suites)",
	},
	"kms:Decrypt": {
		"kms": "SSE-KMS with a customer key: SQS ReceiveMessage and SNS/SQS delivery decrypt with the caller's rights",
	},
	"kms:GenerateDataKey": {
		"kms": "SSE-KMS with a customer key: SQS SendMessage and SNS Publish encrypt with the caller's rights",
	},
	"secretsmanager:GetSecretValue": {
		"secret": "the Stripe key at cold start; the suites use the sandbox gateway",
	},
	"aps:RemoteWrite": {
		"workspace": "the metrics sidecar (the OpenTelemetry collector beside the worker, not Go code) remote-writes the worker's metrics to the Prometheus workspace with the task role's credentials",
	},
}

// notOnAWS are observed calls that the configuration Terraform deploys
// never makes: surface, action -> reason.
var notOnAWS = map[string]string{
	"sns:CreateTopic": "the topic ARN is looked up by name only when CLOUDCOMMERCE_TOPIC_ARN is empty; Terraform's task definition and functions always set it",
}

// role returns the role a surface runs under.
func (c observedCall) role() string {
	switch c.Process {
	case "worker":
		return "task"
	case "bootstrap":
		return "lambda/" + c.Stage
	}
	return ""
}

func (c observedCall) surface() string {
	s := c.Process
	if c.Command != "" {
		s += " " + c.Command
	}
	if c.Stage != "" {
		s += " (" + c.Stage + ")"
	}
	return s
}

// needs returns the IAM action -> resources a call is authorised by.
func (c observedCall) needs() map[string][]string {
	out := map[string][]string{}
	add := func(a, r string) { out[a] = append(out[a], r) }
	prefix := map[string]string{"SQS": "sqs", "DynamoDB": "dynamodb", "EventBridge": "events", "SNS": "sns", "Secrets Manager": "secretsmanager"}[c.Service]
	action := prefix + ":" + c.Operation
	switch c.Service + "." + c.Operation {
	case "SQS.SendMessageBatch", "SQS.DeleteMessageBatch", "SQS.ChangeMessageVisibilityBatch":
		// Batch actions are authorised by their single-message action.
		action = "sqs:" + strings.TrimSuffix(c.Operation, "Batch")
	case "SNS.PublishBatch":
		action = "sns:Publish"
	case "SQS.StartMessageMoveTask":
		// The source is the dead-letter queue; SQS receives, deletes and
		// reads attributes there and sends to the destination with the
		// caller's rights.
		for _, r := range c.Resources {
			if strings.HasPrefix(r, "dlq/") || strings.HasPrefix(r, "ruledlq/") {
				add("sqs:StartMessageMoveTask", r)
				add("sqs:ReceiveMessage", r)
				add("sqs:DeleteMessage", r)
				add("sqs:GetQueueAttributes", r)
			} else {
				add("sqs:SendMessage", r)
			}
		}
		return out
	case "DynamoDB.TransactWriteItems", "DynamoDB.TransactGetItems":
		for _, r := range c.Resources {
			a, res, _ := strings.Cut(r, "@")
			add("dynamodb:"+a, res)
		}
		return out
	}
	for _, r := range c.Resources {
		add(action, r)
	}
	if len(c.Resources) == 0 {
		add(action, "*")
	}
	return out
}

func kind(resource string) string {
	k, _, _ := strings.Cut(resource, "/")
	if strings.Contains(resource, "/index/") {
		return "index"
	}
	if strings.HasPrefix(resource, "arn:aws:kms:") {
		return "kms"
	}
	if strings.HasPrefix(resource, "arn:aws:secretsmanager:") {
		return "secret"
	}
	return k
}

const (
	testCMK       = "arn:aws:kms:eu-west-1:123456789012:key/00000000-0000-0000-0000-000000000000"
	testStripeArn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:stripe-AbCdEf"
	testSecretKey = "arn:aws:kms:eu-west-1:123456789012:key/11111111-1111-1111-1111-111111111111"
)

// iamRuns are the plans the role policies are read from: a customer key
// everywhere, so that every optional statement is there; the Lambda roles
// with either payment gateway.
var iamRuns = []planRun{
	{"ecs", `    kms = { key_arn = "` + testCMK + `" }`},
	{"lambda_stripe", `    compute             = "lambda"
    lambda              = { package_path = "tests/testdata/lambda.zip" }
    kms                 = { key_arn = "` + testCMK + `" }
    stripe_secret_arn   = "` + testStripeArn + `"
    secrets_kms_key_arn = "` + testSecretKey + `"`},
	{"lambda_sandbox", `    compute = "lambda"
    lambda  = { package_path = "tests/testdata/lambda.zip" }
    kms     = { key_arn = "` + testCMK + `" }`},
}

// roleGrants reads every role's policy from Terraform's plans: role ->
// action -> resources. A Lambda role is the union of its grants with the
// Stripe and the sandbox gateway (the suites run the sandbox).
func roleGrants(t *testing.T, c *config, plans map[string][]resourceChange) map[string]map[string][]string {
	t.Helper()
	out := map[string]map[string][]string{"task": policyGrants(t, c, plans["ecs"], "worker_task", "0")}
	for _, q := range c.topo.Queues {
		g := policyGrants(t, c, plans["lambda_stripe"], "lambda_stage", q.Stage)
		for a, rs := range policyGrants(t, c, plans["lambda_sandbox"], "lambda_stage", q.Stage) {
			for _, r := range rs {
				if !slices.Contains(g[a], r) {
					g[a] = append(g[a], r)
				}
			}
		}
		out["lambda/"+q.Stage] = g
	}
	return out
}

// TestObservedCallsAreGranted: every call a shipped surface was seen making
// is granted to the role it runs under, on a resource the policy names; and
// every grant is used by some observed call or is listed, with its reason,
// in grantedWithoutCall.
func TestObservedCallsAreGranted(t *testing.T) {
	c := cfg(t)
	if from := os.Getenv("CLOUDCOMMERCE_OBSERVED_CALLS_FROM"); from != "" {
		writeObservedCalls(t, c, from)
	}
	b, err := os.ReadFile(observedCallsFile)
	if err != nil {
		t.Fatal(err)
	}
	var calls []observedCall
	if err := json.Unmarshal(b, &calls); err != nil {
		t.Fatalf("%s: %v", observedCallsFile, err)
	}
	plans := terraformPlans(t, c, iamRuns)
	checkObservedCalls(t, roleGrants(t, c, plans), calls)

	// Each function's role grants exactly docs/lambda.md's table: its own
	// stage queue and DLQ, the tables its handlers touch with the item
	// actions they call, the bus, the topic, the Stripe secret only where the
	// gateway is used, the customer keys. Nothing else.
	for _, tc := range []struct{ run, gateway, secretsKey string }{{"lambda_stripe", "stripe", testSecretKey}, {"lambda_sandbox", "sandbox", ""}} {
		for _, q := range c.topo.Queues {
			got := policyGrants(t, c, plans[tc.run], "lambda_stage", q.Stage)
			for _, rs := range got {
				sort.Strings(rs)
			}
			if want := documentedLambdaGrants(q.Stage, tc.gateway, testCMK, tc.secretsKey); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("gateway %s: the %s role grants\n %v\nwant (docs/lambda.md)\n %v", tc.gateway, q.Stage, got, want)
			}
		}
	}
}

// documentedLambdaGrants is docs/lambda.md's "Role per stage" table for one
// stage: action -> resources ("queue"/"dlq" of the stage, "table/<role>",
// "bus", "topic", ARNs).
func documentedLambdaGrants(stage, gateway, cmk, secretsKey string) map[string][]string {
	g := map[string]map[string]bool{}
	grant := func(res string, actions ...string) {
		for _, a := range actions {
			if g[a] == nil {
				g[a] = map[string]bool{}
			}
			g[a][res] = true
		}
	}
	grant("queue/"+stage, "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ChangeMessageVisibility", "sqs:GetQueueUrl")
	grant("dlq/"+stage, "sqs:SendMessage", "sqs:GetQueueUrl")
	grant("table/orders", "dynamodb:GetItem", "dynamodb:PutItem")
	switch stage {
	case "inventory":
		grant("table/inventory", "dynamodb:UpdateItem", "dynamodb:GetItem")
		if gateway == "sandbox" {
			grant("table/payments_ledger", "dynamodb:GetItem", "dynamodb:PutItem")
		}
	case "payment":
		grant("table/inventory", "dynamodb:UpdateItem")
		if gateway == "sandbox" {
			grant("table/payments_ledger", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem")
		}
	}
	grant("bus", "events:PutEvents")
	grant("topic", "sns:Publish")
	if gateway == "stripe" && stage != "shipping" {
		grant(testStripeArn, "secretsmanager:GetSecretValue")
		if secretsKey != "" {
			grant(secretsKey, "kms:Decrypt")
		}
	}
	if cmk != "" {
		grant(cmk, "kms:Decrypt", "kms:GenerateDataKey")
	}
	out := map[string][]string{}
	for a, rs := range g {
		out[a] = sortedKeys(rs)
	}
	return out
}

func checkObservedCalls(t *testing.T, grants map[string]map[string][]string, calls []observedCall) {
	t.Helper()
	// The recording covers every command that calls AWS in production:
	// the worker's and the Lambda bootstrap.
	surfaces := map[string]bool{}
	for _, call := range calls {
		surfaces[call.Process+" "+call.Command] = true
	}
	for _, want := range []string{"worker run", "worker dlq list", "worker dlq redrive", "worker orders show", "worker orders list", "bootstrap "} {
		if !surfaces[want] {
			t.Errorf("%s: no calls of %q recorded; refresh it (see the comment at the top of this file)", observedCallsFile, want)
		}
	}
	used := map[string]bool{} // "action kind" the task role was seen using
	for _, call := range calls {
		role := call.role()
		g, ok := grants[role]
		if !ok {
			t.Errorf("%s: %s %s: no role for this surface", call.surface(), call.Service, call.Operation)
			continue
		}
		for action, resources := range call.needs() {
			if _, ok := notOnAWS[action]; ok {
				continue
			}
			for _, r := range resources {
				if r == "secret" {
					// Any secret: the policy names the configured ARN.
					if i := slices.IndexFunc(g[action], func(s string) bool { return kind(s) == "secret" }); i >= 0 {
						r = g[action][i]
					}
				}
				if !slices.Contains(g[action], r) {
					t.Errorf("%s calls %s.%s: the %s role does not grant %s on %s (it grants it on %v)",
						call.surface(), call.Service, call.Operation, role, action, r, g[action])
					continue
				}
				if role == "task" {
					used[action+" "+kind(r)] = true
				}
			}
		}
	}
	// The other direction, for the task role: each action it grants on a
	// kind of resource is used on that kind somewhere, or listed. (The
	// Lambda roles are held to docs/lambda.md's table in
	// TestObservedCallsAreGranted; the suites run one invocation of one
	// function, too little to say what is never called.)
	for _, action := range sortedKeys(grants["task"]) {
		kinds := map[string]bool{}
		for _, r := range grants["task"][action] {
			kinds[kind(r)] = true
		}
		for _, k := range sortedKeys(kinds) {
			if used[action+" "+k] {
				continue
			}
			if _, ok := grantedWithoutCall[action][k]; ok {
				continue
			}
			t.Errorf("the task role grants %s on %s resources, which no shipped surface was seen calling and grantedWithoutCall does not list", action, k)
		}
	}
	for action, kinds := range grantedWithoutCall {
		for k := range kinds {
			if used[action+" "+k] {
				t.Errorf("grantedWithoutCall lists %s on %s, which %s shows called: drop the entry", action, k, observedCallsFile)
			}
		}
	}
}

// writeObservedCalls turns a raw recording into observedCallsFile.
func writeObservedCalls(t *testing.T, c *config, from string) {
	t.Helper()
	f, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	suffixes := map[string]map[string]string{"queue": {}, "table": {}, "topic": {c.topo.Topic.Name: "topic"}}
	for _, q := range c.topo.Queues {
		suffixes["queue"][q.Name] = "queue/" + q.Stage
		suffixes["queue"][q.DLQ.Name] = "dlq/" + q.Stage
	}
	for _, r := range c.topo.Rules {
		suffixes["queue"][r.TargetDLQ] = "ruledlq/" + r.Name
	}
	for _, tb := range c.topo.Tables {
		suffixes["table"][tb.Name] = "table/" + tb.Role
	}
	symbol := func(r string) string {
		k, name, _ := strings.Cut(r, ":")
		if k == "bus" {
			return "bus"
		}
		if k == "secret" {
			return "secret"
		}
		if k == "index" {
			table, index, _ := strings.Cut(name, "/index/")
			return symbolOf(suffixes["table"], table) + "/index/" + index
		}
		return symbolOf(suffixes[k], name)
	}
	seen := map[string]bool{}
	var out []observedCall
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var call observedCall
		if err := json.Unmarshal(sc.Bytes(), &call); err != nil {
			t.Fatalf("%s: %v", from, err)
		}
		if call.role() == "" || call.Command == "provision" {
			continue // test processes and provisioning
		}
		for i, r := range call.Resources {
			if a, res, ok := strings.Cut(r, "@"); ok {
				call.Resources[i] = a + "@" + symbol(res)
			} else {
				call.Resources[i] = symbol(r)
			}
		}
		sort.Strings(call.Resources)
		key := fmt.Sprint(call)
		if !seen[key] {
			seen[key] = true
			out = append(out, call)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	sort.Slice(out, func(i, j int) bool { return fmt.Sprint(out[i]) < fmt.Sprint(out[j]) })
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(observedCallsFile), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(observedCallsFile, append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}

// symbolOf names "<prefix>-<suffix>" by its longest known suffix.
func symbolOf(suffixes map[string]string, name string) string {
	best := ""
	for s := range suffixes {
		if strings.HasSuffix(name, "-"+s) && len(s) > len(best) {
			best = s
		}
	}
	if best == "" {
		return "unknown:" + name
	}
	return suffixes[best]
}

// notExercised lists the AWS operations shipped code can call that the
// recording has no call of, with the reason: "<file>: <Service>.<Operation>".
var notExercised = map[string]string{
	"internal/ops/dlq/dlq.go: SQS.ListMessageMoveTasks":     "follows a move task after StartMessageMoveTask succeeds; the emulator refuses StartMessageMoveTask, so the suites see the fallback",
	"internal/wire/wire.go: Secrets Manager.GetSecretValue": "reads the Stripe key of a Lambda function; the suites use the sandbox gateway",
	"internal/sandbox/sandbox.go: DynamoDB.Scan":            "Gateway.Entries, which no shipped surface calls (tests read the ledger with it)",
	"internal/topology/provision.go: *":                     "worker provision, for emulators and LocalStack; Terraform creates the resources on AWS",
	"internal/wire/wire.go: SNS.CreateTopic":                "only without CLOUDCOMMERCE_TOPIC_ARN (see notOnAWS)",
}

var sdkInput = regexp.MustCompile(`&(sqs|dynamodb|sns|eventbridge|secretsmanager)\.([A-Za-z]+)Input\{`)

// Every AWS operation the code linked into cmd/worker and cmd/lambda can
// call is in the recording or in notExercised: a new call fails here
// until the recording is refreshed and the IAM check sees it.
func TestEveryShippedCallIsRecorded(t *testing.T) {
	t.Parallel()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	list := exec.Command("go", "list", "-deps", "-f",
		`{{if .Module}}{{if eq .Module.Path "github.com/cloudcommerce/cloudcommerce"}}{{.Dir}}|{{join .GoFiles ","}}{{end}}{{end}}`,
		"./cmd/worker", "./cmd/lambda")
	list.Dir = root
	out, err := list.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	b, err := os.ReadFile(observedCallsFile)
	if err != nil {
		t.Fatal(err)
	}
	var calls []observedCall
	if err := json.Unmarshal(b, &calls); err != nil {
		t.Fatal(err)
	}
	observed := map[string]bool{}
	for _, c := range calls {
		observed[c.Service+"."+c.Operation] = true
	}
	services := map[string]string{"sqs": "SQS", "dynamodb": "DynamoDB", "sns": "SNS", "eventbridge": "EventBridge", "secretsmanager": "Secrets Manager"}
	found, listed := 0, map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		dir, files, _ := strings.Cut(line, "|")
		rel, _ := filepath.Rel(root, dir)
		for _, f := range strings.Split(files, ",") {
			if f == "" {
				continue
			}
			src, err := os.ReadFile(filepath.Join(dir, f))
			if err != nil {
				t.Fatal(err)
			}
			file := filepath.ToSlash(filepath.Join(rel, f))
			for _, m := range sdkInput.FindAllStringSubmatch(string(src), -1) {
				found++
				op := services[m[1]] + "." + m[2]
				for _, key := range []string{file + ": " + op, file + ": *"} {
					if _, ok := notExercised[key]; ok {
						listed[key] = true
					}
				}
				if observed[op] || listed[file+": "+op] || listed[file+": *"] {
					continue
				}
				t.Errorf("%s calls %s, which %s does not record and notExercised does not list: refresh the recording (see the top of this file)", file, op, observedCallsFile)
			}
		}
	}
	if found < 20 {
		t.Fatalf("found only %d SDK calls in the shipped packages; is the scan broken?", found)
	}
	for key := range notExercised {
		if !listed[key] {
			t.Errorf("notExercised lists %q, which no shipped file calls", key)
		}
	}
}
