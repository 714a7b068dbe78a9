package compose_test

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"gopkg.in/yaml.v3"

	"github.com/cloudcommerce/cloudcommerce/internal/config"
)

const (
	baseFile = "docker-compose.yml"
	kumoFile = "docker-compose.kumo.yml"
	testFile = "test/compose/testdata/docker-compose.test.yml"
)

// sdkEnv are standard aws-sdk-go-v2 variables the compose files may set
// besides config.WorkerEnv: the SDK reads them itself.
var sdkEnv = map[string]bool{
	"AWS_MAX_ATTEMPTS": true, // retry budget of the one-shot provisioner
}

// loadProject loads compose files the way `docker compose` does, with no
// variables from the caller's environment (defaults apply).
func loadProject(t *testing.T, files ...string) *types.Project {
	t.Helper()
	root := repoRoot(t)
	paths := make([]string, len(files))
	for i, f := range files {
		paths[i] = filepath.Join(root, f)
	}
	opts, err := cli.NewProjectOptions(paths, cli.WithName("cloudcommerce"), cli.WithWorkingDirectory(root), cli.WithEnv(nil))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := opts.LoadProject(ctx)
	if err != nil {
		t.Fatalf("load %v: %v", files, err)
	}
	return p
}

func service(t *testing.T, p *types.Project, name string) types.ServiceConfig {
	t.Helper()
	s, err := p.GetService(name)
	if err != nil {
		t.Fatalf("compose: %v", err)
	}
	return s
}

var exactVersion = regexp.MustCompile(`^v?\d+\.\d+\.\d+$`)

// pinnedTag returns the image's tag if it names an exact version.
func pinnedTag(image string) (string, bool) {
	if strings.Contains(image, "@sha256:") {
		return "digest", true
	}
	i := strings.LastIndex(image, ":")
	if i < 0 || strings.Contains(image[i:], "/") {
		return "", false
	}
	tag := image[i+1:]
	return tag, exactVersion.MatchString(tag)
}

func env(s types.ServiceConfig, name string) string {
	if v, ok := s.Environment[name]; ok && v != nil {
		return *v
	}
	return ""
}

func mountAt(s types.ServiceConfig, target string) (types.ServiceVolumeConfig, bool) {
	for _, v := range s.Volumes {
		if v.Target == target {
			return v, true
		}
	}
	return types.ServiceVolumeConfig{}, false
}

func healthTest(s types.ServiceConfig) string {
	if s.HealthCheck == nil || s.HealthCheck.Disable {
		return ""
	}
	return strings.Join(s.HealthCheck.Test, " ")
}

func condition(s types.ServiceConfig, dep string) string {
	return s.DependsOn[dep].Condition
}

func nonRootUser(u string) bool {
	uid, _, _ := strings.Cut(u, ":")
	n, err := strconv.Atoi(uid)
	return err == nil && n != 0
}

// checkWorkerEnv fails on any AWS_*/CLOUDCOMMERCE_* variable the worker
// does not read, and on values the worker's own validation refuses.
func checkWorkerEnv(t *testing.T, file string, s types.ServiceConfig) {
	t.Helper()
	known := map[string]bool{}
	for _, e := range config.WorkerEnv {
		known[e.Name] = true
	}
	vars := map[string]string{}
	for k, v := range s.Environment {
		if v != nil {
			vars[k] = *v
		}
		if (strings.HasPrefix(k, "AWS_") || strings.HasPrefix(k, "CLOUDCOMMERCE_")) && !known[k] && !sdkEnv[k] {
			t.Errorf("%s: service %s sets %s, which the worker does not read (see `worker help`)", file, s.Name, k)
		}
	}
	if _, err := config.WorkerFromEnv(func(k string) string { return vars[k] }); err != nil {
		t.Errorf("%s: service %s: the worker refuses its environment: %v", file, s.Name, err)
	}
}

