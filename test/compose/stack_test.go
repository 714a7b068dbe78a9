package compose_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"debug/buildinfo"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/cloudcommerce/cloudcommerce/internal/config"
	"github.com/cloudcommerce/cloudcommerce/internal/dev/testkit"
	"github.com/cloudcommerce/cloudcommerce/internal/intake"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
	"github.com/cloudcommerce/cloudcommerce/internal/topology"
)

// The Docker test runs the compose stack (docker-compose.yml with the kumo
// override and testdata/docker-compose.test.yml) on the machine's Docker
// engine with the real worker image, then meets it with the faults ECS
// would: a killed task, a task cut off the network for longer than the
// visibility timeout, a rolling restart. It talks only to 127.0.0.1 ports
// the stack publishes.

const (
	// partitionMargin is how much longer than the stage queues' visibility
	// timeout a worker is cut off, so the messages it holds come back and
	// the other worker takes them.
	partitionMargin = 5 * time.Second
	loadOrders      = 200
	// Stock of the test's SKUs: two plentiful, one scarce enough that some
	// orders are rejected.
	plenty = 100000
	scarce = 30
)

func TestComposeStackOnDocker(t *testing.T) {
	if os.Getenv("CLOUDCOMMERCE_DOCKER_TESTS") != "1" {
		t.Skip("needs a Docker engine: set CLOUDCOMMERCE_DOCKER_TESTS=1 where one runs to run the compose stack on it (test/compose/run.sh does)")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Minute)
	defer cancel()
	topo, err := topology.Load()
	if err != nil {
		t.Fatal(err)
	}
	var visibility time.Duration
	for _, q := range topo.Queues {
		visibility = max(visibility, time.Duration(q.VisibilityTimeoutSeconds)*time.Second)
	}
	partition := visibility + partitionMargin
	// A worker asks each receive for its receive visibility (at most the
	// queue's timeout): what a killed or cut-off worker held comes back
	// after that, not after the queue's own timeout.
	workerCfg := config.Worker{Visibility: visibility}
	workerCfg.Fill()
	hidden := workerCfg.ReceiveVisibility
	s := startStack(ctx, t)

	// provision ran first, alone, and succeeded.
	prov := s.containers(ctx, "provision")
	if len(prov) != 1 {
		t.Fatalf("want one provision container, got %d", len(prov))
	}
	pi := s.inspect(ctx, prov[0])
	if pi.State.Status != "exited" || pi.State.ExitCode != 0 {
		t.Fatalf("provision is %s with exit code %d, want exited 0; logs:\n%s", pi.State.Status, pi.State.ExitCode, s.logs(ctx, prov[0]))
	}
	if out := s.logs(ctx, prov[0]); !strings.Contains(out, "topic: arn:aws:sns:") {
		t.Errorf("provision printed no topic ARN:\n%s", out)
	}

	// Two healthy workers, each started after provision finished, non-root
	// on a read-only root filesystem.
	workers := s.containers(ctx, "worker")
	if len(workers) != 2 {
		t.Fatalf("want 2 worker replicas, got %d", len(workers))
	}
	s.waitHealthy(ctx, 2*time.Minute, workers...)
	for _, id := range workers {
		wi := s.inspect(ctx, id)
		if !wi.State.StartedAt.After(pi.State.FinishedAt) {
			t.Errorf("worker %s started at %s, before provision finished at %s", wi.Name, wi.State.StartedAt, pi.State.FinishedAt)
		}
		if !nonRootUser(wi.Config.User) {
			t.Errorf("worker %s runs as %q, want a non-root uid", wi.Name, wi.Config.User)
		}
		if !wi.HostConfig.ReadonlyRootfs {
			t.Errorf("worker %s: root filesystem is writable", wi.Name)
		}
	}
	for _, id := range s.containers(ctx, "localstack") {
		if ei := s.inspect(ctx, id); !nonRootUser(ei.Config.User) || !ei.HostConfig.ReadonlyRootfs {
			t.Errorf("emulator %s: user %q read-only %v", ei.Name, ei.Config.User, ei.HostConfig.ReadonlyRootfs)
		}
	}
	s.network = s.inspect(ctx, workers[0]).network(t)
	// Prometheus and Alertmanager (the images built from Debian's binaries)
	// run and answer their own health probes.
	observability := append(s.containers(ctx, "prometheus"), s.containers(ctx, "alertmanager")...)
	if len(observability) != 2 {
		t.Fatalf("want one prometheus and one alertmanager container, got %d", len(observability))
	}
	s.waitHealthy(ctx, time.Minute, observability...)

	// Orders placed through the intake reach SHIPPED.
	for _, u := range s.intake {
		s.waitAnswers(ctx, u)
	}
	stock := map[string]int64{"CT-A-" + s.runID: plenty, "CT-B-" + s.runID: plenty, "CT-S-" + s.runID: scarce}
	for sku, n := range stock {
		s.setStock(ctx, sku, n)
	}
	skus := slices.Sorted(func(yield func(string) bool) {
		for k := range stock {
			if !yield(k) {
				return
			}
		}
	})
	book := &orderBook{byID: map[string]pipeline.OrderRequest{}}
	smoke := s.placeShippable(ctx, book, skus, "smoke", 5)
	s.waitStatus(ctx, 90*time.Second, smoke, pipeline.StatusShipped)
	t.Logf("smoke: %d orders SHIPPED", len(smoke))

	// Prometheus scrapes both replicas and answers a query over what they
	// did; a message in a DLQ will fire an alert that reaches Alertmanager
	// (checked at the end, after its `for`).
	s.waitWorkerTargets(ctx, len(workers))
	q := `sum(cloudcommerce_stage_messages_handled_total{stage="shipping", outcome="ok"})`
	var shipped float64
	s.waitFor(ctx, time.Minute, "Prometheus answers "+q+" with the smoke orders", func() bool {
		v, err := s.query(ctx, q)
		shipped = v
		return err == nil && v >= float64(len(smoke))
	})
	t.Logf("prometheus: %s = %g", q, shipped)
	ready := `count(cloudcommerce_worker_ready == 1)`
	s.waitFor(ctx, time.Minute, "Prometheus sees every replica ready", func() bool {
		v, err := s.query(ctx, ready)
		return err == nil && v == float64(len(workers))
	})
	s.deadLetter(ctx, pipeline.StageShipping)

	// Fleet faults during load.
	a, b := workers[0], workers[1]
	load := s.produce(ctx, book, skus, loadOrders, 250*time.Millisecond)
	s.waitFor(ctx, time.Minute, "20 orders placed", func() bool { return load.placed() >= 20 })

	start := time.Now()
	held := s.waitBusy(ctx, a)
	s.docker(ctx, "kill", a)
	ai := s.inspect(ctx, a)
	if ai.State.Running || ai.State.ExitCode != 137 {
		t.Fatalf("after docker kill, %s running=%v exit=%d", ai.Name, ai.State.Running, ai.State.ExitCode)
	}
	t.Logf("fault: killed %s holding %.0f messages, %d orders placed", ai.Name, held, load.placed())
	// ECS replaces a task that died; so does this test.
	s.docker(ctx, "start", a)
	s.waitHealthy(ctx, time.Minute, a)
	t.Logf("fault: %s replaced in %s", ai.Name, time.Since(start).Round(time.Millisecond))

	bi := s.inspect(ctx, b)
	held = s.waitBusy(ctx, b)
	s.docker(ctx, "network", "disconnect", s.network, b)
	t.Logf("fault: %s cut off the network for %s holding %.0f messages, %d orders placed", bi.Name, partition, held, load.placed())
	select {
	case <-time.After(partition):
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}
	s.docker(ctx, "network", "connect", "--alias", "worker", s.network, b)
	s.waitHealthy(ctx, time.Minute, b)
	t.Logf("fault: %s reconnected", bi.Name)

	if err := load.wait(ctx, 3*time.Minute); err != nil {
		t.Errorf("placing the load: %v", err)
	}
	t.Logf("load: %d orders placed", load.placed())

	// Rolling restart: each worker in turn gets SIGTERM, drains and exits 0
	// within the grace period while the other carries on alone (which also
	// proves the partitioned one recovered), then comes back healthy.
	for _, id := range []string{a, b} {
		name := s.inspect(ctx, id).Name
		t0 := time.Now()
		s.docker(ctx, "stop", "-t", "30", id)
		took := time.Since(t0)
		if si := s.inspect(ctx, id); si.State.ExitCode != 0 {
			t.Errorf("%s exited %d on SIGTERM, want 0 (a clean drain); logs:\n%s", name, si.State.ExitCode, s.logs(ctx, id))
		}
		if took >= 30*time.Second {
			t.Errorf("%s took %s to stop: Docker had to kill it", name, took)
		}
		alone := s.placeShippable(ctx, book, skus, "rolling-"+strings.TrimPrefix(name, "/"), 10)
		s.waitStatus(ctx, 2*time.Minute, alone, pipeline.StatusShipped)
		s.docker(ctx, "start", id)
		s.waitHealthy(ctx, time.Minute, id)
		t.Logf("rolling restart: %s stopped in %s (exit 0), the other shipped %d orders alone, back healthy", name, took.Round(time.Millisecond), len(alone))
	}

	// Afterwards every order is final and stock balances.
	final := s.waitFinal(ctx, 4*time.Minute, book.ids())
	s.checkInvariants(ctx, book, final, stock)

	// The messages the killed and the cut-off worker held came back after
	// their receive visibility and were finished by the other: some order
	// waited that long between two stages.
	var recovered int
	for _, v := range final {
		for i := 1; i < len(v.History); i++ {
			if v.History[i].At.Sub(v.History[i-1].At) >= hidden-time.Second {
				recovered++
				break
			}
		}
	}
	if recovered == 0 {
		t.Errorf("no order waited the receive visibility (%s) between two stages: the faults met no in-flight work", hidden)
	}
	t.Logf("%d orders were finished by another worker after their messages' receive visibility (%s)", recovered, hidden)

	s.waitAlert(ctx, 2*time.Minute, "CloudCommerceDeadLetters", map[string]string{"stage": string(pipeline.StageShipping), "severity": "warning"})
}

