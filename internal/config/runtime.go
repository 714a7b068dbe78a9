package config

import "runtime/debug"

// DefaultGCPercent is the worker's garbage-collection target when GOGC is
// not set: the heap may grow to five times the live heap between
// collections instead of twice. The live heap is small (a few MB), so this
// costs tens of MB of memory and saves most of the collector's CPU, which
// under load was about a tenth of the worker's (see BENCHMARKS.md).
const DefaultGCPercent = 400

// ApplyGCDefault sets the GC target to DefaultGCPercent unless GOGC is
// set, in which case the runtime has already applied it.
func ApplyGCDefault(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(DefaultGCPercent)
	}
}
