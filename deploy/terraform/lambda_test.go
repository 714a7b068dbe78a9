package terraform_test

import (
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	appconfig "github.com/cloudcommerce/cloudcommerce/internal/config"
)

// ---------------------------------------------------------------------------
// Compute target: ECS or Lambda
// ---------------------------------------------------------------------------

const (
	testLambdaZip = "build/lambda.zip"
	testStripeArn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:stripe-AbCdEf"
	testSecretKey = "arn:aws:kms:eu-west-1:123456789012:key/11111111-1111-1111-1111-111111111111"
	testCMK       = "arn:aws:kms:eu-west-1:123456789012:key/00000000-0000-0000-0000-000000000000"
)

// lambdaVars are root variables choosing compute = "lambda", plus extra.
func lambdaVars(extra map[string]cty.Value) map[string]cty.Value {
	return with(map[string]cty.Value{
		"compute": cty.StringVal("lambda"),
		"lambda":  cty.ObjectVal(map[string]cty.Value{"package_path": cty.StringVal(testLambdaZip)}),
	}, extra)
}

// instances evaluates how many instances a block has (count, for_each or 1).
func instances(t *testing.T, e *evaluator, b *hclsyntax.Block) int {
	t.Helper()
	if a, ok := b.Body.Attributes["count"]; ok {
		return num(t, e.must(a.Expr, nil))
	}
	if _, ok := b.Body.Attributes["for_each"]; ok {
		return len(e.forEach(b))
	}
	return 1
}

// dependsOn reports whether an expression refers to target, directly or
// through locals.
func dependsOn(m *module, expr hclsyntax.Expression, target string) bool {
	locals := m.locals()
	seen := map[string]bool{}
	var walk func(hclsyntax.Expression) bool
	walk = func(x hclsyntax.Expression) bool {
		for _, r := range refs(x) {
			if r == target || strings.HasPrefix(r, target+".") {
				return true
			}
			if p := strings.Split(r, "."); p[0] == "local" && len(p) > 1 && !seen[p[1]] {
				seen[p[1]] = true
				if a, ok := locals[p[1]]; ok && walk(a.Expr) {
					return true
				}
			}
		}
		return false
	}
	return walk(expr)
}

func blockAddr(b *hclsyntax.Block) string {
	switch b.Type {
	case "resource":
		return strings.Join(b.Labels, ".")
	case "data":
		return "data." + strings.Join(b.Labels, ".")
	default:
		return b.Type + "." + strings.Join(b.Labels, ".")
	}
}