// waitBusy waits until the worker holds at least one message, by its
// cloudcommerce_stage_in_flight_messages gauge, and returns how many.
func (s *stack) waitBusy(ctx context.Context, id string) float64 {
	s.t.Helper()
	var n float64
	s.waitFor(ctx, time.Minute, "worker "+id[:12]+" holds a message", func() bool {
		var err error
		n, err = s.inFlight(ctx, id)
		return err == nil && n >= 1
	})
	return n
}

// inFlight sums the worker's in-flight gauge over its stages, read from
// its ops port as Prometheus would.
func (s *stack) inFlight(ctx context.Context, id string) (float64, error) {
	c := s.inspect(ctx, id)
	bindings := c.NetworkSettings.Ports["9090/tcp"]
	if len(bindings) == 0 {
		return 0, fmt.Errorf("%s publishes no ops port", c.Name)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://127.0.0.1:"+bindings[0].HostPort+"/metrics", nil)
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("%s /metrics: %w", c.Name, err)
	}
	mf := mfs["cloudcommerce_stage_in_flight_messages"]
	if mf == nil {
		return 0, fmt.Errorf("%s exposes no cloudcommerce_stage_in_flight_messages", c.Name)
	}
	var sum float64
	for _, m := range mf.GetMetric() {
		sum += m.GetGauge().GetValue()
	}
	return sum, nil
}

