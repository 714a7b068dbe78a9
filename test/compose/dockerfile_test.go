// Package compose_test checks the container side of the deployment: the
// Dockerfiles and compose files are parsed and their wiring asserted (always,
// in milliseconds), and with CLOUDCOMMERCE_DOCKER_TESTS=1 the compose stack
// runs on the machine's Docker engine with the real worker image and is put
// through the faults ECS would meet (stack_test.go; test/compose/run.sh).
package compose_test

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/distribution/reference"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// repoRoot is the module root, two levels above this package.
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not found from %s: %v", root, err)
	}
	return root
}

// dockerfile is a parsed Dockerfile: its stages and the defaults of the ARGs
// before the first FROM.
type dockerfile struct {
	path     string
	stages   []instructions.Stage
	metaArgs map[string]string
}

func parseDockerfile(t *testing.T, name string) dockerfile {
	t.Helper()
	path := filepath.Join(repoRoot(t), name)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := parser.Parse(f)
	if err != nil {
		t.Fatalf("parse %s: %v", name, err)
	}
	stages, metaArgs, err := instructions.Parse(res.AST, nil)
	if err != nil {
		t.Fatalf("parse %s instructions: %v", name, err)
	}
	d := dockerfile{path: name, stages: stages, metaArgs: map[string]string{}}
	for _, a := range metaArgs {
		for _, kv := range a.Args {
			if kv.Value != nil {
				d.metaArgs[kv.Key] = *kv.Value
			}
		}
	}
	return d
}

// base returns stage i's FROM with the meta ARGs' defaults substituted.
func (d dockerfile) base(i int) string {
	b := d.stages[i].BaseName
	for k, v := range d.metaArgs {
		b = strings.ReplaceAll(b, "${"+k+"}", v)
		b = strings.ReplaceAll(b, "$"+k, v)
	}
	return b
}

