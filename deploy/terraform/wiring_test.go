package terraform_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// ---------------------------------------------------------------------------
// EventBridge rules and targets
// ---------------------------------------------------------------------------

func TestEveryRuleTargetsItsStageQueueWithRetryAndDLQ(t *testing.T) {
	t.Parallel()
	c := cfg(t)
	e := rootEvaluator(t, c, nil)

	rule := c.root.block(t, "resource", "aws_cloudwatch_event_rule", "this")
	if !hasRef(attr(t, rule, "event_bus_name").Expr, "aws_cloudwatch_event_bus.orders") {
		t.Error("rules must be on the pipeline's bus (aws_cloudwatch_event_bus.orders)")
	}
	targets := c.root.blocksOf("resource", "aws_cloudwatch_event_target")
	if len(targets) != 1 {
		t.Fatalf("want one for_each'd aws_cloudwatch_event_target, found %d", len(targets))
	}
	target := targets[0]
	if got, want := refs(attr(t, target, "for_each").Expr), refs(attr(t, rule, "for_each").Expr); !slices.Equal(got, want) {
		t.Errorf("targets for_each %v must match the rules' %v (one target per rule)", got, want)
	}
	if !hasRef(attr(t, target, "rule").Expr, "aws_cloudwatch_event_rule.this") {
		t.Error("target.rule must reference aws_cloudwatch_event_rule.this[each.key]")
	}
	if !hasRef(attr(t, target, "arn").Expr, "module.stage_queue") || !hasRef(attr(t, target, "arn").Expr, "each.value.target_stage") {
		t.Error("target.arn must be module.stage_queue[each.value.target_stage].queue_arn")
	}
	dl := child(t, target, "dead_letter_config")
	if !hasRef(attr(t, dl, "arn").Expr, "aws_sqs_queue.rule_target_dlq") {
		t.Error("target dead_letter_config.arn must be the rule's own aws_sqs_queue.rule_target_dlq")
	}
	rp := child(t, target, "retry_policy")

	inst := e.forEach(target)
	for _, r := range c.topo.Rules {
		ev := each(r.Name, inst[r.Name])
		if got := num(t, e.must(attr(t, rp, "maximum_event_age_in_seconds").Expr, ev)); got != r.RetryPolicy.MaximumEventAgeSeconds {
			t.Errorf("rule %s: maximum_event_age_in_seconds = %d, want %d", r.Name, got, r.RetryPolicy.MaximumEventAgeSeconds)
		}
		if got := num(t, e.must(attr(t, rp, "maximum_retry_attempts").Expr, ev)); got != r.RetryPolicy.MaximumRetryAttempts {
			t.Errorf("rule %s: maximum_retry_attempts = %d, want %d", r.Name, got, r.RetryPolicy.MaximumRetryAttempts)
		}
		pattern := str(t, e.must(attr(t, rule, "event_pattern").Expr, ev))
		var got, want any
		_ = json.Unmarshal([]byte(pattern), &got)
		_ = json.Unmarshal(r.EventPattern, &want)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("rule %s: event_pattern %s, want %s", r.Name, pattern, r.EventPattern)
		}
		if got := str(t, e.must(attr(t, rule, "description").Expr, ev)); got != r.Description {
			t.Errorf("rule %s: description %q, want %q", r.Name, got, r.Description)
		}
	}
}

