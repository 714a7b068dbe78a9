package terraform_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/zclconf/go-cty/cty"
	"gopkg.in/yaml.v3"

	appconfig "github.com/cloudcommerce/cloudcommerce/internal/config"
)

// ---------------------------------------------------------------------------
// Prometheus on ECS: the ADOT collector sidecar, the managed workspace, its
// rules and alert manager
// ---------------------------------------------------------------------------

const (
	testRemoteWrite = "https://aps-workspaces.eu-west-1.amazonaws.com/workspaces/ws-12345678-abcd-1234-abcd-123456789012/api/v1/remote_write"
	testAlarmsTopic = "arn:aws:sns:eu-west-1:123456789012:cloudcommerce-alarms"
)

// workerServiceWithCollector evaluates modules/worker_service as the root
// calls it, with the workspace's remote-write URL (a resource attribute,
// unknown offline) replaced by a known one so the collector configuration
// renders.
func workerServiceWithCollector(t *testing.T, c *config, root *evaluator) *evaluator {
	t.Helper()
	ws := moduleEvaluator(t, c, root, "worker_service", "worker_service")
	mc := ws.vars["metrics_collector"]
	if mc.IsNull() {
		return ws
	}
	set := map[string]cty.Value{}
	for k, v := range ws.vars {
		set[k] = v
	}
	attrs := mc.AsValueMap()
	attrs["remote_write_url"] = cty.StringVal(testRemoteWrite)
	set["metrics_collector"] = cty.ObjectVal(attrs)
	return newEvaluator(t, c.mod(t, "worker_service"), set)
}

// containerNamed returns the container definition with the name, or NilVal.
func containerNamed(t *testing.T, ws *evaluator, name string) cty.Value {
	t.Helper()
	for it := ws.locals["container_definitions"].ElementIterator(); it.Next(); {
		_, ctr := it.Element()
		if str(t, ctr.GetAttr("name")) == name {
			return ctr
		}
	}
	return cty.NilVal
}