// stack is one compose project on the engine.
type stack struct {
	t       *testing.T
	root    string
	runID   string
	project string
	compose []string // "docker compose" or "docker-compose", plus the project and files
	env     []string
	intake  []string // base URLs, one per replica
	// Published endpoints of Prometheus, Alertmanager and the AWS emulator.
	prometheus, alertmanager, awsEndpoint string
	network                               string
	client                                *http.Client
}

func startStack(ctx context.Context, t *testing.T) *stack {
	t.Helper()
	root := repoRoot(t)
	id := make([]byte, 4)
	_, _ = rand.Read(id)
	s := &stack{t: t, root: root, runID: hex.EncodeToString(id), client: &http.Client{Timeout: 5 * time.Second}}
	s.project = "cctest" + s.runID

	// Static binaries built on the host; scratch images built from them
	// with no pull.
	bin := t.TempDir()
	t0 := time.Now()
	for _, name := range []string{"worker", "devstack"} {
		testkit.BuildInto(t, bin, filepath.Join(root, "cmd", name), []string{"CGO_ENABLED=0"}, "-trimpath", "-ldflags=-s -w")
		checkStatic(t, filepath.Join(bin, name))
	}
	checkNoEmulator(t, filepath.Join(bin, "worker"))
	certs, err := os.ReadFile("/etc/ssl/certs/ca-certificates.crt")
	if err != nil {
		t.Fatalf("the worker image needs the host's CA bundle (apt-get install ca-certificates): %v", err)
	}
	if err := os.WriteFile(filepath.Join(bin, "ca-certificates.crt"), certs, 0o644); err != nil {
		t.Fatal(err)
	}
	workerImage := "cloudcommerce-test/worker:" + s.runID
	emulatorImage := "cloudcommerce-test/emulator:" + s.runID
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, _ = exec.CommandContext(ctx, "docker", "rmi", "-f", workerImage, emulatorImage).CombinedOutput()
	})
	s.run(ctx, 5*time.Minute, root, nil, "docker", "build", "-q", "-f", filepath.Join(root, "Dockerfile.runtime"), "-t", workerImage, bin)
	s.run(ctx, 5*time.Minute, root, nil, "docker", "build", "-q", "-f", filepath.Join(root, "Dockerfile.emulator"), "-t", emulatorImage, bin)
	checkImage(ctx, t, workerImage)
	promImage := "cloudcommerce-test/prometheus:" + s.runID
	amImage := "cloudcommerce-test/alertmanager:" + s.runID
	s.buildObservabilityImages(ctx, promImage, amImage)
	rules := t.TempDir()
	s.shortRules(rules)
	t.Logf("built static binaries and scratch images in %s", time.Since(t0).Round(time.Millisecond))

	intakePort, opsPort, single := testkit.PublishPorts(t, 3)
	awsPort, promPort, amPort := single[0], single[1], single[2]
	s.prometheus = fmt.Sprintf("http://127.0.0.1:%d", promPort)
	s.alertmanager = fmt.Sprintf("http://127.0.0.1:%d", amPort)
	s.awsEndpoint = fmt.Sprintf("http://127.0.0.1:%d", awsPort)
	s.intake = []string{fmt.Sprintf("http://127.0.0.1:%d", intakePort), fmt.Sprintf("http://127.0.0.1:%d", intakePort+1)}
	s.env = append(os.Environ(),
		"WORKER_IMAGE="+workerImage,
		"EMULATOR_IMAGE="+emulatorImage,
		fmt.Sprintf("INTAKE_PORTS=%d-%d", intakePort, intakePort+1),
		fmt.Sprintf("OPS_PORTS=%d-%d", opsPort, opsPort+1),
		fmt.Sprintf("AWS_PORT=%d", awsPort),
		fmt.Sprintf("PROMETHEUS_PORT=%d", promPort),
		fmt.Sprintf("ALERTMANAGER_PORT=%d", amPort),
		"PROMETHEUS_IMAGE="+promImage,
		"ALERTMANAGER_IMAGE="+amImage,
		"TEST_RULES_DIR="+rules,
		"WORKER_REPLICAS=2",
	)
	cmd, v1 := composeCommand(ctx, t)
	s.compose = append(cmd, "-p", s.project, "--project-directory", root)
	for _, f := range []string{baseFile, kumoFile, testFile} {
		s.compose = append(s.compose, "-f", filepath.Join(root, f))
	}

	// Registered before up, so it runs even when up fails half-way.
	t.Cleanup(func() { s.down() })
	up := []string{"up", "-d", "--no-build"}
	if v1 {
		up = append(up, "--scale", "worker=2") // v1 does not read deploy.replicas
	}
	t0 = time.Now()
	s.run(ctx, 5*time.Minute, root, s.env, s.compose[0], append(s.compose[1:], up...)...)
	t.Logf("compose project %s up in %s (intake on %v, ops on %d-%d, Prometheus on %d, Alertmanager on %d)", s.project, time.Since(t0).Round(time.Millisecond), s.intake, opsPort, opsPort+1, promPort, amPort)
	return s
}