// The queue policies let only the routing rules send (aws:SourceArn).
func TestQueuePoliciesAllowOnlyTheirRules(t *testing.T) {
	t.Parallel()
	c := cfg(t)
	check := func(m *module, doc *hclsyntax.Block, wantSource string) {
		t.Helper()
		stmts := statements(doc)
		if len(stmts) != 1 {
			t.Fatalf("%s: data %q: want one statement, found %d", m.dir, doc.Labels, len(stmts))
		}
		s := stmts[0]
		if got := literalList(t, attr(t, s, "actions").Expr); !slices.Equal(got, []string{"sqs:SendMessage"}) {
			t.Errorf("%s: queue policy actions %v, want [sqs:SendMessage]", m.dir, got)
		}
		p := child(t, s, "principals")
		if got := literalList(t, attr(t, p, "identifiers").Expr); !slices.Equal(got, []string{"events.amazonaws.com"}) {
			t.Errorf("%s: queue policy principal %v, want events.amazonaws.com", m.dir, got)
		}
		cond := child(t, s, "condition")
		if v, _ := literalString(attr(t, cond, "variable").Expr); v != "aws:SourceArn" {
			t.Errorf("%s: queue policy must be conditioned on aws:SourceArn, got %q", m.dir, v)
		}
		if !hasRef(attr(t, cond, "values").Expr, wantSource) {
			t.Errorf("%s: aws:SourceArn values must come from %s", m.dir, wantSource)
		}
	}
	q := c.mod(t, "queue")
	check(q, q.block(t, "data", "aws_iam_policy_document", "queue"), "var.sender_rule_arns")
	if !hasRef(attr(t, q.block(t, "resource", "aws_sqs_queue_policy", "this"), "policy").Expr, "data.aws_iam_policy_document.queue") {
		t.Error("modules/queue: aws_sqs_queue_policy.this must use data.aws_iam_policy_document.queue")
	}
	if !hasRef(attr(t, c.root.block(t, "module", "stage_queue"), "sender_rule_arns").Expr, "aws_cloudwatch_event_rule.this") {
		t.Error("module.stage_queue sender_rule_arns must be the ARNs of aws_cloudwatch_event_rule.this")
	}
	check(c.root, c.root.block(t, "data", "aws_iam_policy_document", "rule_target_dlq"), "aws_cloudwatch_event_rule.this")

	// Each stage queue accepts exactly the rules that target it.
	e := rootEvaluator(t, c, nil)
	byStage := e.locals["rules_by_stage"]
	for _, q := range c.topo.Queues {
		var want []string
		for _, r := range c.topo.Rules {
			if r.TargetStage == q.Stage {
				want = append(want, r.Name)
			}
		}
		var got []string
		for it := byStage.GetAttr(q.Stage).ElementIterator(); it.Next(); {
			_, v := it.Element()
			got = append(got, v.AsString())
		}
		if !slices.Equal(got, want) {
			t.Errorf("rules allowed to send to %s: %v, want %v", q.Stage, got, want)
		}
	}
}

// Producers may put only the events that enter the pipeline (those routed to
// the inventory stage) from the pipeline's source: the stage events then
// come only from the worker, which the payment stage relies on instead of a
// read before every charge.
func TestProducerPolicyAllowsOnlyEntryEvents(t *testing.T) {
	t.Parallel()
	c := cfg(t)
	doc := c.root.block(t, "data", "aws_iam_policy_document", "producer")
	stmts := statements(doc)
	if len(stmts) != 1 {
		t.Fatalf("producer policy: want one statement, found %d", len(stmts))
	}
	s := stmts[0]
	if got := literalList(t, attr(t, s, "actions").Expr); !slices.Equal(got, []string{"events:PutEvents"}) {
		t.Errorf("producer policy actions %v, want [events:PutEvents]", got)
	}
	if !hasRef(attr(t, s, "resources").Expr, "aws_cloudwatch_event_bus.orders") {
		t.Error("producer policy must name the bus, aws_cloudwatch_event_bus.orders")
	}
	e := rootEvaluator(t, c, nil)
	got := map[string][]string{}
	for _, cond := range children(s, "condition") {
		test, _ := literalString(attr(t, cond, "test").Expr)
		variable, _ := literalString(attr(t, cond, "variable").Expr)
		if test != "StringEquals" {
			t.Errorf("condition on %s uses %s, want StringEquals", variable, test)
		}
		for it := e.must(attr(t, cond, "values").Expr, nil).ElementIterator(); it.Next(); {
			_, v := it.Element()
			got[variable] = append(got[variable], v.AsString())
		}
	}
	var entry []string
	for _, r := range c.topo.Rules {
		if r.TargetStage == "inventory" {
			var pattern struct {
				DetailType []string `json:"detail-type"`
			}
			if err := json.Unmarshal(r.EventPattern, &pattern); err != nil {
				t.Fatal(err)
			}
			entry = append(entry, pattern.DetailType...)
		}
	}
	want := map[string][]string{"events:source": {c.topo.EventSource}, "events:detail-type": entry}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("producer policy conditions %v, want %v", got, want)
	}
	for _, banned := range []string{"InventoryReserved", "PaymentCaptured"} {
		if slices.Contains(got["events:detail-type"], banned) {
			t.Errorf("producers may put %s, which only the worker may emit", banned)
		}
	}
	if !hasRef(attr(t, c.root.block(t, "resource", "aws_iam_policy", "producer"), "policy").Expr, "data.aws_iam_policy_document.producer") {
		t.Error("aws_iam_policy.producer must use data.aws_iam_policy_document.producer")
	}
	if !hasRef(attr(t, c.root.block(t, "output", "producer_policy_arn"), "value").Expr, "aws_iam_policy.producer") {
		t.Error("output producer_policy_arn must be aws_iam_policy.producer.arn")
	}
}

// ---------------------------------------------------------------------------
// SQS: encryption, redrive, long polling
// ---------------------------------------------------------------------------

