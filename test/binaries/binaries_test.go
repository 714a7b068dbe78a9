// Package binaries checks what the production binaries are made of:
// nothing of the development tooling (internal/dev: devstack, the emulator
// host, the load generator, the test kit) and nothing of the emulator is
// linked into cmd/worker or cmd/lambda.
package binaries

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/cloudcommerce/cloudcommerce"

// banned are import-path prefixes no production binary may contain.
var banned = []string{module + "/internal/dev/", module + "/internal/dev", "github.com/sivchari/kumo"}

func goTool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH")
	}
	return p
}

func bannedIn(path string) bool {
	for _, b := range banned {
		if path == strings.TrimSuffix(b, "/") || strings.HasPrefix(path, strings.TrimSuffix(b, "/")+"/") {
			return true
		}
	}
	return false
}

func TestProductionBinariesLinkNoDevelopmentTooling(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binaries")
	}
	t.Parallel()
	for _, c := range []struct {
		pkg  string
		tags string
		// want is a package each must link, so an empty list cannot pass.
		want string
	}{
		{"./cmd/worker", "", module + "/internal/queue"},
		{"./cmd/lambda", "lambda.norpc", module + "/internal/lambda"},
	} {
		t.Run(filepath.Base(c.pkg), func(t *testing.T) {
			t.Parallel()
			root, err := filepath.Abs("../..")
			if err != nil {
				t.Fatal(err)
			}
			args := []string{"list", "-deps"}
			if c.tags != "" {
				args = append(args, "-tags", c.tags)
			}
			list := exec.Command(goTool(t), append(args, c.pkg)...)
			list.Dir = root
			out, err := list.Output()
			if err != nil {
				t.Fatalf("go list -deps %s: %v", c.pkg, err)
			}
			pkgs := strings.Fields(string(out))
			found := false
			for _, p := range pkgs {
				found = found || p == c.want
				if bannedIn(p) {
					t.Errorf("%s links %s", c.pkg, p)
				}
			}
			if !found {
				t.Fatalf("%s does not list %s among its %d packages: the check reads the wrong list", c.pkg, c.want, len(pkgs))
			}

			// The built binary's module list says the same.
			bin := filepath.Join(t.TempDir(), "bin")
			build := exec.Command(goTool(t), "build", "-trimpath", "-o", bin)
			if c.tags != "" {
				build.Args = append(build.Args, "-tags", c.tags)
			}
			build.Args = append(build.Args, c.pkg)
			build.Dir = root
			if b, err := build.CombinedOutput(); err != nil {
				t.Fatalf("go build %s: %v\n%s", c.pkg, err, b)
			}
			info, err := exec.Command(goTool(t), "version", "-m", bin).Output()
			if err != nil {
				t.Fatalf("go version -m: %v", err)
			}
			if !bytes.Contains(info, []byte("\tpath\t"+module+"/cmd/")) || !bytes.Contains(info, []byte("github.com/aws/aws-sdk-go-v2")) {
				t.Fatalf("go version -m shows no build info of %s:\n%s", c.pkg, info)
			}
			for _, line := range strings.Split(string(info), "\n") {
				if f := strings.Fields(line); len(f) >= 2 && (f[0] == "dep" || f[0] == "=>") && bannedIn(f[1]) {
					t.Errorf("%s carries module %s", c.pkg, f[1])
				}
			}
		})
	}
}
