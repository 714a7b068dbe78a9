// Package terraform_test checks the wiring of deploy/terraform without an AWS
// provider: Terraform's AWS provider cannot be downloaded here, so
// `terraform validate` and `plan` cannot run. The .tf files are parsed with
// hashicorp/hcl and, where the answer does not depend on AWS, their
// expressions are evaluated against deploy/topology.json and the variables'
// defaults (a small evaluator: variables, locals, each, dynamic-block
// iterators and the handful of functions the topology locals use). Anything
// that refers to a resource attribute evaluates to unknown.
//
// Each test names the wiring it protects; deleting a redrive policy, a rule's
// dead_letter_config, a table's point-in-time recovery or widening an IAM
// statement makes one of them fail.
package terraform_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/tryfunc"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
	ctyjson "github.com/zclconf/go-cty/cty/json"

	"github.com/cloudcommerce/cloudcommerce/internal/lambda"
	"github.com/cloudcommerce/cloudcommerce/internal/worker"
)

// workerShutdownDefault is the worker's own CLOUDCOMMERCE_SHUTDOWN_TIMEOUT
// default (25s); the container's stopTimeout must cover it even when the
// Terraform variable is left alone.
const workerShutdownDefault = 25

// ---------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------

type key struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

type topology struct {
	EventSource string `json:"event_source"`
	Queues      []struct {
		Stage                    string `json:"stage"`
		Name                     string `json:"name"`
		VisibilityTimeoutSeconds int    `json:"visibility_timeout_seconds"`
		ReceiveWaitTimeSeconds   int    `json:"receive_wait_time_seconds"`
		MessageRetentionSeconds  int    `json:"message_retention_seconds"`
		MaxMessageSizeBytes      int    `json:"max_message_size_bytes"`
		DLQ                      struct {
			Name                    string `json:"name"`
			MaxReceiveCount         int    `json:"max_receive_count"`
			MessageRetentionSeconds int    `json:"message_retention_seconds"`
		} `json:"dlq"`
	} `json:"queues"`
	Rules []struct {
		Name         string          `json:"name"`
		Description  string          `json:"description"`
		EventPattern json.RawMessage `json:"event_pattern"`
		TargetStage  string          `json:"target_stage"`
		TargetDLQ    string          `json:"target_dlq"`
		RetryPolicy  struct {
			MaximumEventAgeSeconds int `json:"maximum_event_age_seconds"`
			MaximumRetryAttempts   int `json:"maximum_retry_attempts"`
		} `json:"retry_policy"`
	} `json:"rules"`
	Tables []struct {
		Role     string `json:"role"`
		Name     string `json:"name"`
		HashKey  key    `json:"hash_key"`
		RangeKey *key   `json:"range_key"`
		GSIs     []struct {
			Name     string `json:"name"`
			HashKey  key    `json:"hash_key"`
			RangeKey *key   `json:"range_key"`
		} `json:"global_secondary_indexes"`
		TTLAttribute string `json:"ttl_attribute"`
	} `json:"tables"`
	Topic struct {
		Name     string   `json:"name"`
		Events   []string `json:"events"`
		Channels []string `json:"channels"`
	} `json:"topic"`
}

// module is one Terraform module directory, parsed.
type module struct {
	dir    string // relative to deploy/terraform: "." or "modules/<name>"
	files  map[string]*hcl.File
	blocks []*hclsyntax.Block
	source map[*hclsyntax.Block]string // block -> file name
}

type config struct {
	root    *module
	modules map[string]*module // by directory name under modules/
	all     []*module
	topo    topology
	rawTopo cty.Value
}

var loadConfig = sync.OnceValues(func() (*config, error) {
	c := &config{modules: map[string]*module{}}
	raw, err := os.ReadFile(filepath.Join("..", "topology.json"))
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(raw, &c.topo); err != nil {
		return nil, fmt.Errorf("decode topology.json: %w", err)
	}
	ty, err := ctyjson.ImpliedType(raw)
	if err != nil {
		return nil, err
	}
	if c.rawTopo, err = ctyjson.Unmarshal(raw, ty); err != nil {
		return nil, err
	}

	parser := hclparse.NewParser()
	load := func(dir string) (*module, error) {
		m := &module{dir: dir, files: map[string]*hcl.File{}, source: map[*hclsyntax.Block]string{}}
		names, err := filepath.Glob(filepath.Join(dir, "*.tf"))
		if err != nil {
			return nil, err
		}
		if len(names) == 0 {
			return nil, fmt.Errorf("no .tf files in %s", dir)
		}
		for _, name := range names {
			f, diags := parser.ParseHCLFile(name)
			if diags.HasErrors() {
				return nil, fmt.Errorf("parse %s: %s", name, diags.Error())
			}
			m.files[name] = f
			for _, b := range f.Body.(*hclsyntax.Body).Blocks {
				m.blocks = append(m.blocks, b)
				m.source[b] = name
			}
		}
		return m, nil
	}
	if c.root, err = load("."); err != nil {
		return nil, err
	}
	c.all = append(c.all, c.root)
	dirs, err := filepath.Glob(filepath.Join("modules", "*"))
	if err != nil {
		return nil, err
	}
	for _, d := range dirs {
		m, err := load(d)
		if err != nil {
			return nil, err
		}
		c.modules[filepath.Base(d)] = m
		c.all = append(c.all, m)
	}
	return c, nil
})

