package batch_test

import (
	"context"
	"runtime"
	"sync/atomic"
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
