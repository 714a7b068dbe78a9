package queue

import (
	"testing"

	"go.uber.org/zap"

	"github.com/cloudcommerce/cloudcommerce/internal/logging"
)

// BenchmarkMessageLogger is the per-message logger of a message handled
// without trouble (nothing logged): fields encoded at once (With) against
// on first use (WithLazy).
func BenchmarkMessageLogger(b *testing.B) {
	log, err := logging.New("info")
	if err != nil {
		b.Fatal(err)
	}
	log = log.With(zap.String("stage", "payment"))
	for _, c := range []struct {
		name string
		with func(...zap.Field) *zap.Logger
	}{{"With", log.With}, {"WithLazy", log.WithLazy}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				l := c.with(zap.String("message_id", "0b9d43a6-5e1f-4c1e-9d3e-2f7a8c9b1000"), zap.Int("receive_count", 1))
				if l == nil {
					b.Fatal("no logger")
				}
			}
		})
	}
}