func cfg(t *testing.T) *config {
	t.Helper()
	c, err := loadConfig()
	if err != nil {
		t.Fatalf("load terraform: %v", err)
	}
	return c
}

func (c *config) mod(t *testing.T, name string) *module {
	t.Helper()
	m, ok := c.modules[name]
	if !ok {
		t.Fatalf("modules/%s does not exist", name)
	}
	return m
}

// blocksOf returns top-level blocks of a type whose labels start with labels.
func (m *module) blocksOf(typ string, labels ...string) []*hclsyntax.Block {
	var out []*hclsyntax.Block
	for _, b := range m.blocks {
		if b.Type == typ && len(b.Labels) >= len(labels) && slices.Equal(b.Labels[:len(labels)], labels) {
			out = append(out, b)
		}
	}
	return out
}

func (m *module) block(t *testing.T, typ string, labels ...string) *hclsyntax.Block {
	t.Helper()
	bs := m.blocksOf(typ, labels...)
	if len(bs) != 1 {
		t.Fatalf("%s: want exactly one %s %q, found %d", m.dir, typ, labels, len(bs))
	}
	return bs[0]
}

func (m *module) locals() map[string]*hclsyntax.Attribute {
	out := map[string]*hclsyntax.Attribute{}
	for _, b := range m.blocksOf("locals") {
		for n, a := range b.Body.Attributes {
			out[n] = a
		}
	}
	return out
}

func (m *module) line(a *hclsyntax.Attribute, delta int) string {
	f := m.files[a.SrcRange.Filename]
	if f == nil {
		return ""
	}
	lines := strings.Split(string(f.Bytes), "\n")
	i := a.SrcRange.Start.Line - 1 + delta
	if i < 0 || i >= len(lines) {
		return ""
	}
	return lines[i]
}

// declared reports whether a reference like "aws_sqs_queue.dlq", "module.x",
// "data.t.n", "local.x" or "var.x" names something this module declares.
func (m *module) declared(ref string) bool {
	p := strings.Split(ref, ".")
	switch p[0] {
	case "var":
		return len(p) > 1 && len(m.blocksOf("variable", p[1])) == 1
	case "local":
		if len(p) < 2 {
			return false
		}
		_, ok := m.locals()[p[1]]
		return ok
	case "module":
		return len(p) > 1 && len(m.blocksOf("module", p[1])) == 1
	case "data":
		return len(p) > 2 && len(m.blocksOf("data", p[1], p[2])) == 1
	case "each", "count", "path", "self", "terraform":
		return true
	default:
		return len(p) > 1 && len(m.blocksOf("resource", p[0], p[1])) == 1
	}
}

// ---------------------------------------------------------------------------
// Expression helpers
// ---------------------------------------------------------------------------

func attr(t *testing.T, b *hclsyntax.Block, name string) *hclsyntax.Attribute {
	t.Helper()
	a, ok := b.Body.Attributes[name]
	if !ok {
		t.Fatalf("%s %q: missing attribute %q", b.Type, b.Labels, name)
	}
	return a
}

func child(t *testing.T, b *hclsyntax.Block, typ string) *hclsyntax.Block {
	t.Helper()
	for _, c := range b.Body.Blocks {
		if c.Type == typ {
			return c
		}
	}
	t.Fatalf("%s %q: missing nested block %q", b.Type, b.Labels, typ)
	return nil
}

func children(b *hclsyntax.Block, typ string) []*hclsyntax.Block {
	var out []*hclsyntax.Block
	for _, c := range b.Body.Blocks {
		if c.Type == typ {
			out = append(out, c)
		}
	}
	return out
}

// dynamicContent returns the content blocks of `dynamic "<label>"` blocks.
func dynamicContent(b *hclsyntax.Block, label string) []*hclsyntax.Block {
	var out []*hclsyntax.Block
	for _, d := range b.Body.Blocks {
		if d.Type == "dynamic" && len(d.Labels) == 1 && d.Labels[0] == label {
			for _, c := range d.Body.Blocks {
				if c.Type == "content" {
					out = append(out, c)
				}
			}
		}
	}
	return out
}

