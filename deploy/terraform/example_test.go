package terraform_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// ---------------------------------------------------------------------------
// A child module with a runnable example root
// ---------------------------------------------------------------------------

// The module and its local modules configure no provider and no backend, so
// a caller can use deploy/terraform as a child module (terraform-aws-modules
// conventions); the example root holds both.
func TestModuleIsCallableAsAChildModule(t *testing.T) {
	t.Parallel()
	c := cfg(t)
	for _, m := range c.all {
		for _, p := range m.blocksOf("provider") {
			t.Errorf("%s: provider %q block in a child module; configure providers in the caller (examples/)", m.dir, p.Labels[0])
		}
		for _, tf := range m.blocksOf("terraform") {
			for _, b := range tf.Body.Blocks {
				if b.Type == "backend" || b.Type == "cloud" {
					t.Errorf("%s: terraform.%s in a child module; the caller chooses where state lives", m.dir, b.Type)
				}
			}
		}
	}

	// The region comes from the caller's provider; var.region (ARNs, the
	// worker's AWS_REGION) is checked against it before anything is made.
	bus := c.root.block(t, "resource", "aws_cloudwatch_event_bus", "orders")
	checked := false
	for _, lc := range children(bus, "lifecycle") {
		for _, pc := range children(lc, "precondition") {
			cond := attr(t, pc, "condition").Expr
			checked = checked || (hasRef(cond, "data.aws_region.current.name") && hasRef(cond, "var.region"))
		}
	}
	if !checked {
		t.Error("aws_cloudwatch_event_bus.orders needs a precondition comparing var.region with data.aws_region.current.name")
	}
}

// hclFile parses a file of plain HCL attributes (a .tfvars or backend .hcl).
func hclFile(t *testing.T, name string) map[string]*hclsyntax.Attribute {
	t.Helper()
	src, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	f, diags := hclsyntax.ParseConfig(src, name, hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatalf("parse %s: %s", name, diags.Error())
	}
	return f.Body.(*hclsyntax.Body).Attributes
}