func TestEveryQueueIsEncryptedAndRedriven(t *testing.T) {
	t.Parallel()
	c := cfg(t)
	const cmk = "arn:aws:kms:eu-west-1:123456789012:key/00000000-0000-0000-0000-000000000000"
	found := 0
	for _, m := range c.all {
		var plain, withKey *evaluator
		if m == c.root {
			plain = rootEvaluator(t, c, nil)
			withKey = rootEvaluator(t, c, map[string]cty.Value{"kms": cty.ObjectVal(map[string]cty.Value{"key_arn": cty.StringVal(cmk)})})
		} else {
			dlq := cty.ObjectVal(map[string]cty.Value{
				"name": cty.StringVal("q-dlq"), "max_receive_count": cty.NumberIntVal(5), "message_retention_seconds": cty.NumberIntVal(1209600),
			})
			plain = newEvaluator(t, m, map[string]cty.Value{"dlq": dlq})
			withKey = newEvaluator(t, m, map[string]cty.Value{"dlq": dlq, "kms_key_arn": cty.StringVal(cmk)})
		}
		for _, q := range m.blocksOf("resource", "aws_sqs_queue") {
			found++
			id := fmt.Sprintf("%s: aws_sqs_queue.%s", m.dir, q.Labels[1])
			extra := map[string]cty.Value{}
			if _, ok := q.Body.Attributes["for_each"]; ok {
				extra = each("k", cty.DynamicVal)
			}
			// Default: SSE-SQS. With a customer key: that key.
			sse, hasSSE := q.Body.Attributes["sqs_managed_sse_enabled"]
			kms, hasKMS := q.Body.Attributes["kms_master_key_id"]
			if !hasSSE || !hasKMS {
				t.Errorf("%s: needs sqs_managed_sse_enabled (default) and kms_master_key_id (customer key option)", id)
				continue
			}
			if v := plain.must(sse.Expr, extra); v.IsNull() || !v.True() {
				t.Errorf("%s: not encrypted by default (sqs_managed_sse_enabled = %#v)", id, v)
			}
			if v := withKey.must(kms.Expr, extra); v.IsNull() || v.AsString() != cmk {
				t.Errorf("%s: kms_master_key_id ignores the customer key (got %#v)", id, v)
			}
			if v := withKey.must(sse.Expr, extra); !v.IsNull() && v.True() {
				t.Errorf("%s: sqs_managed_sse_enabled must be null when a customer key is used", id)
			}

			isDLQ := strings.HasSuffix(q.Labels[1], "dlq")
			if isDLQ {
				// A DLQ is terminal: it has a redrive allow policy instead.
				ok := false
				for _, p := range m.blocksOf("resource", "aws_sqs_queue_redrive_allow_policy") {
					if hasRef(attr(t, p, "queue_url").Expr, "aws_sqs_queue."+q.Labels[1]) {
						ok = true
					}
				}
				if !ok {
					t.Errorf("%s: dead-letter queue without an aws_sqs_queue_redrive_allow_policy", id)
				}
				continue
			}
			rp, ok := q.Body.Attributes["redrive_policy"]
			if !ok {
				t.Errorf("%s: work queue without redrive_policy", id)
				continue
			}
			if !hasRef(rp.Expr, "aws_sqs_queue.dlq.arn") || !hasRef(rp.Expr, "var.dlq.max_receive_count") {
				t.Errorf("%s: redrive_policy must send to aws_sqs_queue.dlq after var.dlq.max_receive_count receives, refers to %v", id, refs(rp.Expr))
			}
			policy := plain.must(rp.Expr, map[string]cty.Value{"aws_sqs_queue": cty.ObjectVal(map[string]cty.Value{"dlq": cty.ObjectVal(map[string]cty.Value{"arn": cty.StringVal("arn:dlq")})})})
			if !strings.Contains(policy.AsString(), `"deadLetterTargetArn":"arn:dlq"`) || !strings.Contains(policy.AsString(), `"maxReceiveCount"`) {
				t.Errorf("%s: redrive_policy %s lacks deadLetterTargetArn/maxReceiveCount", id, policy.AsString())
			}
			if w, ok := q.Body.Attributes["receive_wait_time_seconds"]; !ok || !hasRef(w.Expr, "var.receive_wait_time_seconds") {
				t.Errorf("%s: long polling (receive_wait_time_seconds) must be set from the topology", id)
			}
		}
	}
	if found < 3 {
		t.Fatalf("found only %d aws_sqs_queue blocks", found)
	}

	// Every queue of the topology has long polling and a visibility timeout
	// longer than the worker's handler deadline.
	e := rootEvaluator(t, c, nil)
	handler := num(t, e.vars["handler_timeout_seconds"])
	for _, q := range c.topo.Queues {
		if q.ReceiveWaitTimeSeconds < 1 {
			t.Errorf("topology queue %s: receive_wait_time_seconds %d is not long polling", q.Name, q.ReceiveWaitTimeSeconds)
		}
		if q.VisibilityTimeoutSeconds <= handler {
			t.Errorf("topology queue %s: visibility %ds not above the handler timeout %ds", q.Name, q.VisibilityTimeoutSeconds, handler)
		}
	}
}

