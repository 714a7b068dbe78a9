package config

import (
	"os"
	"runtime/debug"
	"testing"
)

// `worker run` collects garbage at GOGC=400 unless GOGC is set.
func TestGCDefaultAppliesOnlyWithoutGOGC(t *testing.T) {
	prev := debug.SetGCPercent(100)
	defer debug.SetGCPercent(prev)

	t.Setenv("GOGC", "")
	ApplyGCDefault(os.Getenv)
	if got := debug.SetGCPercent(100); got != DefaultGCPercent {
		t.Fatalf("without GOGC the GC percent is %d, want %d", got, DefaultGCPercent)
	}
	t.Setenv("GOGC", "100")
	ApplyGCDefault(os.Getenv)
	if got := debug.SetGCPercent(100); got != 100 {
		t.Fatalf("with GOGC=100 the GC percent is %d, want it left at 100", got)
	}
}
