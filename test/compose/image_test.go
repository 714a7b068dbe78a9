package compose_test

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
)

// TestDockerfileImageRunsTheWorker builds the worker image on the machine's
// Docker engine and runs `worker version` in it. No registry is reached: the
// build stage's image (GO_IMAGE) is a local one made FROM scratch of Debian's
// static busybox (the shell and grep the RUN line uses), this machine's Go
// toolchain, its CA bundle and the modules the worker links, served as a
// file:// GOPROXY. With BuildKit (docker buildx) the test builds Dockerfile
// itself on it. Without (the legacy builder cannot read RUN --mount), it
// runs Dockerfile's build-stage RUN command, as written, in a container of
// that image, and builds the runtime stage with Dockerfile.runtime, whose
// stage TestDockerfileRuntime holds equal to Dockerfile's. Either way the
// binary is the Dockerfile's build and the runtime image is FROM scratch,
// so a binary that needs a C library could not start.
func TestDockerfileImageRunsTheWorker(t *testing.T) {
	if os.Getenv("CLOUDCOMMERCE_DOCKER_TESTS") != "1" {
		t.Skip("set CLOUDCOMMERCE_DOCKER_TESTS=1 to build the image on the Docker engine (test/compose/run.sh does)")
	}
	for _, need := range []string{"/bin/busybox", "/etc/ssl/certs/ca-certificates.crt"} {
		if _, err := os.Stat(need); err != nil {
			t.Skipf("%s is missing (Debian's busybox-static and ca-certificates; test/compose/run.sh installs them)", need)
		}
	}
	root := repoRoot(t)
	id := make([]byte, 4)
	_, _ = rand.Read(id)
	suffix := hex.EncodeToString(id)
	toolchain, image := "cloudcommerce-test-go:"+suffix, "cloudcommerce-test-worker:"+suffix
	t.Cleanup(func() { _ = exec.Command("docker", "rmi", "-f", image, toolchain).Run() })

	docker := func(dir string, env []string, args ...string) string {
		t.Helper()
		cmd := exec.Command("docker", args...)
		cmd.Dir, cmd.Env = dir, append(os.Environ(), env...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("docker %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.Bytes())
		}
		return string(out)
	}

	start := time.Now()
	docker(toolchainContext(t, root), nil, "build", "-q", "-t", toolchain, ".")
	if exec.Command("docker", "buildx", "version").Run() == nil {
		docker(root, []string{"DOCKER_BUILDKIT=1"}, "build", "-q", "--build-arg", "GO_IMAGE="+toolchain, "-t", image, ".")
		t.Logf("built Dockerfile with BuildKit in %s", time.Since(start).Round(time.Second))
	} else {
		d := parseDockerfile(t, "Dockerfile")
		var build string
		for _, s := range d.stages[:len(d.stages)-1] {
			for _, r := range commands[*instructions.RunCommand](s) {
				if line := strings.Join(r.CmdLine, " "); strings.Contains(line, "./cmd/worker") {
					build = line
				}
			}
		}
		if build == "" {
			t.Fatal("Dockerfile has no build-stage RUN that builds ./cmd/worker")
		}
		out := t.TempDir()
		docker(root, nil, "run", "--rm", "--network", "none", "-v", root+":/src:ro", "-w", "/src", "-v", out+":/out", toolchain, "/bin/sh", "-c", build)
		copyFile(t, "/etc/ssl/certs/ca-certificates.crt", filepath.Join(out, "ca-certificates.crt"))
		docker(root, nil, "build", "-q", "-f", filepath.Join(root, "Dockerfile.runtime"), "-t", image, out)
		t.Logf("no BuildKit (docker buildx): ran Dockerfile's build command in the toolchain image and built Dockerfile.runtime, in %s", time.Since(start).Round(time.Second))
	}

	// The binary in the image: static, and without the emulator.
	box := strings.TrimSpace(docker(root, nil, "create", image))
	defer func() { _ = exec.Command("docker", "rm", "-f", box).Run() }()
	extracted := filepath.Join(t.TempDir(), "worker")
	docker(root, nil, "cp", box+":/worker", extracted)
	checkStatic(t, extracted)
	checkNoEmulator(t, extracted)

	out := docker(root, nil, "run", "--rm", "--network", "none", image, "version")
	for _, want := range []string{"module  github.com/cloudcommerce/cloudcommerce", "go      go1."} {
		if !strings.Contains(out, want) {
			t.Errorf("worker version in the image printed\n%s\nwant a line %q", out, want)
		}
	}
	t.Logf("worker version in the image:\n%s", out)

	var inspect []struct {
		Config struct {
			User        string
			Entrypoint  []string
			Cmd         []string
			Healthcheck struct{ Test []string }
		}
	}
	if err := json.Unmarshal([]byte(docker(root, nil, "image", "inspect", image)), &inspect); err != nil || len(inspect) != 1 {
		t.Fatalf("docker image inspect: %v", err)
	}
	c := inspect[0].Config
	if c.User != "65532:65532" || !slices.Equal(c.Entrypoint, []string{"/worker"}) || !slices.Equal(c.Cmd, []string{"run"}) ||
		!slices.Equal(c.Healthcheck.Test, []string{"CMD", "/worker", "healthcheck"}) {
		t.Errorf("image config = %+v: want user 65532:65532, entry point /worker, command run, health check /worker healthcheck", c)
	}
	// Nothing but the worker and the CA bundle: there is no shell to start.
	if err := exec.Command("docker", "run", "--rm", "--network", "none", "--entrypoint", "/bin/sh", image, "-c", "true").Run(); err == nil {
		t.Error("the image has a shell; the runtime stage must hold only /worker and the CA bundle")
	}
}

// toolchainContext writes the build context of the local Go toolchain image:
// a Dockerfile FROM scratch, busybox, GOROOT without its tests and docs, the
// CA bundle and, as a module proxy, the downloads of every module the worker
// links (and the go.mod files of the whole graph, which module loading reads).
func toolchainContext(t *testing.T, root string) string {
	t.Helper()
	goroot := strings.TrimSpace(run(t, root, "go", "env", "GOROOT"))
	modcache := strings.TrimSpace(run(t, root, "go", "env", "GOMODCACHE"))
	// The modules the worker links (go list downloads any that are missing).
	deps := run(t, root, "go", "list", "-deps", "-f", "{{with .Module}}{{if not .Main}}{{.Path}}@{{.Version}}{{end}}{{end}}", "./cmd/worker")
	need := map[string]bool{}
	for _, m := range strings.Fields(deps) {
		path, version, _ := strings.Cut(m, "@")
		esc := escapeModulePath(path)
		need[filepath.Join(esc, "@v", version+".zip")] = true
	}
	ctx := t.TempDir()
	download := filepath.Join(modcache, "cache", "download")
	copyFiles(t, download, filepath.Join(ctx, "goproxy"), func(rel string) bool {
		return strings.HasSuffix(rel, ".mod") || strings.HasSuffix(rel, ".info") || need[rel]
	})
	copyFiles(t, goroot, filepath.Join(ctx, "go"), func(rel string) bool {
		top, _, _ := strings.Cut(rel, string(filepath.Separator))
		return !strings.HasSuffix(rel, "_test.go") && !slices.Contains([]string{"test", "doc", "api", "misc", "lib"}, top) &&
			!strings.Contains(rel, string(filepath.Separator)+"testdata"+string(filepath.Separator))
	})
	copyFile(t, "/bin/busybox", filepath.Join(ctx, "bin", "busybox"))
	copyFile(t, "/etc/ssl/certs/ca-certificates.crt", filepath.Join(ctx, "certs", "ca-certificates.crt"))
	dockerfile := `FROM scratch
COPY bin/busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
COPY certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY go /usr/local/go
COPY goproxy /goproxy
ENV PATH=/usr/local/go/bin:/bin GOPROXY=file:///goproxy GOSUMDB=off GOTOOLCHAIN=local GOFLAGS=-buildvcs=false HOME=/root GOCACHE=/root/.cache/go-build GOPATH=/go TMPDIR=/tmp
RUN ["/bin/busybox", "mkdir", "-p", "/tmp", "/root"]
`
	if err := os.WriteFile(filepath.Join(ctx, "Dockerfile"), []byte(dockerfile), 0o644); err != nil {
		t.Fatal(err)
	}
	return ctx
}

func run(t *testing.T, dir string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.Bytes())
	}
	return string(out)
}

// escapeModulePath is the module cache's spelling of a path: each upper-case
// letter becomes "!" and its lower case.
func escapeModulePath(p string) string {
	var b strings.Builder
	for _, r := range p {
		if r >= 'A' && r <= 'Z' {
			b.WriteByte('!')
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}

// copyFiles copies the regular files under from that keep(relative path)
// accepts, keeping their modes.
func copyFiles(t *testing.T, from, to string, keep func(rel string) bool) {
	t.Helper()
	err := filepath.WalkDir(from, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, path)
		if d.IsDir() || !d.Type().IsRegular() || !keep(rel) {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(to, rel)), 0o755); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), b, info.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
}

// copyFile copies one file (following links), keeping its mode.
func copyFile(t *testing.T, from, to string) {
	t.Helper()
	info, err := os.Stat(from)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, info.Mode().Perm()); err != nil {
		t.Fatal(err)
	}
}
