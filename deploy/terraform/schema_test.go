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
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// ---------------------------------------------------------------------------
// The AWS provider's schema: every aws_* block as `terraform validate` would
// check it
// ---------------------------------------------------------------------------

// The schema is the published `terraform providers schema -json` output of
// the pinned hashicorp/aws release, cut to the types used here
// (testdata/README.md says where it comes from and how to rebuild it).
const schemaFile = "testdata/aws-provider-schema.json"

type schemaAttribute struct {
	Required   bool `json:"required"`
	Optional   bool `json:"optional"`
	Computed   bool `json:"computed"`
	Deprecated bool `json:"deprecated"`
}

type schemaBlockType struct {
	NestingMode string       `json:"nesting_mode"` // single, group, list, set, map
	Block       *schemaBlock `json:"block"`
	MinItems    int          `json:"min_items"`
	MaxItems    int          `json:"max_items"`
}

type schemaBlock struct {
	Attributes map[string]*schemaAttribute `json:"attributes"`
	BlockTypes map[string]*schemaBlockType `json:"block_types"`
}

type providerSchema struct {
	Version     string
	Resources   map[string]struct{ Block *schemaBlock } `json:"resource_schemas"`
	DataSources map[string]struct{ Block *schemaBlock } `json:"data_source_schemas"`
}