func TestComposeFile(t *testing.T) {
	t.Parallel()
	p := loadProject(t, baseFile)

	t.Run("localstack", func(t *testing.T) {
		ls := service(t, p, "localstack")
		if !strings.HasPrefix(ls.Image, "localstack/localstack:") {
			t.Fatalf("localstack image %q", ls.Image)
		}
		if tag, ok := pinnedTag(ls.Image); !ok {
			t.Errorf("localstack image %q is not pinned to an exact version (tag %q)", ls.Image, tag)
		}
		services := strings.Split(env(ls, "SERVICES"), ",")
		for _, want := range []string{"sqs", "dynamodb", "events", "sns"} {
			if !slices.Contains(services, want) {
				t.Errorf("LocalStack SERVICES=%q lacks %s, which the pipeline uses", env(ls, "SERVICES"), want)
			}
		}
		if healthTest(ls) == "" {
			t.Error("localstack has no healthcheck: provision could start before it answers")
		}
	})

	t.Run("images pinned", func(t *testing.T) {
		for _, s := range p.Services {
			if s.Build != nil {
				continue // built here
			}
			if tag, ok := pinnedTag(s.Image); !ok {
				t.Errorf("service %s: image %q is not pinned to an exact version (tag %q)", s.Name, s.Image, tag)
			}
		}
	})

	t.Run("provision", func(t *testing.T) {
		pr := service(t, p, "provision")
		if strings.Join(pr.Command, " ") != "provision" {
			t.Errorf("provision command %q, want [provision]", pr.Command)
		}
		if c := condition(pr, "localstack"); c != types.ServiceConditionHealthy {
			t.Errorf("provision depends on localstack with %q, want service_healthy", c)
		}
		if pr.Restart != "" && pr.Restart != "no" {
			t.Errorf("provision restart %q: a one-shot job must not restart", pr.Restart)
		}
		checkWorkerEnv(t, baseFile, pr)
	})

	t.Run("worker", func(t *testing.T) {
		w := service(t, p, "worker")
		if w.Build == nil {
			t.Error("worker has no build section: `docker compose up --build` could not build the image")
		} else if w.Build.Dockerfile != "Dockerfile" {
			t.Errorf("worker builds from %q, want the production Dockerfile", w.Build.Dockerfile)
		}
		if strings.Join(w.Command, " ") != "run" {
			t.Errorf("worker command %q, want [run]", w.Command)
		}
		if c := condition(w, "provision"); c != types.ServiceConditionCompletedSuccessfully {
			t.Errorf("worker depends on provision with %q, want service_completed_successfully", c)
		}
		if !w.ReadOnly {
			t.Error("worker root filesystem is writable; want read_only: true")
		}
		if !nonRootUser(w.User) {
			t.Errorf("worker user %q: want a numeric non-root uid", w.User)
		}
		if !slices.Contains(w.CapDrop, "ALL") {
			t.Errorf("worker cap_drop %v: want ALL", w.CapDrop)
		}
		if h := healthTest(w); h != "CMD /worker healthcheck" {
			t.Errorf("worker healthcheck %q, want CMD /worker healthcheck", h)
		}
		if w.GetScale() < 2 {
			t.Errorf("worker replicas = %d, want 2", w.GetScale())
		}
		checkWorkerEnv(t, baseFile, w)

		cfg, err := config.WorkerFromEnv(func(k string) string { return env(w, k) })
		if err != nil {
			t.Fatal(err)
		}
		if w.StopGracePeriod == nil || time.Duration(*w.StopGracePeriod) <= cfg.ShutdownTimeout {
			t.Errorf("stop_grace_period %v must exceed CLOUDCOMMERCE_SHUTDOWN_TIMEOUT %s, or Docker kills draining work", w.StopGracePeriod, cfg.ShutdownTimeout)
		}
		if w.StopSignal != "" && w.StopSignal != "SIGTERM" {
			t.Errorf("stop_signal %q: the worker drains on SIGTERM", w.StopSignal)
		}
		if cfg.IntakeAddr == "" {
			t.Fatal("worker has no CLOUDCOMMERCE_INTAKE_ADDR: the intake API is off")
		}
		_, intakePort, _ := net.SplitHostPort(cfg.IntakeAddr)
		var published bool
		for _, port := range w.Ports {
			if strconv.Itoa(int(port.Target)) == intakePort {
				published = true
			}
			if port.HostIP != "127.0.0.1" {
				t.Errorf("worker publishes %d on %q; want loopback only (127.0.0.1)", port.Target, port.HostIP)
			}
		}
		if !published {
			t.Errorf("worker does not publish its intake port %s", intakePort)
		}
		// The ops port on its own host ports, never on 9090 (Prometheus's).
		_, opsPort, _ := net.SplitHostPort(cfg.OpsAddr)
		var ops bool
		for _, port := range w.Ports {
			if strconv.Itoa(int(port.Target)) != opsPort {
				continue
			}
			ops = true
			if port.Published == "" || strings.HasPrefix(port.Published, "9090") {
				t.Errorf("worker publishes its ops port %s on host port %q; want a documented port other than Prometheus's 9090", opsPort, port.Published)
			}
		}
		if !ops {
			t.Errorf("worker does not publish its ops port %s: /metrics and /console do not open from the host", opsPort)
		}
	})

	t.Run("prometheus scrapes the workers", func(t *testing.T) {
		w := service(t, p, "worker")
		cfg, err := config.WorkerFromEnv(func(k string) string { return env(w, k) })
		if err != nil {
			t.Fatal(err)
		}
		_, opsPort, _ := net.SplitHostPort(cfg.OpsAddr)

		prom := service(t, p, "prometheus")
		conf, ok := mountAt(prom, "/etc/prometheus/prometheus.yml")
		if !ok || conf.Source != filepath.Join(repoRoot(t), "deploy/prometheus/prometheus.yml") {
			t.Fatalf("prometheus does not mount deploy/prometheus/prometheus.yml at /etc/prometheus/prometheus.yml (got %+v)", conf)
		}
		if rules, ok := mountAt(prom, "/etc/prometheus/rules"); !ok || rules.Source != filepath.Join(repoRoot(t), "deploy/prometheus/rules") {
			t.Errorf("prometheus does not mount deploy/prometheus/rules at /etc/prometheus/rules")
		}
		if healthTest(prom) == "" {
			t.Error("prometheus has no healthcheck; grafana waits on it")
		}
		pc := readPrometheus(t, conf.Source)
		if !slices.Contains(pc.RuleFiles, "/etc/prometheus/rules/*.yml") {
			t.Errorf("prometheus.yml rule_files %v: want /etc/prometheus/rules/*.yml", pc.RuleFiles)
		}
		if !pc.scrapes("worker", opsPort) {
			t.Errorf("prometheus.yml scrapes no worker:%s/metrics (the worker's CLOUDCOMMERCE_OPS_ADDR is %s)", opsPort, cfg.OpsAddr)
		}
		var toAM bool
		for _, am := range pc.Alerting.Alertmanagers {
			for _, sc := range am.StaticConfigs {
				toAM = toAM || slices.Contains(sc.Targets, "alertmanager:9093")
			}
		}
		if !toAM {
			t.Errorf("prometheus.yml sends alerts to no alertmanager:9093: %+v", pc.Alerting)
		}
	})

	t.Run("alertmanager", func(t *testing.T) {
		am := service(t, p, "alertmanager")
		if !strings.HasPrefix(am.Image, "prom/alertmanager:") {
			t.Errorf("alertmanager image %q", am.Image)
		}
		conf, ok := mountAt(am, "/etc/alertmanager/alertmanager.yml")
		if !ok || conf.Source != filepath.Join(repoRoot(t), "deploy/prometheus/alertmanager.yml") {
			t.Fatalf("alertmanager does not mount deploy/prometheus/alertmanager.yml at /etc/alertmanager/alertmanager.yml (got %+v)", conf)
		}
		if !slices.Contains(am.Command, "--config.file=/etc/alertmanager/alertmanager.yml") {
			t.Errorf("alertmanager command %v reads another config file", am.Command)
		}
		var published bool
		for _, port := range am.Ports {
			published = published || port.Target == 9093 && port.HostIP == "127.0.0.1"
		}
		if !published {
			t.Errorf("alertmanager does not publish 9093 on loopback: %+v", am.Ports)
		}
		for _, s := range []types.ServiceConfig{am, service(t, p, "prometheus")} {
			if !nonRootUser(s.User) || !s.ReadOnly {
				t.Errorf("%s: user %q read_only %v, want non-root on a read-only root filesystem", s.Name, s.User, s.ReadOnly)
			}
		}
		var ac struct {
			Route     struct{ Receiver string }
			Receivers []struct{ Name string }
		}
		readYAML(t, conf.Source, &ac)
		var found bool
		for _, r := range ac.Receivers {
			found = found || r.Name == ac.Route.Receiver
		}
		if ac.Route.Receiver == "" || !found {
			t.Errorf("alertmanager.yml: the route's receiver %q is not defined", ac.Route.Receiver)
		}
	})

	t.Run("grafana", func(t *testing.T) {
		g := service(t, p, "grafana")
		root := repoRoot(t)
		prov, ok := mountAt(g, "/etc/grafana/provisioning")
		if !ok || prov.Source != filepath.Join(root, "deploy/grafana/provisioning") {
			t.Fatalf("grafana does not mount deploy/grafana/provisioning at /etc/grafana/provisioning")
		}
		if c := condition(g, "prometheus"); c != types.ServiceConditionHealthy {
			t.Errorf("grafana depends on prometheus with %q, want service_healthy", c)
		}
		var ds struct {
			APIVersion  int `yaml:"apiVersion"`
			Datasources []struct {
				Name, UID, Type, URL, Access string
				IsDefault                    bool `yaml:"isDefault"`
			}
		}
		readYAML(t, filepath.Join(prov.Source, "datasources/prometheus.yml"), &ds)
		var found bool
		for _, d := range ds.Datasources {
			if d.Type == "prometheus" && d.URL == "http://prometheus:9090" && d.Access == "proxy" && d.IsDefault {
				found = true
			}
		}
		if ds.APIVersion != 1 || !found {
			t.Errorf("no default proxy datasource of type prometheus at http://prometheus:9090: %+v", ds)
		}
		if _, err := p.GetService("prometheus"); err != nil {
			t.Error("the datasource names a prometheus service that compose does not define")
		}

		var dash struct {
			APIVersion int `yaml:"apiVersion"`
			Providers  []struct {
				Type    string
				Options struct{ Path string }
			}
		}
		readYAML(t, filepath.Join(prov.Source, "dashboards/dashboards.yml"), &dash)
		if dash.APIVersion != 1 || len(dash.Providers) != 1 || dash.Providers[0].Type != "file" {
			t.Fatalf("dashboard provisioning: want one file provider, got %+v", dash)
		}
		path := dash.Providers[0].Options.Path
		m, ok := mountAt(g, path)
		if !ok || m.Source != filepath.Join(root, "deploy/grafana/dashboards") {
			t.Errorf("the dashboard provider reads %s, where compose mounts no deploy/grafana/dashboards", path)
		}

		// Every datasource a provisioned dashboard names by uid exists.
		uids := map[string]bool{"-- Grafana --": true}
		for _, d := range ds.Datasources {
			uids[d.UID] = true
		}
		files, _ := filepath.Glob(filepath.Join(root, "deploy/grafana/dashboards/*.json"))
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var doc any
			if err := json.Unmarshal(b, &doc); err != nil {
				t.Errorf("%s: %v", f, err)
				continue
			}
			for _, uid := range datasourceUIDs(doc) {
				if !uids[uid] && !strings.HasPrefix(uid, "$") {
					t.Errorf("%s uses datasource uid %q, which deploy/grafana/provisioning does not provision", filepath.Base(f), uid)
				}
			}
		}
	})
}