// commands returns the commands of type T in stage s.
func commands[T instructions.Command](s instructions.Stage) []T {
	var out []T
	for _, c := range s.Commands {
		if v, ok := c.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

// last returns the last command of type T in stage s (the one in force), or nil.
func last[T instructions.Command](s instructions.Stage) T {
	var zero T
	cs := commands[T](s)
	if len(cs) == 0 {
		return zero
	}
	return cs[len(cs)-1]
}

// checkPinned fails unless every FROM is scratch, an earlier stage, or an
// image with an explicit tag other than latest (or a digest).
func checkPinned(t *testing.T, d dockerfile) {
	t.Helper()
	var earlier []string
	for i, s := range d.stages {
		b := d.base(i)
		switch {
		case b == "scratch" || slices.Contains(earlier, b):
		case strings.Contains(b, "$"):
			t.Errorf("%s: FROM %q has an ARG without a default", d.path, s.BaseName)
		default:
			ref, err := reference.ParseNormalizedNamed(b)
			if err != nil {
				t.Errorf("%s: FROM %q: %v", d.path, b, err)
				continue
			}
			_, digested := ref.(reference.Digested)
			tagged, isTagged := ref.(reference.Tagged)
			if !digested && (!isTagged || tagged.Tag() == "latest") {
				t.Errorf("%s: FROM %q is not pinned: name an exact tag or a digest", d.path, b)
			}
		}
		if s.Name != "" {
			earlier = append(earlier, s.Name)
		}
	}
}

// checkNonRoot fails unless the stage's USER is a non-zero numeric uid (a
// name would need /etc/passwd, which a scratch image has not).
func checkNonRoot(t *testing.T, d dockerfile, s instructions.Stage) {
	t.Helper()
	u := last[*instructions.UserCommand](s)
	if u == nil {
		t.Errorf("%s: the runtime stage has no USER: the container would run as root", d.path)
		return
	}
	uid, _, _ := strings.Cut(u.User, ":")
	n, err := strconv.Atoi(uid)
	if err != nil || n == 0 {
		t.Errorf("%s: USER %q: want a numeric non-root uid such as 65532:65532", d.path, u.User)
	}
}

// runtimeShape is what the worker image promises to whoever runs it.
type runtimeShape struct {
	user, entrypoint, cmd, health string
	expose                        []string
	files                         []string // destination paths
}

func shapeOf(t *testing.T, d dockerfile, s instructions.Stage) runtimeShape {
	t.Helper()
	var r runtimeShape
	if u := last[*instructions.UserCommand](s); u != nil {
		r.user = u.User
	}
	if e := last[*instructions.EntrypointCommand](s); e != nil {
		if e.PrependShell {
			t.Errorf("%s: ENTRYPOINT in shell form: a scratch image has no shell; use the JSON form", d.path)
		}
		r.entrypoint = strings.Join(e.CmdLine, " ")
	}
	if c := last[*instructions.CmdCommand](s); c != nil {
		r.cmd = strings.Join(c.CmdLine, " ")
	}
	if h := last[*instructions.HealthCheckCommand](s); h != nil && h.Health != nil {
		r.health = strings.Join(h.Health.Test, " ")
	}
	for _, e := range commands[*instructions.ExposeCommand](s) {
		r.expose = append(r.expose, e.Ports...)
	}
	slices.Sort(r.expose)
	for _, c := range commands[*instructions.CopyCommand](s) {
		r.files = append(r.files, c.DestPath)
	}
	slices.Sort(r.files)
	return r
}

func TestDockerfile(t *testing.T) {
	t.Parallel()
	d := parseDockerfile(t, "Dockerfile")
	if len(d.stages) < 2 {
		t.Fatalf("Dockerfile has %d stage(s); want a build stage and a runtime stage", len(d.stages))
	}
	checkPinned(t, d)
	rt := d.stages[len(d.stages)-1]
	if b := d.base(len(d.stages) - 1); b != "scratch" && !strings.HasPrefix(b, "gcr.io/distroless/static") {
		t.Errorf("runtime stage FROM %q: want scratch or distroless static", b)
	}
	checkNonRoot(t, d, rt)

	// Everything the runtime stage holds comes from the build stage: the
	// static worker and the CA bundle, nothing else.
	for _, c := range commands[*instructions.CopyCommand](rt) {
		if c.From == "" {
			t.Errorf("runtime stage copies %v from the build context; want only build-stage outputs", c.SourcePaths)
		}
	}
	sh := shapeOf(t, d, rt)
	want := runtimeShape{user: "65532:65532", entrypoint: "/worker", cmd: "run", health: "CMD /worker healthcheck",
		expose: []string{"8080", "9090"}, files: []string{"/etc/ssl/certs/ca-certificates.crt", "/worker"}}
	if !equalShape(sh, want) {
		t.Errorf("runtime stage = %+v\nwant %+v", sh, want)
	}

	// Nothing of the emulator goes in. (That the build is static and
	// runs is TestDockerfileImageRunsTheWorker's: it builds the image.)
	for _, s := range d.stages {
		for _, r := range commands[*instructions.RunCommand](s) {
			if line := strings.Join(r.CmdLine, " "); strings.Contains(line, "devstack") {
				t.Errorf("Dockerfile builds the emulator: %s", line)
			}
		}
		for _, c := range commands[*instructions.CopyCommand](s) {
			for _, p := range c.SourcePaths {
				if strings.Contains(p, "devstack") || strings.Contains(p, "kumo") {
					t.Errorf("Dockerfile copies %s: the production image must not contain the emulator", p)
				}
			}
		}
	}
}

// bareModDownload is `go mod download` with no module named: it fetches
// every module of the graph, test-only ones included.
var bareModDownload = regexp.MustCompile(`go mod download\s*($|&&|;|\|)`)

// The build stage fetches only what the worker links (go build resolves
// just the modules of the packages it compiles) and keeps the module and
// build caches in cache mounts, outside every layer.
func TestDockerfileBuildUsesCacheMounts(t *testing.T) {
	t.Parallel()
	d := parseDockerfile(t, "Dockerfile")
	var build *instructions.RunCommand
	for _, s := range d.stages {
		for _, r := range commands[*instructions.RunCommand](s) {
			line := strings.Join(r.CmdLine, " ")
			if bareModDownload.MatchString(line) {
				t.Errorf("Dockerfile downloads every module, test-only ones included: %s", line)
			}
			if strings.Contains(line, "go build") && strings.Contains(line, "./cmd/worker") {
				build = r
			}
		}
	}
	if build == nil {
		t.Fatal("no stage runs `go build ... ./cmd/worker`")
	}
	// Mount options are evaluated when the stage is dispatched; there are
	// no variables in them to expand.
	if err := build.Expand(func(word string) (string, error) { return word, nil }); err != nil {
		t.Fatalf("RUN --mount flags: %v", err)
	}
	caches := map[string]bool{}
	for _, m := range instructions.GetMounts(build) {
		if m.Type == instructions.MountTypeCache {
			caches[m.Target] = true
		}
	}
	for _, target := range []string{"/go/pkg/mod", "/root/.cache/go-build"} {
		if !caches[target] {
			t.Errorf("the worker's go build has no cache mount on %s (mounts: %v)", target, caches)
		}
	}
}

// .dockerignore keeps built binaries, wherever go build drops them, and
// Terraform state out of the build context.
func TestDockerignoreExcludesBinariesAndTerraformState(t *testing.T) {
	t.Parallel()
	f, err := os.Open(filepath.Join(repoRoot(t), ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{
		"worker", "devstack", "loadgen", "lambda", "bootstrap",
		"cmd/worker/worker", "cmd/devstack/devstack", "cmd/loadgen/loadgen", "cmd/lambda/lambda", "cmd/lambda/bootstrap",
		"bin/worker", "test/e2e/e2e.test",
		"deploy/terraform/.terraform/providers/x", "deploy/terraform/terraform.tfstate", "deploy/terraform/terraform.tfstate.backup",
		"deploy/terraform/prod.tfvars", "deploy/terraform/envs/dev/.terraform/modules/y", "deploy/terraform/plan.tfplan",
		".git/HEAD",
	} {
		if ok, err := pm.MatchesOrParentMatches(path); err != nil || !ok {
			t.Errorf(".dockerignore lets %s into the build context (%v)", path, err)
		}
	}
	// What the build needs stays in.
	for _, path := range []string{"go.mod", "go.sum", "cmd/worker/main.go", "internal/worker/worker.go", "internal/topology/topology.go"} {
		if ok, _ := pm.MatchesOrParentMatches(path); ok {
			t.Errorf(".dockerignore leaves %s out, which the worker build needs", path)
		}
	}
}

// TestDockerfileRuntime checks that the no-pull variant builds the same
// runtime image as Dockerfile's last stage.
func TestDockerfileRuntime(t *testing.T) {
	t.Parallel()
	full := parseDockerfile(t, "Dockerfile")
	d := parseDockerfile(t, "Dockerfile.runtime")
	if len(d.stages) != 1 || d.base(0) != "scratch" {
		t.Fatalf("Dockerfile.runtime: want a single FROM scratch stage (it must build with no pull), got %d stage(s) from %q", len(d.stages), d.base(0))
	}
	checkNonRoot(t, d, d.stages[0])
	got := shapeOf(t, d, d.stages[0])
	want := shapeOf(t, full, full.stages[len(full.stages)-1])
	if !equalShape(got, want) {
		t.Errorf("Dockerfile.runtime and Dockerfile's runtime stage differ:\n runtime %+v\n full    %+v", got, want)
	}
	for _, c := range commands[*instructions.CopyCommand](d.stages[0]) {
		for _, p := range c.SourcePaths {
			if strings.Contains(p, "devstack") {
				t.Errorf("Dockerfile.runtime copies %s: the worker image must not contain the emulator", p)
			}
		}
	}
}

func TestDockerfileEmulator(t *testing.T) {
	t.Parallel()
	d := parseDockerfile(t, "Dockerfile.emulator")
	if len(d.stages) != 1 || d.base(0) != "scratch" {
		t.Fatalf("Dockerfile.emulator: want a single FROM scratch stage, got %d stage(s)", len(d.stages))
	}
	s := d.stages[0]
	checkNonRoot(t, d, s)
	e := last[*instructions.EntrypointCommand](s)
	c := last[*instructions.CmdCommand](s)
	if e == nil || strings.Join(e.CmdLine, " ") != "/devstack" {
		t.Errorf("Dockerfile.emulator: ENTRYPOINT should be [\"/devstack\"]")
	}
	if c == nil || !slices.Contains(c.CmdLine, "--emulator-only") || !slices.Contains(c.CmdLine, "--memory") {
		t.Errorf("Dockerfile.emulator: CMD should serve only the emulator, in memory (read-only root filesystem)")
	}
}

func equalShape(a, b runtimeShape) bool {
	return a.user == b.user && a.entrypoint == b.entrypoint && a.cmd == b.cmd && a.health == b.health &&
		slices.Equal(a.expose, b.expose) && slices.Equal(a.files, b.files)
}