// down removes the project and fails the test if anything of it is left.
func (s *stack) down() {
	t := s.t
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if t.Failed() {
		out, _ := s.output(ctx, s.compose[0], append(s.compose[1:], "logs", "--no-color", "--tail", "150")...)
		t.Logf("compose logs (last 150 lines per container):\n%s", out)
	}
	t0 := time.Now()
	if out, err := s.output(ctx, s.compose[0], append(s.compose[1:], "down", "-v", "--remove-orphans", "-t", "30")...); err != nil {
		t.Errorf("compose down: %v\n%s", err, out)
	}
	label := "label=com.docker.compose.project=" + s.project
	for _, kind := range [][]string{{"ps", "-a", "-q"}, {"network", "ls", "-q"}, {"volume", "ls", "-q"}} {
		out, err := s.output(ctx, "docker", append(kind, "--filter", label)...)
		if err != nil {
			t.Errorf("docker %v: %v", kind, err)
		} else if left := strings.Fields(out); len(left) > 0 {
			t.Errorf("compose down -v left %s behind: %v", kind[0], left)
		}
	}
	if out, _ := s.output(ctx, "docker", "network", "ls", "-q", "--filter", "name="+s.project); strings.TrimSpace(out) != "" {
		t.Errorf("compose down -v left networks named %s*: %s", s.project, out)
	}
	t.Logf("compose down -v --remove-orphans in %s: no container, network or volume left", time.Since(t0).Round(time.Millisecond))
}