// TestComposeKumoOverride checks the emulator override: the same stack, the
// endpoint answered by the scratch emulator image, still in order.
func TestComposeKumoOverride(t *testing.T) {
	t.Parallel()
	p := loadProject(t, baseFile, kumoFile)
	em := service(t, p, "localstack")
	if em.Image != "cloudcommerce/emulator:local" || em.PullPolicy != types.PullPolicyNever {
		t.Errorf("override image %q pull_policy %q: want the locally built emulator, never pulled", em.Image, em.PullPolicy)
	}
	if !slices.Contains(em.Command, "--emulator-only") {
		t.Errorf("emulator command %v: want --emulator-only", em.Command)
	}
	if !em.ReadOnly || !nonRootUser(em.User) {
		t.Errorf("emulator read_only=%v user=%q: want a read-only root filesystem and a non-root user", em.ReadOnly, em.User)
	}
	if h := healthTest(em); h != "CMD /worker provision" {
		t.Errorf("emulator healthcheck %q: want a probe that works in a scratch image", h)
	}
	checkWorkerEnv(t, kumoFile, em)
	if c := condition(service(t, p, "provision"), "localstack"); c != types.ServiceConditionHealthy {
		t.Errorf("provision depends on the emulator with %q, want service_healthy", c)
	}
	for _, s := range []string{"provision", "worker"} {
		checkWorkerEnv(t, kumoFile, service(t, p, s))
	}

	// The Docker test's third file swaps in the locally built Prometheus and
	// Alertmanager, switches off what cannot be pulled or built (Grafana)
	// and shortens timings.
	tp := loadProject(t, baseFile, kumoFile, testFile)
	if _, ok := tp.Services["grafana"]; ok {
		t.Errorf("grafana is still enabled with %s; its image cannot be pulled here", testFile)
	}
	for name, image := range map[string]string{"prometheus": "cloudcommerce/prometheus:local", "alertmanager": "cloudcommerce/alertmanager:local"} {
		s := service(t, tp, name)
		if s.Image != image || s.PullPolicy != types.PullPolicyNever {
			t.Errorf("%s with %s: image %q pull_policy %q, want the locally built %s, never pulled", name, testFile, s.Image, s.PullPolicy, image)
		}
		if h := healthTest(s); !strings.HasPrefix(h, "CMD /bin/") {
			t.Errorf("%s with %s: healthcheck %q, want a probe the scratch image has", name, testFile, h)
		}
	}
	checkWorkerEnv(t, testFile, service(t, tp, "worker"))
}