// The collector configuration, as the sidecar receives it, scrapes the port
// the worker serves its /metrics on, and writes to the workspace in use.
func TestPrometheusCollectorScrapesTheWorkersOpsPort(t *testing.T) {
	t.Parallel()
	c := cfg(t)
	root := rootEvaluator(t, c, nil)
	if !boolean(t, root.locals["prometheus"]) {
		t.Fatal("local.prometheus is false with the defaults; the collector must be on by default")
	}
	ws := workerServiceWithCollector(t, c, root)

	// The port the worker serves: its configuration from the task's
	// environment, as the worker itself reads it.
	wctr := containerNamed(t, ws, "worker")
	if wctr == cty.NilVal {
		t.Fatal("no worker container")
	}
	env, _ := containerEnv(t, wctr.GetAttr("environment"))
	wcfg, err := appconfig.WorkerFromEnv(func(k string) string {
		if k == "CLOUDCOMMERCE_TOPIC_ARN" {
			return "arn:aws:sns:eu-west-1:123456789012:cloudcommerce-topic"
		}
		return env[k]
	})
	if err != nil {
		t.Fatalf("the worker refuses the task's environment: %v", err)
	}
	_, port, err := net.SplitHostPort(wcfg.OpsAddr)
	if err != nil || port == "" {
		t.Fatalf("worker ops address %q: %v", wcfg.OpsAddr, err)
	}

	cctr := containerNamed(t, ws, "metrics-collector")
	if cctr == cty.NilVal {
		t.Fatal("no metrics-collector container with the defaults")
	}
	cenv, unknown := containerEnv(t, cctr.GetAttr("environment"))
	if len(unknown) > 0 {
		t.Fatalf("collector environment not known offline: %v", unknown)
	}
	raw, ok := cenv["AOT_CONFIG_CONTENT"]
	if !ok {
		t.Fatal("the collector gets its configuration in AOT_CONFIG_CONTENT; it is not set")
	}
	var conf struct {
		Extensions map[string]map[string]any `yaml:"extensions"`
		Receivers  struct {
			Prometheus struct {
				Config yaml.Node `yaml:"config"`
			} `yaml:"prometheus"`
		} `yaml:"receivers"`
		Processors map[string]any `yaml:"processors"`
		Exporters  struct {
			RemoteWrite struct {
				Endpoint string `yaml:"endpoint"`
				Auth     struct {
					Authenticator string `yaml:"authenticator"`
				} `yaml:"auth"`
			} `yaml:"prometheusremotewrite"`
		} `yaml:"exporters"`
		Service struct {
			Extensions []string `yaml:"extensions"`
			Pipelines  map[string]struct {
				Receivers  []string `yaml:"receivers"`
				Processors []string `yaml:"processors"`
				Exporters  []string `yaml:"exporters"`
			} `yaml:"pipelines"`
		} `yaml:"service"`
	}
	if err := yaml.Unmarshal([]byte(raw), &conf); err != nil {
		t.Fatalf("collector configuration is not YAML: %v\n%s", err, raw)
	}

	// The receiver's config is a Prometheus scrape configuration.
	var pc struct {
		Global struct {
			ScrapeInterval model.Duration `yaml:"scrape_interval"`
			ScrapeTimeout  model.Duration `yaml:"scrape_timeout"`
		} `yaml:"global"`
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			MetricsPath   string `yaml:"metrics_path"`
			Scheme        string `yaml:"scheme"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
			Rest map[string]any `yaml:",inline"`
		} `yaml:"scrape_configs"`
	}
	if err := conf.Receivers.Prometheus.Config.Decode(&pc); err != nil {
		t.Fatalf("receivers.prometheus.config: %v", err)
	}
	if len(pc.ScrapeConfigs) != 1 {
		t.Fatalf("want one scrape job, got %d", len(pc.ScrapeConfigs))
	}
	sc := pc.ScrapeConfigs[0]
	if len(sc.Rest) > 0 {
		t.Errorf("scrape job %s has settings beyond static targets: %v", sc.JobName, sc.Rest)
	}
	var targets []string
	for _, st := range sc.StaticConfigs {
		targets = append(targets, st.Targets...)
	}
	if want := []string{"127.0.0.1:" + port}; !slices.Equal(targets, want) {
		t.Errorf("collector scrapes %v; the worker serves /metrics on %s (CLOUDCOMMERCE_OPS_ADDR=%q), want %v", targets, wcfg.OpsAddr, env["CLOUDCOMMERCE_OPS_ADDR"], want)
	}
	if (sc.MetricsPath != "" && sc.MetricsPath != "/metrics") || (sc.Scheme != "" && sc.Scheme != "http") {
		t.Errorf("scrape %s://…%s, want http and /metrics", sc.Scheme, sc.MetricsPath)
	}
	iv, to := time.Duration(pc.Global.ScrapeInterval), time.Duration(pc.Global.ScrapeTimeout)
	if got := num(t, root.vars["prometheus"].GetAttr("scrape_interval_seconds")); iv != time.Duration(got)*time.Second {
		t.Errorf("scrape interval %s, want prometheus.scrape_interval_seconds = %ds", iv, got)
	}
	if to <= 0 || to > iv {
		t.Errorf("scrape timeout %s must be positive and at most the interval %s", to, iv)
	}

	// Remote write to the workspace, SigV4-signed for aps in the region.
	if conf.Exporters.RemoteWrite.Endpoint != testRemoteWrite {
		t.Errorf("prometheusremotewrite endpoint %q, want the workspace's %q", conf.Exporters.RemoteWrite.Endpoint, testRemoteWrite)
	}
	auth := conf.Exporters.RemoteWrite.Auth.Authenticator
	if auth == "" || conf.Extensions[auth] == nil || !slices.Contains(conf.Service.Extensions, auth) {
		t.Errorf("remote write authenticator %q must be a declared and enabled extension", auth)
	} else if conf.Extensions[auth]["service"] != "aps" || conf.Extensions[auth]["region"] != str(t, root.vars["region"]) {
		t.Errorf("%s extension %v: want service aps in region %s", auth, conf.Extensions[auth], str(t, root.vars["region"]))
	}
	m, ok := conf.Service.Pipelines["metrics"]
	if !ok || !slices.Equal(m.Receivers, []string{"prometheus"}) || !slices.Equal(m.Exporters, []string{"prometheusremotewrite"}) {
		t.Errorf("metrics pipeline %+v: want receivers [prometheus] and exporters [prometheusremotewrite]", m)
	}
	for _, p := range m.Processors {
		if _, ok := conf.Processors[p]; !ok {
			t.Errorf("metrics pipeline uses processor %q, which is not configured", p)
		}
	}

	// The workspace's remote-write path on the workspace endpoint the root
	// wires in (created or existing).
	call := c.root.block(t, "module", "worker_service")
	if !hasRef(attr(t, call, "metrics_collector").Expr, "local.prometheus_endpoint") {
		t.Error("module.worker_service metrics_collector.remote_write_url must come from local.prometheus_endpoint")
	}
	ep := c.root.locals()["prometheus_endpoint"]
	if ep == nil || !hasRef(ep.Expr, "aws_prometheus_workspace.this") || !hasRef(ep.Expr, "data.aws_prometheus_workspace.existing") {
		t.Error("local.prometheus_endpoint must be the created or the existing workspace's prometheus_endpoint")
	}

	// The sidecar is hardened like the worker, and never takes the task down.
	if boolean(t, cctr.GetAttr("essential")) || !boolean(t, cctr.GetAttr("readonlyRootFilesystem")) {
		t.Error("metrics-collector must be non-essential with a read-only root filesystem")
	}
	if u := str(t, cctr.GetAttr("user")); u == "" || u == "root" || strings.HasPrefix(u, "0") {
		t.Errorf("metrics-collector user %q must be a non-root UID", u)
	}
	if hc := cctr.GetAttr("healthCheck").GetAttr("command"); str(t, hc.Index(cty.NumberIntVal(1))) != "/healthcheck" || conf.Extensions["health_check"] == nil {
		t.Error("the collector's health check needs /healthcheck and the health_check extension")
	}
}

// prometheus.enabled = false, and compute = "lambda", leave no sidecar, no
// workspace resources and no aps grant.
func TestPrometheusCanBeTurnedOff(t *testing.T) {
	t.Parallel()
	c := cfg(t)
	off := cty.ObjectVal(map[string]cty.Value{"enabled": cty.False})
	for name, set := range map[string]map[string]cty.Value{
		"prometheus.enabled = false": {"prometheus": off},
		"compute = lambda":           lambdaVars(nil),
	} {
		root := rootEvaluator(t, c, set)
		if boolean(t, root.locals["prometheus"]) {
			t.Errorf("%s: local.prometheus is true", name)
		}
		for _, b := range []*hclsyntax.Block{
			c.root.block(t, "resource", "aws_prometheus_workspace", "this"),
			c.root.block(t, "data", "aws_prometheus_workspace", "existing"),
			c.root.block(t, "resource", "aws_prometheus_rule_group_namespace", "this"),
			c.root.block(t, "resource", "aws_prometheus_alert_manager_definition", "this"),
		} {
			if n := instances(t, root, b); n != 0 {
				t.Errorf("%s: %s has %d instances, want 0", name, blockAddr(b), n)
			}
		}
		if name == "compute = lambda" {
			continue
		}
		ws := moduleEvaluator(t, c, root, "worker_service", "worker_service")
		if containerNamed(t, ws, "metrics-collector") != cty.NilVal {
			t.Errorf("%s: the task still has a metrics-collector container", name)
		}
		if n := remoteWriteStatements(t, c, root); n != 0 {
			t.Errorf("%s: the task role still has %d aps:RemoteWrite statement(s)", name, n)
		}
	}
}

// Created or existing workspace: aps:RemoteWrite on that one workspace only;
// the rule files loaded from deploy/prometheus/rules as they are; the alert
// manager (created workspace only) routing to the alarms topic.
func TestPrometheusWorkspaceRulesAndAlertManager(t *testing.T) {
	t.Parallel()
	c := cfg(t)
	const existingID = "ws-12345678-abcd-1234-abcd-123456789012"
	files, err := filepath.Glob(filepath.Join("..", "prometheus", "rules", "*.yml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no rule files in deploy/prometheus/rules (%v)", err)
	}
	ws := c.root.block(t, "resource", "aws_prometheus_workspace", "this")
	existing := c.root.block(t, "data", "aws_prometheus_workspace", "existing")
	ns := c.root.block(t, "resource", "aws_prometheus_rule_group_namespace", "this")
	am := c.root.block(t, "resource", "aws_prometheus_alert_manager_definition", "this")

	for _, tc := range []struct {
		name                  string
		set                   map[string]cty.Value
		created, used, alerts int
	}{
		{"created workspace", nil, 1, 0, 1},
		{"existing workspace", map[string]cty.Value{"prometheus": cty.ObjectVal(map[string]cty.Value{"workspace_id": cty.StringVal(existingID)})}, 0, 1, 0},
	} {
		root := rootEvaluator(t, c, tc.set)
		if got := [3]int{instances(t, root, ws), instances(t, root, existing), instances(t, root, am)}; got != [3]int{tc.created, tc.used, tc.alerts} {
			t.Errorf("%s: workspace/existing/alert manager instances %v, want %v", tc.name, got, [3]int{tc.created, tc.used, tc.alerts})
		}

		// Exactly the rule files, each loaded as is.
		inst := root.forEach(ns)
		if got, want := sortedKeys(inst), baseNames(files); !slices.Equal(got, want) {
			t.Errorf("%s: rule-groups namespaces for %v, want one per rule file %v", tc.name, got, want)
		}
		for _, f := range files {
			k := filepath.Base(f)
			if _, ok := inst[k]; !ok {
				continue
			}
			data := str(t, root.must(attr(t, ns, "data").Expr, each(k, inst[k])))
			want, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if data != string(want) {
				t.Errorf("%s: namespace %s data is not the content of %s", tc.name, k, f)
			}
			// What the workspace is given parses as a Prometheus rule file.
			if _, errs := rulefmt.Parse([]byte(data), false, model.LegacyValidation, parser.NewParser(parser.Options{}), slog.New(slog.NewTextHandler(io.Discard, nil))); len(errs) > 0 {
				t.Errorf("%s: %s: %v", tc.name, f, errs)
			}
		}
		if !hasRef(attr(t, ns, "workspace_id").Expr, "local.prometheus_workspace_id") {
			t.Error("rule-groups namespaces must go to local.prometheus_workspace_id, the workspace in use")
		}
	}
	for _, l := range []string{"prometheus_workspace_id", "prometheus_workspace_arn"} {
		a := c.root.locals()[l]
		if a == nil || !hasRef(a.Expr, "aws_prometheus_workspace.this") || !hasRef(a.Expr, "data.aws_prometheus_workspace.existing") {
			t.Errorf("local.%s must be the created or the existing workspace's", l)
		}
	}

	// aps:RemoteWrite on the workspace in use and nothing else.
	for _, s := range dynamicStatements(c.root.block(t, "data", "aws_iam_policy_document", "worker_task")) {
		acts := literalList(t, attr(t, s, "actions").Expr)
		if !slices.Contains(acts, "aps:RemoteWrite") {
			continue
		}
		res := attr(t, s, "resources")
		if !slices.Equal(acts, []string{"aps:RemoteWrite"}) || !slices.Equal(refs(res.Expr), []string{"local.prometheus_workspace_arn"}) {
			t.Errorf("the RemoteWrite statement grants %v on %v; want aps:RemoteWrite on local.prometheus_workspace_arn only", acts, refs(res.Expr))
		}
	}
	root := rootEvaluator(t, c, nil)
	if n := remoteWriteStatements(t, c, root); n != 1 {
		t.Errorf("with the defaults the task role has %d aps:RemoteWrite statements, want 1", n)
	}

	// The alert manager definition routes every alert to the alarms topic.
	def := attr(t, am, "definition")
	if !hasRef(def.Expr, "aws_sns_topic.alarms.arn") {
		t.Error("the alert manager definition must be given aws_sns_topic.alarms.arn")
	}
	rendered, err := root.funcs["templatefile"].Call([]cty.Value{
		cty.StringVal("alertmanager.yaml.tftpl"),
		cty.ObjectVal(map[string]cty.Value{"topic_arn": cty.StringVal(testAlarmsTopic), "region": cty.StringVal("eu-west-1")}),
	})
	if err != nil {
		t.Fatalf("render alertmanager.yaml.tftpl: %v", err)
	}
	var outer struct {
		Config string `yaml:"alertmanager_config"`
	}
	if err := yaml.Unmarshal([]byte(rendered.AsString()), &outer); err != nil || outer.Config == "" {
		t.Fatalf("alert manager definition needs an alertmanager_config string: %v\n%s", err, rendered.AsString())
	}
	var amc struct {
		Route struct {
			Receiver string `yaml:"receiver"`
			Routes   []any  `yaml:"routes"`
		} `yaml:"route"`
		Receivers []struct {
			Name       string `yaml:"name"`
			SNSConfigs []struct {
				TopicARN string `yaml:"topic_arn"`
				SigV4    struct {
					Region string `yaml:"region"`
				} `yaml:"sigv4"`
			} `yaml:"sns_configs"`
		} `yaml:"receivers"`
	}
	if err := yaml.Unmarshal([]byte(outer.Config), &amc); err != nil {
		t.Fatalf("alertmanager_config: %v", err)
	}
	// Alertmanager's own checker accepts it (the workspace runs
	// Alertmanager's configuration format).
	if amtool, err := exec.LookPath("amtool"); err == nil {
		f := filepath.Join(t.TempDir(), "alertmanager.yml")
		if err := os.WriteFile(f, []byte(outer.Config), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(amtool, "check-config", f).CombinedOutput(); err != nil {
			t.Errorf("amtool check-config refuses the alert manager definition: %v\n%s", err, out)
		}
	} else {
		t.Log("amtool is not on PATH; alertmanager_config checked by parsing only")
	}
	if len(amc.Route.Routes) != 0 {
		t.Errorf("alertmanager_config has sub-routes %v; every alert goes to the alarms topic", amc.Route.Routes)
	}
	found := false
	for _, r := range amc.Receivers {
		if r.Name != amc.Route.Receiver {
			continue
		}
		found = true
		if len(r.SNSConfigs) != 1 || r.SNSConfigs[0].TopicARN != testAlarmsTopic || r.SNSConfigs[0].SigV4.Region != "eu-west-1" {
			t.Errorf("receiver %s: %+v; want one SNS config to the alarms topic, signed in the region", r.Name, r.SNSConfigs)
		}
	}
	if !found {
		t.Errorf("route receiver %q is not defined", amc.Route.Receiver)
	}

	// The alarms topic lets the workspace publish, for this workspace only.
	var ok bool
	for _, s := range dynamicStatements(c.root.block(t, "data", "aws_iam_policy_document", "alarms_topic")) {
		p := child(t, s, "principals")
		if !strings.Contains(string(attr(t, p, "identifiers").Expr.Range().SliceBytes(c.root.files[attr(t, p, "identifiers").SrcRange.Filename].Bytes)), "aps.amazonaws.com") {
			continue
		}
		for _, cond := range children(s, "condition") {
			if v, _ := literalString(attr(t, cond, "variable").Expr); v == "aws:SourceArn" && hasRef(attr(t, cond, "values").Expr, "local.prometheus_workspace_arn") {
				ok = true
			}
		}
	}
	if !ok {
		t.Error("the alarms topic policy must let aps.amazonaws.com publish with aws:SourceArn = the workspace")
	}
}

// remoteWriteStatements counts the task role's aps:RemoteWrite statements
// under the evaluator's settings.
func remoteWriteStatements(t *testing.T, c *config, root *evaluator) int {
	t.Helper()
	n := 0
	for _, d := range c.root.block(t, "data", "aws_iam_policy_document", "worker_task").Body.Blocks {
		if d.Type != "dynamic" || !slices.Contains(literalList(t, attr(t, child(t, d, "content"), "actions").Expr), "aps:RemoteWrite") {
			continue
		}
		n += root.must(attr(t, d, "for_each").Expr, nil).LengthInt()
	}
	return n
}

// dynamicStatements returns the content blocks of a policy document's
// dynamic "statement" blocks.
func dynamicStatements(doc *hclsyntax.Block) []*hclsyntax.Block {
	var out []*hclsyntax.Block
	for _, d := range doc.Body.Blocks {
		if d.Type == "dynamic" && len(d.Labels) == 1 && d.Labels[0] == "statement" {
			out = append(out, children(d, "content")...)
		}
	}
	return out
}

func baseNames(paths []string) []string {
	var out []string
	for _, p := range paths {
		out = append(out, filepath.Base(p))
	}
	sort.Strings(out)
	return out
}

// Terraform itself renders the two templates exactly as this package's
// evaluator does, so the checks above read what a task and the workspace
// get. `terraform console` needs no provider for templatefile.
func TestPrometheusTemplatesRenderWithTerraform(t *testing.T) {
	t.Parallel()
	bin, err := exec.LookPath("terraform")
	if err != nil {
		t.Skip("terraform is not on PATH; templates rendered only by the test's evaluator")
	}
	dir := t.TempDir()
	templatefile := functions()["templatefile"]
	for _, tc := range []struct {
		file, vars string
		args       map[string]cty.Value
	}{
		{filepath.Join("modules", "worker_service", "collector.yaml.tftpl"),
			`{ops_port = 9090, region = "eu-west-1", remote_write_url = "` + testRemoteWrite + `", scrape_interval_seconds = 30, scrape_timeout_seconds = 10}`,
			map[string]cty.Value{"ops_port": cty.NumberIntVal(9090), "region": cty.StringVal("eu-west-1"), "remote_write_url": cty.StringVal(testRemoteWrite),
				"scrape_interval_seconds": cty.NumberIntVal(30), "scrape_timeout_seconds": cty.NumberIntVal(10)}},
		{"alertmanager.yaml.tftpl", `{topic_arn = "` + testAlarmsTopic + `", region = "eu-west-1"}`,
			map[string]cty.Value{"topic_arn": cty.StringVal(testAlarmsTopic), "region": cty.StringVal("eu-west-1")}},
	} {
		abs, err := filepath.Abs(tc.file)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "console", "-no-color")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "TF_IN_AUTOMATION=1", "CHECKPOINT_DISABLE=1")
		cmd.Stdin = strings.NewReader(`jsonencode(templatefile("` + abs + `", ` + tc.vars + "))\n")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("terraform console: %v\n%s", err, out)
		}
		var tfJSON, rendered string
		for _, line := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(line, `"`) {
				if tfJSON, err = strconv.Unquote(line); err != nil {
					t.Fatalf("terraform console output %q: %v", line, err)
				}
			}
		}
		if err := json.Unmarshal([]byte(tfJSON), &rendered); err != nil || rendered == "" {
			t.Fatalf("terraform console printed %q: %v", out, err)
		}
		mine, err := templatefile.Call([]cty.Value{cty.StringVal(tc.file), cty.ObjectVal(tc.args)})
		if err != nil {
			t.Fatal(err)
		}
		if mine.AsString() != rendered {
			t.Errorf("%s: Terraform renders\n%s\nthe test's evaluator\n%s", tc.file, rendered, mine.AsString())
		}
	}
}

