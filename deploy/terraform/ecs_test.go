package terraform_test

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"

	appconfig "github.com/cloudcommerce/cloudcommerce/internal/config"
)

// ---------------------------------------------------------------------------
// ECS task, service, ECR
// ---------------------------------------------------------------------------

func TestWorkerTaskDefinition(t *testing.T) {
	t.Parallel()
	c := cfg(t)
	const stripeArn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:stripe-AbCdEf"
	const apiKeyArn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:intake-AbCdEf"
	root := rootEvaluator(t, c, map[string]cty.Value{
		"payment_gateway":    cty.StringVal("stripe"),
		"stripe_secret_arn":  cty.StringVal(stripeArn),
		"api_key_secret_arn": cty.StringVal(apiKeyArn),
		"intake":             cty.ObjectVal(map[string]cty.Value{"enabled": cty.True}),
	})
	ws := moduleEvaluator(t, c, root, "worker_service", "worker_service")
	defs := ws.locals["container_definitions"]
	// The worker, and beside it only the metrics sidecar (prometheus_test.go).
	if !defs.CanIterateElements() || defs.LengthInt() < 1 || defs.LengthInt() > 2 {
		t.Fatalf("local.container_definitions: want the worker container (and the metrics collector), got %#v", defs)
	}
	ctr := defs.Index(cty.NumberIntVal(0))
	if defs.LengthInt() == 2 && str(t, defs.Index(cty.NumberIntVal(1)).GetAttr("name")) != "metrics-collector" {
		t.Errorf("the second container is %q; only the metrics collector runs beside the worker", str(t, defs.Index(cty.NumberIntVal(1)).GetAttr("name")))
	}
	get := func(name string) cty.Value {
		t.Helper()
		if !ctr.Type().HasAttribute(name) {
			t.Fatalf("container definition has no %s", name)
		}
		return ctr.GetAttr(name)
	}

	// stopTimeout covers the worker's drain, both the Terraform default and
	// the worker's built-in default, within Fargate's 120 s.
	rootShutdown := num(t, root.vars["shutdown_timeout_seconds"])
	stop := num(t, get("stopTimeout"))
	if stop < rootShutdown || stop < workerShutdownDefault || stop > 120 {
		t.Errorf("stopTimeout %d: want >= shutdown timeout %ds (worker default %ds) and <= 120", stop, rootShutdown, workerShutdownDefault)
	}
	env, unknown := containerEnv(t, get("environment"))
	if got, want := env["CLOUDCOMMERCE_SHUTDOWN_TIMEOUT"], fmt.Sprintf("%ds", rootShutdown); got != want {
		t.Errorf("CLOUDCOMMERCE_SHUTDOWN_TIMEOUT = %q, want %q (the budget stopTimeout is computed from)", got, want)
	}
	secrets := containerSecrets(t, get("secrets"))
	if got, want := fmt.Sprint(secrets), fmt.Sprint(map[string]string{"CLOUDCOMMERCE_API_KEY": apiKeyArn, "CLOUDCOMMERCE_STRIPE_SECRET_KEY": stripeArn}); got != want {
		t.Errorf("secrets %s: want %s, each valueFrom its own Secrets Manager ARN", got, want)
	}
	known := []string{"AWS_REGION", "CLOUDCOMMERCE_PREFIX", "CLOUDCOMMERCE_OPS_ADDR", "CLOUDCOMMERCE_INTAKE_ADDR",
		"CLOUDCOMMERCE_INVENTORY_CONCURRENCY", "CLOUDCOMMERCE_PAYMENT_CONCURRENCY", "CLOUDCOMMERCE_SHIPPING_CONCURRENCY",
		"CLOUDCOMMERCE_HANDLER_TIMEOUT", "CLOUDCOMMERCE_SHUTDOWN_TIMEOUT", "CLOUDCOMMERCE_LOG_LEVEL", "CLOUDCOMMERCE_PAYMENT_GATEWAY",
		"CLOUDCOMMERCE_TOPIC_ARN"}
	workerReads := map[string]bool{}
	for _, e := range appconfig.WorkerEnv {
		workerReads[e.Name] = true
	}
	for name := range env {
		if !slices.Contains(known, name) || !workerReads[name] {
			t.Errorf("environment variable %s is not one the worker reads (config.WorkerEnv)", name)
		}
		if _, ok := secrets[name]; ok || strings.Contains(name, "SECRET") || strings.HasSuffix(name, "API_KEY") {
			t.Errorf("%s must only come from Secrets Manager, never the plain environment", name)
		}
	}
	for _, name := range known {
		if _, ok := env[name]; !ok {
			t.Errorf("environment lacks %s", name)
		}
	}
	for _, name := range unknown {
		if name != "CLOUDCOMMERCE_TOPIC_ARN" {
			t.Errorf("environment variable %s is not known offline; only the topic ARN comes from a resource", name)
		}
	}
	// The topic by ARN, so the worker never needs sns:CreateTopic.
	if !hasRef(attr(t, c.root.block(t, "module", "worker_service"), "environment").Expr, "aws_sns_topic.notifications.arn") {
		t.Error("CLOUDCOMMERCE_TOPIC_ARN must be aws_sns_topic.notifications.arn")
	}
	if env["CLOUDCOMMERCE_PAYMENT_GATEWAY"] != "stripe" {
		t.Errorf("CLOUDCOMMERCE_PAYMENT_GATEWAY = %q with a Stripe secret, want stripe", env["CLOUDCOMMERCE_PAYMENT_GATEWAY"])
	}
	// The worker accepts this configuration (ECS resolves the secrets to
	// their values at task start).
	resolved := map[string]string{"CLOUDCOMMERCE_TOPIC_ARN": "arn:aws:sns:eu-west-1:123456789012:cloudcommerce-topic",
		"CLOUDCOMMERCE_STRIPE_SECRET_KEY": "sk_test_123", "CLOUDCOMMERCE_API_KEY": "key"}
	if _, err := appconfig.WorkerFromEnv(func(k string) string {
		if v, ok := resolved[k]; ok {
			return v
		}
		return env[k]
	}); err != nil {
		t.Errorf("the worker refuses the task definition's environment: %v", err)
	}
	// The execution role reads exactly the injected secrets.
	if got, want := executionSecretResources(t, ws), []string{apiKeyArn, stripeArn}; !slices.Equal(got, want) {
		t.Errorf("execution role secretsmanager:GetSecretValue on %v, want exactly %v", got, want)
	}
	if env["CLOUDCOMMERCE_OPS_ADDR"] != ":9090" || env["CLOUDCOMMERCE_INTAKE_ADDR"] != ":8080" || env["CLOUDCOMMERCE_PREFIX"] != "cloudcommerce" {
		t.Errorf("ops/intake/prefix env = %q %q %q", env["CLOUDCOMMERCE_OPS_ADDR"], env["CLOUDCOMMERCE_INTAKE_ADDR"], env["CLOUDCOMMERCE_PREFIX"])
	}

	if !boolean(t, get("readonlyRootFilesystem")) {
		t.Error("readonlyRootFilesystem must be true")
	}
	if user := str(t, get("user")); user == "" || user == "root" || strings.HasPrefix(user, "0") {
		t.Errorf("container user %q must be a non-root UID", user)
	}
	var hc []string
	for it := get("healthCheck").GetAttr("command").ElementIterator(); it.Next(); {
		_, v := it.Element()
		hc = append(hc, v.AsString())
	}
	if !slices.Equal(hc, []string{"CMD", "/worker", "healthcheck"}) {
		t.Errorf("healthCheck command %v, want [CMD /worker healthcheck]", hc)
	}
	if got := str(t, get("logConfiguration").GetAttr("logDriver")); got != "awslogs" {
		t.Errorf("log driver %q, want awslogs", got)
	}
	lg := ws.m.block(t, "resource", "aws_cloudwatch_log_group", "this")
	if !hasRef(attr(t, lg, "retention_in_days").Expr, "var.log_retention_days") {
		t.Error("log group retention must come from var.log_retention_days")
	}
	if !hasRef(attr(t, c.root.block(t, "module", "worker_service"), "log_retention_days").Expr, "var.log_retention_days") {
		t.Error("root must pass var.log_retention_days to the worker service")
	}
	var ports []int
	for it := get("portMappings").ElementIterator(); it.Next(); {
		_, p := it.Element()
		ports = append(ports, num(t, p.GetAttr("containerPort")))
	}
	if !slices.Contains(ports, 9090) {
		t.Errorf("port mappings %v lack the ops port 9090", ports)
	}

	td := ws.m.block(t, "resource", "aws_ecs_task_definition", "this")
	if got := literalList(t, attr(t, td, "requires_compatibilities").Expr); !slices.Equal(got, []string{"FARGATE"}) {
		t.Errorf("requires_compatibilities %v, want [FARGATE]", got)
	}
	if !hasRef(attr(t, td, "container_definitions").Expr, "local.container_definitions") {
		t.Error("task definition must encode local.container_definitions")
	}
}