// var.compute decides which compute exists: the ECS-only blocks have one
// instance for "ecs" and none for "lambda", the Lambda blocks one per stage
// for "lambda" and none for "ecs". Everything the worker service module
// holds (cluster, task definition, service, roles, security group, log
// group, autoscaling and the wake-up alarm) goes with its module call.
func TestComputeChoiceGatesTheResources(t *testing.T) {
	t.Parallel()
	c := cfg(t)
	stages := len(c.topo.Queues)
	gated := []struct {
		typ         string
		labels      []string
		ecs, lambda int
	}{
		{"resource", []string{"aws_ecr_repository", "worker"}, 1, 0},
		{"resource", []string{"aws_ecr_lifecycle_policy", "worker"}, 1, 0},
		{"module", []string{"worker_service"}, 1, 0},
		{"data", []string{"aws_iam_policy_document", "worker_task"}, 1, 0},
		{"module", []string{"lambda_stage"}, 0, stages},
		{"data", []string{"aws_iam_policy_document", "lambda_stage"}, 0, stages},
	}
	counts := map[string][2]int{}
	for i, set := range []map[string]cty.Value{nil, lambdaVars(nil)} {
		e := rootEvaluator(t, c, set)
		compute := str(t, e.vars["compute"])
		for _, g := range gated {
			b := c.root.block(t, g.typ, g.labels...)
			want := g.ecs
			if compute == "lambda" {
				want = g.lambda
			}
			if got := instances(t, e, b); got != want {
				t.Errorf("compute = %q: %s has %d instances, want %d", compute, blockAddr(b), got, want)
			}
			n := counts[blockAddr(b)]
			n[i] = want
			counts[blockAddr(b)] = n
			gate, ok := b.Body.Attributes["count"]
			if !ok {
				gate, ok = b.Body.Attributes["for_each"]
			}
			if !ok || !dependsOn(c.root, gate.Expr, "var.compute") {
				t.Errorf("%s: count / for_each must follow var.compute", blockAddr(b))
			}
		}
	}
	if got := str(t, rootEvaluator(t, c, nil).vars["compute"]); got != "ecs" {
		t.Errorf("compute defaults to %q, want ecs (the existing deployments)", got)
	}

	// Nothing that always exists may refer to a gated block (it would fail
	// to plan for the other choice); gated blocks refer only to blocks gated
	// the same way; outputs read count-gated blocks through a splat.
	gatedRef := func(r string) (string, bool) {
		for addr := range counts {
			if r == addr || strings.HasPrefix(r, addr+".") {
				return addr, true
			}
		}
		return "", false
	}
	for _, b := range c.root.blocks {
		var exprs []hclsyntax.Expression
		hclsyntax.VisitAll(b.Body, func(n hclsyntax.Node) hcl.Diagnostics {
			if a, ok := n.(*hclsyntax.Attribute); ok {
				exprs = append(exprs, a.Expr)
			}
			return nil
		})
		self, selfGated := counts[blockAddr(b)]
		for _, x := range exprs {
			for _, r := range refs(x) {
				addr, ok := gatedRef(r)
				if !ok || addr == blockAddr(b) {
					continue
				}
				switch {
				case b.Type == "output":
					if strings.HasPrefix(r, addr+".[]") && counts[addr] == [2]int{1, 0} {
						t.Errorf("output %s indexes %s, which has no instance with compute = \"lambda\"; use one(%s[*]...)", b.Labels[0], addr, addr)
					}
				case !selfGated:
					t.Errorf("%s (always created) refers to %s, which exists only for one compute choice", blockAddr(b), r)
				case self != counts[addr]:
					t.Errorf("%s refers to %s, which is gated differently", blockAddr(b), r)
				}
			}
		}
	}

	// Compute resources live only where they are gated.
	for _, m := range c.all {
		for _, b := range m.blocksOf("resource") {
			typ := b.Labels[0]
			ecsOnly := strings.HasPrefix(typ, "aws_ecs_") || strings.HasPrefix(typ, "aws_appautoscaling_") ||
				strings.HasPrefix(typ, "aws_security_group") || strings.HasPrefix(typ, "aws_vpc_security_group_") || strings.HasPrefix(typ, "aws_ecr_")
			lambdaOnly := strings.HasPrefix(typ, "aws_lambda_")
			switch {
			case ecsOnly && m.dir != filepath.Join("modules", "worker_service") && !(m == c.root && counts[blockAddr(b)] == [2]int{1, 0}):
				t.Errorf("%s: %s is ECS-only but not gated on compute = \"ecs\"", m.dir, blockAddr(b))
			case lambdaOnly && m.dir != filepath.Join("modules", "lambda_stage"):
				t.Errorf("%s: %s belongs in modules/lambda_stage", m.dir, blockAddr(b))
			}
		}
	}
	ws := c.mod(t, "worker_service")
	for _, want := range [][]string{{"aws_ecs_cluster", "this"}, {"aws_ecs_service", "this"}, {"aws_ecs_task_definition", "this"},
		{"aws_appautoscaling_target", "this"}, {"aws_appautoscaling_policy", "wake"}, {"aws_cloudwatch_metric_alarm", "idle_with_backlog"}} {
		ws.block(t, "resource", want...)
	}
}