// A copy of the collector image in the module's repository (subnets without
// a NAT gateway) survives worker releases: an adot-* rule comes before the
// catch-all rule, and ECR never lets a later rule expire an image an earlier
// rule selects.
func TestCollectorImageCopySurvivesWorkerReleases(t *testing.T) {
	t.Parallel()
	c := cfg(t)
	root := rootEvaluator(t, c, nil)
	lp := c.root.block(t, "resource", "aws_ecr_lifecycle_policy", "worker")
	var policy struct {
		Rules []struct {
			RulePriority int `json:"rulePriority"`
			Selection    struct {
				TagStatus     string   `json:"tagStatus"`
				TagPrefixList []string `json:"tagPrefixList"`
				CountNumber   int      `json:"countNumber"`
			} `json:"selection"`
		} `json:"rules"`
	}
	if err := json.Unmarshal([]byte(str(t, root.must(attr(t, lp, "policy").Expr, nil))), &policy); err != nil {
		t.Fatal(err)
	}
	adot, anyRule := -1, -1
	for _, r := range policy.Rules {
		switch {
		case r.Selection.TagStatus == "tagged" && slices.Equal(r.Selection.TagPrefixList, []string{"adot-"}) && r.Selection.CountNumber >= 1:
			adot = r.RulePriority
		case r.Selection.TagStatus == "any":
			anyRule = r.RulePriority
		}
	}
	if adot < 0 || anyRule < 0 || adot >= anyRule {
		t.Errorf("lifecycle rules %+v: want an adot-* rule with a lower priority number than the tagStatus any rule", policy.Rules)
	}
	for _, r := range policy.Rules {
		if r.RulePriority > anyRule {
			t.Errorf("rule %d comes after the tagStatus any rule, which ECR requires to be last", r.RulePriority)
		}
	}
}
