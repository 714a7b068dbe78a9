package terraform_test

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// ---------------------------------------------------------------------------
// Scaling and alarms
// ---------------------------------------------------------------------------

func TestAutoscalingFollowsTheThreeStageQueues(t *testing.T) {
	t.Parallel()
	c := cfg(t)
	call := c.root.block(t, "module", "worker_service")
	qn := attr(t, call, "queue_names")
	if !hasRef(qn.Expr, "module.stage_queue") {
		t.Fatalf("module.worker_service queue_names must come from module.stage_queue, refers to %v", refs(qn.Expr))
	}
	root := rootEvaluator(t, c, nil)
	prefix := str(t, root.vars["prefix"])
	names := map[string]cty.Value{}
	var want []string
	for _, q := range c.topo.Queues {
		names[q.Stage] = cty.StringVal(prefix + "-" + q.Name)
		want = append(want, "visible_"+q.Stage)
	}
	sort.Strings(want)
	ws := newEvaluator(t, c.mod(t, "worker_service"), map[string]cty.Value{"queue_names": cty.MapVal(names), "name": cty.StringVal(prefix)})

	wantMath := "(" + strings.Join(want, " + ") + ") / running_tasks"
	if got := str(t, ws.locals["backlog_per_task"]); got != wantMath {
		t.Errorf("backlog_per_task metric math %q, want %q", got, wantMath)
	}
	idle := str(t, ws.locals["idle_with_backlog"])
	for _, id := range append(want, "running_tasks") {
		if !strings.Contains(idle, id) {
			t.Errorf("idle_with_backlog %q does not use %s", idle, id)
		}
	}

	pol := ws.m.block(t, "resource", "aws_appautoscaling_policy", "backlog_per_task")
	if v, _ := literalString(attr(t, pol, "policy_type").Expr); v != "TargetTrackingScaling" {
		t.Errorf("backlog policy type %q, want TargetTrackingScaling", v)
	}
	tt := child(t, pol, "target_tracking_scaling_policy_configuration")
	if !hasRef(attr(t, tt, "target_value").Expr, "var.target_backlog_per_task") {
		t.Error("target_value must be var.target_backlog_per_task")
	}
	spec := child(t, tt, "customized_metric_specification")
	dyn := dynamicBlock(t, spec, "metrics")
	if !hasRef(attr(t, dyn, "for_each").Expr, "var.queue_names") {
		t.Error("the per-queue metrics must be a dynamic block over var.queue_names")
	}
	queueIDs := map[string]bool{}
	content := child(t, dyn, "content")
	for stage, name := range names {
		it := iter("metrics", cty.StringVal(stage), name)
		queueIDs[str(t, ws.must(attr(t, content, "id").Expr, it))] = true
		m := child(t, child(t, content, "metric_stat"), "metric")
		if v, _ := literalString(attr(t, m, "metric_name").Expr); v != "ApproximateNumberOfMessagesVisible" {
			t.Errorf("queue metric %q, want ApproximateNumberOfMessagesVisible", v)
		}
		if got := str(t, ws.must(attr(t, child(t, m, "dimensions"), "value").Expr, it)); got != name.AsString() {
			t.Errorf("queue metric dimension %q, want %q", got, name.AsString())
		}
	}
	if got := sortedKeys(queueIDs); !slices.Equal(got, want) {
		t.Errorf("queue metric ids %v, want %v", got, want)
	}
	var returned []string
	runningTasks := false
	for _, m := range children(spec, "metrics") {
		id, _ := literalString(attr(t, m, "id").Expr)
		if rd, ok := m.Body.Attributes["return_data"]; ok {
			if v, _ := rd.Expr.Value(nil); v.True() {
				returned = append(returned, id)
				if !hasRef(attr(t, m, "expression").Expr, "local.backlog_per_task") {
					t.Error("the returned metric must be the local.backlog_per_task expression")
				}
			}
		}
		if id == "running_tasks" {
			metric := child(t, child(t, m, "metric_stat"), "metric")
			n, _ := literalString(attr(t, metric, "metric_name").Expr)
			runningTasks = n == "RunningTaskCount"
		}
	}
	if len(returned) != 1 || !runningTasks {
		t.Errorf("want one returned expression and a running_tasks RunningTaskCount metric; returned %v, running_tasks %v", returned, runningTasks)
	}

	target := ws.m.block(t, "resource", "aws_appautoscaling_target", "this")
	if !hasRef(attr(t, target, "min_capacity").Expr, "var.min_tasks") || !hasRef(attr(t, target, "max_capacity").Expr, "var.max_tasks") {
		t.Error("scalable target min/max must be var.min_tasks / var.max_tasks")
	}
	if minTasks := num(t, root.vars["min_tasks"]); minTasks != 0 {
		t.Errorf("min_tasks default %d; the service is meant to rest at zero by default", minTasks)
	}

	// 0 -> 1: a step policy driven by the idle-with-backlog alarm.
	wake := ws.m.block(t, "resource", "aws_appautoscaling_policy", "wake")
	if v, _ := literalString(attr(t, wake, "policy_type").Expr); v != "StepScaling" {
		t.Errorf("wake policy type %q, want StepScaling", v)
	}
	alarms := ws.locals["idle_alarms"]
	if !alarms.Type().IsObjectType() || !alarms.Type().HasAttribute("wake") || !alarms.Type().HasAttribute("no_running_tasks") {
		t.Fatalf("local.idle_alarms must define wake and no_running_tasks, got %#v", alarms.Type())
	}
	locals := ws.m.locals()
	if !strings.Contains(string(locals["idle_alarms"].Expr.Range().SliceBytes(ws.m.files[locals["idle_alarms"].SrcRange.Filename].Bytes)), "aws_appautoscaling_policy.wake.arn") {
		t.Error("the wake alarm must trigger aws_appautoscaling_policy.wake")
	}
	alarm := ws.m.block(t, "resource", "aws_cloudwatch_metric_alarm", "idle_with_backlog")
	if !hasRef(attr(t, alarm, "for_each").Expr, "local.idle_alarms") {
		t.Error("idle_with_backlog alarms must be for_each over local.idle_alarms")
	}
	found := false
	for _, q := range children(alarm, "metric_query") {
		if e, ok := q.Body.Attributes["expression"]; ok && hasRef(e.Expr, "local.idle_with_backlog") {
			found = true
		}
	}
	if !found {
		t.Error("idle_with_backlog alarm must evaluate local.idle_with_backlog")
	}
}

