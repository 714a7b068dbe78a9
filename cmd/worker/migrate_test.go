package main

import (
	"strings"
	"testing"
	"time"

	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
)

// `worker migrate` reports what it scanned and re-indexed, and a second
// run re-indexes nothing; `--resume` takes only an order id.
func TestMigrateCommandIsIdempotent(t *testing.T) {
	t.Parallel()
	e := newOrdersEnv(t)
	at := time.Now().Add(-time.Hour)
	placed(t, e.st, "mig-1", "mig-customer", at)
	advance(t, e.st, placed(t, e.st, "mig-2", "mig-customer", at), nil, pipeline.StatusReserved, pipeline.StatusPaid, pipeline.StatusShipped)
	out, err := e.run("migrate")
	if err != nil || !strings.Contains(out, "migrate: done: 2 orders scanned, 0 re-indexed") {
		t.Fatalf("migrate on orders this release wrote = %q, %v; want 2 scanned, 0 re-indexed", out, err)
	}
	if _, err := e.run("migrate", "--resume", "not an id"); err == nil || !strings.Contains(err.Error(), "not an order id") {
		t.Fatalf("migrate --resume with a bad cursor = %v; want it named", err)
	}
	out, err = e.run("migrate", "--resume", "mig-1")
	if err != nil || !strings.Contains(out, "migrate: done:") {
		t.Fatalf("migrate --resume mig-1 = %q, %v", out, err)
	}
}