func dynamicBlock(t *testing.T, b *hclsyntax.Block, label string) *hclsyntax.Block {
	t.Helper()
	for _, d := range b.Body.Blocks {
		if d.Type == "dynamic" && len(d.Labels) == 1 && d.Labels[0] == label {
			return d
		}
	}
	t.Fatalf("%s %q: missing dynamic %q block", b.Type, b.Labels, label)
	return nil
}

// refs renders every traversal of an expression as "root.attr.[].attr".
func refs(expr hclsyntax.Expression) []string {
	var out []string
	for _, tr := range hclsyntax.Variables(expr) {
		parts := []string{tr.RootName()}
		for _, step := range tr[1:] {
			if a, ok := step.(hcl.TraverseAttr); ok {
				parts = append(parts, a.Name)
			} else {
				parts = append(parts, "[]")
			}
		}
		out = append(out, strings.Join(parts, "."))
	}
	return out
}

func hasRef(expr hclsyntax.Expression, prefix string) bool {
	for _, r := range refs(expr) {
		if r == prefix || strings.HasPrefix(r, prefix+".") {
			return true
		}
	}
	return false
}

// declarationRef trims a reference to what it declares: "aws_x.y", "data.t.n",
// "module.m", "local.l", "var.v".
func declarationRef(r string) string {
	p := strings.Split(r, ".")
	n := 2
	if p[0] == "data" {
		n = 3
	}
	if len(p) < n {
		return r
	}
	return strings.Join(p[:n], ".")
}

// localsReferencing reports whether local `name` refers, directly or through
// other locals, to local `target`.
func localsReferencing(m *module, name, target string) bool {
	locals := m.locals()
	seen := map[string]bool{}
	var walk func(string) bool
	walk = func(n string) bool {
		if n == target {
			return true
		}
		if seen[n] {
			return false
		}
		seen[n] = true
		a, ok := locals[n]
		if !ok {
			return false
		}
		for _, r := range refs(a.Expr) {
			if p := strings.Split(r, "."); p[0] == "local" && len(p) > 1 && walk(p[1]) {
				return true
			}
		}
		return false
	}
	return walk(name)
}

// literalString returns the value of an expression that is a plain string.
func literalString(expr hclsyntax.Expression) (string, bool) {
	if len(hclsyntax.Variables(expr)) > 0 {
		return "", false
	}
	v, diags := expr.Value(nil)
	if diags.HasErrors() || !v.IsKnown() || v.IsNull() || v.Type() != cty.String {
		return "", false
	}
	return v.AsString(), true
}

// ---------------------------------------------------------------------------
// A small evaluator
// ---------------------------------------------------------------------------

type evaluator struct {
	t      *testing.T
	m      *module
	vars   map[string]cty.Value
	locals map[string]cty.Value
	funcs  map[string]function.Function
}

func functions() map[string]function.Function {
	file := function.New(&function.Spec{
		Params: []function.Parameter{{Name: "path", Type: cty.String}},
		Type:   function.StaticReturnType(cty.String),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			b, err := os.ReadFile(args[0].AsString())
			if err != nil {
				return cty.NilVal, err
			}
			return cty.StringVal(string(b)), nil
		},
	})
	// Terraform's alltrue: true when every element of a list of bools is.
	alltrue := function.New(&function.Spec{
		Params: []function.Parameter{{Name: "list", Type: cty.List(cty.Bool)}},
		Type:   function.StaticReturnType(cty.Bool),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			for it := args[0].ElementIterator(); it.Next(); {
				if _, v := it.Element(); !v.True() {
					return cty.False, nil
				}
			}
			return cty.True, nil
		},
	})
	return map[string]function.Function{
		"file":       file,
		"alltrue":    alltrue,
		"jsondecode": stdlib.JSONDecodeFunc,
		"jsonencode": stdlib.JSONEncodeFunc,
		"keys":       stdlib.KeysFunc,
		"values":     stdlib.ValuesFunc,
		"join":       stdlib.JoinFunc,
		"distinct":   stdlib.DistinctFunc,
		"concat":     stdlib.ConcatFunc,
		"flatten":    stdlib.FlattenFunc,
		"merge":      stdlib.MergeFunc,
		"length":     stdlib.LengthFunc,
		"contains":   stdlib.ContainsFunc,
		"sort":       stdlib.SortFunc,
		"lookup":     stdlib.LookupFunc,
		"coalesce":   stdlib.CoalesceFunc,
		"format":     stdlib.FormatFunc,
		"split":      stdlib.SplitFunc,
		"tostring":   stdlib.MakeToFunc(cty.String),
		"tonumber":   stdlib.MakeToFunc(cty.Number),
		"toset":      stdlib.MakeToFunc(cty.Set(cty.DynamicPseudoType)),
		"try":        tryfunc.TryFunc,
		"can":        tryfunc.CanFunc,
		"min":        stdlib.MinFunc,
		"max":        stdlib.MaxFunc,
	}
}