var loadSchema = sync.OnceValues(func() (*providerSchema, error) {
	raw, err := os.ReadFile(schemaFile)
	if err != nil {
		return nil, err
	}
	var doc struct {
		ProviderVersion string                     `json:"provider_version"`
		ProviderSchemas map[string]*providerSchema `json:"provider_schemas"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("decode %s: %w", schemaFile, err)
	}
	s := doc.ProviderSchemas["registry.terraform.io/hashicorp/aws"]
	if s == nil || len(s.Resources) == 0 || len(s.DataSources) == 0 {
		return nil, fmt.Errorf("%s holds no hashicorp/aws resource or data source schemas", schemaFile)
	}
	s.Version = doc.ProviderVersion
	return s, nil
})

func awsSchema(t *testing.T) *providerSchema {
	t.Helper()
	s, err := loadSchema()
	if err != nil {
		t.Fatalf("load provider schema: %v", err)
	}
	return s
}

// Meta-arguments and meta-blocks Terraform itself handles in resource and
// data blocks (not part of the provider schema).
var (
	metaArguments = []string{"count", "for_each", "depends_on", "provider"}
	metaBlocks    = []string{"lifecycle", "provisioner", "connection"}
)

// checkBlock checks one resource or data block against the provider schema
// and returns every problem, each naming the file, line and address.
func (s *providerSchema) checkBlock(b *hclsyntax.Block) []string {
	if len(b.Labels) != 2 || !strings.HasPrefix(b.Labels[0], "aws_") {
		return nil
	}
	var (
		sb   *schemaBlock
		addr = b.Labels[0] + "." + b.Labels[1]
	)
	switch b.Type {
	case "resource":
		if r, ok := s.Resources[b.Labels[0]]; ok {
			sb = r.Block
		}
	case "data":
		addr = "data." + addr
		if r, ok := s.DataSources[b.Labels[0]]; ok {
			sb = r.Block
		}
	default:
		return nil
	}
	if sb == nil {
		return []string{fmt.Sprintf("%s: %s: unknown %s type %q in the provider schema", pos(b.TypeRange), addr, b.Type, b.Labels[0])}
	}
	var problems []string
	checkBody(addr, b.Body, sb, true, &problems)
	return problems
}

func pos(r hcl.Range) string {
	return fmt.Sprintf("%s:%d", filepath.ToSlash(r.Filename), r.Start.Line)
}

// checkBody checks the arguments and nested blocks of one body. top says
// whether it is the resource's own body (where meta-arguments are allowed).
func checkBody(path string, body *hclsyntax.Body, sb *schemaBlock, top bool, problems *[]string) {
	add := func(r hcl.Range, format string, args ...any) {
		*problems = append(*problems, pos(r)+": "+path+": "+fmt.Sprintf(format, args...))
	}
	for _, name := range sortedKeys(body.Attributes) {
		a := body.Attributes[name]
		if top && slices.Contains(metaArguments, name) {
			continue
		}
		as, ok := sb.Attributes[name]
		switch {
		case !ok && sb.BlockTypes[name] != nil:
			add(a.NameRange, "%q is a block, not an argument: write %s { ... }", name, name)
		case !ok:
			add(a.NameRange, "unknown argument %q", name)
		case as.Computed && !as.Optional && !as.Required:
			add(a.NameRange, "argument %q is read-only (computed by the provider) and cannot be set", name)
		case as.Deprecated:
			add(a.NameRange, "argument %q is deprecated in this provider version", name)
		}
	}
	for _, name := range sortedKeys(sb.Attributes) {
		if sb.Attributes[name].Required && body.Attributes[name] == nil {
			add(body.SrcRange, "missing required argument %q", name)
		}
	}

	static := map[string]int{}   // block type -> static blocks
	dynamic := map[string]bool{} // block type -> has a dynamic block
	for _, c := range body.Blocks {
		name, content := c.Type, c.Body
		if top && slices.Contains(metaBlocks, name) {
			continue
		}
		if name == "dynamic" {
			if len(c.Labels) != 1 {
				add(c.TypeRange, "a dynamic block needs one label, the block type")
				continue
			}
			name = c.Labels[0]
			if c.Body.Attributes["for_each"] == nil {
				add(c.TypeRange, "dynamic %q has no for_each", name)
			}
			for an, a := range c.Body.Attributes {
				if an != "for_each" && an != "iterator" && an != "labels" {
					add(a.NameRange, "dynamic %q: unknown argument %q (for_each, iterator, labels, content)", name, an)
				}
			}
			content = nil
			for _, cc := range c.Body.Blocks {
				if cc.Type == "content" && content == nil {
					content = cc.Body
				} else {
					add(cc.TypeRange, "dynamic %q: unexpected block %q (one content block)", name, cc.Type)
				}
			}
			if content == nil {
				add(c.TypeRange, "dynamic %q has no content block", name)
			}
			dynamic[name] = true
		} else {
			static[name]++
		}
		bt, ok := sb.BlockTypes[name]
		switch {
		case !ok && sb.Attributes[name] != nil:
			add(c.TypeRange, "%q is an argument, not a block: write %s = ...", name, name)
			continue
		case !ok:
			add(c.TypeRange, "unknown block type %q", name)
			continue
		}
		if content != nil {
			checkBody(path+"."+name, content, bt.Block, false, problems)
		}
	}
	for _, name := range sortedKeys(sb.BlockTypes) {
		bt := sb.BlockTypes[name]
		n := static[name]
		max := bt.MaxItems
		if bt.NestingMode == "single" || bt.NestingMode == "group" {
			max = 1
		}
		if bt.MinItems > 0 && n < bt.MinItems && !dynamic[name] {
			add(body.SrcRange, "missing required block %q (at least %d)", name, bt.MinItems)
		}
		if max > 0 && n > max {
			add(body.SrcRange, "too many %q blocks: %d, at most %d", name, n, max)
		}
	}
}

// Every aws_* resource and data block in the module, its local modules and
// the example roots is checked against the provider schema: unknown
// arguments and blocks, read-only arguments set, missing required arguments
// and blocks, nested and dynamic blocks, and block counts.
func TestEveryAWSBlockMatchesTheProviderSchema(t *testing.T) {
	t.Parallel()
	c := cfg(t)
	s := awsSchema(t)
	checked := map[string]int{}
	mods := append(slices.Clone(c.all), c.examples...)
	for _, m := range mods {
		for _, b := range m.blocks {
			if (b.Type != "resource" && b.Type != "data") || !strings.HasPrefix(b.Labels[0], "aws_") {
				continue
			}
			checked[b.Type+" "+b.Labels[0]]++
			for _, p := range s.checkBlock(b) {
				t.Error(p)
			}
		}
	}
	// The schema file holds exactly the types in use: none missing (that
	// would have failed above) and none left over from removed resources.
	for typ := range s.Resources {
		if checked["resource "+typ] == 0 {
			t.Errorf("%s holds resource type %s, which no .tf file uses; rerun testdata/extract-schema.sh", schemaFile, typ)
		}
	}
	for typ := range s.DataSources {
		if checked["data "+typ] == 0 {
			t.Errorf("%s holds data source type %s, which no .tf file uses; rerun testdata/extract-schema.sh", schemaFile, typ)
		}
	}
	if len(checked) < 30 {
		t.Errorf("checked only %d resource and data types; the walk missed files: %v", len(checked), checked)
	}
}

// The check itself: a misspelt or misplaced argument in a real block must be
// reported, with the message a reader can act on.
func TestProviderSchemaCheckCatchesMistakes(t *testing.T) {
	t.Parallel()
	s := awsSchema(t)
	read := func(name string) []byte {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	queueFile, serviceFile, iamFile, mainFile := filepath.Join("modules", "queue", "main.tf"), filepath.Join("modules", "worker_service", "main.tf"), "iam.tf", "main.tf"
	scalingFile := filepath.Join("modules", "worker_service", "autoscaling.tf")
	queue, service, iam, main, scaling := read(queueFile), read(serviceFile), read(iamFile), read(mainFile), read(scalingFile)
	cases := []struct {
		name      string
		file      string
		src       []byte
		old, new_ string
		want      string
	}{
		{"misspelt argument", queueFile, queue, "visibility_timeout_seconds", "visibility_timout_seconds",
			`aws_sqs_queue.dlq: unknown argument "visibility_timout_seconds"`},
		{"read-only argument set", queueFile, queue, "  name                              = var.name\n", "  name                              = var.name\n  arn                               = \"arn:aws:sqs:eu-west-1:123456789012:x\"\n",
			`aws_sqs_queue.this: argument "arn" is read-only`},
		{"missing required argument", queueFile, queue, "  queue_url = aws_sqs_queue.this.id\n  policy", "  policy",
			`aws_sqs_queue_policy.this: missing required argument "queue_url"`},
		{"misspelt nested block", serviceFile, service, "deployment_circuit_breaker {", "deployment_circuit_braker {",
			`aws_ecs_service.this: unknown block type "deployment_circuit_braker"`},
		{"misspelt argument in a nested block", serviceFile, service, "assign_public_ip", "assign_public_address",
			`aws_ecs_service.this.network_configuration: unknown argument "assign_public_address"`},
		{"too many blocks", serviceFile, service, "deployment_circuit_breaker {", "deployment_circuit_breaker {\n    enable   = true\n    rollback = true\n  }\n  deployment_circuit_breaker {",
			`too many "deployment_circuit_breaker" blocks: 2, at most 1`},
		{"block written as an argument", serviceFile, service, "network_configuration {", "network_configuration = {",
			`"network_configuration" is a block, not an argument`},
		{"misspelt argument in a dynamic block's content", iamFile, iam, `      sid       = "QueryTableIndexes"`, `      sidd      = "QueryTableIndexes"`,
			`data.aws_iam_policy_document.worker_task.statement: unknown argument "sidd"`},
		{"deprecated argument", mainFile, main, "  name           = \"${var.prefix}-${each.key}\"\n", "  name           = \"${var.prefix}-${each.key}\"\n  is_enabled     = true\n",
			`aws_cloudwatch_event_rule.this: argument "is_enabled" is deprecated`},
		{"missing required nested block", scalingFile, scaling, "            metric {", "            metrics_x {",
			`metric_stat: missing required block "metric" (at least 1)`},
		{"dynamic block of an unknown type", iamFile, iam, `dynamic "statement" {`, `dynamic "statements" {`,
			`data.aws_iam_policy_document.worker_task: unknown block type "statements"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(string(tc.src), tc.old) {
				t.Fatalf("the source no longer contains %q; update the case", tc.old)
			}
			problems := func(src string) []string {
				f, diags := hclsyntax.ParseConfig([]byte(src), tc.file, hcl.InitialPos)
				if diags.HasErrors() {
					t.Fatalf("parse: %s", diags.Error())
				}
				var out []string
				for _, b := range f.Body.(*hclsyntax.Body).Blocks {
					out = append(out, s.checkBlock(b)...)
				}
				return out
			}
			// The unmodified file is clean, so what is reported below is the edit's.
			if p := problems(string(tc.src)); len(p) > 0 {
				t.Fatalf("the unmodified file already has problems: %q", p)
			}
			got := problems(strings.Replace(string(tc.src), tc.old, tc.new_, 1))
			if !slices.ContainsFunc(got, func(p string) bool { return strings.Contains(p, tc.want) }) {
				t.Fatalf("want a problem containing %q, got %q", tc.want, got)
			}
			t.Logf("reported: %q", got)
		})
	}
}

// Without the caller's default_tags (a child module has no provider
// configuration), every resource whose schema has tags must set them.
func TestEveryTaggableResourceIsTagged(t *testing.T) {
	t.Parallel()
	c := cfg(t)
	s := awsSchema(t)
	n := 0
	for _, m := range c.all {
		for _, b := range m.blocksOf("resource") {
			r, ok := s.Resources[b.Labels[0]]
			if !ok || r.Block.Attributes["tags"] == nil {
				continue
			}
			n++
			a, ok := b.Body.Attributes["tags"]
			if !ok {
				t.Errorf("%s: %s.%s has no tags", m.dir, b.Labels[0], b.Labels[1])
				continue
			}
			if !hasRef(a.Expr, "local.tags") && !hasRef(a.Expr, "var.tags") {
				t.Errorf("%s: %s.%s tags must come from local.tags (root) or var.tags (local modules)", m.dir, b.Labels[0], b.Labels[1])
			}
		}
	}
	for _, b := range c.root.blocksOf("module") {
		if a, ok := b.Body.Attributes["tags"]; !ok || !hasRef(a.Expr, "local.tags") {
			t.Errorf("module.%s must be passed tags = local.tags", b.Labels[0])
		}
	}
	if n < 10 {
		t.Errorf("found only %d taggable resources; the walk is broken", n)
	}
}

// The schema is of the release the configuration pins: every module, local
// module and example root pins hashicorp/aws to "~> <major>.<minor>" of the
// schema's provider_version, so the pin's lowest release is the schema's.
func TestProviderPinMatchesTheSchema(t *testing.T) {
	t.Parallel()
	c := cfg(t)
	s := awsSchema(t)
	parts := strings.Split(s.Version, ".")
	if len(parts) != 3 {
		t.Fatalf("%s: provider_version %q is not major.minor.patch", schemaFile, s.Version)
	}
	want := "~> " + parts[0] + "." + parts[1]
	if parts[2] != "0" {
		want = "~> " + s.Version
	}
	mods := append(slices.Clone(c.all), c.examples...)
	for _, m := range mods {
		for _, tf := range m.blocksOf("terraform") {
			for _, rp := range children(tf, "required_providers") {
				v, diags := rp.Body.Attributes["aws"].Expr.Value(nil)
				if diags.HasErrors() {
					t.Fatalf("%s: required_providers.aws: %s", m.dir, diags.Error())
				}
				if got := v.GetAttr("version").AsString(); got != want {
					t.Errorf("%s: hashicorp/aws pinned %q; the schema in %s is %s, so want %q (or rebuild the schema for the new pin)", m.dir, got, schemaFile, s.Version, want)
				}
			}
		}
	}
}