func TestAlarmsCoverDLQsAgeAndIdleBacklog(t *testing.T) {
	t.Parallel()
	c := cfg(t)
	dlq := c.root.block(t, "resource", "aws_cloudwatch_metric_alarm", "dlq_not_empty")
	if !hasRef(attr(t, dlq, "for_each").Expr, "local.all_dlqs") {
		t.Fatal("DLQ alarm must be for_each over local.all_dlqs")
	}
	all := c.root.locals()["all_dlqs"]
	if !hasRef(all.Expr, "module.stage_queue") || !hasRef(all.Expr, "aws_sqs_queue.rule_target_dlq") {
		t.Errorf("local.all_dlqs must include the stage DLQs and the rule-target DLQs, refers to %v", refs(all.Expr))
	}
	if v, _ := attr(t, dlq, "threshold").Expr.Value(nil); num(t, v) != 0 {
		t.Error("DLQ alarm threshold must be 0 (any message)")
	}
	age := c.root.block(t, "resource", "aws_cloudwatch_metric_alarm", "oldest_message_age")
	if !hasRef(attr(t, age, "for_each").Expr, "module.stage_queue") || !hasRef(attr(t, age, "threshold").Expr, "var.alarm_oldest_message_age_seconds") {
		t.Error("oldest-message-age alarm must cover module.stage_queue with var.alarm_oldest_message_age_seconds")
	}
	if v, _ := literalString(attr(t, age, "metric_name").Expr); v != "ApproximateAgeOfOldestMessage" {
		t.Errorf("age alarm metric %q", v)
	}
	for _, a := range []*hclsyntax.Block{dlq, age} {
		if !hasRef(attr(t, a, "alarm_actions").Expr, "aws_sns_topic.alarms") {
			t.Errorf("alarm %s must notify aws_sns_topic.alarms", a.Labels[1])
		}
	}
	if !hasRef(attr(t, c.root.block(t, "module", "worker_service"), "alarm_topic_arn").Expr, "aws_sns_topic.alarms") {
		t.Error("the no-running-tasks alarm must notify aws_sns_topic.alarms")
	}
}

