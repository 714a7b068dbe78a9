// Package health asks a running worker whether it is healthy, for the
// container health check (`worker healthcheck`), where there is no curl.
package health

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"
)

// Check asks GET /healthz of the worker whose ops endpoints listen on
// addr (host:port; an empty or wildcard host means this machine) and
// returns nil when it answers 200 within 3 seconds.
func Check(ctx context.Context, addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("ops address %q: %w", addr, err)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(host, port)+"/healthz", nil)
	if err != nil {
		return fmt.Errorf("build the /healthz request: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("unhealthy: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("unhealthy: /healthz answered %s", resp.Status)
	}
	return nil
}
