package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"testing"

	"github.com/cloudcommerce/cloudcommerce/internal/config"
	"github.com/cloudcommerce/cloudcommerce/internal/dev/testkit"
)

func noEnv(string) string { return "" }

// runArgs runs the command line in process and returns its output.
func runArgs(args ...string) (stdout, stderr string, err error) {
	var o, e bytes.Buffer
	err = run(context.Background(), args, env{stdout: &o, stderr: &e, getenv: noEnv})
	return o.String(), e.String(), err
}

// The worker's commands (the operations guide lists them); the tree may
// grow, never lose one.
var wantCommands = []string{"run", "provision", "healthcheck", "dlq list", "dlq redrive", "orders show", "orders list", "version"}

// leaves walks the tree: every runnable command's full name and its flags.
func leaves(c *command, prefix string, visit func(name string, flags []string)) {
	for _, s := range c.subs {
		name := strings.TrimSpace(prefix + " " + s.name)
		if s.setup == nil {
			leaves(s, name, visit)
			continue
		}
		fs := s.flags(name)
		s.setup(fs)
		var flags []string
		fs.VisitAll(func(f *flag.Flag) { flags = append(flags, "--"+f.Name) })
		visit(name, flags)
	}
}

func TestHelpListsEveryCommandAndFlag(t *testing.T) {
	t.Parallel()
	out, _, err := runArgs("help")
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	leaves(root(), "", func(name string, flags []string) {
		listed[name] = true
		if !strings.Contains(out, "\n  "+name+" ") {
			t.Errorf("help does not list %q:\n%s", name, out)
		}
		for _, f := range flags {
			if !strings.Contains(out, f+" ") {
				t.Errorf("help does not list %s of %s", f, name)
			}
		}
	})
	for _, c := range wantCommands {
		if !listed[c] {
			t.Errorf("the tree has no command %q", c)
		}
	}
	for _, f := range []string{"--stage", "--max", "--json"} {
		if !strings.Contains(out, f) {
			t.Errorf("help does not list %s", f)
		}
	}
	for _, v := range config.WorkerEnv {
		if !strings.Contains(out, v.Name) {
			t.Errorf("help does not list %s", v.Name)
		}
	}
	if !strings.Contains(out, "usage: worker") || !strings.Contains(out, "exit status") {
		t.Errorf("help has no usage line or exit statuses:\n%s", out)
	}
}

// Every command's own help lists its flags and exits 0, in process.
func TestEveryCommandHasHelp(t *testing.T) {
	t.Parallel()
	leaves(root(), "", func(name string, flags []string) {
		for _, args := range [][]string{append(strings.Fields(name), "--help"), append(strings.Fields(name), "-h"), append([]string{"help"}, strings.Fields(name)...)} {
			out, _, err := runArgs(args...)
			if err != nil {
				t.Errorf("worker %s: %v", strings.Join(args, " "), err)
				continue
			}
			if !strings.Contains(out, "usage: worker "+name) {
				t.Errorf("worker %s printed no usage line for %s:\n%s", strings.Join(args, " "), name, out)
			}
			for _, f := range flags {
				if !strings.Contains(out, f+" ") {
					t.Errorf("worker %s does not list %s:\n%s", strings.Join(args, " "), f, out)
				}
			}
		}
	})
}

func TestCommandLineMistakesAreUsageErrors(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"nope"}, `unknown command "nope"`},
		{[]string{"dlq"}, "needs a command: list, redrive"},
		{[]string{"dlq", "peek"}, `unknown command "dlq peek"`},
		{[]string{"dlq", "list", "--bogus"}, "-bogus"},
		{[]string{"dlq", "list", "--max", "many"}, `invalid value "many" for flag -max`},
		{[]string{"dlq", "list", "--stage", "billing"}, "inventory, payment or shipping"},
		{[]string{"dlq", "redrive", "--stage", "payment", "--max", "-1"}, "must not be negative"},
		{[]string{"version", "extra"}, `unexpected argument "extra"`},
		{[]string{"help", "nope"}, `unknown command "nope"`},
	} {
		_, _, err := runArgs(c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("worker %s: got %v, want an error containing %q", strings.Join(c.args, " "), err, c.want)
			continue
		}
		if got := exitStatus(err); got != 2 {
			t.Errorf("worker %s: exit status %d, want 2", strings.Join(c.args, " "), got)
		}
	}
	if got := exitStatus(errors.New("the endpoint refused")); got != 1 {
		t.Errorf("a failure that is not a usage error exits %d, want 1", got)
	}
}

