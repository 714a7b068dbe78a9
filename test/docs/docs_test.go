// Package docs checks the README and docs/: the README's figures are the
// headline's (bench/headline.md), it stays short enough to start from, its
// links resolve, every shell block names commands and paths that exist,
// and the blocks marked runnable (```sh runnable) run as written.
package docs

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

const root = "../.."

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, path))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// pages are the README and every page under docs/.
func pages(t *testing.T) []string {
	t.Helper()
	md, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	out := []string{"README.md"}
	for _, p := range md {
		out = append(out, strings.TrimPrefix(p, root+"/"))
	}
	return out
}

const begin, end = "<!-- headline:begin -->", "<!-- headline:end -->"

func block(t *testing.T, name, text string) string {
	t.Helper()
	i, j := strings.Index(text, begin), strings.Index(text, end)
	if i < 0 || j < i {
		t.Fatalf("%s has no %s … %s block", name, begin, end)
	}
	return strings.TrimSpace(text[i+len(begin) : j])
}

// figure matches what reads as a measured figure: a ratio (×1.35), a
// price ($15.1), a rate or a CPU time (400 orders/s, 1,739 µs).
var figure = regexp.MustCompile(`×\s?[0-9][0-9.,]*|\$[0-9][0-9.,]*|[0-9][0-9.,]*\s?(?:orders/s|µs|ms\b|units/s|requests per order|AWS requests)`)

func TestREADMEQuotesOnlyTheHeadline(t *testing.T) {
	readme, headline := read(t, "README.md"), read(t, "bench/headline.md")
	quoted, source := block(t, "README.md", readme), block(t, "bench/headline.md", headline)
	if quoted == "" {
		t.Fatal("the README's headline block is empty: run bench/run.sh -only headline")
	}
	if quoted != source {
		t.Fatalf("the README's headline differs from bench/headline.md (run bench/run.sh -only headline, which rewrites both):\nREADME:   %s\nheadline: %s", quoted, source)
	}
	// Outside the quoted block the README states no figure of its own.
	rest := strings.Replace(readme, quoted, "", 1)
	rest = regexp.MustCompile("(?s)```.*?```").ReplaceAllString(rest, "")
	for _, f := range figure.FindAllString(rest, -1) {
		if !strings.Contains(headline, strings.TrimSpace(f)) {
			t.Errorf("the README states %q, which bench/headline.md does not", f)
		}
	}
}

func TestREADMEIsShortAndLinksEveryMovedPage(t *testing.T) {
	readme := read(t, "README.md")
	if n := strings.Count(readme, "\n"); n > 250 {
		t.Errorf("README.md has %d lines; at most 250 (details belong in docs/)", n)
	}
	for _, page := range []string{"docs/api.md", "docs/configuration.md", "docs/deploying.md", "docs/operations.md", "docs/guarantees.md",
		"docs/checks.md", "docs/layout.md", "bench/headline.md"} {
		if !strings.Contains(readme, "]("+page) {
			t.Errorf("README.md does not link %s", page)
		}
	}
}

var link = regexp.MustCompile(`\]\(([^)\s#]+)(?:#[^)\s]*)?\)`)

func TestLinksResolve(t *testing.T) {
	for _, page := range pages(t) {
		text := read(t, page)
		for _, m := range link.FindAllStringSubmatch(text, -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			rel := filepath.Join(filepath.Dir(page), target)
			if _, err := os.Stat(filepath.Join(root, rel)); err != nil {
				t.Errorf("%s links %s, which does not exist", page, target)
			}
		}
	}
}

// shellBlock is one fenced shell block of a page.
type shellBlock struct {
	page     string
	line     int
	runnable bool
	text     string
}

var fence = regexp.MustCompile("(?m)^( *)```(sh|bash|shell)( runnable)?[ \t]*\n((?s:.*?))^ *```")

func shellBlocks(t *testing.T) []shellBlock {
	var out []shellBlock
	for _, page := range pages(t) {
		text := read(t, page)
		for _, m := range fence.FindAllStringSubmatchIndex(text, -1) {
			out = append(out, shellBlock{page: page, line: strings.Count(text[:m[0]], "\n") + 1,
				runnable: m[6] >= 0, text: text[m[8]:m[9]]})
		}
	}
	return out
}

// goPath matches the package paths a go command is given (./cmd/worker,
// ./test/reliability/).
var goPath = regexp.MustCompile(`\bgo (?:run|build|test|vet|install)\b[^\n#|;&]*?\s(\./[A-Za-z0-9_./-]*)`)
var script = regexp.MustCompile(`(?:^|\s)(?:bash\s+)?((?:deploy|test|bench|\.ci)/[A-Za-z0-9_./-]+\.sh|\.ci/run|bench/run\.sh)\b`)

func TestShellBlocksNameWhatExists(t *testing.T) {
	blocks := shellBlocks(t)
	if len(blocks) < 5 {
		t.Fatalf("found only %d shell blocks", len(blocks))
	}
	for _, b := range blocks {
		for _, m := range goPath.FindAllStringSubmatch(b.text, -1) {
			p := strings.TrimSuffix(strings.TrimSuffix(m[1], "..."), "/")
			if _, err := os.Stat(filepath.Join(root, p)); err != nil {
				t.Errorf("%s:%d: %s names %s, which does not exist", b.page, b.line, strings.TrimSpace(m[0]), p)
			}
		}
		for _, m := range script.FindAllStringSubmatch(b.text, -1) {
			if _, err := os.Stat(filepath.Join(root, m[1])); err != nil {
				t.Errorf("%s:%d: names %s, which does not exist", b.page, b.line, m[1])
			}
		}
	}
}

// TestRunnableShellBlocks runs every block marked ```sh runnable with
// bash, from the repository's root, as a reader would paste it.
func TestRunnableShellBlocks(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the documented commands (builds and runs binaries)")
	}
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash is not on PATH: the runnable shell blocks need it")
	}
	var n int
	for _, b := range shellBlocks(t) {
		if !b.runnable {
			continue
		}
		n++
		t.Run(strings.ReplaceAll(b.page, "/", "_")+"_line"+strconv.Itoa(b.line), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, bash, "-euo", "pipefail", "-c", b.text)
			cmd.Dir = root
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%s:%d failed: %v\n%s\n--- output ---\n%s", b.page, b.line, err, b.text, tail(out))
			}
		})
	}
	if n == 0 {
		t.Fatal("no shell block is marked runnable")
	}
}

func tail(b []byte) string {
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}