// TestComposeV1Parses runs Debian's docker-compose 1.29 over the files, when
// it is installed: the files must stay readable by it.
func TestComposeV1Parses(t *testing.T) {
	t.Parallel()
	bin, err := exec.LookPath("docker-compose")
	if err != nil {
		t.Skip("docker-compose (v1) not installed")
	}
	out, err := exec.Command(bin, "version", "--short").Output()
	if err != nil || !strings.HasPrefix(strings.TrimSpace(string(out)), "1.") {
		t.Skipf("docker-compose is not v1 (%q, %v)", out, err)
	}
	for _, files := range [][]string{{baseFile}, {baseFile, kumoFile}, {baseFile, kumoFile, testFile}} {
		args := []string{"--project-directory", repoRoot(t)}
		for _, f := range files {
			args = append(args, "-f", filepath.Join(repoRoot(t), f))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		cmd := exec.CommandContext(ctx, bin, append(args, "config", "-q")...)
		cmd.Env = append(os.Environ(), "WORKER_IMAGE=", "EMULATOR_IMAGE=")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("docker-compose 1.29 rejects %v: %v\n%s", files, err, out)
		}
		cancel()
	}
}

// datasourceUIDs collects the uid of every "datasource" object in a
// dashboard.
func datasourceUIDs(v any) []string {
	var out []string
	switch x := v.(type) {
	case map[string]any:
		for k, c := range x {
			if ds, ok := c.(map[string]any); ok && k == "datasource" {
				if uid, ok := ds["uid"].(string); ok {
					out = append(out, uid)
				}
			}
			out = append(out, datasourceUIDs(c)...)
		}
	case []any:
		for _, c := range x {
			out = append(out, datasourceUIDs(c)...)
		}
	}
	return out
}