// newEvaluator evaluates a module's variables (defaults, with optional()
// attribute defaults applied, overridden by `set`) and then its locals.
func newEvaluator(t *testing.T, m *module, set map[string]cty.Value) *evaluator {
	t.Helper()
	e := &evaluator{t: t, m: m, vars: map[string]cty.Value{}, locals: map[string]cty.Value{}, funcs: functions()}
	for _, b := range m.blocksOf("variable") {
		name := b.Labels[0]
		val := cty.DynamicVal
		if v, ok := set[name]; ok {
			val = v
		} else if d, ok := b.Body.Attributes["default"]; ok {
			v, diags := d.Expr.Value(nil)
			if diags.HasErrors() {
				t.Fatalf("variable %q default: %s", name, diags.Error())
			}
			val = v
		}
		if ta, ok := b.Body.Attributes["type"]; ok && val.IsWhollyKnown() {
			ty, defaults, diags := typeexpr.TypeConstraintWithDefaults(ta.Expr)
			if diags.HasErrors() {
				t.Fatalf("variable %q type: %s", name, diags.Error())
			}
			if defaults != nil && !val.IsNull() {
				val = defaults.Apply(val)
			}
			conv, err := convert.Convert(val, ty)
			if err != nil {
				t.Fatalf("variable %q: value %#v does not convert to its type: %v", name, val, err)
			}
			val = conv
		}
		e.vars[name] = val
	}
	locals := m.locals()
	for name := range locals {
		e.locals[name] = cty.DynamicVal
	}
	// Locals form a DAG; len(locals) rounds settle every chain.
	for range len(locals) + 1 {
		for name, a := range locals {
			v, diags := e.eval(a.Expr, nil)
			if diags.HasErrors() {
				v = cty.DynamicVal
			}
			e.locals[name] = v
		}
	}
	return e
}

func (e *evaluator) eval(expr hcl.Expression, extra map[string]cty.Value) (cty.Value, hcl.Diagnostics) {
	vars := map[string]cty.Value{
		"var":   cty.ObjectVal(e.vars),
		"local": cty.ObjectVal(e.locals),
		"path":  cty.ObjectVal(map[string]cty.Value{"module": cty.StringVal(e.m.dir)}),
	}
	if len(e.vars) == 0 {
		vars["var"] = cty.EmptyObjectVal
	}
	if len(e.locals) == 0 {
		vars["local"] = cty.EmptyObjectVal
	}
	for k, v := range extra {
		vars[k] = v
	}
	// Resources, data sources and module calls are unknown here.
	for _, tr := range expr.Variables() {
		if _, ok := vars[tr.RootName()]; !ok {
			vars[tr.RootName()] = cty.DynamicVal
		}
	}
	return expr.Value(&hcl.EvalContext{Variables: vars, Functions: e.funcs})
}

// must evaluates an expression that has to be wholly known.
func (e *evaluator) must(expr hcl.Expression, extra map[string]cty.Value) cty.Value {
	e.t.Helper()
	v, diags := e.eval(expr, extra)
	if diags.HasErrors() {
		e.t.Fatalf("%s: evaluate: %s", expr.Range(), diags.Error())
	}
	if !v.IsWhollyKnown() {
		e.t.Fatalf("%s: does not evaluate to a known value offline (got %#v)", expr.Range(), v)
	}
	return v
}

func each(k string, v cty.Value) map[string]cty.Value {
	return map[string]cty.Value{"each": cty.ObjectVal(map[string]cty.Value{"key": cty.StringVal(k), "value": v})}
}

func iter(name string, k, v cty.Value) map[string]cty.Value {
	return map[string]cty.Value{name: cty.ObjectVal(map[string]cty.Value{"key": k, "value": v})}
}

