package terraform_test

// The module planned by Terraform with the real hashicorp/aws provider,
// offline: no credentials, no AWS call. The plan runs inside `terraform
// test` because only a test can give resources that do not exist yet
// (queues, tables, the bus, the topic, the workspace) the ARNs they will have:
// override_resource with override_during = plan. Everything else, the
// aws_iam_policy_document statements included, is Terraform's own
// evaluation; the plan comes back as the JSON plan representation
// (`terraform test -json -verbose`, the format of `terraform show -json`).

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const (
	planRegion  = "eu-west-1"
	planAccount = "123456789012"
	planPrefix  = "cloudcommerce"
)

// planRun is one `run` block: a name and its variables, as HCL.
// terraformPlans returns, per run, its resource changes and (under the
// address "output.<name>") its output changes.
type planRun struct {
	name string
	vars string
}

// resourceChange is one entry of a JSON plan's resource_changes.
type resourceChange struct {
	Address       string          `json:"address"`
	ModuleAddress string          `json:"module_address"`
	Type          string          `json:"type"`
	Name          string          `json:"name"`
	Index         json.RawMessage `json:"index"`
	Change        struct {
		After        json.RawMessage `json:"after"`
		AfterUnknown json.RawMessage `json:"after_unknown"`
	} `json:"change"`
}

// arnSymbols returns the ARN each topology resource is planned with, and the
// symbolic name observedCall uses for it.
func arnSymbols(c *config) (overrides map[string]string, symbols map[string]string) {
	arn := func(service, resource string) string {
		return fmt.Sprintf("arn:aws:%s:%s:%s:%s", service, planRegion, planAccount, resource)
	}
	overrides, symbols = map[string]string{}, map[string]string{}
	add := func(target, a, symbol string) {
		overrides[target] = a
		symbols[a] = symbol
	}
	for _, q := range c.topo.Queues {
		add(fmt.Sprintf("module.stage_queue[%q].aws_sqs_queue.this", q.Stage), arn("sqs", planPrefix+"-"+q.Name), "queue/"+q.Stage)
		add(fmt.Sprintf("module.stage_queue[%q].aws_sqs_queue.dlq", q.Stage), arn("sqs", planPrefix+"-"+q.DLQ.Name), "dlq/"+q.Stage)
	}
	for _, r := range c.topo.Rules {
		add(fmt.Sprintf("aws_sqs_queue.rule_target_dlq[%q]", r.Name), arn("sqs", planPrefix+"-"+r.TargetDLQ), "ruledlq/"+r.Name)
	}
	for _, tb := range c.topo.Tables {
		a := arn("dynamodb", "table/"+planPrefix+"-"+tb.Name)
		add(fmt.Sprintf("aws_dynamodb_table.this[%q]", tb.Role), a, "table/"+tb.Role)
		for _, g := range tb.GSIs {
			symbols[a+"/index/"+g.Name] = "table/" + tb.Role + "/index/" + g.Name
		}
	}
	add("aws_cloudwatch_event_bus.orders", arn("events", "event-bus/"+planPrefix), "bus")
	add("aws_sns_topic.notifications", arn("sns", planPrefix+"-"+c.topo.Topic.Name), "topic")
	add("aws_sns_topic.alarms", arn("sns", planPrefix+"-alarms"), "alarms")
	add("aws_prometheus_workspace.this", arn("aps", "workspace/ws-00000000-0000-0000-0000-000000000000"), "workspace")
	return overrides, symbols
}

