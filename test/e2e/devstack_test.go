package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cloudcommerce/cloudcommerce/internal/dev/testkit"
)

func devstackBinary(t *testing.T) string { return testkit.Binary(t, "../../cmd/devstack") }

// cleanEnv is the environment without this test process's own emulator
// settings, so devstack starts its own.
func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "KUMO_") || strings.HasPrefix(kv, "CLOUDCOMMERCE_") || strings.HasPrefix(kv, "AWS_ENDPOINT_URL=") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

func TestDevstackDemoRunsToCompletion(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(devstackBinary(t), "--demo", "40", "--memory", "--addr", "127.0.0.1:0", "--timeout", "2m")
	cmd.Env = cleanEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("devstack --demo: %v\n%s", err, out)
	}
	for _, want := range []string{"40 orders in", "SHIPPED", "placed→final latency: p50", "AWS requests per order"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "NOT FINAL") {
		t.Fatalf("demo left orders unfinished:\n%s", out)
	}
}

func TestDevstackKeepsStateAcrossRestarts(t *testing.T) {
	t.Parallel()
	bin, dir, addr := devstackBinary(t), t.TempDir(), testkit.FreeAddr(t)
	base := "http://" + addr
	run := func() *testkit.Process {
		return testkit.Start(t, bin, cleanEnv(), "--data-dir", dir, "--addr", addr)
	}
	up := func() {
		testkit.Eventually(t, "devstack /healthz", 60*time.Second, func() bool {
			resp, err := http.Get(base + "/healthz")
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == 200
		})
	}
	stop := func(p *testkit.Process) {
		_ = p.Cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.Done():
			if err := p.Err(); err != nil {
				t.Fatalf("devstack exited with %v", err)
			}
		case <-time.After(40 * time.Second):
			t.Fatal("devstack did not stop")
		}
	}
	req := func(method, path string, body []byte) (int, []byte) {
		r, _ := http.NewRequest(method, base+path, bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	p := run()
	up()
	if code, b := req("PUT", "/v1/inventory/KEEP", []byte(`{"available": 42}`)); code != 200 {
		t.Fatalf("PUT stock = %d %s", code, b)
	}
	body, _ := json.Marshal(testkit.Order("tok_visa", "KEEP"))
	code, b := req("POST", "/v1/orders", body)
	var placed struct {
		OrderID string `json:"order_id"`
	}
	if code != 202 || json.Unmarshal(b, &placed) != nil {
		t.Fatalf("POST = %d %s", code, b)
	}
	shipped := func() bool {
		code, b := req("GET", "/v1/orders/"+placed.OrderID, nil)
		return code == 200 && strings.Contains(string(b), `"status":"SHIPPED"`)
	}
	testkit.Eventually(t, "the order to ship", 60*time.Second, shipped)
	// The notification travels SNS → SQS → the inbox after the order is
	// recorded SHIPPED, so it may arrive a little later.
	testkit.Eventually(t, "the OrderShipped notification", 30*time.Second, func() bool {
		code, b := req("GET", "/v1/notifications?order_id="+placed.OrderID, nil)
		return code == 200 && strings.Contains(string(b), "OrderShipped")
	})
	stop(p)

	p = run()
	up()
	if !shipped() {
		t.Fatal("the order was lost across a restart")
	}
	if code, b := req("GET", "/v1/inventory/KEEP", nil); code != 200 || !strings.Contains(string(b), `"available":41`) {
		t.Fatalf("stock after restart = %d %s, want 41", code, b)
	}
	stop(p)
}