// containerEnv reads a container definition's environment list; names whose
// value is not known offline (it comes from a resource) are listed apart.
func containerEnv(t *testing.T, v cty.Value) (map[string]string, []string) {
	t.Helper()
	env := map[string]string{}
	var unknown []string
	for it := v.ElementIterator(); it.Next(); {
		_, kv := it.Element()
		name := kv.GetAttr("name").AsString()
		if val := kv.GetAttr("value"); !val.IsKnown() {
			unknown = append(unknown, name)
			env[name] = ""
		} else {
			env[name] = val.AsString()
		}
	}
	sort.Strings(unknown)
	return env, unknown
}

// containerSecrets reads a container definition's secrets: name -> valueFrom.
func containerSecrets(t *testing.T, v cty.Value) map[string]string {
	t.Helper()
	out := map[string]string{}
	if !v.IsKnown() {
		t.Fatalf("container secrets are not known offline: %#v", v)
	}
	for it := v.ElementIterator(); it.Next(); {
		_, kv := it.Element()
		out[kv.GetAttr("name").AsString()] = kv.GetAttr("valueFrom").AsString()
	}
	return out
}

// executionSecretResources evaluates what the worker's execution role may
// call secretsmanager:GetSecretValue on (nil without the statement).
func executionSecretResources(t *testing.T, ws *evaluator) []string {
	t.Helper()
	var out []string
	doc := ws.m.block(t, "data", "aws_iam_policy_document", "execution")
	for _, d := range doc.Body.Blocks {
		if d.Type != "dynamic" {
			continue
		}
		content := child(t, d, "content")
		if !slices.Equal(literalList(t, attr(t, content, "actions").Expr), []string{"secretsmanager:GetSecretValue"}) {
			continue
		}
		for it := ws.must(attr(t, d, "for_each").Expr, nil).ElementIterator(); it.Next(); {
			k, v := it.Element()
			for r := ws.must(attr(t, content, "resources").Expr, iter("statement", k, v)).ElementIterator(); r.Next(); {
				_, arn := r.Element()
				out = append(out, arn.AsString())
			}
		}
	}
	return out
}