// The Lambda functions: arm64 on provided.al2023 from the one zip, each
// pinned to its stage, with an environment the function accepts at cold
// start, a log group with retention created first, an event source mapping
// with partial batch responses, and Errors / Throttles alarms.
func TestLambdaFunctionsAndMappings(t *testing.T) {
	t.Parallel()
	c := cfg(t)
	lm := c.mod(t, "lambda_stage")

	fn := lm.block(t, "resource", "aws_lambda_function", "this")
	for name, want := range map[string]string{"runtime": "provided.al2023", "handler": "bootstrap"} {
		if v, _ := literalString(attr(t, fn, name).Expr); v != want {
			t.Errorf("aws_lambda_function.%s = %q, want %q", name, v, want)
		}
	}
	if got := literalList(t, attr(t, fn, "architectures").Expr); !slices.Equal(got, []string{"arm64"}) {
		t.Errorf("architectures %v, want [arm64]", got)
	}
	if !hasRef(attr(t, fn, "filename").Expr, "var.package_path") {
		t.Error("filename must be var.package_path")
	}
	if call, ok := attr(t, fn, "source_code_hash").Expr.(*hclsyntax.FunctionCallExpr); !ok || call.Name != "filebase64sha256" || !hasRef(call, "var.package_path") {
		t.Error("source_code_hash must be filebase64sha256(var.package_path), so a new build redeploys")
	}
	for name, ref := range map[string]string{"role": "aws_iam_role.this", "timeout": "var.timeout_seconds", "memory_size": "var.memory_size", "kms_key_arn": "var.kms_key_arn"} {
		if !hasRef(attr(t, fn, name).Expr, ref) {
			t.Errorf("aws_lambda_function.%s must be %s", name, ref)
		}
	}
	if !hasRef(attr(t, child(t, fn, "environment"), "variables").Expr, "var.environment") {
		t.Error("the function's environment must be var.environment")
	}
	if !hasRef(attr(t, child(t, fn, "logging_config"), "log_group").Expr, "aws_cloudwatch_log_group.this") {
		t.Error("logging_config.log_group must be the module's log group")
	}
	if !hasRef(attr(t, fn, "depends_on").Expr, "aws_cloudwatch_log_group.this") {
		t.Error("the function must depend on its log group, so Lambda never creates one without retention")
	}
	for _, b := range []string{"vpc_config", "dead_letter_config"} {
		if len(children(fn, b)) > 0 {
			t.Errorf("aws_lambda_function has %s; the SQS mapping and the stage DLQ handle failures, and the function needs no VPC", b)
		}
	}
	if _, ok := fn.Body.Attributes["reserved_concurrent_executions"]; ok {
		t.Error("no reserved concurrency: it would have to stay above maximum_concurrency")
	}

	// Every event source mapping anywhere reports batch item failures.
	mappings := 0
	for _, m := range c.all {
		for _, b := range m.blocksOf("resource", "aws_lambda_event_source_mapping") {
			mappings++
			if got := literalList(t, attr(t, b, "function_response_types").Expr); !slices.Equal(got, []string{"ReportBatchItemFailures"}) {
				t.Errorf("%s: %s function_response_types %v, want [ReportBatchItemFailures]", m.dir, blockAddr(b), got)
			}
			attr(t, child(t, b, "scaling_config"), "maximum_concurrency")
			attr(t, b, "batch_size")
			attr(t, b, "maximum_batching_window_in_seconds")
		}
	}
	if mappings != 1 {
		t.Fatalf("want one aws_lambda_event_source_mapping (in modules/lambda_stage, one per stage), found %d", mappings)
	}
	esm := lm.block(t, "resource", "aws_lambda_event_source_mapping", "this")
	if !hasRef(attr(t, esm, "event_source_arn").Expr, "var.queue.arn") || !hasRef(attr(t, esm, "function_name").Expr, "aws_lambda_function.this") {
		t.Error("the mapping must connect var.queue.arn to aws_lambda_function.this")
	}
	if !hasRef(attr(t, esm, "depends_on").Expr, "aws_iam_role_policy.pipeline") {
		t.Error("the mapping must depend on the role's policy (Lambda validates it against the role)")
	}

	call := c.root.block(t, "module", "lambda_stage")
	if !hasRef(attr(t, call, "queue").Expr, "module.stage_queue") || !hasRef(attr(t, call, "queue").Expr, "each.key") {
		t.Error("module.lambda_stage queue must be module.stage_queue[each.key]")
	}
	for _, gateway := range []string{"sandbox", "stripe"} {
		set := lambdaVars(nil)
		if gateway == "stripe" {
			set["stripe_secret_arn"] = cty.StringVal(testStripeArn)
		}
		root := rootEvaluator(t, c, set)
		prefix := str(t, root.vars["prefix"])
		inst := root.forEach(call)
		for _, q := range c.topo.Queues {
			stage := q.Stage
			ev := each(stage, inst[stage])
			me := moduleInstanceEvaluator(t, c, root, "lambda_stage", "lambda_stage", ev)
			for name, want := range map[string]int{"memory_size": 256, "timeout_seconds": 30, "batch_size": 10,
				"maximum_batching_window_in_seconds": 0, "maximum_concurrency": 10, "log_retention_days": 30} {
				if got := num(t, me.vars[name]); got != want {
					t.Errorf("%s: lambda_stage[%s] %s = %d, want %d", gateway, stage, name, got, want)
				}
			}
			if got := str(t, me.vars["package_path"]); got != testLambdaZip {
				t.Errorf("lambda_stage[%s] package_path %q, want var.lambda.package_path %q", stage, got, testLambdaZip)
			}
			if got := str(t, me.vars["function_name"]); got != prefix+"-"+stage {
				t.Errorf("lambda_stage[%s] function_name %q, want %q", stage, got, prefix+"-"+stage)
			}
			if got := str(t, me.must(attr(t, lm.block(t, "resource", "aws_cloudwatch_log_group", "this"), "name").Expr, nil)); got != "/aws/lambda/"+prefix+"-"+stage {
				t.Errorf("log group %q, want /aws/lambda/%s-%s (where Lambda writes)", got, prefix, stage)
			}
			// The mapping's settings reach the resource.
			for name, want := range map[string]int{"batch_size": 10, "maximum_batching_window_in_seconds": 0} {
				if got := num(t, me.must(attr(t, esm, name).Expr, nil)); got != want {
					t.Errorf("lambda_stage[%s] mapping %s = %d, want %d", stage, name, got, want)
				}
			}
			if got := num(t, me.must(attr(t, child(t, esm, "scaling_config"), "maximum_concurrency").Expr, nil)); got != 10 {
				t.Errorf("lambda_stage[%s] maximum_concurrency = %d, want 10", stage, got)
			}

			// Environment: exactly what the function reads, and accepted by it.
			envVal := me.vars["environment"]
			env := map[string]string{}
			for it := envVal.ElementIterator(); it.Next(); {
				k, v := it.Element()
				if v.IsKnown() {
					env[k.AsString()] = v.AsString()
				} else {
					env[k.AsString()] = "(unknown)"
				}
			}
			want := map[string]string{
				"CLOUDCOMMERCE_PREFIX":             prefix,
				"CLOUDCOMMERCE_STAGE":              stage,
				"CLOUDCOMMERCE_TOPIC_ARN":          "(unknown)",
				"CLOUDCOMMERCE_HANDLER_TIMEOUT":    "20s",
				"CLOUDCOMMERCE_LAMBDA_CONCURRENCY": "10",
				"CLOUDCOMMERCE_LOG_LEVEL":          "info",
			}
			if stage != "shipping" {
				want["CLOUDCOMMERCE_PAYMENT_GATEWAY"] = gateway
				if gateway == "stripe" {
					want["CLOUDCOMMERCE_STRIPE_SECRET_ARN"] = testStripeArn
				}
			}
			if fmt.Sprint(env) != fmt.Sprint(want) {
				t.Errorf("%s: lambda_stage[%s] environment\n got %v\nwant %v", gateway, stage, env, want)
			}
			reads := map[string]bool{}
			for _, e := range appconfig.LambdaEnv {
				reads[e.Name] = true
			}
			for name := range env {
				if !reads[name] {
					t.Errorf("lambda_stage[%s]: %s is not a variable the function reads (config.LambdaEnv)", stage, name)
				}
			}
			if !hasRef(attr(t, call, "environment").Expr, "aws_sns_topic.notifications.arn") {
				t.Error("CLOUDCOMMERCE_TOPIC_ARN must be aws_sns_topic.notifications.arn")
			}
			getenv := func(k string) string {
				if k == "CLOUDCOMMERCE_TOPIC_ARN" {
					return "arn:aws:sns:eu-west-1:123456789012:topic"
				}
				return env[k]
			}
			fc, err := appconfig.LambdaFromEnv(getenv)
			if err != nil {
				t.Errorf("%s: the %s function would fail its cold start: %v", gateway, stage, err)
				continue
			}
			if string(fc.Stage) != stage {
				t.Errorf("lambda_stage[%s]: the function serves stage %q", stage, fc.Stage)
			}
			// The function timeout leaves the handler deadline, the
			// function's deadline margin and 5 s to dead-letter and answer.
			timeout := num(t, me.vars["timeout_seconds"])
			if need := fc.HandlerTimeout + fc.DeadlineMargin + 5*time.Second; time.Duration(timeout)*time.Second < need {
				t.Errorf("lambda_stage[%s]: timeout %ds below handler %s + margin %s + 5s", stage, timeout, fc.HandlerTimeout, fc.DeadlineMargin)
			}
		}
	}

	// A batch larger than the function's record concurrency limit.
	big := rootEvaluator(t, c, lambdaVars(map[string]cty.Value{"lambda": cty.ObjectVal(map[string]cty.Value{
		"package_path": cty.StringVal(testLambdaZip), "batch_size": cty.NumberIntVal(5000), "maximum_batching_window_in_seconds": cty.NumberIntVal(5)})}))
	if got := num(t, big.locals["lambda_record_concurrency"]); got != 1000 {
		t.Errorf("batch_size 5000: CLOUDCOMMERCE_LAMBDA_CONCURRENCY %d, want the function's limit 1000", got)
	}

	// Errors and Throttles alarms per function, to the alarms topic, named
	// under the prefix (the topic policy admits only <prefix>-* alarms).
	alarm := lm.block(t, "resource", "aws_cloudwatch_metric_alarm", "this")
	if !hasRef(attr(t, alarm, "for_each").Expr, "local.alarms") {
		t.Fatal("the function alarms must be for_each over local.alarms")
	}
	root := rootEvaluator(t, c, lambdaVars(nil))
	me := moduleInstanceEvaluator(t, c, root, "lambda_stage", "lambda_stage", each(c.topo.Queues[0].Stage, root.forEach(call)[c.topo.Queues[0].Stage]))
	var metrics []string
	for it := me.locals["alarms"].ElementIterator(); it.Next(); {
		k, v := it.Element()
		metrics = append(metrics, str(t, v.GetAttr("metric")))
		name := str(t, me.must(attr(t, alarm, "alarm_name").Expr, each(k.AsString(), v)))
		if !strings.HasPrefix(name, str(t, root.vars["prefix"])+"-") {
			t.Errorf("alarm %q is not named <prefix>-*: the alarms topic policy would refuse it", name)
		}
	}
	sort.Strings(metrics)
	if !slices.Equal(metrics, []string{"Errors", "Throttles"}) {
		t.Errorf("function alarms on %v, want Errors and Throttles", metrics)
	}
	if v, _ := literalString(attr(t, alarm, "namespace").Expr); v != "AWS/Lambda" {
		t.Errorf("alarm namespace %q, want AWS/Lambda", v)
	}
	if !hasRef(attr(t, alarm, "alarm_actions").Expr, "var.alarm_topic_arn") || !hasRef(attr(t, call, "alarm_topic_arn").Expr, "aws_sns_topic.alarms.arn") {
		t.Error("function alarms must notify aws_sns_topic.alarms")
	}
	lg := lm.block(t, "resource", "aws_cloudwatch_log_group", "this")
	if !hasRef(attr(t, lg, "retention_in_days").Expr, "var.log_retention_days") || !hasRef(attr(t, call, "log_retention_days").Expr, "var.log_retention_days") {
		t.Error("the function log groups' retention must be var.log_retention_days")
	}
	if !hasRef(attr(t, lg, "kms_key_id").Expr, "var.kms_key_arn") || !hasRef(attr(t, call, "kms_key_arn").Expr, "local.kms_key_arn") {
		t.Error("the function log groups must use the customer key when one is configured")
	}
	// ...which the key policy lets CloudWatch Logs use for those groups.
	kmsDoc := c.root.block(t, "data", "aws_iam_policy_document", "kms")
	found := false
	for _, s := range statements(kmsDoc) {
		for _, cond := range children(s, "condition") {
			src := string(attr(t, cond, "values").Expr.Range().SliceBytes(c.root.files[attr(t, cond, "values").SrcRange.Filename].Bytes))
			if strings.Contains(src, "log-group:/aws/lambda/${var.prefix}-") && hasRef(attr(t, cond, "values").Expr, "local.ecs") {
				found = true
			}
		}
	}
	if !found {
		t.Error("the KMS key policy must let CloudWatch Logs encrypt /aws/lambda/<prefix>-* with compute = \"lambda\"")
	}
}

