package reliability

import (
	"strings"
	"testing"
)

// sumMetric reads the exposition as Prometheus does: by family, label by
// label, not by text prefix.
func TestSumMetricReadsFamiliesAndLabels(t *testing.T) {
	text := `# HELP cloudcommerce_order_transitions_total Order status transitions.
# TYPE cloudcommerce_order_transitions_total counter
cloudcommerce_order_transitions_total{from="PAID",to="SHIPPED"} 3
cloudcommerce_order_transitions_total{from="RESERVED",to="SHIPPED"} 2
cloudcommerce_order_transitions_total{from="NEW",to="RESERVED"} 7
# HELP cloudcommerce_order_transitions_total_extra A family whose name extends the other's.
# TYPE cloudcommerce_order_transitions_total_extra counter
cloudcommerce_order_transitions_total_extra{to="SHIPPED"} 100
# HELP cloudcommerce_stage_in_flight_messages Messages being handled.
# TYPE cloudcommerce_stage_in_flight_messages gauge
cloudcommerce_stage_in_flight_messages{stage="shipping",note="a \"quoted\" to=\"SHIPPED\""} 4
`
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"cloudcommerce_order_transitions_total", []string{"to", "SHIPPED"}, 5},
		{"cloudcommerce_order_transitions_total", nil, 12},
		{"cloudcommerce_order_transitions_total", []string{"to", "SHIPPED", "from", "PAID"}, 3},
		{"cloudcommerce_stage_in_flight_messages", []string{"stage", "shipping"}, 4},
		{"cloudcommerce_stage_in_flight_messages", []string{"to", "SHIPPED"}, 0},
		{"cloudcommerce_missing_total", nil, 0},
	} {
		if got := sumMetric(text, tc.name, tc.labels...); got != tc.want {
			t.Errorf("sumMetric(%s, %v) = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(string), "parse /metrics") {
			t.Errorf("a broken exposition: recovered %v, want a parse panic", r)
		}
	}()
	sumMetric("cloudcommerce_x{stage=\"a\" 1\n", "cloudcommerce_x")
}