func TestPrintVersionShowsModuleCommitAndGo(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	printVersion(&b, &debug.BuildInfo{GoVersion: "go1.99.1", Main: debug.Module{Path: "github.com/cloudcommerce/cloudcommerce", Version: "v1.2.3"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "0123abcd"}, {Key: "vcs.time", Value: "2026-11-29T12:00:00Z"}, {Key: "vcs.modified", Value: "true"}}})
	for _, want := range []string{"github.com/cloudcommerce/cloudcommerce v1.2.3", "0123abcd (2026-11-29T12:00:00Z, modified)", "go1.99.1"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("version output lacks %q:\n%s", want, b.String())
		}
	}
	b.Reset()
	printVersion(&b, &debug.BuildInfo{GoVersion: "go1.99.1", Main: debug.Module{Path: "m", Version: "(devel)"}})
	if !strings.Contains(b.String(), "commit  unknown") {
		t.Errorf("a build without VCS stamping should say the commit is unknown:\n%s", b.String())
	}
}

// The built binary: exit statuses as documented (0 help and version, 2 a
// command line it does not understand, 1 a failure), and version prints
// what the build recorded.
func TestBinaryExitStatuses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	t.Parallel()
	bin := testkit.Binary(t, ".")
	status := func(err error) int {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	}
	for _, c := range []struct {
		args []string
		want int
		out  string
	}{
		{[]string{"help"}, 0, "dlq redrive"},
		{[]string{"--help"}, 0, "dlq list"},
		{[]string{"dlq", "list", "--help"}, 0, "--stage"},
		{[]string{"dlq", "redrive", "--help"}, 0, "--max"},
		{[]string{"dlq", "--help"}, 0, "redrive"},
		{[]string{"version", "--help"}, 0, "usage: worker version"},
		{[]string{"provision", "--help"}, 0, "usage: worker provision"},
		{[]string{"version"}, 0, runtime.Version()},
		{[]string{"nope"}, 2, `unknown command "nope"`},
		{[]string{"dlq", "list", "--bogus"}, 2, "-bogus"},
		{[]string{"dlq"}, 2, "list, redrive"},
		// Nothing listens on the ops address: the health check fails.
		{[]string{"healthcheck"}, 1, "unhealthy"},
	} {
		cmd := exec.Command(bin, c.args...)
		cmd.Env = []string{"CLOUDCOMMERCE_OPS_ADDR=" + testkit.FreeAddr(t)}
		out, err := cmd.CombinedOutput()
		if got := status(err); got != c.want || !strings.Contains(string(out), c.out) {
			t.Errorf("worker %s: exit %d, want %d with %q in:\n%s", strings.Join(c.args, " "), got, c.want, c.out, out)
		}
	}

	info, err := exec.Command("go", "version", "-m", bin).CombinedOutput()
	if err != nil {
		t.Fatalf("go version -m: %v\n%s", err, info)
	}
	revision := "unknown"
	for _, line := range strings.Split(string(info), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "build" && strings.HasPrefix(f[1], "vcs.revision=") {
			revision = strings.TrimPrefix(f[1], "vcs.revision=")
		}
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"module  github.com/cloudcommerce/cloudcommerce", "commit  " + revision, "go      " + runtime.Version()} {
		if !strings.Contains(string(out), want) {
			t.Errorf("worker version lacks %q:\n%s", want, out)
		}
	}
}

// The operations guide's command list names commands and flags the tree
// has, and every command of the tree, so it cannot fall behind.
func TestOperationsGuideListsTheCommandTree(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "## The worker's commands")
	if !ok {
		t.Fatal("docs/operations.md has no section \"The worker's commands\"")
	}
	_, block, _ := strings.Cut(section, "```\n")
	block, _, _ = strings.Cut(block, "```")
	flagsOf := map[string][]string{}
	leaves(root(), "", func(name string, flags []string) { flagsOf[name] = flags })
	documented := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(block), "\n") {
		words := strings.Fields(line)
		if len(words) < 2 || words[0] != "worker" {
			t.Errorf("docs/operations.md: command line %q does not start with worker", line)
			continue
		}
		// The longest command path the line starts with.
		var name string
		for i := 2; i <= len(words); i++ {
			if _, ok := flagsOf[strings.Join(words[1:i], " ")]; ok {
				name = strings.Join(words[1:i], " ")
			}
		}
		if name == "" {
			if words[1] != "help" {
				t.Errorf("docs/operations.md lists %q, which is not a command of the tree", line)
			}
			continue
		}
		documented[name] = true
		for _, w := range words {
			w = strings.Trim(w, "[]")
			if strings.HasPrefix(w, "--") && !slices.Contains(flagsOf[name], w) {
				t.Errorf("docs/operations.md gives `worker %s` the flag %s, which it does not have", name, w)
			}
		}
	}
	for name := range flagsOf {
		if !documented[name] {
			t.Errorf("docs/operations.md's command list lacks `worker %s`", name)
		}
	}
}
