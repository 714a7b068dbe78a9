package metrics_test

import (
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/cloudcommerce/cloudcommerce/internal/metrics"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
)

// touched returns the metrics with a series in every vector, as a running
// worker has them: each stage, outcome and reason the dashboards and alerts
// select on, the in-flight gauge of each stage, and one series of every
// other vector (so that a metric added later is linted too).
func touched(t *testing.T) *metrics.Metrics {
	t.Helper()
	m := metrics.New()
	for _, st := range pipeline.Stages {
		s := string(st)
		m.Received.WithLabelValues(s).Inc()
		for _, out := range []string{"ok", "rejected", "duplicate", "conflict", "retried", "dead_lettered"} {
			m.Handled.WithLabelValues(s, out).Inc()
		}
		m.HandlerDuration.WithLabelValues(s).Observe(0.02)
		m.PoolSize.WithLabelValues(s).Set(16)
		m.Panics.WithLabelValues(s).Add(0)
		m.DeadLettered.WithLabelValues(s, pipeline.ReasonMalformed).Inc()
		m.Extended.WithLabelValues(s).Add(0)
		m.AckFailures.WithLabelValues(s, "delete").Add(0)
		for _, q := range []string{"main", "dlq"} {
			for _, state := range []string{"visible", "in_flight", "delayed"} {
				m.QueueMessages.WithLabelValues(s, q, state).Set(0)
			}
		}
		m.QueueOldest.WithLabelValues(s).Set(1.5)
		m.InFlight(st, func() float64 { return 0 })
	}
	for _, st := range pipeline.AllStatuses {
		if st.Final() {
			m.OrderLatency.WithLabelValues(string(st)).Observe((1500 * time.Millisecond).Seconds())
		}
	}
	m.Observer().Transitioned(pipeline.StatusPlaced, pipeline.StatusReserved)
	m.AWSRequests.WithLabelValues("SQS", "ReceiveMessage", "ok").Inc()
	m.AWSRequests.WithLabelValues("DynamoDB", "TransactWriteItems", "ThrottlingException").Inc()
	m.AWSConnections.WithLabelValues("SQS").Inc()
	for _, k := range []string{"receive", "delete", "events", "notifications", "visibility"} {
		m.BatchSize.WithLabelValues(k).Observe(3)
	}
	m.Republished.WithLabelValues(string(pipeline.StatusPlaced)).Add(0)
	m.Intake.WithLabelValues("place_order", "202").Inc()
	m.Ready.Set(1)
	for _, c := range vectors(m) {
		touchVec(c)
	}
	return m
}

// touchVec gives a vector one series, whatever its labels: it tries label
// value lists of growing length until the vector accepts one.
func touchVec(c prometheus.Collector) {
	for n := 0; n <= 8; n++ {
		vals := make([]string, n)
		for i := range vals {
			vals[i] = "x"
		}
		var err error
		switch v := c.(type) {
		case *prometheus.CounterVec:
			_, err = v.GetMetricWithLabelValues(vals...)
		case *prometheus.GaugeVec:
			_, err = v.GetMetricWithLabelValues(vals...)
		case *prometheus.HistogramVec:
			var o prometheus.Observer
			if o, err = v.GetMetricWithLabelValues(vals...); err == nil {
				o.Observe(1)
			}
		case *prometheus.SummaryVec:
			var o prometheus.Observer
			if o, err = v.GetMetricWithLabelValues(vals...); err == nil {
				o.Observe(1)
			}
		default:
			return
		}
		if err == nil {
			return
		}
	}
}

// vectors returns every collector field of m (each metric it defines).
func vectors(m *metrics.Metrics) map[string]prometheus.Collector {
	out := map[string]prometheus.Collector{}
	v := reflect.ValueOf(m).Elem()
	for i := 0; i < v.NumField(); i++ {
		if !v.Type().Field(i).IsExported() {
			continue // a cache of children, not a metric
		}
		f := v.Field(i)
		if c, ok := f.Interface().(prometheus.Collector); ok && v.Type().Field(i).Name != "Registry" && !f.IsNil() {
			out[v.Type().Field(i).Name] = c
		}
	}
	return out
}

func TestEveryMetricPassesLint(t *testing.T) {
	t.Parallel()
	m := touched(t)
	fields := vectors(m)
	if len(fields) < 17 {
		t.Fatalf("found %d metric fields by reflection; the struct changed shape", len(fields))
	}
	for name, c := range fields {
		if testutil.CollectAndCount(c) == 0 {
			t.Errorf("%s collected no series after being touched", name)
			continue
		}
		problems, err := testutil.CollectAndLint(c)
		if err != nil {
			t.Errorf("%s: %v", name, err)
		}
		for _, p := range problems {
			t.Errorf("%s: %s: %s", name, p.Metric, p.Text)
		}
	}
	// The in-flight gauges are registered as functions, on the registry only.
	problems, err := testutil.GatherAndLint(m.Registry, "cloudcommerce_stage_in_flight_messages")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}