// planTestFile is the generated test file: the real provider, offline, and
// an override for every resource whose ARN a policy names.
func planTestFile(c *config, runs []planRun) string {
	var b strings.Builder
	fmt.Fprintf(&b, `provider "aws" {
  region                      = %q
  access_key                  = "offline"
  secret_key                  = "offline"
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
}

variables {
  region             = %q
  prefix             = %q
  vpc_id             = "vpc-0123456789abcdef0"
  private_subnet_ids = ["subnet-0123456789abcdef0"]
  image_tag          = "v1.2.3"
}
`, planRegion, planRegion, planPrefix)
	overrides, _ := arnSymbols(c)
	for _, target := range sortedKeys(overrides) {
		extra := ""
		if target == "aws_prometheus_workspace.this" {
			extra = `, id = "ws-00000000-0000-0000-0000-000000000000", prometheus_endpoint = "https://aps-workspaces.` + planRegion + `.amazonaws.com/workspaces/ws-00000000-0000-0000-0000-000000000000/"`
		}
		fmt.Fprintf(&b, "\noverride_resource {\n  target          = %s\n  override_during = plan\n  values          = { arn = %q%s }\n}\n", target, overrides[target], extra)
	}
	// GetCallerIdentity is the one data source that calls AWS.
	identities := []string{"data.aws_caller_identity.current", "module.worker_service[0].data.aws_caller_identity.current"}
	for _, q := range c.topo.Queues {
		identities = append(identities, fmt.Sprintf("module.lambda_stage[%q].data.aws_caller_identity.current", q.Stage))
	}
	for _, target := range identities {
		fmt.Fprintf(&b, "\noverride_data {\n  target = %s\n  values = { account_id = %q }\n}\n", target, planAccount)
	}
	for _, r := range runs {
		fmt.Fprintf(&b, "\nrun %q {\n  command = plan\n\n  variables {\n%s\n  }\n}\n", r.name, r.vars)
	}
	return b.String()
}

// terraformPlans plans the module once per run and returns each run's
// resource changes. It skips when terraform or the provider is unavailable:
// the provider comes from CLOUDCOMMERCE_TF_PROVIDER_MIRROR, else
// /opt/tf-plugins, else the registry (as check.sh does).
func terraformPlans(t *testing.T, c *config, runs []planRun) map[string][]resourceChange {
	t.Helper()
	tf, err := exec.LookPath("terraform")
	if err != nil {
		t.Skip("terraform is not on PATH: the IAM comparison needs it to plan the module")
	}
	work := t.TempDir()
	dir := filepath.Join(work, "deploy", "terraform")
	copyTree(t, ".", dir, func(rel string) bool {
		return rel == filepath.Join("tests", "testdata", "lambda.zip") ||
			!strings.Contains(rel, string(filepath.Separator)) && (strings.HasSuffix(rel, ".tf") || strings.HasSuffix(rel, ".tftpl")) ||
			strings.HasPrefix(rel, "modules"+string(filepath.Separator))
	})
	copyTree(t, "..", filepath.Join(work, "deploy"), func(rel string) bool {
		return rel == "topology.json" || strings.HasPrefix(rel, filepath.Join("prometheus", "rules")+string(filepath.Separator))
	})
	if err := os.MkdirAll(filepath.Join(dir, "tests", "plan"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tests", "plan", "plan.tftest.hcl"), []byte(planTestFile(c, runs)), 0o644); err != nil {
		t.Fatal(err)
	}

	env := append(os.Environ(), "TF_IN_AUTOMATION=1", "CHECKPOINT_DISABLE=1")
	mirror := os.Getenv("CLOUDCOMMERCE_TF_PROVIDER_MIRROR")
	if mirror == "" {
		mirror = "/opt/tf-plugins"
	}
	if _, err := os.Stat(filepath.Join(mirror, "registry.terraform.io", "hashicorp", "aws")); err == nil {
		rc := filepath.Join(work, "terraformrc")
		cli := fmt.Sprintf("provider_installation {\n  filesystem_mirror {\n    path    = %q\n    include = [\"registry.terraform.io/hashicorp/aws\"]\n  }\n  direct {\n    exclude = [\"registry.terraform.io/hashicorp/aws\"]\n  }\n}\n", mirror)
		if err := os.WriteFile(rc, []byte(cli), 0o644); err != nil {
			t.Fatal(err)
		}
		env = append(env, "TF_CLI_CONFIG_FILE="+rc)
	}
	run := func(args ...string) []byte {
		cmd := exec.Command(tf, args...)
		cmd.Dir, cmd.Env = dir, env
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil && args[0] == "init" {
			t.Skipf("terraform init could not install hashicorp/aws (no provider mirror at %s, registry unreachable?): %v\n%s%s", mirror, err, out, stderr.Bytes())
		}
		return out
	}
	run("init", "-backend=false", "-input=false", "-no-color")
	out := run("test", "-test-directory=tests/plan", "-json", "-verbose", "-no-color")

	plans := map[string][]resourceChange{}
	var failures []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64<<20), 64<<20)
	for sc.Scan() {
		var msg struct {
			Type     string `json:"type"`
			Run      string `json:"@testrun"`
			Message  string `json:"@message"`
			TestPlan *struct {
				ResourceChanges []resourceChange `json:"resource_changes"`
				OutputChanges   map[string]struct {
					After json.RawMessage `json:"after"`
				} `json:"output_changes"`
			} `json:"test_plan"`
			Diagnostic *struct {
				Summary string `json:"summary"`
				Detail  string `json:"detail"`
			} `json:"diagnostic"`
		}
		if err := json.Unmarshal(sc.Bytes(), &msg); err != nil {
			t.Fatalf("terraform test -json: %v: %s", err, sc.Bytes())
		}
		switch {
		case msg.TestPlan != nil:
			plans[msg.Run] = msg.TestPlan.ResourceChanges
			for name, o := range msg.TestPlan.OutputChanges {
				rc := resourceChange{Address: "output." + name}
				rc.Change.After = o.After
				plans[msg.Run] = append(plans[msg.Run], rc)
			}
		case msg.Diagnostic != nil:
			failures = append(failures, msg.Run+": "+msg.Diagnostic.Summary+": "+msg.Diagnostic.Detail)
		}
	}
	if len(failures) > 0 {
		t.Fatalf("terraform test reported:\n%s", strings.Join(failures, "\n"))
	}
	for _, r := range runs {
		if plans[r.name] == nil {
			t.Fatalf("terraform test printed no plan for run %q:\n%s", r.name, out)
		}
	}
	return plans
}