func with(maps ...map[string]cty.Value) map[string]cty.Value {
	out := map[string]cty.Value{}
	for _, m := range maps {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

// forEach evaluates a block's for_each to its instances (key -> each.value).
func (e *evaluator) forEach(b *hclsyntax.Block) map[string]cty.Value {
	e.t.Helper()
	v := e.must(attr(e.t, b, "for_each").Expr, nil)
	out := map[string]cty.Value{}
	if v.Type().IsSetType() {
		for it := v.ElementIterator(); it.Next(); {
			_, ev := it.Element()
			out[ev.AsString()] = ev
		}
		return out
	}
	for it := v.ElementIterator(); it.Next(); {
		k, ev := it.Element()
		out[k.AsString()] = ev
	}
	return out
}

func str(t *testing.T, v cty.Value) string {
	t.Helper()
	if v.IsNull() || v.Type() != cty.String {
		t.Fatalf("want a string, got %#v", v)
	}
	return v.AsString()
}

func num(t *testing.T, v cty.Value) int {
	t.Helper()
	if v.IsNull() || v.Type() != cty.Number {
		t.Fatalf("want a number, got %#v", v)
	}
	i, _ := v.AsBigFloat().Int64()
	return int(i)
}

func boolean(t *testing.T, v cty.Value) bool {
	t.Helper()
	if v.IsNull() || v.Type() != cty.Bool {
		t.Fatalf("want a bool, got %#v", v)
	}
	return v.True()
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// requiredRootVars are the root variables without a default.
var requiredRootVars = map[string]cty.Value{
	"region":             cty.StringVal("eu-west-1"),
	"vpc_id":             cty.StringVal("vpc-0123456789abcdef0"),
	"private_subnet_ids": cty.ListVal([]cty.Value{cty.StringVal("subnet-0123456789abcdef0")}),
	"image_tag":          cty.StringVal("v1.0.0"),
}

func rootEvaluator(t *testing.T, c *config, set map[string]cty.Value) *evaluator {
	return newEvaluator(t, c.root, with(requiredRootVars, set))
}

// moduleEvaluator evaluates a child module with the arguments the root passes
// in its `module "<call>"` block (unknown where they come from resources).
func moduleEvaluator(t *testing.T, c *config, root *evaluator, call, dir string) *evaluator {
	t.Helper()
	return moduleInstanceEvaluator(t, c, root, call, dir, nil)
}

// moduleInstanceEvaluator is moduleEvaluator for one instance of a
// for_each'd module call: extra holds its `each`.
func moduleInstanceEvaluator(t *testing.T, c *config, root *evaluator, call, dir string, extra map[string]cty.Value) *evaluator {
	t.Helper()
	b := c.root.block(t, "module", call)
	if src := str(t, root.must(attr(t, b, "source").Expr, nil)); src != "./modules/"+dir {
		t.Fatalf("module %q: source %q, want ./modules/%s", call, src, dir)
	}
	set := map[string]cty.Value{}
	for name, a := range b.Body.Attributes {
		if name == "source" || name == "for_each" || name == "count" || name == "depends_on" {
			continue
		}
		v, diags := root.eval(a.Expr, extra)
		if diags.HasErrors() {
			t.Fatalf("module %q argument %s: %s", call, name, diags.Error())
		}
		set[name] = v
	}
	return newEvaluator(t, c.mod(t, dir), set)
}

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
	"dynamodb:DeleteItem":             {"aws_dynamodb_table.this"},
	"dynamodb:Query":                  {"aws_dynamodb_table.this"},
	"dynamodb:Scan":                   {"aws_dynamodb_table.this"},
	"events:PutEvents":                {"aws_cloudwatch_event_bus.orders"},
	"sns:Publish":                     {"aws_sns_topic.notifications"},
	"kms:Decrypt":                     {"statement"}, // dynamic over local.kms_key_arn
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
		"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:GetItem", "events:PutEvents", "sns:Publish"} {
		if !slices.Contains(granted, need) {
			t.Errorf("task role lacks %s, which the worker calls", need)
		}
	}
}

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
	if !defs.CanIterateElements() || defs.LengthInt() != 1 {
		t.Fatalf("local.container_definitions: want one container, got %#v", defs)
	}
	ctr := defs.Index(cty.NumberIntVal(0))
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
	for _, e := range worker.Env {
		workerReads[e.Name] = true
	}
	for name := range env {
		if !slices.Contains(known, name) || !workerReads[name] {
			t.Errorf("environment variable %s is not one the worker reads (internal/worker.Env)", name)
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
	if _, err := worker.FromEnv(func(k string) string {
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
			for _, e := range lambda.Env {
				reads[e.Name] = true
			}
			for name := range env {
				if !reads[name] {
					t.Errorf("lambda_stage[%s]: %s is not a variable the function reads (internal/lambda.Env)", stage, name)
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
			fc, err := lambda.FromEnv(getenv)
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

// ---------------------------------------------------------------------------
// Conventions: pinned versions, typed and described variables and outputs
// ---------------------------------------------------------------------------

var anyType = regexp.MustCompile(`\bany\b`)

func TestModulesArePinnedTypedAndDescribed(t *testing.T) {
	t.Parallel()
	c := cfg(t)
	for _, m := range c.all {
		tf := m.blocksOf("terraform")
		if len(tf) != 1 {
			t.Errorf("%s: want one terraform block, found %d", m.dir, len(tf))
			continue
		}
		if v, _ := literalString(attr(t, tf[0], "required_version").Expr); !strings.Contains(v, ">=") || !strings.Contains(v, "<") {
			t.Errorf("%s: required_version %q must be bounded on both sides", m.dir, v)
		}
		rp := child(t, tf[0], "required_providers")
		aws, _ := rp.Body.Attributes["aws"].Expr.Value(nil)
		if aws.IsNull() || aws.GetAttr("source").AsString() != "hashicorp/aws" || !strings.HasPrefix(aws.GetAttr("version").AsString(), "~>") {
			t.Errorf("%s: required_providers.aws must be hashicorp/aws with a ~> pin", m.dir)
		}
		for _, v := range m.blocksOf("variable") {
			if d, ok := v.Body.Attributes["description"]; !ok {
				t.Errorf("%s: variable %s needs a description", m.dir, v.Labels[0])
			} else if s, _ := literalString(d.Expr); len(s) < 10 {
				t.Errorf("%s: variable %s description too short", m.dir, v.Labels[0])
			}
			ty, ok := v.Body.Attributes["type"]
			if !ok {
				t.Errorf("%s: variable %s needs a type", m.dir, v.Labels[0])
				continue
			}
			if anyType.MatchString(string(ty.Expr.Range().SliceBytes(m.files[ty.SrcRange.Filename].Bytes))) {
				t.Errorf("%s: variable %s is typed `any`; use a typed object", m.dir, v.Labels[0])
			}
			if m == c.root && string(ty.Expr.Range().SliceBytes(m.files[ty.SrcRange.Filename].Bytes)) == "number" && len(children(v, "validation")) == 0 {
				t.Errorf("variable %s is a number without a validated range", v.Labels[0])
			}
		}
		for _, o := range m.blocksOf("output") {
			if d, ok := o.Body.Attributes["description"]; !ok {
				t.Errorf("%s: output %s needs a description", m.dir, o.Labels[0])
			} else if s, _ := literalString(d.Expr); len(s) < 10 {
				t.Errorf("%s: output %s description too short", m.dir, o.Labels[0])
			}
		}
		for _, b := range m.blocksOf("module") {
			src, _ := literalString(attr(t, b, "source").Expr)
			if !strings.HasPrefix(src, "./") {
				t.Errorf("%s: module %s uses %q; only local modules are allowed", m.dir, b.Labels[0], src)
			}
		}
	}
}

// The variable validations are real Terraform semantics, which the parser
// alone cannot judge. Terraform itself runs offline as long as no provider is
// needed: plan a copy of variables.tf plus the provider-free locals (the
// topology views its validations use) and check that good settings pass and
// bad ones are refused with the intended message.
func TestVariableValidationsWithTerraform(t *testing.T) {
	t.Parallel()
	bin, err := exec.LookPath("terraform")
	if err != nil {
		t.Skip("terraform is not on PATH; variable validations not exercised")
	}
	c := cfg(t)
	dir := filepath.Join(t.TempDir(), "deploy", "terraform")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	topo, err := os.ReadFile(filepath.Join("..", "topology.json"))
	if err != nil {
		t.Fatal(err)
	}
	vars, err := os.ReadFile("variables.tf")
	if err != nil {
		t.Fatal(err)
	}
	// Locals that refer only to variables, path and other such locals.
	locals := c.root.locals()
	pure := map[string]bool{}
	for changed := true; changed; {
		changed = false
		for name, a := range locals {
			if pure[name] {
				continue
			}
			ok := true
			for _, r := range refs(a.Expr) {
				p := strings.Split(r, ".")
				ok = ok && (p[0] == "var" || p[0] == "path" || (p[0] == "local" && pure[p[1]]))
			}
			if ok {
				pure[name], changed = true, true
			}
		}
	}
	var src strings.Builder
	src.WriteString("locals {\n")
	for _, name := range sortedKeys(pure) {
		a := locals[name]
		src.Write(a.SrcRange.SliceBytes(c.root.files[a.SrcRange.Filename].Bytes))
		src.WriteString("\n")
	}
	src.WriteString("}\n")
	for name, data := range map[string][]byte{
		filepath.Join(dir, "..", "topology.json"): topo,
		filepath.Join(dir, "variables.tf"):        vars,
		filepath.Join(dir, "locals.tf"):           []byte(src.String()),
	} {
		if err := os.WriteFile(name, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run := func(args ...string) (string, error) {
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "TF_IN_AUTOMATION=1", "CHECKPOINT_DISABLE=1")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := run("init", "-input=false", "-no-color"); err != nil {
		t.Fatalf("terraform init: %v\n%s", err, out)
	}
	if out, err := run("validate", "-no-color"); err != nil {
		t.Fatalf("terraform validate (variables + topology locals): %v\n%s", err, out)
	}
	required := []string{"-var=region=eu-west-1", "-var=vpc_id=vpc-0123456789abcdef0",
		`-var=private_subnet_ids=["subnet-0123456789abcdef0"]`, "-var=image_tag=v1.0.0"}
	const secret = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:x-AbCdEf"
	const zip = `-var=lambda={package_path="build/lambda.zip"}`
	cases := []struct {
		name    string
		vars    []string
		wantErr string // "" = must pass
		bare    bool   // without the required ECS variables
	}{
		{"defaults", nil, "", false},
		{"everything on", []string{"-var=payment_gateway=stripe", "-var=stripe_secret_arn=" + secret,
			`-var=intake={enabled=true,ingress_cidr_blocks=["10.0.0.0/16"]}`, "-var=api_key_secret_arn=" + secret,
			"-var=kms={create_key=true}", "-var=min_tasks=2", "-var=max_tasks=4", "-var=cpu_architecture=ARM64",
			`-var=notification_subscriptions=[{name="a",protocol="sms",endpoint="+447700900123",events=["OrderShipped"]},{name="b",protocol="email",endpoint="a@example.com"}]`,
			`-var=alarm_subscriptions=[{name="oncall",protocol="email",endpoint="oncall@example.com"}]`}, "", false},
		{"bad prefix", []string{"-var=prefix=Bad_Prefix"}, "prefix must be", false},
		{"stripe without secret", []string{"-var=payment_gateway=stripe"}, "stripe_secret_arn must be", false},
		{"intake without api key", []string{"-var=intake={enabled=true}"}, "api_key_secret_arn must be", false},
		{"handler timeout above visibility", []string{"-var=handler_timeout_seconds=30"}, "handler_timeout_seconds must be", false},
		{"stop timeout over fargate limit", []string{"-var=shutdown_timeout_seconds=111"}, "shutdown_timeout_seconds must be", false},
		{"root user", []string{"-var=container_user=0:0"}, "container_user must be", false},
		{"max below min", []string{"-var=min_tasks=5", "-var=max_tasks=3"}, "max_tasks must be", false},
		{"latest tag", []string{"-var=image_tag=latest"}, "image_tag must be", false},
		{"unknown event", []string{`-var=notification_subscriptions=[{name="a",protocol="sms",endpoint="+447700900123",events=["Nope"]}]`}, "events must be a non-empty subset", false},
		{"both key options", []string{`-var=kms={create_key=true,key_arn="arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"}`}, "not both", false},
		{"log retention", []string{"-var=log_retention_days=2"}, "log_retention_days must be", false},
		{"open ops port", []string{`-var=ops_ingress_cidr_blocks=["0.0.0.0/0"]`}, "ops_ingress_cidr_blocks must be", false},
		{"bad compute", []string{"-var=compute=fargate"}, "compute must be", false},
		{"ecs without vpc", []string{`-var=private_subnet_ids=["subnet-0123456789abcdef0"]`, "-var=image_tag=v1.0.0"}, "vpc_id must look like", true},
		{"ecs without image", []string{"-var=vpc_id=vpc-0123456789abcdef0", `-var=private_subnet_ids=["subnet-0123456789abcdef0"]`}, "image_tag must be", true},
		{"lambda needs no vpc, subnets or image", []string{"-var=compute=lambda", zip}, "", true},
		{"lambda everything on", []string{"-var=compute=lambda", "-var=stripe_secret_arn=" + secret, "-var=kms={create_key=true}",
			`-var=lambda={package_path="build/lambda.zip",memory_size=512,timeout_seconds=60,batch_size=100,maximum_batching_window_in_seconds=2,maximum_concurrency=50}`}, "", true},
		{"stripe secret alone", []string{"-var=stripe_secret_arn=" + secret}, "", false},
		{"sandbox with a stripe secret", []string{"-var=payment_gateway=sandbox", "-var=stripe_secret_arn=" + secret}, "stripe_secret_arn must be", false},
		{"lambda without package", []string{"-var=compute=lambda"}, "lambda.package_path must be", true},
		{"lambda package not a zip", []string{"-var=compute=lambda", `-var=lambda={package_path="bootstrap"}`}, "lambda.package_path must be", true},
		{"ecs with a long handler timeout", []string{"-var=handler_timeout_seconds=25"}, "", false},
		{"function timeout too short", []string{"-var=compute=lambda", `-var=lambda={package_path="l.zip",timeout_seconds=27}`}, "lambda.timeout_seconds must be", true},
		{"function timeout over 15 min", []string{"-var=compute=lambda", `-var=lambda={package_path="l.zip",timeout_seconds=901}`}, "lambda.timeout_seconds must be", true},
		{"big batch without window", []string{"-var=compute=lambda", `-var=lambda={package_path="l.zip",batch_size=11}`}, "lambda.batch_size must be", true},
		{"batching window too long", []string{"-var=compute=lambda", `-var=lambda={package_path="l.zip",maximum_batching_window_in_seconds=301}`}, "lambda.maximum_batching_window_in_seconds must be", true},
		{"mapping concurrency 1", []string{"-var=compute=lambda", `-var=lambda={package_path="l.zip",maximum_concurrency=1}`}, "lambda.maximum_concurrency must be", true},
		{"memory too small", []string{"-var=compute=lambda", `-var=lambda={package_path="l.zip",memory_size=64}`}, "lambda.memory_size must be", true},
		{"intake on lambda", []string{"-var=compute=lambda", zip, `-var=intake={enabled=true}`, "-var=api_key_secret_arn=" + secret}, "intake.enabled needs compute", true},
	}
	for _, tc := range cases {
		args := []string{"plan", "-input=false", "-no-color", "-lock=false", "-refresh=false"}
		if tc.bare {
			args = append(args, "-var=region=eu-west-1")
		} else {
			args = append(args, required...)
		}
		// A later -var wins, so overrides of required ones (image_tag) apply.
		out, err := run(append(args, tc.vars...)...)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%s: terraform plan refused valid settings: %v\n%s", tc.name, err, out)
		case tc.wantErr != "" && err == nil:
			t.Errorf("%s: terraform plan accepted invalid settings", tc.name)
		case tc.wantErr != "" && !strings.Contains(strings.Join(strings.Fields(out), " "), tc.wantErr):
			t.Errorf("%s: want an error mentioning %q, got:\n%s", tc.name, tc.wantErr, out)
		}
	}

	// Terraform itself evaluates the compute locals (the Lambda access table
	// per gateway, the stage queues' visibility) as this file's evaluator
	// does, so the checks above rest on Terraform's semantics.
	names := []string{"ecs", "payment_gateway", "lambda_table_grants", "lambda_stripe_stages", "lambda_record_concurrency", "stage_visibility_timeout_seconds"}
	var fields []string
	for _, n := range names {
		if !pure[n] {
			t.Fatalf("local.%s is not provider-free", n)
		}
		fields = append(fields, n+" = local."+n)
	}
	for _, cc := range []struct {
		vars []string
		set  map[string]cty.Value
	}{
		{nil, nil},
		{[]string{"-var=compute=lambda", zip}, lambdaVars(nil)},
		{[]string{"-var=compute=lambda", zip, "-var=stripe_secret_arn=" + testStripeArn}, lambdaVars(map[string]cty.Value{"stripe_secret_arn": cty.StringVal(testStripeArn)})},
		{[]string{"-var=compute=lambda", `-var=lambda={package_path="l.zip",timeout_seconds=90,batch_size=2000,maximum_batching_window_in_seconds=1}`},
			lambdaVars(map[string]cty.Value{"lambda": cty.ObjectVal(map[string]cty.Value{"package_path": cty.StringVal("l.zip"),
				"timeout_seconds": cty.NumberIntVal(90), "batch_size": cty.NumberIntVal(2000), "maximum_batching_window_in_seconds": cty.NumberIntVal(1)})})},
	} {
		cmd := exec.Command(bin, append(append([]string{"console", "-no-color"}, required...), cc.vars...)...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "TF_IN_AUTOMATION=1", "CHECKPOINT_DISABLE=1")
		cmd.Stdin = strings.NewReader("jsonencode({" + strings.Join(fields, ", ") + "})\n")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("terraform console %v: %v\n%s", cc.vars, err, out)
		}
		var tfJSON string
		for _, line := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(line, `"`) {
				if tfJSON, err = strconv.Unquote(line); err != nil {
					t.Fatalf("terraform console output %q: %v", line, err)
				}
			}
		}
		var got, want any
		if err := json.Unmarshal([]byte(tfJSON), &got); err != nil {
			t.Fatalf("terraform console %v printed %q: %v", cc.vars, out, err)
		}
		e := rootEvaluator(t, c, cc.set)
		mine := map[string]cty.Value{}
		for _, n := range names {
			mine[n] = e.locals[n]
		}
		b, err := ctyjson.Marshal(cty.ObjectVal(mine), cty.ObjectVal(mine).Type())
		if err != nil {
			t.Fatal(err)
		}
		_ = json.Unmarshal(b, &want)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%v: Terraform evaluates the compute locals to\n %v\nthis test's evaluator to\n %v", cc.vars, got, want)
		}
	}
}

func TestTerraformFmt(t *testing.T) {
	t.Parallel()
	bin, err := exec.LookPath("terraform")
	if err != nil {
		t.Skip("terraform is not on PATH; `terraform fmt -check -recursive deploy/terraform` not run")
	}
	out, err := exec.Command(bin, "fmt", "-check", "-recursive", "-diff", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("terraform fmt -check -recursive: %v\n%s", err, out)
	}
}
