package terraform_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"
)

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
		{"prometheus off", []string{"-var=prometheus={enabled=false}"}, "", false},
		{"prometheus into an existing workspace", []string{`-var=prometheus={workspace_id="ws-12345678-abcd-1234-abcd-123456789012",scrape_interval_seconds=15}`}, "", false},
		{"prometheus workspace not an id", []string{`-var=prometheus={workspace_id="my-workspace"}`}, "prometheus.workspace_id must be", false},
		{"prometheus scrape too often", []string{`-var=prometheus={scrape_interval_seconds=5}`}, "prometheus.scrape_interval_seconds must be", false},
		{"collector image latest", []string{`-var=prometheus={collector_image="public.ecr.aws/aws-observability/aws-otel-collector:latest"}`}, "prometheus.collector_image must name", false},
		{"collector image without tag", []string{`-var=prometheus={collector_image="public.ecr.aws/aws-observability/aws-otel-collector"}`}, "prometheus.collector_image must name", false},
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