// A Stripe secret ARN alone selects the stripe gateway and is injected as a
// container secret (valueFrom the ARN, never a plain value), readable by the
// execution role on exactly that ARN; without one the worker runs the
// sandbox gateway and reads no secret.
func TestWorkerStripeSecretSelectsTheGateway(t *testing.T) {
	t.Parallel()
	c := cfg(t)
	const stripeArn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:stripe-AbCdEf"
	cases := []struct {
		name        string
		set         map[string]cty.Value
		wantGateway string
		wantSecrets map[string]string
	}{
		{"defaults", nil, "sandbox", map[string]string{}},
		{"secret only", map[string]cty.Value{"stripe_secret_arn": cty.StringVal(stripeArn)}, "stripe",
			map[string]string{"CLOUDCOMMERCE_STRIPE_SECRET_KEY": stripeArn}},
		{"explicit stripe", map[string]cty.Value{"payment_gateway": cty.StringVal("stripe"), "stripe_secret_arn": cty.StringVal(stripeArn)}, "stripe",
			map[string]string{"CLOUDCOMMERCE_STRIPE_SECRET_KEY": stripeArn}},
	}
	for _, tc := range cases {
		root := rootEvaluator(t, c, tc.set)
		ws := moduleEvaluator(t, c, root, "worker_service", "worker_service")
		ctr := ws.locals["container_definitions"].Index(cty.NumberIntVal(0))
		env, _ := containerEnv(t, ctr.GetAttr("environment"))
		if got := env["CLOUDCOMMERCE_PAYMENT_GATEWAY"]; got != tc.wantGateway {
			t.Errorf("%s: CLOUDCOMMERCE_PAYMENT_GATEWAY = %q, want %q", tc.name, got, tc.wantGateway)
		}
		if _, ok := env["CLOUDCOMMERCE_STRIPE_SECRET_KEY"]; ok {
			t.Errorf("%s: the Stripe key is in the plain environment", tc.name)
		}
		secrets := containerSecrets(t, ctr.GetAttr("secrets"))
		if fmt.Sprint(secrets) != fmt.Sprint(tc.wantSecrets) {
			t.Errorf("%s: secrets %v, want %v", tc.name, secrets, tc.wantSecrets)
		}
		var want []string
		for _, arn := range tc.wantSecrets {
			want = append(want, arn)
		}
		if got := executionSecretResources(t, ws); !slices.Equal(got, want) {
			t.Errorf("%s: execution role reads secrets %v, want exactly %v", tc.name, got, want)
		}
	}
}