func TestExampleRootConfiguresProviderBackendAndModule(t *testing.T) {
	t.Parallel()
	c := cfg(t)
	ex, ok := c.examples["complete"]
	if !ok {
		t.Fatal("examples/complete is missing; the README's deployment steps apply it")
	}

	// The provider, in the example's region.
	p := ex.block(t, "provider", "aws")
	if !hasRef(attr(t, p, "region").Expr, "var.region") {
		t.Error("examples/complete: provider aws must take region from var.region")
	}

	// Remote state in S3, encrypted, with state locking.
	tf := ex.blocksOf("terraform")
	var backend *hclsyntax.Block
	for _, b := range tf {
		for _, cb := range b.Body.Blocks {
			if cb.Type == "backend" {
				backend = cb
			}
		}
	}
	if backend == nil || len(backend.Labels) != 1 || backend.Labels[0] != "s3" {
		t.Fatal("examples/complete: want a terraform { backend \"s3\" { ... } } block")
	}
	for _, name := range []string{"use_lockfile", "encrypt"} {
		if v, diags := attr(t, backend, name).Expr.Value(nil); diags.HasErrors() || !v.True() {
			t.Errorf("examples/complete: backend s3 must set %s = true", name)
		}
	}
	if k, _ := literalString(attr(t, backend, "key").Expr); k == "" {
		t.Error("examples/complete: backend s3 needs a state key")
	}
	// The deployment-specific part of the backend comes from backend.hcl.
	be := hclFile(t, filepath.Join(ex.dir, "backend.hcl.example"))
	for _, name := range []string{"bucket", "region"} {
		if _, ok := be[name]; !ok {
			t.Errorf("examples/complete/backend.hcl.example must set %s", name)
		}
	}
	// use_lockfile needs Terraform 1.10.
	var rv string
	for _, b := range tf {
		if a, ok := b.Body.Attributes["required_version"]; ok {
			rv, _ = literalString(a.Expr)
		}
	}
	if m := regexp.MustCompile(`>=\s*1\.(\d+)`).FindStringSubmatch(rv); m == nil || len(m[1]) < 2 || m[1] < "10" {
		t.Errorf("examples/complete: required_version %q must be at least 1.10 (the S3 backend's use_lockfile)", rv)
	}

	// The module call: source ../.., every argument a variable of the
	// module, every variable without a default (and those ECS needs) passed.
	call := ex.block(t, "module", "cloudcommerce")
	if src, _ := literalString(attr(t, call, "source").Expr); src != "../.." {
		t.Errorf("examples/complete: module source %q, want \"../..\"", src)
	}
	declared := map[string]*hclsyntax.Block{}
	for _, v := range c.root.blocksOf("variable") {
		declared[v.Labels[0]] = v
	}
	for name := range call.Body.Attributes {
		if name != "source" && declared[name] == nil {
			t.Errorf("examples/complete: module argument %s is not a variable of the module", name)
		}
	}
	for name, v := range declared {
		_, hasDefault := v.Body.Attributes["default"]
		if (!hasDefault || slices.Contains([]string{"vpc_id", "private_subnet_ids", "image_tag"}, name)) && call.Body.Attributes[name] == nil {
			t.Errorf("examples/complete: module call does not pass %s, which the module needs", name)
		}
	}

	// Variables typed and described, outputs described, as in the module.
	for _, v := range ex.blocksOf("variable") {
		if _, ok := v.Body.Attributes["type"]; !ok {
			t.Errorf("examples/complete: variable %s needs a type", v.Labels[0])
		}
		if d, _ := literalString(attr(t, v, "description").Expr); len(d) < 10 {
			t.Errorf("examples/complete: variable %s needs a description", v.Labels[0])
		}
	}
	for _, o := range ex.blocksOf("output") {
		if d, _ := literalString(attr(t, o, "description").Expr); len(d) < 10 {
			t.Errorf("examples/complete: output %s needs a description", o.Labels[0])
		}
	}

	// terraform.tfvars.example sets exactly variables of the example, and
	// every one without a default.
	vars := map[string]bool{}
	for _, v := range ex.blocksOf("variable") {
		_, hasDefault := v.Body.Attributes["default"]
		vars[v.Labels[0]] = hasDefault
	}
	set := hclFile(t, filepath.Join(ex.dir, "terraform.tfvars.example"))
	for name := range set {
		if _, ok := vars[name]; !ok {
			t.Errorf("terraform.tfvars.example sets %s, which examples/complete does not declare", name)
		}
	}
	for name, hasDefault := range vars {
		if !hasDefault && set[name] == nil {
			t.Errorf("terraform.tfvars.example does not set %s, which has no default", name)
		}
	}
	if len(set) == 0 {
		t.Error("terraform.tfvars.example sets nothing")
	}
}

// With the hashicorp/aws provider at hand (a filesystem mirror named by
// CLOUDCOMMERCE_TF_PROVIDER_MIRROR, since the registry cannot be reached
// here), `terraform validate` checks the example root and so the whole
// module as Terraform and the provider see them.
func TestExampleRootValidatesWithTheProvider(t *testing.T) {
	t.Parallel()
	mirror := os.Getenv("CLOUDCOMMERCE_TF_PROVIDER_MIRROR")
	bin, err := exec.LookPath("terraform")
	if mirror == "" || err != nil {
		t.Skip("set CLOUDCOMMERCE_TF_PROVIDER_MIRROR to a provider mirror directory (with terraform on PATH) to run terraform validate")
	}
	// A copy of deploy/ (the module reads ../topology.json), so no
	// .terraform directory lands in the tree.
	root := t.TempDir()
	copyTree(t, "..", filepath.Join(root, "deploy"))
	rc := filepath.Join(root, "terraformrc")
	if err := os.WriteFile(rc, []byte(`provider_installation {
  filesystem_mirror {
    path    = "`+mirror+`"
    include = ["registry.terraform.io/hashicorp/aws"]
  }
  direct {
    exclude = ["registry.terraform.io/hashicorp/aws"]
  }
}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "deploy", "terraform", "examples", "complete")
	run := func(args ...string) {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "TF_CLI_CONFIG_FILE="+rc, "TF_IN_AUTOMATION=1", "CHECKPOINT_DISABLE=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("terraform %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("init", "-backend=false", "-input=false", "-no-color")
	run("validate", "-no-color")
}

// copyTree copies the .tf, .json and .yml files under src to dst (no state,
// no .terraform directories).
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == ".terraform" {
			return filepath.SkipDir
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		switch filepath.Ext(path) {
		case ".tf", ".json", ".yml", ".yaml", ".tftpl":
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("copy %s: %v", src, err)
	}
}
