package terraform_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// ---------------------------------------------------------------------------
// IAM
// ---------------------------------------------------------------------------

// statements returns the statement blocks of a policy document, static and
// dynamic (the dynamic ones' content blocks).
func statements(doc *hclsyntax.Block) []*hclsyntax.Block {
	return append(children(doc, "statement"), dynamicContent(doc, "statement")...)
}

func literalList(t *testing.T, expr hclsyntax.Expression) []string {
	t.Helper()
	tup, ok := expr.(*hclsyntax.TupleConsExpr)
	if !ok {
		t.Fatalf("%s: want a literal list of strings, got %T", expr.Range(), expr)
	}
	var out []string
	for _, el := range tup.Exprs {
		s, ok := literalString(el)
		if !ok {
			t.Fatalf("%s: want a literal string", el.Range())
		}
		out = append(out, s)
	}
	return out
}

// taskRoleAllowed is every action the worker calls (its SQS, DynamoDB,
// EventBridge and SNS adapters), with the resources each may name.
var taskRoleAllowed = map[string][]string{
	"sqs:ReceiveMessage":              {"module.stage_queue", "aws_sqs_queue.rule_target_dlq"},
	"sqs:DeleteMessage":               {"module.stage_queue", "aws_sqs_queue.rule_target_dlq"},
	"sqs:ChangeMessageVisibility":     {"module.stage_queue", "aws_sqs_queue.rule_target_dlq"},
	"sqs:GetQueueUrl":                 {"module.stage_queue", "aws_sqs_queue.rule_target_dlq"},
	"sqs:GetQueueAttributes":          {"module.stage_queue", "aws_sqs_queue.rule_target_dlq"},
	"sqs:SendMessage":                 {"module.stage_queue"},
	"sqs:StartMessageMoveTask":        {"module.stage_queue", "aws_sqs_queue.rule_target_dlq"},
	"sqs:ListMessageMoveTasks":        {"module.stage_queue", "aws_sqs_queue.rule_target_dlq"},
	"dynamodb:GetItem":                {"aws_dynamodb_table.this"},
	"dynamodb:PutItem":                {"aws_dynamodb_table.this"},
	"dynamodb:UpdateItem":             {"aws_dynamodb_table.this"},
	"dynamodb:Query":                  {"aws_dynamodb_table.this"},
	"dynamodb:BatchGetItem":           {"aws_dynamodb_table.this"}, // the intake's catalogue prices
	"dynamodb:Scan":                   {"aws_dynamodb_table.this"}, // the console's stock panel, inventory only
	"events:PutEvents":                {"aws_cloudwatch_event_bus.orders"},
	"sns:Publish":                     {"aws_sns_topic.notifications"},
	"aps:RemoteWrite":                 {"local.prometheus_workspace_arn"}, // the metrics sidecar, the workspace in use
	"kms:Decrypt":                     {"statement"},                      // dynamic over local.kms_key_arn
	"kms:GenerateDataKey":             {"statement"},
	"logs:CreateLogStream":            {"aws_cloudwatch_log_group.this"},
	"logs:PutLogEvents":               {"aws_cloudwatch_log_group.this"},
	"ecr:GetAuthorizationToken":       {"*"},
	"ecr:BatchCheckLayerAvailability": {"var.image_repository_arn"},
	"ecr:BatchGetImage":               {"var.image_repository_arn"},
	"ecr:GetDownloadUrlForLayer":      {"var.image_repository_arn"},
	"secretsmanager:GetSecretValue":   {"var.secrets"},
}

// arnParts only spell parts of an ARN; they never widen a resource.
var arnParts = []string{"local.partition", "local.account_id", "var.region", "local.container_name", "local.table_indexes"}

// isWildcard reports whether a resources expression is exactly ["*"].
func isWildcard(expr hclsyntax.Expression) bool {
	tup, ok := expr.(*hclsyntax.TupleConsExpr)
	if !ok || len(tup.Exprs) != 1 {
		return false
	}
	s, ok := literalString(tup.Exprs[0])
	return ok && s == "*"
}