// Lambda needs the stage queues' visibility timeout at least six times the
// function timeout; topology.json's 30 s is the worker's. With compute =
// "lambda" the queues get max(topology, 6 x timeout); with "ecs" they keep
// the topology's. The mapping refuses (precondition) a queue below that or
// with fewer than 5 receives before dead-lettering.
func TestLambdaQueueVisibility(t *testing.T) {
	t.Parallel()
	c := cfg(t)
	for _, tc := range []struct {
		set     map[string]cty.Value
		timeout int // 0: ecs
	}{
		{nil, 0},
		{lambdaVars(nil), 30},
		{lambdaVars(map[string]cty.Value{"lambda": cty.ObjectVal(map[string]cty.Value{"package_path": cty.StringVal(testLambdaZip), "timeout_seconds": cty.NumberIntVal(60)})}), 60},
	} {
		e := rootEvaluator(t, c, tc.set)
		b := c.root.block(t, "module", "stage_queue")
		inst := e.forEach(b)
		for _, q := range c.topo.Queues {
			want := q.VisibilityTimeoutSeconds
			if tc.timeout > 0 {
				want = max(want, 6*tc.timeout)
			}
			if got := num(t, e.must(attr(t, b, "visibility_timeout_seconds").Expr, each(q.Stage, inst[q.Stage]))); got != want {
				t.Errorf("function timeout %d: stage_queue[%s] visibility %d, want %d", tc.timeout, q.Stage, got, want)
			}
			if tc.timeout > 0 && q.DLQ.MaxReceiveCount < 5 {
				t.Errorf("topology queue %s: maxReceiveCount %d is below 5, too few for throttled Lambda retries", q.Name, q.DLQ.MaxReceiveCount)
			}
		}
	}

	// The mapping gets the queue's actual settings from the queue module.
	call := c.root.block(t, "module", "lambda_stage")
	q := attr(t, call, "queue")
	src := string(q.Expr.Range().SliceBytes(c.root.files[q.SrcRange.Filename].Bytes))
	for _, ref := range []string{"module.stage_queue[each.key].visibility_timeout_seconds", "module.stage_queue[each.key].max_receive_count", "module.stage_queue[each.key].queue_arn"} {
		if !strings.Contains(src, ref) {
			t.Errorf("module.lambda_stage queue must pass %s", ref)
		}
	}
	qm := c.mod(t, "queue")
	if !hasRef(attr(t, qm.block(t, "output", "visibility_timeout_seconds"), "value").Expr, "aws_sqs_queue.this.visibility_timeout_seconds") {
		t.Error("modules/queue output visibility_timeout_seconds must be the work queue's")
	}

	// The preconditions bite.
	lm := c.mod(t, "lambda_stage")
	esm := lm.block(t, "resource", "aws_lambda_event_source_mapping", "this")
	pre := children(child(t, esm, "lifecycle"), "precondition")
	if len(pre) < 2 {
		t.Fatalf("the mapping needs preconditions on the queue's visibility and maxReceiveCount, found %d", len(pre))
	}
	holds := func(visibility, receives int) bool {
		e := newEvaluator(t, lm, map[string]cty.Value{
			"timeout_seconds": cty.NumberIntVal(30),
			"queue": cty.ObjectVal(map[string]cty.Value{"arn": cty.StringVal("arn:q"),
				"visibility_timeout_seconds": cty.NumberIntVal(int64(visibility)), "max_receive_count": cty.NumberIntVal(int64(receives))}),
		})
		ok := true
		for _, p := range pre {
			ok = ok && boolean(t, e.must(attr(t, p, "condition").Expr, nil))
		}
		return ok
	}
	if !holds(180, 10) {
		t.Error("preconditions refuse a 180 s queue with 10 receives for a 30 s function")
	}
	if holds(30, 10) {
		t.Error("preconditions accept topology.json's 30 s visibility for a 30 s function")
	}
	if holds(180, 4) {
		t.Error("preconditions accept maxReceiveCount 4")
	}
}