// ---------------------------------------------------------------------------
// DynamoDB
// ---------------------------------------------------------------------------

func TestEveryTableHasPITRAndEncryption(t *testing.T) {
	t.Parallel()
	c := cfg(t)
	e := rootEvaluator(t, c, nil)
	found := 0
	for _, m := range c.all {
		for _, tb := range m.blocksOf("resource", "aws_dynamodb_table") {
			found++
			id := fmt.Sprintf("%s: aws_dynamodb_table.%s", m.dir, tb.Labels[1])
			pitr := child(t, tb, "point_in_time_recovery")
			if v, _ := attr(t, pitr, "enabled").Expr.Value(nil); v.IsNull() || !v.True() {
				t.Errorf("%s: point_in_time_recovery.enabled must be true", id)
			}
			sse := child(t, tb, "server_side_encryption")
			if v, _ := attr(t, sse, "enabled").Expr.Value(nil); v.IsNull() || !v.True() {
				t.Errorf("%s: server_side_encryption.enabled must be true", id)
			}
			if k, ok := sse.Body.Attributes["kms_key_arn"]; !ok || !hasRef(k.Expr, "local.kms_key_arn") {
				t.Errorf("%s: server_side_encryption.kms_key_arn must follow local.kms_key_arn (customer key option)", id)
			}
			if v, _ := literalString(attr(t, tb, "billing_mode").Expr); v != "PAY_PER_REQUEST" {
				t.Errorf("%s: billing_mode %q, want PAY_PER_REQUEST (on-demand)", id, v)
			}
		}
	}
	if found == 0 {
		t.Fatal("no aws_dynamodb_table")
	}

	// Keys, indexes and TTL come from the topology.
	tb := c.root.block(t, "resource", "aws_dynamodb_table", "this")
	inst := e.forEach(tb)
	attrDyn := dynamicBlock(t, tb, "attribute")
	gsiDyn := dynamicBlock(t, tb, "global_secondary_index")
	ttlDyn := dynamicBlock(t, tb, "ttl")
	for _, want := range c.topo.Tables {
		ev := each(want.Role, inst[want.Role])
		if got := str(t, e.must(attr(t, tb, "hash_key").Expr, ev)); got != want.HashKey.Name {
			t.Errorf("table %s: hash_key %q, want %q", want.Role, got, want.HashKey.Name)
		}
		attrs := map[string]string{}
		for it := e.must(attr(t, attrDyn, "for_each").Expr, ev).ElementIterator(); it.Next(); {
			_, a := it.Element()
			attrs[a.GetAttr("name").AsString()] = a.GetAttr("type").AsString()
		}
		wantAttrs := map[string]string{want.HashKey.Name: want.HashKey.Type}
		var wantIdx []string
		for _, g := range want.GSIs {
			wantIdx = append(wantIdx, g.Name)
			wantAttrs[g.HashKey.Name] = g.HashKey.Type
			if g.RangeKey != nil {
				wantAttrs[g.RangeKey.Name] = g.RangeKey.Type
			}
		}
		if fmt.Sprint(attrs) != fmt.Sprint(wantAttrs) {
			t.Errorf("table %s: attributes %v, want %v", want.Role, attrs, wantAttrs)
		}
		var gotIdx []string
		for it := e.must(attr(t, gsiDyn, "for_each").Expr, ev).ElementIterator(); it.Next(); {
			k, _ := it.Element()
			gotIdx = append(gotIdx, k.AsString())
		}
		if !slices.Equal(gotIdx, wantIdx) {
			t.Errorf("table %s: indexes %v, want %v", want.Role, gotIdx, wantIdx)
		}
		ttl := e.must(attr(t, ttlDyn, "for_each").Expr, ev)
		content := child(t, ttlDyn, "content")
		var gotTTL string
		for it := ttl.ElementIterator(); it.Next(); {
			k, v := it.Element()
			gotTTL = str(t, e.must(attr(t, content, "attribute_name").Expr, with(ev, iter("ttl", k, v))))
		}
		if gotTTL != want.TTLAttribute {
			t.Errorf("table %s: ttl attribute %q, want %q", want.Role, gotTTL, want.TTLAttribute)
		}
	}
}