// Every statement of every policy document names explicit actions and
// resources declared in its module; "*" appears only where AWS requires it,
// with an `iam-wildcard-justified:` comment.
func TestIAMStatementsNameExplicitActionsAndOwnResources(t *testing.T) {
	t.Parallel()
	c := cfg(t)
	docs := 0
	for _, m := range c.all {
		for _, doc := range m.blocksOf("data", "aws_iam_policy_document") {
			docs++
			for _, s := range statements(doc) {
				id := fmt.Sprintf("%s: data.aws_iam_policy_document.%s statement", m.dir, doc.Labels[1])
				if sid, ok := s.Body.Attributes["sid"]; ok {
					v, _ := literalString(sid.Expr)
					id += " " + v
				}
				for _, forbidden := range []string{"not_actions", "not_resources"} {
					if _, ok := s.Body.Attributes[forbidden]; ok {
						t.Errorf("%s: %s is broader than it looks; name actions and resources", id, forbidden)
					}
				}
				if e, ok := s.Body.Attributes["effect"]; !ok {
					t.Errorf("%s: state effect explicitly", id)
				} else if v, _ := literalString(e.Expr); v != "Allow" {
					t.Errorf("%s: effect %q; only Allow statements are expected", id, v)
				}
				actions := statementActions(t, c, m, doc, s)
				for _, a := range actions {
					if strings.Contains(a, "*") || !strings.Contains(a, ":") {
						t.Errorf("%s: action %q is not an explicit service:Action", id, a)
					}
				}
				res, ok := s.Body.Attributes["resources"]
				if !ok {
					if !slices.Equal(actions, []string{"sts:AssumeRole"}) || len(children(s, "principals")) == 0 {
						t.Errorf("%s: no resources (only trust policies may omit them)", id)
					}
					continue
				}
				elems := []hclsyntax.Expression{res.Expr}
				if tup, ok := res.Expr.(*hclsyntax.TupleConsExpr); ok {
					elems = tup.Exprs
				}
				for _, el := range elems {
					if s, ok := literalString(el); ok {
						if s != "*" {
							t.Errorf("%s: hard-coded resource %q; reference the resource", id, s)
							continue
						}
						justified := false
						for d := -4; d <= 0; d++ {
							if strings.Contains(m.line(res, d), "iam-wildcard-justified:") {
								justified = true
							}
						}
						if !justified {
							t.Errorf("%s: Resource \"*\" without an `iam-wildcard-justified:` comment", id)
						}
						continue
					}
					rs := refs(el)
					if len(rs) == 0 {
						t.Errorf("%s: resource %s refers to nothing", id, el.Range())
					}
					for _, r := range rs {
						if p := strings.Split(r, "."); p[0] == "statement" {
							continue // dynamic statement iterator
						}
						if !m.declared(declarationRef(r)) {
							t.Errorf("%s: resource refers to %s, which this module does not declare", id, r)
						}
					}
				}
			}
		}
	}
	if docs < 5 {
		t.Fatalf("found only %d aws_iam_policy_document blocks", docs)
	}

	// Policies are attached only from policy documents: no managed policies,
	// no inline JSON that would escape the checks above.
	for _, m := range c.all {
		for _, typ := range []string{"aws_iam_role_policy_attachment", "aws_iam_policy_attachment", "aws_iam_user_policy_attachment"} {
			if len(m.blocksOf("resource", typ)) > 0 {
				t.Errorf("%s: %s attaches a managed policy; write a least-privilege document instead", m.dir, typ)
			}
		}
		for name, f := range m.files {
			if strings.Contains(string(f.Bytes), "FullAccess") || strings.Contains(string(f.Bytes), "AdministratorAccess") {
				t.Errorf("%s mentions a *FullAccess / AdministratorAccess managed policy", name)
			}
		}
		for _, b := range m.blocks {
			if b.Type != "resource" {
				continue
			}
			for _, an := range []string{"policy", "assume_role_policy", "inline_policy", "managed_policy_arns"} {
				a, ok := b.Body.Attributes[an]
				if !ok || b.Labels[0] == "aws_ecr_lifecycle_policy" {
					continue
				}
				if !hasRef(a.Expr, "data") && !hasRef(a.Expr, "var.task_role_policy_json") && !hasRef(a.Expr, "var.role_policy_json") {
					t.Errorf("%s: %s.%s.%s must come from an aws_iam_policy_document", m.dir, b.Labels[0], b.Labels[1], an)
				}
			}
		}
	}
}

