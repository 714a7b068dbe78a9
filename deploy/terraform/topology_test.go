package terraform_test

import (
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// ---------------------------------------------------------------------------
// Topology: everything comes from for_each over the decoded file
// ---------------------------------------------------------------------------

func TestTopologyIsReadFromTheSharedFile(t *testing.T) {
	t.Parallel()
	c := cfg(t)
	a, ok := c.root.locals()["topology"]
	if !ok {
		t.Fatal("root module has no local.topology")
	}
	call, ok := a.Expr.(*hclsyntax.FunctionCallExpr)
	if !ok || call.Name != "jsondecode" || len(call.Args) != 1 {
		t.Fatalf("local.topology must be jsondecode(file(...)), got %T", a.Expr)
	}
	if inner, ok := call.Args[0].(*hclsyntax.FunctionCallExpr); !ok || inner.Name != "file" {
		t.Fatal("local.topology must be jsondecode(file(\"${path.module}/../topology.json\"))")
	}
	e := rootEvaluator(t, c, nil)
	got := e.locals["topology"]
	if !got.IsWhollyKnown() || !got.Equals(c.rawTopo).True() {
		t.Fatalf("local.topology does not evaluate to deploy/topology.json: %#v", got)
	}
}

func TestEveryTopologyResourceIsForEachOverTheTopology(t *testing.T) {
	t.Parallel()
	c := cfg(t)
	e := rootEvaluator(t, c, nil)
	prefix := str(t, e.vars["prefix"])

	var stages, queueNames, dlqNames, rules, ruleNames, ruleDLQs, roles, tableNames []string
	for _, q := range c.topo.Queues {
		stages = append(stages, q.Stage)
		queueNames = append(queueNames, prefix+"-"+q.Name)
		dlqNames = append(dlqNames, prefix+"-"+q.DLQ.Name)
	}
	for _, r := range c.topo.Rules {
		rules = append(rules, r.Name)
		ruleNames = append(ruleNames, prefix+"-"+r.Name)
		ruleDLQs = append(ruleDLQs, prefix+"-"+r.TargetDLQ)
	}
	for _, tb := range c.topo.Tables {
		roles = append(roles, tb.Role)
		tableNames = append(tableNames, prefix+"-"+tb.Name)
	}

	cases := []struct {
		typ, label string
		keys       []string
		names      map[string][]string // attribute -> want values (sorted)
	}{
		{"module", "stage_queue", stages, map[string][]string{"name": queueNames}},
		{"resource", "aws_cloudwatch_event_rule.this", rules, map[string][]string{"name": ruleNames}},
		{"resource", "aws_cloudwatch_event_target.this", rules, nil},
		{"resource", "aws_sqs_queue.rule_target_dlq", rules, map[string][]string{"name": ruleDLQs}},
		{"resource", "aws_sqs_queue_policy.rule_target_dlq", rules, nil},
		{"resource", "aws_sqs_queue_redrive_allow_policy.rule_target_dlq", rules, nil},
		{"data", "aws_iam_policy_document.rule_target_dlq", rules, nil},
		{"resource", "aws_dynamodb_table.this", roles, map[string][]string{"name": tableNames}},
	}
	for _, tc := range cases {
		labels := strings.Split(tc.label, ".")
		b := c.root.block(t, tc.typ, labels...)
		fe := attr(t, b, "for_each")
		usesTopology := false
		for _, r := range refs(fe.Expr) {
			if p := strings.Split(r, "."); p[0] == "local" && localsReferencing(c.root, p[1], "topology") {
				usesTopology = true
			}
		}
		if !usesTopology {
			t.Errorf("%s %s: for_each must iterate a local derived from local.topology, refers to %v", tc.typ, tc.label, refs(fe.Expr))
			continue
		}
		inst := e.forEach(b)
		if got, want := sortedKeys(inst), slices.Sorted(slices.Values(tc.keys)); !slices.Equal(got, want) {
			t.Errorf("%s %s: instances %v, want the topology's %v", tc.typ, tc.label, got, want)
		}
		for attrName, want := range tc.names {
			var got []string
			for k, v := range inst {
				got = append(got, str(t, e.must(attr(t, b, attrName).Expr, each(k, v))))
			}
			sort.Strings(got)
			sort.Strings(want)
			if !slices.Equal(got, want) {
				t.Errorf("%s %s: %s = %v, want %v", tc.typ, tc.label, attrName, got, want)
			}
		}
	}

	// The stage queue module's DLQ names, receive counts and timeouts.
	b := c.root.block(t, "module", "stage_queue")
	inst := e.forEach(b)
	for _, q := range c.topo.Queues {
		ev := each(q.Stage, inst[q.Stage])
		dlq := e.must(attr(t, b, "dlq").Expr, ev)
		if got := str(t, dlq.GetAttr("name")); got != prefix+"-"+q.DLQ.Name {
			t.Errorf("stage_queue[%s].dlq.name = %q, want %q", q.Stage, got, prefix+"-"+q.DLQ.Name)
		}
		if got := num(t, dlq.GetAttr("max_receive_count")); got != q.DLQ.MaxReceiveCount {
			t.Errorf("stage_queue[%s].dlq.max_receive_count = %d, want %d", q.Stage, got, q.DLQ.MaxReceiveCount)
		}
		for arg, want := range map[string]int{
			"visibility_timeout_seconds": q.VisibilityTimeoutSeconds,
			"receive_wait_time_seconds":  q.ReceiveWaitTimeSeconds,
			"message_retention_seconds":  q.MessageRetentionSeconds,
			"max_message_size":           q.MaxMessageSizeBytes,
		} {
			if got := num(t, e.must(attr(t, b, arg).Expr, ev)); got != want {
				t.Errorf("stage_queue[%s].%s = %d, want %d", q.Stage, arg, got, want)
			}
		}
	}

	// The bus and the topic.
	if got := str(t, e.must(attr(t, c.root.block(t, "resource", "aws_cloudwatch_event_bus", "orders"), "name").Expr, nil)); got != prefix {
		t.Errorf("event bus name = %q, want the prefix %q", got, prefix)
	}
	topic := c.root.block(t, "resource", "aws_sns_topic", "notifications")
	if got := str(t, e.must(attr(t, topic, "name").Expr, nil)); got != prefix+"-"+c.topo.Topic.Name {
		t.Errorf("notifications topic name = %q, want %q", got, prefix+"-"+c.topo.Topic.Name)
	}
}

// No second hand-written list: no string literal in any .tf file spells a
// topology name (a queue, DLQ, rule, table, index, topic or event name).
func TestNoTopologyNameIsWrittenByHand(t *testing.T) {
	t.Parallel()
	c := cfg(t)
	names := map[string]bool{c.topo.Topic.Name: true}
	for _, q := range c.topo.Queues {
		names[q.Name], names[q.DLQ.Name] = true, true
	}
	for _, r := range c.topo.Rules {
		names[r.Name], names[r.TargetDLQ] = true, true
	}
	for _, tb := range c.topo.Tables {
		names[tb.Name] = true
		for _, g := range tb.GSIs {
			names[g.Name] = true
		}
	}
	for _, ev := range c.topo.Topic.Events {
		names[ev] = true
	}
	for _, m := range c.all {
		for name, f := range m.files {
			hclsyntax.VisitAll(f.Body.(*hclsyntax.Body), func(n hclsyntax.Node) hcl.Diagnostics {
				lit, ok := n.(*hclsyntax.LiteralValueExpr)
				if !ok || lit.Val.Type() != cty.String {
					return nil
				}
				s := strings.TrimPrefix(lit.Val.AsString(), "-")
				if names[s] {
					t.Errorf("%s:%d: string %q repeats a topology name; derive it from local.topology", name, lit.SrcRange.Start.Line, lit.Val.AsString())
				}
				return nil
			})
		}
	}
}