// composeCommand returns how to call Compose: v2 (`docker compose`, what
// users run) when the plugin is there, else Debian's docker-compose 1.29.
// CLOUDCOMMERCE_COMPOSE overrides, e.g. "docker-compose".
func composeCommand(ctx context.Context, t *testing.T) (cmd []string, v1 bool) {
	t.Helper()
	candidates := [][]string{{"docker", "compose"}, {"docker-compose"}}
	if c := os.Getenv("CLOUDCOMMERCE_COMPOSE"); c != "" {
		candidates = [][]string{strings.Fields(c)}
	}
	for _, c := range candidates {
		out, err := exec.CommandContext(ctx, c[0], append(c[1:], "version", "--short")...).Output()
		if err != nil {
			continue
		}
		v := strings.TrimPrefix(strings.TrimSpace(string(out)), "v")
		t.Logf("compose: %s %s", strings.Join(c, " "), v)
		return c, strings.HasPrefix(v, "1.")
	}
	t.Fatalf("no Compose found (tried %v); test/compose/run.sh installs one", candidates)
	return nil, false
}

// run runs a command and fails the test if it fails.
func (s *stack) run(ctx context.Context, timeout time.Duration, dir string, env []string, name string, args ...string) string {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		s.t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (s *stack) output(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = s.root
	cmd.Env = s.env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// docker runs a docker command with a bounded wait.
func (s *stack) docker(ctx context.Context, args ...string) string {
	s.t.Helper()
	return s.run(ctx, 2*time.Minute, s.root, nil, "docker", args...)
}

// containers lists the project's containers of a service, running or not,
// by replica number.
func (s *stack) containers(ctx context.Context, svc string) []string {
	s.t.Helper()
	out := s.docker(ctx, "ps", "-a", "--no-trunc", "--filter", "label=com.docker.compose.project="+s.project,
		"--filter", "label=com.docker.compose.service="+svc, "--format", `{{.Label "com.docker.compose.container-number"}} {{.ID}}`)
	type c struct {
		n  int
		id string
	}
	var cs []c
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if n, id, ok := strings.Cut(line, " "); ok {
			num, _ := strconv.Atoi(n)
			cs = append(cs, c{num, id})
		}
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].n < cs[j].n })
	ids := make([]string, len(cs))
	for i, c := range cs {
		ids[i] = c.id
	}
	return ids
}

type container struct {
	Name  string
	State struct {
		Status     string
		Running    bool
		ExitCode   int
		StartedAt  time.Time
		FinishedAt time.Time
		Health     *struct{ Status string }
	}
	Config struct {
		User string
	}
	HostConfig struct {
		ReadonlyRootfs bool
	}
	NetworkSettings struct {
		Networks map[string]json.RawMessage
		Ports    map[string][]struct{ HostIP, HostPort string }
	}
}

func (c container) network(t *testing.T) string {
	t.Helper()
	if len(c.NetworkSettings.Networks) != 1 {
		t.Fatalf("%s is on %d networks, want the project's one", c.Name, len(c.NetworkSettings.Networks))
	}
	for n := range c.NetworkSettings.Networks {
		return n
	}
	return ""
}

func (s *stack) inspect(ctx context.Context, id string) container {
	s.t.Helper()
	var cs []container
	if err := json.Unmarshal([]byte(s.docker(ctx, "inspect", "--type", "container", id)), &cs); err != nil || len(cs) != 1 {
		s.t.Fatalf("docker inspect %s: %v", id, err)
	}
	return cs[0]
}

func (s *stack) logs(ctx context.Context, id string) string {
	out, _ := s.output(ctx, "docker", "logs", "--tail", "100", id)
	return out
}

// waitFor polls cond until it holds or the deadline passes.
func (s *stack) waitFor(ctx context.Context, d time.Duration, what string, cond func() bool) {
	s.t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			s.t.Fatalf("not within %s: %s", d, what)
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			s.t.Fatalf("waiting for %s: %v", what, ctx.Err())
		}
	}
}

func (s *stack) waitHealthy(ctx context.Context, d time.Duration, ids ...string) {
	s.t.Helper()
	for _, id := range ids {
		var last string
		s.waitFor(ctx, d, "container "+id[:12]+" healthy", func() bool {
			c := s.inspect(ctx, id)
			if c.State.Health == nil {
				s.t.Fatalf("%s has no healthcheck", c.Name)
			}
			last = c.State.Health.Status
			if !c.State.Running {
				s.t.Fatalf("%s is %s (exit %d) while waiting for it to be healthy; logs:\n%s", c.Name, c.State.Status, c.State.ExitCode, s.logs(ctx, id))
			}
			return last == "healthy"
		})
	}
}

