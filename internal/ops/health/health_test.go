package health_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cloudcommerce/cloudcommerce/internal/ops/health"
)

func TestCheckFollowsTheHealthzStatus(t *testing.T) {
	t.Parallel()
	var status atomic.Int32
	status.Store(http.StatusOK)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(int(status.Load()))
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	if err := health.Check(context.Background(), addr); err != nil {
		t.Fatalf("healthy worker: %v", err)
	}
	// A wildcard host, as in CLOUDCOMMERCE_OPS_ADDR=:PORT, means this machine.
	port := addr[strings.LastIndex(addr, ":"):]
	if err := health.Check(context.Background(), port); err != nil {
		t.Fatalf("healthy worker on %s: %v", port, err)
	}
	status.Store(http.StatusServiceUnavailable)
	if err := health.Check(context.Background(), addr); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("unhealthy worker: got %v, want an error naming 503", err)
	}
	if err := health.Check(context.Background(), "no-port"); err == nil {
		t.Fatal("an address without a port was accepted")
	}
}
