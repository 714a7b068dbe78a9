package worker_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/cloudcommerce/cloudcommerce/internal/config"
)

// The profiler is on the ops routes only when CLOUDCOMMERCE_PPROF asks for
// it, and reads it from the environment by that name.
func TestProfilerIsServedOnlyWhenAskedFor(t *testing.T) {
	t.Parallel()
	cfg, err := config.WorkerFromEnv(func(k string) string {
		if k == "CLOUDCOMMERCE_PPROF" {
			return "true"
		}
		return ""
	})
	if err != nil || !cfg.Pprof {
		t.Fatalf("CLOUDCOMMERCE_PPROF=true: Pprof = %v, %v", cfg.Pprof, err)
	}
	for _, on := range []bool{false, true} {
		f := setup(t, func(c *config.Worker) { c.Pprof = on })
		mux := http.NewServeMux()
		f.w.OpsRoutes(mux)
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/debug/pprof/", nil))
		want := http.StatusNotFound
		if on {
			want = http.StatusOK
		}
		if rec.Code != want {
			t.Errorf("Pprof %v: GET /debug/pprof/ = %d, want %d", on, rec.Code, want)
		}
	}
}
