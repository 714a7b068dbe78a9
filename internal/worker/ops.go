package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
)

// Ready returns nil when the worker is receiving on every stage.
func (w *Worker) Ready() error {
	if !w.started.Load() {
		return errors.New("starting")
	}
	if w.draining.Load() {
		return errors.New("draining")
	}
	var errs []error
	for _, st := range pipeline.Stages {
		if err := w.consumers[st].Healthy(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// OpsRoutes registers /metrics, /healthz, /readyz and the operations
// console (/console) on mux.
func (w *Worker) OpsRoutes(mux *http.ServeMux) {
	w.Console.Routes(mux)
	mux.Handle("GET /metrics", promhttp.HandlerFor(w.m.Registry, promhttp.HandlerOpts{Registry: w.m.Registry}))
	mux.HandleFunc("GET /healthz", func(rw http.ResponseWriter, _ *http.Request) {
		writeStatus(rw, http.StatusOK, "ok", nil)
	})
	mux.HandleFunc("GET /readyz", func(rw http.ResponseWriter, _ *http.Request) {
		if err := w.Ready(); err != nil {
			writeStatus(rw, http.StatusServiceUnavailable, "unready", err)
			return
		}
		writeStatus(rw, http.StatusOK, "ready", nil)
	})
	if w.cfg.Pprof {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
}

func writeStatus(rw http.ResponseWriter, code int, status string, err error) {
	body := map[string]string{"status": status}
	if err != nil {
		body["reason"] = err.Error()
	}
	rw.Header().Set("Content-Type", "application/json")
	rw.WriteHeader(code)
	_ = json.NewEncoder(rw).Encode(body)
}

// Serve runs an HTTP server on addr until ctx is done, then shuts it down
// gracefully within grace. ready, if not nil, receives the bound address.
func Serve(ctx context.Context, addr string, h http.Handler, grace time.Duration, ready chan<- string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	if ready != nil {
		ready <- ln.Addr().String()
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve %s: %w", addr, err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shut down %s: %w", addr, err)
	}
	return nil
}