func (s *stack) waitAnswers(ctx context.Context, base string) {
	s.t.Helper()
	s.waitFor(ctx, time.Minute, base+" answers", func() bool {
		resp, err := s.client.Get(base + "/v1/inventory/none")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusNotFound
	})
}

// call sends one request to the intake, trying each replica in turn until
// one answers below 500 or the attempts run out. Retrying a POST is safe:
// every order request carries an Idempotency-Key.
func (s *stack) call(ctx context.Context, method, path string, body []byte, header map[string]string) (int, []byte, error) {
	var lastErr error
	for attempt := 0; attempt < 40; attempt++ {
		base := s.intake[attempt%len(s.intake)]
		req, err := http.NewRequestWithContext(ctx, method, base+path, bytes.NewReader(body))
		if err != nil {
			return 0, nil, err
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := s.client.Do(req)
		if err == nil {
			b, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			if rerr == nil && resp.StatusCode < 500 {
				return resp.StatusCode, b, nil
			}
			err = fmt.Errorf("%s %s: %d %s %v", method, base+path, resp.StatusCode, bytes.TrimSpace(b), rerr)
		}
		lastErr = err
		if attempt%len(s.intake) == len(s.intake)-1 {
			select { // every replica failed this round: back off a little
			case <-time.After(500 * time.Millisecond):
			case <-ctx.Done():
				return 0, nil, ctx.Err()
			}
		}
	}
	return 0, nil, fmt.Errorf("no replica answered: %w", lastErr)
}

func (s *stack) setStock(ctx context.Context, sku string, n int64) {
	s.t.Helper()
	code, body, err := s.call(ctx, http.MethodPut, "/v1/inventory/"+sku, fmt.Appendf(nil, `{"available":%d}`, n), nil)
	if err != nil || code != http.StatusOK {
		s.t.Fatalf("set stock of %s: %d %s %v", sku, code, body, err)
	}
}

func (s *stack) stock(ctx context.Context, sku string) (int64, error) {
	code, body, err := s.call(ctx, http.MethodGet, "/v1/inventory/"+sku, nil, nil)
	if err != nil {
		return 0, err
	}
	var v intake.StockView
	if code != http.StatusOK || json.Unmarshal(body, &v) != nil {
		return 0, fmt.Errorf("GET /v1/inventory/%s: %d %s", sku, code, body)
	}
	return v.Available, nil
}

func (s *stack) order(ctx context.Context, id string) (intake.OrderView, error) {
	code, body, err := s.call(ctx, http.MethodGet, "/v1/orders/"+id, nil, nil)
	if err != nil {
		return intake.OrderView{}, err
	}
	var v intake.OrderView
	if code != http.StatusOK || json.Unmarshal(body, &v) != nil {
		return v, fmt.Errorf("GET /v1/orders/%s: %d %s", id, code, body)
	}
	return v, nil
}

// place places one order and returns its id.
func (s *stack) place(ctx context.Context, req pipeline.OrderRequest, key string) (string, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return "", err
	}
	code, resp, err := s.call(ctx, http.MethodPost, "/v1/orders", body, map[string]string{"Idempotency-Key": key})
	if err != nil {
		return "", err
	}
	var out intake.PlaceOrderResponse
	if code != http.StatusAccepted || json.Unmarshal(resp, &out) != nil || out.OrderID == "" {
		return "", fmt.Errorf("POST /v1/orders: %d %s", code, resp)
	}
	return out.OrderID, nil
}

// orderBook remembers what every placed order asked for.
type orderBook struct {
	mu   sync.Mutex
	byID map[string]pipeline.OrderRequest
}

func (b *orderBook) add(id string, r pipeline.OrderRequest) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.byID[id] = r
}

func (b *orderBook) ids() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Sorted(func(yield func(string) bool) {
		for id := range b.byID {
			if !yield(id) {
				return
			}
		}
	})
}

func (b *orderBook) request(id string) pipeline.OrderRequest {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.byID[id]
}

