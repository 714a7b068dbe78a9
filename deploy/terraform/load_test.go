// Package terraform_test checks deploy/terraform without AWS: Terraform's AWS
// provider cannot be downloaded from the registry here and there is no
// account, so `terraform plan` cannot run. Every aws_* block is checked
// against the provider's published schema (schema_test.go). The .tf files are
// parsed with hashicorp/hcl and, where the answer does not depend on AWS,
// their expressions are evaluated against deploy/topology.json and the
// variables' defaults (a small evaluator: variables, locals, each,
// dynamic-block iterators and the handful of functions the locals use).
// Anything that refers to a resource attribute evaluates to unknown.
//
// The tests are split by concern: load (this file: parsing and expression
// helpers, shared by all) and eval (the evaluator); topology, wiring
// (EventBridge, SQS, DynamoDB), iam, ecs, alarms, lambda, prometheus, schema,
// example (the child module and its example root) and conventions.
//
// Each test names the wiring it protects; deleting a redrive policy, a rule's
// dead_letter_config, a table's point-in-time recovery or widening an IAM
// statement makes one of them fail.
package terraform_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"
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
	all     []*module          // the module and its local modules
	// examples are the root configurations under examples/ that call the
	// module (by directory name); they are not part of all.
	examples map[string]*module
	topo     topology
	rawTopo  cty.Value
}

var loadConfig = sync.OnceValues(func() (*config, error) {
	c := &config{modules: map[string]*module{}, examples: map[string]*module{}}
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
	if dirs, err = filepath.Glob(filepath.Join("examples", "*")); err != nil {
		return nil, err
	}
	for _, d := range dirs {
		m, err := load(d)
		if err != nil {
			return nil, err
		}
		c.examples[filepath.Base(d)] = m
	}
	if len(c.examples) == 0 {
		return nil, fmt.Errorf("no example root configuration under examples/")
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