// The task role may do exactly what the worker does, each action on the
// resources of its kind only.
func TestTaskRoleIsLeastPrivilege(t *testing.T) {
	t.Parallel()
	c := cfg(t)
	ws := c.mod(t, "worker_service")

	// Wiring: root document -> module variable -> task role policy; the
	// execution role is a different role.
	call := c.root.block(t, "module", "worker_service")
	if !hasRef(attr(t, call, "task_role_policy_json").Expr, "data.aws_iam_policy_document.worker_task") {
		t.Error("module.worker_service task_role_policy_json must be data.aws_iam_policy_document.worker_task[0].json")
	}
	if !hasRef(attr(t, ws.block(t, "resource", "aws_iam_role_policy", "task"), "policy").Expr, "var.task_role_policy_json") ||
		!hasRef(attr(t, ws.block(t, "resource", "aws_iam_role_policy", "task"), "role").Expr, "aws_iam_role.task") {
		t.Error("aws_iam_role_policy.task must put var.task_role_policy_json on aws_iam_role.task")
	}
	td := ws.block(t, "resource", "aws_ecs_task_definition", "this")
	if !hasRef(attr(t, td, "task_role_arn").Expr, "aws_iam_role.task") || !hasRef(attr(t, td, "execution_role_arn").Expr, "aws_iam_role.execution") {
		t.Error("task definition must use aws_iam_role.task as task role and aws_iam_role.execution as execution role")
	}

	docs := []struct {
		m   *module
		doc string
	}{{c.root, "worker_task"}, {ws, "execution"}}
	for _, d := range docs {
		for _, s := range statements(d.m.block(t, "data", "aws_iam_policy_document", d.doc)) {
			res := attr(t, s, "resources")
			for _, a := range literalList(t, attr(t, s, "actions").Expr) {
				allowed, ok := taskRoleAllowed[a]
				if !ok {
					t.Errorf("%s: %s grants %s, which the worker does not call", d.m.dir, d.doc, a)
					continue
				}
				if isWildcard(res.Expr) {
					if !slices.Contains(allowed, "*") {
						t.Errorf("%s: %s grants %s on \"*\"", d.m.dir, d.doc, a)
					}
					continue
				}
				matched := false
				for _, r := range refs(res.Expr) {
					switch {
					case slices.ContainsFunc(allowed, func(p string) bool { return r == p || strings.HasPrefix(r, p+".") }):
						matched = true
					case slices.Contains(arnParts, r):
					default:
						t.Errorf("%s: %s grants %s on %s; allowed only on %v", d.m.dir, d.doc, a, r, allowed)
					}
				}
				if !matched {
					t.Errorf("%s: %s grants %s without naming one of %v", d.m.dir, d.doc, a, allowed)
				}
			}
		}
	}

	// The worker's own calls are all there (so the task can actually run).
	var granted []string
	for _, s := range statements(c.root.block(t, "data", "aws_iam_policy_document", "worker_task")) {
		granted = append(granted, literalList(t, attr(t, s, "actions").Expr)...)
	}
	for _, need := range []string{"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:SendMessage",
		"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:GetItem", "dynamodb:Scan", "events:PutEvents", "sns:Publish"} {
		if !slices.Contains(granted, need) {
			t.Errorf("task role lacks %s, which the worker calls", need)
		}
	}

	// Scan (the console's stock panel) only on the inventory table, the one
	// table it pages through.
	for _, s := range statements(c.root.block(t, "data", "aws_iam_policy_document", "worker_task")) {
		if !slices.Contains(literalList(t, attr(t, s, "actions").Expr), "dynamodb:Scan") {
			continue
		}
		res := attr(t, s, "resources")
		if got := strings.Join(strings.Fields(string(res.Expr.Range().SliceBytes(c.root.files[res.SrcRange.Filename].Bytes))), ""); got != `[aws_dynamodb_table.this["inventory"].arn]` {
			t.Errorf("dynamodb:Scan is granted on %s; want only the inventory table", got)
		}
	}
}
