package batch_test

import (
	"context"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cloudcommerce/cloudcommerce/internal/batch"
)

// BenchmarkBatcher measures the batcher's own cost per item, with a flush
// that does nothing, from many goroutines at once (as concurrent stage
// handlers submit deletes and events). It reports the mean batch size
// reached: with a linger, concurrent callers share requests.
func BenchmarkBatcher(b *testing.B) {
	for _, c := range []struct {
		name    string
		cfg     batch.Config
		callers int
	}{
		{"unbatched", batch.Config{Max: 1}, 16},
		{"max10-nolinger", batch.Config{Max: 10}, 16},
		{"max10-linger1ms", batch.Config{Max: 10, Linger: time.Millisecond}, 16},
		{"max10-linger1ms-64callers", batch.Config{Max: 10, Linger: time.Millisecond}, 64},
	} {
		b.Run(c.name, func(b *testing.B) {
			var batches, items atomic.Int64
			bt := batch.New(c.cfg, func(_ context.Context, in []int) []error {
				batches.Add(1)
				items.Add(int64(len(in)))
				return nil
			})
			// RunParallel starts parallelism × GOMAXPROCS goroutines.
			b.SetParallelism(max(1, c.callers/runtime.GOMAXPROCS(0)))
			b.ReportAllocs()
			ctx := context.Background()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := bt.Do(ctx, 1); err != nil {
						b.Error(err)
						return
					}
				}
			})
			bt.Close()
			if n := batches.Load(); n > 0 {
				b.ReportMetric(float64(items.Load())/float64(n), "items/batch")
			}
		})
	}
}

//go:noinline
func deep(n int) byte {
	var frame [256]byte
	frame[n%256] = byte(n)
	if n == 0 {
		return frame[0]
	}
	return deep(n-1) + frame[n%256]
}

// BenchmarkBatcherDeepFlush is one batch after another, each flushed by
// a call about as deep as an AWS SDK call (about 64 KB of stack): the
// cost of the goroutine that runs the flush, its stack growth included.
func BenchmarkBatcherDeepFlush(b *testing.B) {
	var sink atomic.Int64
	bt := batch.New(batch.Config{Max: 1}, func(_ context.Context, in []int) []error {
		sink.Add(int64(deep(250)))
		return nil
	})
	defer bt.Close()
	ctx := context.Background()
	b.ReportAllocs()
	cpu0 := cpuTime(b)
	for b.Loop() {
		if err := bt.Do(ctx, 1); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64((cpuTime(b)-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
}

// cpuTime is the process's user + system CPU time (getrusage), which other
// processes on a shared machine do not inflate as they do wall time.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