func TestNamesFollowTheConvention(t *testing.T) {
	t.Parallel()
	mfs, err := touched(t).Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	subsystems := map[string]bool{"stage": true, "order": true, "aws": true, "queue": true, "sweep": true, "intake": true, "worker": true, "deliveries": true}
	for _, mf := range mfs {
		name := mf.GetName()
		if strings.HasPrefix(name, "go_") || strings.HasPrefix(name, "process_") {
			continue
		}
		parts := strings.SplitN(name, "_", 3)
		if len(parts) < 3 || parts[0] != "cloudcommerce" || !subsystems[parts[1]] {
			t.Errorf("%s does not follow cloudcommerce_<subsystem>_<name>_<unit>", name)
		}
		if mf.GetHelp() == "" {
			t.Errorf("%s has no help text", name)
		}
		if mf.GetType() == dto.MetricType_HISTOGRAM && !strings.HasSuffix(name, "_seconds") && !strings.HasSuffix(name, "_entries") {
			t.Errorf("histogram %s names no unit", name)
		}
	}
}

// DashboardMetrics is what deploy/grafana/dashboards and
// deploy/prometheus/rules rely on (test/observability checks every query
// there against the registry; this list is the contract in one place).
var DashboardMetrics = map[string]dto.MetricType{
	"cloudcommerce_stage_messages_received_total":     dto.MetricType_COUNTER,
	"cloudcommerce_stage_messages_handled_total":      dto.MetricType_COUNTER,
	"cloudcommerce_stage_handler_duration_seconds":    dto.MetricType_HISTOGRAM,
	"cloudcommerce_stage_in_flight_messages":          dto.MetricType_GAUGE,
	"cloudcommerce_stage_pool_size":                   dto.MetricType_GAUGE,
	"cloudcommerce_stage_panics_total":                dto.MetricType_COUNTER,
	"cloudcommerce_stage_dead_lettered_total":         dto.MetricType_COUNTER,
	"cloudcommerce_deliveries_deferred_total":         dto.MetricType_COUNTER,
	"cloudcommerce_stage_ack_failures_total":          dto.MetricType_COUNTER,
	"cloudcommerce_order_latency_seconds":             dto.MetricType_HISTOGRAM,
	"cloudcommerce_order_transitions_total":           dto.MetricType_COUNTER,
	"cloudcommerce_aws_requests_total":                dto.MetricType_COUNTER,
	"cloudcommerce_aws_batch_size_entries":            dto.MetricType_HISTOGRAM,
	"cloudcommerce_queue_messages":                    dto.MetricType_GAUGE,
	"cloudcommerce_queue_oldest_message_age_seconds":  dto.MetricType_GAUGE,
	"cloudcommerce_intake_requests_total":             dto.MetricType_COUNTER,
	"cloudcommerce_worker_ready":                      dto.MetricType_GAUGE,
	"cloudcommerce_sweep_republished_total":           dto.MetricType_COUNTER,
	"cloudcommerce_stage_visibility_extensions_total": dto.MetricType_COUNTER,
}

func TestTheDashboardsMetricsExist(t *testing.T) {
	t.Parallel()
	mfs, err := touched(t).Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		got[mf.GetName()] = mf
	}
	var missing []string
	for name, typ := range DashboardMetrics {
		mf, ok := got[name]
		switch {
		case !ok:
			missing = append(missing, name)
		case mf.GetType() != typ:
			t.Errorf("%s is a %s, the dashboards treat it as a %s", name, mf.GetType(), typ)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("metrics the dashboards rely on are not exported: %s", strings.Join(missing, ", "))
	}
	// The labels the queries group and select by.
	labels := map[string][]string{
		"cloudcommerce_stage_messages_handled_total": {"stage", "outcome"},
		"cloudcommerce_queue_messages":               {"stage", "queue", "state"},
		"cloudcommerce_aws_requests_total":           {"service", "operation", "outcome"},
		"cloudcommerce_order_latency_seconds":        {"status"},
		"cloudcommerce_stage_in_flight_messages":     {"stage"},
	}
	for name, want := range labels {
		mf := got[name]
		if mf == nil || len(mf.GetMetric()) == 0 {
			continue
		}
		have := map[string]bool{}
		for _, l := range mf.GetMetric()[0].GetLabel() {
			have[l.GetName()] = true
		}
		for _, l := range want {
			if !have[l] {
				t.Errorf("%s has no %q label", name, l)
			}
		}
	}
}

func TestChildrenAreMadeOnceAndCountTheirVector(t *testing.T) {
	t.Parallel()
	m := metrics.New()
	made := 0
	c := metrics.NewChildren(func(k [2]string) prometheus.Counter { made++; return m.Handled.WithLabelValues(k[0], k[1]) })
	for range 3 {
		c.Get([2]string{"payment", "ok"}).Inc()
	}
	c.Get([2]string{"payment", "rejected"}).Inc()
	if made != 2 {
		t.Errorf("%d children made for 2 keys", made)
	}
	if got := testutil.ToFloat64(m.Handled.WithLabelValues("payment", "ok")); got != 3 {
		t.Errorf("payment/ok counted %v, want 3", got)
	}
	if got := testutil.ToFloat64(m.HandledCounter("payment", "rejected")); got != 1 {
		t.Errorf("HandledCounter(payment, rejected) reads %v, want the 1 counted through the vector", got)
	}
}