func TestNotificationSubscriptionsFilterOnEventAndChannel(t *testing.T) {
	t.Parallel()
	c := cfg(t)
	sub := c.root.block(t, "resource", "aws_sns_topic_subscription", "notification")
	if !hasRef(attr(t, sub, "for_each").Expr, "var.notification_subscriptions") {
		t.Fatal("notification subscriptions must be for_each over var.notification_subscriptions")
	}
	e := rootEvaluator(t, c, map[string]cty.Value{"notification_subscriptions": cty.ListVal([]cty.Value{
		cty.ObjectVal(map[string]cty.Value{"name": cty.StringVal("a"), "protocol": cty.StringVal("sms"), "endpoint": cty.StringVal("+447700900123"), "events": cty.ListVal([]cty.Value{cty.StringVal("OrderShipped")})}),
		cty.ObjectVal(map[string]cty.Value{"name": cty.StringVal("b"), "protocol": cty.StringVal("email"), "endpoint": cty.StringVal("a@example.com"), "events": cty.NullVal(cty.List(cty.String))}),
	})})
	inst := e.forEach(sub)
	want := map[string]string{
		"a": `{"channel":["sms"],"event":["OrderShipped"]}`,
		"b": fmt.Sprintf(`{"channel":["email"],"event":["%s"]}`, strings.Join(c.topo.Topic.Events, `","`)),
	}
	for k, v := range inst {
		if got := str(t, e.must(attr(t, sub, "filter_policy").Expr, each(k, v))); got != want[k] {
			t.Errorf("subscription %s filter_policy %s, want %s", k, got, want[k])
		}
	}
	topic := c.root.block(t, "resource", "aws_sns_topic", "notifications")
	if got := str(t, e.must(attr(t, topic, "kms_master_key_id").Expr, nil)); got != "alias/aws/sns" {
		t.Errorf("notifications topic key %q, want alias/aws/sns by default", got)
	}
}

// statementActions returns a statement's actions: a literal list or, in a
// root document's dynamic statement, every value the dynamic iterator takes
// (evaluated for each instance of the document, with compute = "lambda" and
// either payment gateway).
func statementActions(t *testing.T, c *config, m *module, doc, s *hclsyntax.Block) []string {
	t.Helper()
	expr := attr(t, s, "actions").Expr
	if _, ok := expr.(*hclsyntax.TupleConsExpr); ok {
		return literalList(t, expr)
	}
	dyn := dynamicParent(doc, s)
	if dyn == nil || m != c.root {
		t.Fatalf("%s: actions must be a literal list (computed only in a root module's dynamic statement)", expr.Range())
	}
	for _, r := range refs(expr) {
		if !strings.HasPrefix(r, "statement.") {
			t.Errorf("%s: computed actions may only come from the dynamic statement's iterator, not %s", expr.Range(), r)
		}
	}
	var out []string
	for _, set := range []map[string]cty.Value{lambdaVars(nil), lambdaVars(map[string]cty.Value{"stripe_secret_arn": cty.StringVal(testStripeArn)})} {
		e := rootEvaluator(t, c, set)
		for _, ev := range docInstances(t, e, doc) {
			for it := e.must(attr(t, dyn, "for_each").Expr, ev).ElementIterator(); it.Next(); {
				k, v := it.Element()
				for a := e.must(expr, with(ev, iter("statement", k, v))).ElementIterator(); a.Next(); {
					_, av := a.Element()
					out = append(out, str(t, av))
				}
			}
		}
	}
	if len(out) == 0 {
		t.Errorf("%s: computed actions evaluate to nothing with compute = \"lambda\"", expr.Range())
	}
	return out
}

// dynamicParent returns the `dynamic` block whose content is c, if any.
func dynamicParent(doc, c *hclsyntax.Block) *hclsyntax.Block {
	for _, d := range doc.Body.Blocks {
		if d.Type == "dynamic" && slices.Contains(d.Body.Blocks, c) {
			return d
		}
	}
	return nil
}

// docInstances returns the `each` of every instance of a for_each'd block,
// or one nil context for a single block.
func docInstances(t *testing.T, e *evaluator, b *hclsyntax.Block) []map[string]cty.Value {
	t.Helper()
	if _, ok := b.Body.Attributes["for_each"]; !ok {
		return []map[string]cty.Value{nil}
	}
	var out []map[string]cty.Value
	inst := e.forEach(b)
	for _, k := range sortedKeys(inst) {
		out = append(out, each(k, inst[k]))
	}
	return out
}