// request returns the i-th order of the mix: good cards over the two
// plentiful SKUs, with a share of declined cards (PAYMENT_FAILED), of
// transient card errors (retried, then SHIPPED) and of orders that also
// want the scarce SKU (REJECTED once it runs out).
func request(i int, r *mrand.Rand, skus []string) pipeline.OrderRequest {
	token := "tok_visa"
	switch i % 20 {
	case 3:
		token = "tok_chargeDeclined"
	case 7:
		token = "tok_processingError"
	}
	var items []pipeline.Item
	for _, k := range r.Perm(2)[:1+r.IntN(2)] {
		items = append(items, pipeline.Item{SKU: skus[k], Quantity: int64(1 + r.IntN(3)), UnitPrice: pipeline.Money{Amount: int64(500 + 250*k), Currency: "USD"}})
	}
	if i%10 == 5 {
		items = append(items, pipeline.Item{SKU: skus[2], Quantity: 2, UnitPrice: pipeline.Money{Amount: 4999, Currency: "USD"}})
	}
	return pipeline.OrderRequest{
		Customer:        pipeline.Customer{ID: fmt.Sprintf("cust-%04d", i%97), Email: fmt.Sprintf("c%d@example.com", i%97), Phone: "+14155550100"},
		Items:           items,
		Payment:         pipeline.Payment{Token: token},
		ShippingAddress: pipeline.Address{Name: "Compose Test", Line1: "1 Market St", City: "San Francisco", PostalCode: "94105", Country: "US"},
	}
}

// placeShippable places n orders that can only end SHIPPED.
func (s *stack) placeShippable(ctx context.Context, book *orderBook, skus []string, tag string, n int) []string {
	s.t.Helper()
	ids := make([]string, 0, n)
	for i := 0; i < n; i++ {
		req := pipeline.OrderRequest{
			Customer:        pipeline.Customer{ID: "cust-" + tag, Email: "ship@example.com", Phone: "+14155550100"},
			Items:           []pipeline.Item{{SKU: skus[i%2], Quantity: 1, UnitPrice: pipeline.Money{Amount: 1000, Currency: "USD"}}},
			Payment:         pipeline.Payment{Token: "tok_visa"},
			ShippingAddress: pipeline.Address{Name: "Compose Test", Line1: "1 Market St", City: "San Francisco", PostalCode: "94105", Country: "US"},
		}
		id, err := s.place(ctx, req, fmt.Sprintf("%s-%s-%d", s.runID, tag, i))
		if err != nil {
			s.t.Fatalf("place %s order %d: %v", tag, i, err)
		}
		book.add(id, req)
		ids = append(ids, id)
	}
	return ids
}

// producer places orders at a steady pace in the background.
type producer struct {
	mu    sync.Mutex
	n     int
	errs  []error
	done  chan struct{}
	total int
}

func (p *producer) placed() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

