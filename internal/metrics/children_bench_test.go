package metrics_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cloudcommerce/cloudcommerce/internal/metrics"
)

// BenchmarkAWSRequestCounter is the lookup made for every AWS call (three
// labels): the vector's WithLabelValues against a Children cache.
func BenchmarkAWSRequestCounter(b *testing.B) {
	m := metrics.New()
	b.Run("WithLabelValues", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			m.AWSRequests.WithLabelValues("DynamoDB", "PutItem", "ok").Inc()
		}
	})
	b.Run("Children", func(b *testing.B) {
		type key struct{ svc, op, outcome string }
		c := metrics.NewChildren(func(k key) prometheus.Counter { return m.AWSRequests.WithLabelValues(k.svc, k.op, k.outcome) })
		b.ReportAllocs()
		for b.Loop() {
			c.Get(key{"DynamoDB", "PutItem", "ok"}).Inc()
		}
	})
}
