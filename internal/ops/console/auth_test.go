package console_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/cloudcommerce/cloudcommerce/internal/config"
	"github.com/cloudcommerce/cloudcommerce/internal/dev/emulator"
	"github.com/cloudcommerce/cloudcommerce/internal/dev/testkit"
	"github.com/cloudcommerce/cloudcommerce/internal/metrics"
	"github.com/cloudcommerce/cloudcommerce/internal/ops/console"
	"github.com/cloudcommerce/cloudcommerce/internal/worker"
)

func TestMain(m *testing.M) { emulator.RunTests(m) }

const key = "console-unit-key"

// newConsole serves the console of a worker on its own tables, with one
// SKU in stock whose name must never be shown to a stranger.
func newConsole(t *testing.T, apiKey string) (*httptest.Server, string) {
	t.Helper()
	env := testkit.Provision(t)
	cfg := config.WorkerDefaults()
	cfg.Prefix, cfg.APIKey = env.Prefix, apiKey
	w, err := worker.New(context.Background(), cfg, worker.Deps{AWS: env.AWS, Log: zaptest.NewLogger(t), Metrics: metrics.New()})
	if err != nil {
		t.Fatal(err)
	}
	secret := "SECRET-" + env.Prefix
	if err := w.Store.SetStock(context.Background(), secret, 7); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	w.OpsRoutes(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, secret
}

var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func send(t *testing.T, method, u string, form url.Values, header http.Header) (*http.Response, string) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestConsoleIsLockedByTheAPIKey(t *testing.T) {
	t.Parallel()
	srv, secret := newConsole(t, key)
	page := srv.URL + "/console"

	// A stranger gets the login form and nothing else.
	for _, h := range []http.Header{nil, {"Authorization": {"Bearer wrong"}}, {"Cookie": {console.SessionCookie + "=4102444800.00"}}} {
		resp, body := send(t, "GET", page+"?status=PLACED", nil, h)
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, `id="login-key"`) || strings.Contains(body, secret) {
			t.Fatalf("GET /console with %v = %d, want 401 with the login form and no stock: %s", h, resp.StatusCode, body)
		}
	}
	if resp, _ := send(t, "POST", page+"/redrive", url.Values{"stage": {"inventory"}}, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("redrive without the key = %d, want 401", resp.StatusCode)
	}
	if resp, _ := send(t, "POST", page+"/login", url.Values{"api_key": {"wrong"}}, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("login with a wrong key = %d, want 401", resp.StatusCode)
	}
	if resp, _ := send(t, "POST", page+"/login", url.Values{"api_key": {key}}, http.Header{"Origin": {"https://evil.example"}, "Sec-Fetch-Site": {"cross-site"}}); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-site login = %d, want 403", resp.StatusCode)
	}

	// The Bearer header opens it, whatever the case of the scheme.
	for _, scheme := range []string{"Bearer", "bearer", "BEARER"} {
		resp, body := send(t, "GET", page, nil, http.Header{"Authorization": {scheme + " " + key}})
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, secret) {
			t.Fatalf("GET /console with %s = %d", scheme, resp.StatusCode)
		}
	}

	// The login form sets a session cookie no script and no other site can use.
	resp, _ := send(t, "POST", page+"/login", url.Values{"api_key": {key}}, nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/console" {
		t.Fatalf("login = %d → %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	var session *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == console.SessionCookie {
			session = c
		}
	}
	if session == nil || !session.HttpOnly || session.SameSite != http.SameSiteStrictMode || session.Path != "/console" || strings.Contains(session.Value, key) {
		t.Fatalf("session cookie = %+v (Set-Cookie %q)", session, resp.Header.Values("Set-Cookie"))
	}
	withCookie := http.Header{"Cookie": {session.Name + "=" + session.Value}}
	resp, body := send(t, "GET", page, nil, withCookie)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, secret) || !strings.Contains(body, `id="logout"`) {
		t.Fatalf("GET /console signed in = %d", resp.StatusCode)
	}
	if resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("console headers = %v", resp.Header)
	}
	// A cookie whose expiry was pushed out no longer verifies.
	ts, sig, _ := strings.Cut(session.Value, ".")
	forged := http.Header{"Cookie": {session.Name + "=" + ts + "9." + sig}}
	if resp, _ := send(t, "GET", page, nil, forged); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("forged cookie = %d, want 401", resp.StatusCode)
	}
	// Signed in, the redrive runs (the DLQ is empty: nothing moves).
	if resp, _ := send(t, "POST", page+"/redrive", url.Values{"stage": {"inventory"}}, withCookie); resp.StatusCode != http.StatusSeeOther || !strings.Contains(resp.Header.Get("Location"), "moved=0") {
		t.Fatalf("redrive signed in = %d → %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, _ = send(t, "POST", page+"/logout", url.Values{}, withCookie)
	if resp.StatusCode != http.StatusSeeOther || len(resp.Cookies()) != 1 || resp.Cookies()[0].MaxAge >= 0 {
		t.Fatalf("logout = %d, cookies %v", resp.StatusCode, resp.Cookies())
	}
}

func TestConsoleWithoutAKeyIsOpen(t *testing.T) {
	t.Parallel()
	srv, secret := newConsole(t, "")
	resp, body := send(t, "GET", srv.URL+"/console", nil, nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, secret) || strings.Contains(body, `id="logout"`) {
		t.Fatalf("GET /console without a key configured = %d", resp.StatusCode)
	}
}