// policyGrants evaluates a policy document to action -> sorted resources.
func policyGrants(t *testing.T, e *evaluator, doc *hclsyntax.Block, extra map[string]cty.Value) map[string][]string {
	t.Helper()
	set := map[string]map[string]bool{}
	add := func(s *hclsyntax.Block, ctx map[string]cty.Value) {
		res := e.must(attr(t, s, "resources").Expr, ctx)
		for a := e.must(attr(t, s, "actions").Expr, ctx).ElementIterator(); a.Next(); {
			_, av := a.Element()
			if set[av.AsString()] == nil {
				set[av.AsString()] = map[string]bool{}
			}
			for r := res.ElementIterator(); r.Next(); {
				_, rv := r.Element()
				set[av.AsString()][rv.AsString()] = true
			}
		}
	}
	for _, s := range children(doc, "statement") {
		add(s, extra)
	}
	for _, d := range doc.Body.Blocks {
		if d.Type != "dynamic" || d.Labels[0] != "statement" {
			continue
		}
		for it := e.must(attr(t, d, "for_each").Expr, extra).ElementIterator(); it.Next(); {
			k, v := it.Element()
			add(child(t, d, "content"), with(extra, iter("statement", k, v)))
		}
	}
	out := map[string][]string{}
	for a, rs := range set {
		out[a] = sortedKeys(rs)
	}
	return out
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

// Each function's role grants exactly docs/lambda.md's table: its own stage
// queue and DLQ, the tables its handlers touch with the item actions they
// call, the bus, the topic, the Stripe secret only where the gateway is used,
// the customer key when there is one, and its own log group. Nothing else:
// no Query, no idempotency table, no sns:CreateTopic, no receive on a DLQ.
func TestLambdaRolesGrantExactlyTheDocumentedCalls(t *testing.T) {
	t.Parallel()
	c := cfg(t)
	queues := map[string]cty.Value{}
	for _, q := range c.topo.Queues {
		queues[q.Stage] = cty.ObjectVal(map[string]cty.Value{"queue_arn": cty.StringVal("queue/" + q.Stage), "dlq_arn": cty.StringVal("dlq/" + q.Stage)})
	}
	tables := map[string]cty.Value{}
	for _, tb := range c.topo.Tables {
		tables[tb.Role] = cty.ObjectVal(map[string]cty.Value{"arn": cty.StringVal("table/" + tb.Role)})
	}
	arnOf := func(s string) cty.Value { return cty.ObjectVal(map[string]cty.Value{"arn": cty.StringVal(s)}) }
	resources := map[string]cty.Value{
		"module":                   cty.ObjectVal(map[string]cty.Value{"stage_queue": cty.ObjectVal(queues)}),
		"aws_dynamodb_table":       cty.ObjectVal(map[string]cty.Value{"this": cty.ObjectVal(tables)}),
		"aws_cloudwatch_event_bus": cty.ObjectVal(map[string]cty.Value{"orders": arnOf("bus")}),
		"aws_sns_topic":            cty.ObjectVal(map[string]cty.Value{"notifications": arnOf("topic")}),
	}
	doc := c.root.block(t, "data", "aws_iam_policy_document", "lambda_stage")
	for _, tc := range []struct {
		gateway, cmk, secretsKey string
	}{{"sandbox", "", ""}, {"stripe", "", ""}, {"stripe", testCMK, testSecretKey}, {"sandbox", testCMK, ""}} {
		set := map[string]cty.Value{}
		if tc.gateway == "stripe" {
			set["stripe_secret_arn"] = cty.StringVal(testStripeArn)
		}
		if tc.cmk != "" {
			set["kms"] = cty.ObjectVal(map[string]cty.Value{"key_arn": cty.StringVal(tc.cmk)})
		}
		if tc.secretsKey != "" {
			set["secrets_kms_key_arn"] = cty.StringVal(tc.secretsKey)
		}
		e := rootEvaluator(t, c, lambdaVars(set))
		inst := e.forEach(doc)
		if len(inst) != len(c.topo.Queues) {
			t.Fatalf("%d lambda role documents, want one per stage", len(inst))
		}
		for stage, v := range inst {
			got := policyGrants(t, e, doc, with(resources, each(stage, v)))
			want := documentedLambdaGrants(stage, tc.gateway, tc.cmk, tc.secretsKey)
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("gateway %s, cmk %q, secrets key %q: the %s role grants\n %v\nwant (docs/lambda.md)\n %v", tc.gateway, tc.cmk, tc.secretsKey, stage, got, want)
			}
		}
		// The precondition that keeps the access table in step with the topology holds.
		for stage, v := range inst {
			p := child(t, child(t, doc, "lifecycle"), "precondition")
			if !boolean(t, e.must(attr(t, p, "condition").Expr, each(stage, v))) {
				t.Errorf("lambda_stage[%s] precondition fails with the real topology", stage)
			}
		}
	}
	// Its keys are exactly the topology's stages, its tables topology roles.
	e := rootEvaluator(t, c, lambdaVars(nil))
	access := e.locals["lambda_access"]
	var stages, wantStages []string
	roles := map[string]bool{}
	for _, tb := range c.topo.Tables {
		roles[tb.Role] = true
	}
	for _, q := range c.topo.Queues {
		wantStages = append(wantStages, q.Stage)
	}
	for it := access.ElementIterator(); it.Next(); {
		k, v := it.Element()
		stages = append(stages, k.AsString())
		for _, part := range []string{"tables", "sandbox_tables"} {
			for r := v.GetAttr(part).ElementIterator(); r.Next(); {
				role, _ := r.Element()
				if !roles[role.AsString()] {
					t.Errorf("local.lambda_access[%s].%s names table role %q, which topology.json lacks", k.AsString(), part, role.AsString())
				}
			}
		}
	}
	sort.Strings(stages)
	sort.Strings(wantStages)
	if !slices.Equal(stages, wantStages) {
		t.Errorf("local.lambda_access stages %v, want topology.json's %v", stages, wantStages)
	}

	// Wiring: the document is the role's policy; the module adds only its
	// own log group; the trust is Lambda in this account.
	lm := c.mod(t, "lambda_stage")
	call := c.root.block(t, "module", "lambda_stage")
	if !hasRef(attr(t, call, "role_policy_json").Expr, "data.aws_iam_policy_document.lambda_stage") {
		t.Error("module.lambda_stage role_policy_json must be data.aws_iam_policy_document.lambda_stage[each.key].json")
	}
	policies := lm.blocksOf("resource", "aws_iam_role_policy")
	if len(policies) != 2 {
		t.Fatalf("modules/lambda_stage: want two inline policies (stage handlers, own logs), found %d", len(policies))
	}
	for _, p := range policies {
		if !hasRef(attr(t, p, "role").Expr, "aws_iam_role.this") {
			t.Errorf("%s must be on aws_iam_role.this", blockAddr(p))
		}
		if pol := attr(t, p, "policy").Expr; !hasRef(pol, "var.role_policy_json") && !hasRef(pol, "data.aws_iam_policy_document.logs") {
			t.Errorf("%s: policy must be var.role_policy_json or the logs document", blockAddr(p))
		}
	}
	me := newEvaluator(t, lm, nil)
	logs := policyGrants(t, me, lm.block(t, "data", "aws_iam_policy_document", "logs"),
		map[string]cty.Value{"aws_cloudwatch_log_group": cty.ObjectVal(map[string]cty.Value{"this": arnOf("lg")})})
	if got, want := fmt.Sprint(logs), fmt.Sprint(map[string][]string{"logs:CreateLogStream": {"lg:*"}, "logs:PutLogEvents": {"lg:*"}}); got != want {
		t.Errorf("logs policy %s, want %s", got, want)
	}
	trust := statements(lm.block(t, "data", "aws_iam_policy_document", "assume_lambda"))
	if len(trust) != 1 {
		t.Fatalf("trust policy: want one statement, found %d", len(trust))
	}
	if got := literalList(t, attr(t, child(t, trust[0], "principals"), "identifiers").Expr); !slices.Equal(got, []string{"lambda.amazonaws.com"}) {
		t.Errorf("trust principal %v, want lambda.amazonaws.com", got)
	}
	if v, _ := literalString(attr(t, child(t, trust[0], "condition"), "variable").Expr); v != "aws:SourceAccount" {
		t.Errorf("trust condition on %q, want aws:SourceAccount", v)
	}
	if !hasRef(attr(t, lm.block(t, "resource", "aws_iam_role", "this"), "assume_role_policy").Expr, "data.aws_iam_policy_document.assume_lambda") ||
		!hasRef(attr(t, lm.block(t, "resource", "aws_lambda_function", "this"), "role").Expr, "aws_iam_role.this") {
		t.Error("the function's role must be aws_iam_role.this, trusting Lambda")
	}
}
