package e2e

import (
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cloudcommerce/cloudcommerce/internal/dev/testkit"
)

// devstack takes the API key from --api-key or CLOUDCOMMERCE_API_KEY; with
// one, the API and the console refuse requests without it.
func TestDevstackRequiresItsAPIKey(t *testing.T) {
	t.Parallel()
	bin := devstackBinary(t)
	for name, setup := range map[string]func(addr string) ([]string, []string){
		"flag": func(addr string) ([]string, []string) {
			return cleanEnv(), []string{"--memory", "--addr", addr, "--api-key", "flag-key"}
		},
		"environment": func(addr string) ([]string, []string) {
			return append(cleanEnv(), "CLOUDCOMMERCE_API_KEY=flag-key"), []string{"--memory", "--addr", addr}
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			addr := testkit.FreeAddr(t)
			env, args := setup(addr)
			p := testkit.Start(t, bin, env, args...)
			base := "http://" + addr
			get := func(path, auth string) int {
				r, _ := http.NewRequest(http.MethodGet, base+path, nil)
				if auth != "" {
					r.Header.Set("Authorization", auth)
				}
				resp, err := http.DefaultClient.Do(r)
				if err != nil {
					return 0
				}
				resp.Body.Close()
				return resp.StatusCode
			}
			testkit.Eventually(t, "devstack /healthz", 60*time.Second, func() bool { return get("/healthz", "") == 200 })
			for _, c := range []struct {
				path, auth string
				want       int
			}{
				{"/v1/inventory/SKU-WIDGET", "", 401},
				{"/v1/inventory/SKU-WIDGET", "Bearer wrong", 401},
				{"/v1/inventory/SKU-WIDGET", "bearer flag-key", 200},
				{"/console", "", 401},
				{"/console", "Bearer flag-key", 200},
				{"/v1/no-such-route", "", 404},
			} {
				if got := get(c.path, c.auth); got != c.want {
					t.Errorf("GET %s with %q = %d, want %d", c.path, c.auth, got, c.want)
				}
			}
			// The console's sign-in form sets the session cookie.
			noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			resp, err := noRedirect.PostForm(base+"/console/login", url.Values{"api_key": {"flag-key"}})
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusSeeOther || !strings.Contains(resp.Header.Get("Set-Cookie"), "HttpOnly") || !strings.Contains(resp.Header.Get("Set-Cookie"), "SameSite=Strict") {
				t.Errorf("console login = %d, Set-Cookie %q", resp.StatusCode, resp.Header.Get("Set-Cookie"))
			}
			_ = p.Cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.Done():
			case <-time.After(40 * time.Second):
				t.Fatal("devstack did not stop")
			}
		})
	}
}