// copyTree copies the files under from that keep(relative path) accepts.
func copyTree(t *testing.T, from, to string, keep func(rel string) bool) {
	t.Helper()
	err := filepath.WalkDir(from, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, path)
		if d.IsDir() {
			if d.Name() == ".terraform" {
				return filepath.SkipDir
			}
			return nil
		}
		if !keep(rel) {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(to, rel)), 0o755); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// policyStatement is one statement of an aws_iam_policy_document, as the
// plan has it evaluated.
type policyStatement struct {
	Sid          string   `json:"sid"`
	Effect       string   `json:"effect"`
	Actions      []string `json:"actions"`
	NotActions   []string `json:"not_actions"`
	Resources    []string `json:"resources"`
	NotResources []string `json:"not_resources"`
}

// policyGrants returns action -> resources of the root module's policy
// document type.name[key], every resource by its symbolic name when it has
// one; it fails when Terraform could not evaluate a statement.
func policyGrants(t *testing.T, c *config, changes []resourceChange, name, key string) map[string][]string {
	t.Helper()
	_, symbols := arnSymbols(c)
	for _, rc := range changes {
		if rc.ModuleAddress != "" || rc.Type != "aws_iam_policy_document" || rc.Name != name {
			continue
		}
		if k := strings.Trim(string(rc.Index), `"`); key != "" && k != key {
			continue
		}
		var after struct {
			Statement []policyStatement `json:"statement"`
		}
		if err := json.Unmarshal(rc.Change.After, &after); err != nil {
			t.Fatalf("%s: %v", rc.Address, err)
		}
		var unknown struct {
			Statement []map[string]any `json:"statement"`
		}
		_ = json.Unmarshal(rc.Change.AfterUnknown, &unknown)
		if strings.Contains(fmt.Sprint(unknown.Statement), "true") {
			t.Fatalf("%s: some statement values are unknown at plan time (a resource without an override in arnSymbols?): %s", rc.Address, rc.Change.AfterUnknown)
		}
		out := map[string][]string{}
		for _, s := range after.Statement {
			if s.Effect != "Allow" || len(s.NotActions) > 0 || len(s.NotResources) > 0 {
				t.Fatalf("%s: statement %q: only Allow with actions and resources is expected", rc.Address, s.Sid)
			}
			for _, a := range s.Actions {
				for _, r := range s.Resources {
					if sym, ok := symbols[r]; ok {
						r = sym
					}
					out[a] = append(out[a], r)
				}
			}
		}
		return out
	}
	t.Fatalf("the plan has no data.aws_iam_policy_document.%s[%q]", name, key)
	return nil
}
