package main

import (
	"runtime/debug"
	"testing"
)

// `worker run` collects garbage at GOGC=400 unless GOGC is set.
func TestGCDefaultAppliesOnlyWithoutGOGC(t *testing.T) {
	prev := debug.SetGCPercent(100)
	defer debug.SetGCPercent(prev)

	t.Setenv("GOGC", "")
	gcDefault()
	if got := debug.SetGCPercent(100); got != defaultGCPercent {
		t.Fatalf("without GOGC the GC percent is %d, want %d", got, defaultGCPercent)
	}
	t.Setenv("GOGC", "100")
	gcDefault()
	if got := debug.SetGCPercent(100); got != 100 {
		t.Fatalf("with GOGC=100 the GC percent is %d, want it left at 100", got)
	}
}
