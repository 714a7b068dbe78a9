// Package terraform_test keeps in Go what Terraform does not check itself.
// The module's behaviour is tested by Terraform: tests/*.tftest.hcl (and
// examples/complete/tests), run by check.sh with `terraform test`. Here:
//
//   - iam_test.go: every AWS call the shipped binaries were seen making is
//     granted by the role they run under, reading the role policies from
//     the JSON plan Terraform makes with the real aws provider, offline
//     (plan_test.go); env_test.go holds the environments of that plan to
//     what the binaries read;
//   - schema_test.go: every aws_* block against the provider's published
//     schema, for machines where the provider cannot be installed (parsed
//     with hashicorp/hcl; nothing is evaluated).
package terraform_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// topology is the part of deploy/topology.json the Go tests name resources by.
type topology struct {
	Queues []struct {
		Stage string `json:"stage"`
		Name  string `json:"name"`
		DLQ   struct {
			Name string `json:"name"`
		} `json:"dlq"`
	} `json:"queues"`
	Rules []struct {
		Name      string `json:"name"`
		TargetDLQ string `json:"target_dlq"`
	} `json:"rules"`
	Tables []struct {
		Role string `json:"role"`
		Name string `json:"name"`
		GSIs []struct {
			Name string `json:"name"`
		} `json:"global_secondary_indexes"`
	} `json:"tables"`
	Topic struct {
		Name string `json:"name"`
	} `json:"topic"`
}

// module is one Terraform module directory, parsed.
type module struct {
	dir    string // relative to deploy/terraform: "." or "modules/<name>"
	blocks []*hclsyntax.Block
}

type config struct {
	root *module
	all  []*module // the module and its local modules
	// examples are the root configurations under examples/ (not in all).
	examples []*module
	topo     topology
}

var loadConfig = sync.OnceValues(func() (*config, error) {
	c := &config{}
	raw, err := os.ReadFile(filepath.Join("..", "topology.json"))
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(raw, &c.topo); err != nil {
		return nil, fmt.Errorf("decode topology.json: %w", err)
	}
	parser := hclparse.NewParser()
	load := func(dir string) (*module, error) {
		m := &module{dir: dir}
		names, err := filepath.Glob(filepath.Join(dir, "*.tf"))
		if err != nil || len(names) == 0 {
			return nil, fmt.Errorf("no .tf files in %s (%v)", dir, err)
		}
		for _, name := range names {
			f, diags := parser.ParseHCLFile(name)
			if diags.HasErrors() {
				return nil, fmt.Errorf("parse %s: %s", name, diags.Error())
			}
			m.blocks = append(m.blocks, f.Body.(*hclsyntax.Body).Blocks...)
		}
		return m, nil
	}
	if c.root, err = load("."); err != nil {
		return nil, err
	}
	c.all = append(c.all, c.root)
	for _, pattern := range []string{"modules", "examples"} {
		dirs, err := filepath.Glob(filepath.Join(pattern, "*"))
		if err != nil {
			return nil, err
		}
		for _, d := range dirs {
			m, err := load(d)
			if err != nil {
				return nil, err
			}
			if pattern == "modules" {
				c.all = append(c.all, m)
			} else {
				c.examples = append(c.examples, m)
			}
		}
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

func (m *module) blocksOf(typ string, labels ...string) []*hclsyntax.Block {
	var out []*hclsyntax.Block
	for _, b := range m.blocks {
		if b.Type == typ && len(b.Labels) >= len(labels) && strings.Join(b.Labels[:len(labels)], ".") == strings.Join(labels, ".") {
			out = append(out, b)
		}
	}
	return out
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

// hasRef reports whether expr refers to prefix ("local.tags", "var.tags").
func hasRef(expr hclsyntax.Expression, prefix string) bool {
	for _, tr := range hclsyntax.Variables(expr) {
		parts := []string{tr.RootName()}
		for _, step := range tr[1:] {
			if a, ok := step.(hcl.TraverseAttr); ok {
				parts = append(parts, a.Name)
			}
		}
		if r := strings.Join(parts, "."); r == prefix || strings.HasPrefix(r, prefix+".") {
			return true
		}
	}
	return false
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