func TestWorkerServiceClusterAndRepository(t *testing.T) {
	t.Parallel()
	c := cfg(t)
	ws := c.mod(t, "worker_service")

	svc := ws.block(t, "resource", "aws_ecs_service", "this")
	nc := child(t, svc, "network_configuration")
	if v, _ := attr(t, nc, "assign_public_ip").Expr.Value(nil); v.IsNull() || v.True() {
		t.Error("service must not assign public IPs")
	}
	if !hasRef(attr(t, nc, "subnets").Expr, "var.subnet_ids") {
		t.Error("service subnets must be var.subnet_ids")
	}
	if !hasRef(attr(t, c.root.block(t, "module", "worker_service"), "subnet_ids").Expr, "var.private_subnet_ids") {
		t.Error("root must place the service in var.private_subnet_ids")
	}
	cb := child(t, svc, "deployment_circuit_breaker")
	for _, a := range []string{"enable", "rollback"} {
		if v, _ := attr(t, cb, a).Expr.Value(nil); v.IsNull() || !v.True() {
			t.Errorf("deployment_circuit_breaker.%s must be true", a)
		}
	}

	cluster := ws.block(t, "resource", "aws_ecs_cluster", "this")
	insights := false
	for _, s := range children(cluster, "setting") {
		n, _ := literalString(attr(t, s, "name").Expr)
		v, _ := literalString(attr(t, s, "value").Expr)
		insights = insights || (n == "containerInsights" && v == "enabled")
	}
	if !insights {
		t.Error("cluster needs containerInsights enabled (RunningTaskCount drives scaling)")
	}

	repo := c.root.block(t, "resource", "aws_ecr_repository", "worker")
	if v, _ := literalString(attr(t, repo, "image_tag_mutability").Expr); v != "IMMUTABLE" {
		t.Errorf("ECR image_tag_mutability %q, want IMMUTABLE", v)
	}
	if v, _ := attr(t, child(t, repo, "image_scanning_configuration"), "scan_on_push").Expr.Value(nil); v.IsNull() || !v.True() {
		t.Error("ECR scan_on_push must be true")
	}
}