func (p *producer) wait(ctx context.Context, d time.Duration) error {
	select {
	case <-p.done:
	case <-time.After(d):
		return fmt.Errorf("only %d of %d orders placed within %s", p.placed(), p.total, d)
	case <-ctx.Done():
		return ctx.Err()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return errors.Join(p.errs...)
}

func (s *stack) produce(ctx context.Context, book *orderBook, skus []string, n int, every time.Duration) *producer {
	p := &producer{done: make(chan struct{}), total: n}
	go func() {
		defer close(p.done)
		r := mrand.New(mrand.NewPCG(1, 2))
		tick := time.NewTicker(every)
		defer tick.Stop()
		for i := 0; i < n; i++ {
			req := request(i, r, skus)
			id, err := s.place(ctx, req, fmt.Sprintf("%s-load-%d", s.runID, i))
			p.mu.Lock()
			if err != nil {
				p.errs = append(p.errs, fmt.Errorf("order %d: %w", i, err))
			} else {
				book.add(id, req)
				p.n++
			}
			p.mu.Unlock()
			select {
			case <-tick.C:
			case <-ctx.Done():
				return
			}
		}
	}()
	return p
}

// waitStatus waits until every order has the status.
func (s *stack) waitStatus(ctx context.Context, d time.Duration, ids []string, want pipeline.Status) {
	s.t.Helper()
	got := s.waitFinal(ctx, d, ids)
	for _, id := range ids {
		if got[id].Status != want {
			s.t.Errorf("order %s is %s, want %s (reason %q)", id, got[id].Status, want, got[id].Reason)
		}
	}
	if s.t.Failed() {
		s.t.FailNow()
	}
}

// waitFinal polls the orders until every one is in a final status.
func (s *stack) waitFinal(ctx context.Context, d time.Duration, ids []string) map[string]intake.OrderView {
	s.t.Helper()
	views := map[string]intake.OrderView{}
	pending := slices.Clone(ids)
	deadline := time.Now().Add(d)
	for len(pending) > 0 {
		next := pending[:0]
		for _, id := range pending {
			v, err := s.order(ctx, id)
			if err == nil && v.Status.Final() {
				views[id] = v
				continue
			}
			views[id] = v
			next = append(next, id)
		}
		pending = next
		if len(pending) == 0 {
			break
		}
		if time.Now().After(deadline) {
			var stuck []string
			for _, id := range pending {
				stuck = append(stuck, fmt.Sprintf("%s (%s)", id, views[id].Status))
			}
			s.t.Fatalf("%d of %d orders not final within %s: %s", len(pending), len(ids), d, strings.Join(stuck, ", "))
		}
		select {
		case <-time.After(time.Second):
		case <-ctx.Done():
			s.t.Fatal(ctx.Err())
		}
	}
	return views
}

// checkInvariants asserts what must hold after any faults: each order ended
// where its request leads, and for every SKU the initial stock equals what
// is available plus what orders holding stock (RESERVED, PAID, SHIPPED)
// took: nothing oversold, nothing leaked.
func (s *stack) checkInvariants(ctx context.Context, book *orderBook, final map[string]intake.OrderView, initial map[string]int64) {
	t := s.t
	held := map[string]int64{}
	byStatus := map[pipeline.Status]int{}
	for id, v := range final {
		byStatus[v.Status]++
		req := book.request(id)
		switch v.Status {
		case pipeline.StatusReserved, pipeline.StatusPaid, pipeline.StatusShipped:
			for _, it := range v.Items {
				held[it.SKU] += it.Quantity
			}
		}
		wantsScarce := slices.ContainsFunc(req.Items, func(it pipeline.Item) bool { return initial[it.SKU] == scarce })
		switch {
		case req.Payment.Token == "tok_chargeDeclined":
			if v.Status != pipeline.StatusPaymentFailed && !(wantsScarce && v.Status == pipeline.StatusRejected) {
				t.Errorf("order %s (declined card) is %s", id, v.Status)
			}
		case wantsScarce:
			if v.Status != pipeline.StatusShipped && v.Status != pipeline.StatusRejected {
				t.Errorf("order %s (scarce SKU) is %s (reason %q)", id, v.Status, v.Reason)
			}
		default:
			if v.Status != pipeline.StatusShipped {
				t.Errorf("order %s (good card, plentiful stock) is %s (reason %q), want SHIPPED", id, v.Status, v.Reason)
			}
		}
	}
	for sku, n := range initial {
		avail, err := s.stock(ctx, sku)
		if err != nil {
			t.Errorf("read stock of %s: %v", sku, err)
			continue
		}
		if avail+held[sku] != n {
			t.Errorf("stock of %s does not balance: initial %d != available %d + held by orders %d", sku, n, avail, held[sku])
		}
		if avail < 0 {
			t.Errorf("stock of %s is negative: %d", sku, avail)
		}
	}
	t.Logf("invariants over %d orders: every order final (%v); stock balances for %d SKUs", len(final), byStatus, len(initial))
}

// checkStatic fails unless the binary has no program interpreter: it must
// run in a scratch image with no libc.
func checkStatic(t *testing.T, path string) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatalf("%s is dynamically linked; build with CGO_ENABLED=0", path)
		}
	}
}

// checkNoEmulator fails if the production binary links kumo.
func checkNoEmulator(t *testing.T, path string) {
	t.Helper()
	bi, err := buildinfo.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range bi.Deps {
		if strings.Contains(d.Path, "sivchari/kumo") {
			t.Fatalf("%s links the emulator (%s %s); the production worker must not", path, d.Path, d.Version)
		}
	}
}

// checkImage inspects the built worker image: non-root user, the worker
// health check, the worker as entrypoint.
func checkImage(ctx context.Context, t *testing.T, image string) {
	t.Helper()
	out, err := exec.CommandContext(ctx, "docker", "image", "inspect", image).Output()
	if err != nil {
		t.Fatalf("docker image inspect %s: %v", image, err)
	}
	var imgs []struct {
		Config struct {
			User        string
			Entrypoint  []string
			Cmd         []string
			Healthcheck *struct{ Test []string }
		}
	}
	if err := json.Unmarshal(out, &imgs); err != nil || len(imgs) != 1 {
		t.Fatalf("docker image inspect %s: %v", image, err)
	}
	c := imgs[0].Config
	if !nonRootUser(c.User) {
		t.Errorf("image %s runs as %q", image, c.User)
	}
	if !slices.Equal(c.Entrypoint, []string{"/worker"}) || !slices.Equal(c.Cmd, []string{"run"}) {
		t.Errorf("image %s entrypoint %v cmd %v", image, c.Entrypoint, c.Cmd)
	}
	if c.Healthcheck == nil || !slices.Equal(c.Healthcheck.Test, []string{"CMD", "/worker", "healthcheck"}) {
		t.Errorf("image %s healthcheck %+v", image, c.Healthcheck)
	}
}