type prometheusConfig struct {
	RuleFiles []string `yaml:"rule_files"`
	Alerting  struct {
		Alertmanagers []struct {
			StaticConfigs []struct {
				Targets []string
			} `yaml:"static_configs"`
		}
	}
	ScrapeConfigs []struct {
		JobName       string `yaml:"job_name"`
		MetricsPath   string `yaml:"metrics_path"`
		StaticConfigs []struct {
			Targets []string
		} `yaml:"static_configs"`
		DNSSDConfigs []struct {
			Names []string
			Type  string
			Port  int
		} `yaml:"dns_sd_configs"`
	} `yaml:"scrape_configs"`
}

// scrapes reports whether a job scrapes host:port at /metrics, by static
// target or by DNS discovery of host's A records.
func (c prometheusConfig) scrapes(host, port string) bool {
	for _, sc := range c.ScrapeConfigs {
		if sc.MetricsPath != "" && sc.MetricsPath != "/metrics" {
			continue
		}
		for _, st := range sc.StaticConfigs {
			if slices.Contains(st.Targets, net.JoinHostPort(host, port)) {
				return true
			}
		}
		for _, d := range sc.DNSSDConfigs {
			if slices.Contains(d.Names, host) && strconv.Itoa(d.Port) == port && (d.Type == "" || d.Type == "A") {
				return true
			}
		}
	}
	return false
}

func readPrometheus(t *testing.T, path string) prometheusConfig {
	t.Helper()
	var c prometheusConfig
	readYAML(t, path, &c)
	return c
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
