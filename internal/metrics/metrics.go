// Package metrics defines every Prometheus metric of CloudCommerce on a
// registry of its own (never the global one). Names follow
// cloudcommerce_<subsystem>_<name>_<unit>.
package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
)

const ns = "cloudcommerce"

// Metrics holds the collectors. Safe for concurrent use.
type Metrics struct {
	Registry *prometheus.Registry

	Received        *prometheus.CounterVec   // stage
	Handled         *prometheus.CounterVec   // stage, outcome
	HandlerDuration *prometheus.HistogramVec // stage
	PoolSize        *prometheus.GaugeVec     // stage
	Panics          *prometheus.CounterVec   // stage
	DeadLettered    *prometheus.CounterVec   // stage, reason
	Deferred        *prometheus.CounterVec   // stage, reason
	Extended        *prometheus.CounterVec   // stage
	AckFailures     *prometheus.CounterVec   // stage, op

	OrderLatency *prometheus.HistogramVec // status
	Transitions  *prometheus.CounterVec   // from, to

	AWSRequests *prometheus.CounterVec // service, operation, outcome
	// AWSContention counts the requests that lost to contention (a failed
	// condition, a transaction conflict): expected under a flash sale and
	// resolved by the pipeline, so apart from errors.
	AWSContention *prometheus.CounterVec   // service, operation, reason
	BatchSize     *prometheus.HistogramVec // kind

	// AWSConnections counts connections opened to AWS endpoints, by
	// service: flat under steady load when connections are reused.
	AWSConnections *prometheus.CounterVec // service

	QueueMessages *prometheus.GaugeVec // stage, queue, state
	QueueOldest   *prometheus.GaugeVec // stage

	Republished *prometheus.CounterVec // status
	Intake      *prometheus.CounterVec // code
	Ready       prometheus.Gauge

	handled *Children[[2]string, prometheus.Counter]
}

// HandledCounter is Handled's child for stage and outcome, cached: it is
// counted for every message.
func (m *Metrics) HandledCounter(stage, outcome string) prometheus.Counter {
	return m.handled.Get([2]string{stage, outcome})
}

// New registers every metric on a new registry, with the Go runtime and
// process collectors, and creates every known series at 0 (series.go).
func New() *Metrics {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := &Metrics{Registry: r}
	m.handled = NewChildren(func(k [2]string) prometheus.Counter { return m.Handled.WithLabelValues(k[0], k[1]) })
	f := func(c prometheus.Collector) { r.MustRegister(c) }

	m.Received = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: "stage", Name: "messages_received_total",
		Help: "Messages received from a stage queue."}, []string{"stage"})
	m.Handled = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: "stage", Name: "messages_handled_total",
		Help: "Messages handled by a stage, by outcome (ok, rejected, duplicate, conflict, retried, deferred, dead_lettered)."}, []string{"stage", "outcome"})
	m.HandlerDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: "stage", Name: "handler_duration_seconds",
		Help: "Time a stage handler took per message.", Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}}, []string{"stage"})
	m.PoolSize = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: "stage", Name: "pool_size",
		Help: "Configured concurrent handlers per stage."}, []string{"stage"})
	m.Panics = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: "stage", Name: "panics_total",
		Help: "Handler panics recovered (the message is retried)."}, []string{"stage"})
	m.DeadLettered = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: "stage", Name: "dead_lettered_total",
		Help: "Messages the worker moved to the DLQ at once, by reason."}, []string{"stage", "reason"})
	m.Deferred = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: "deliveries", Name: "deferred_total",
		Help: "Deliveries handed back to their queue for a newer release (a deploy in progress), by reason (newer_schema, unknown_event)."}, []string{"stage", "reason"})
	m.Extended = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: "stage", Name: "visibility_extensions_total",
		Help: "Visibility extensions for slow handlers."}, []string{"stage"})
	m.AckFailures = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: "stage", Name: "ack_failures_total",
		Help: "Failed deletes or visibility changes, counted per entry and attempt (a delete entry AWS failed on its side is resent; what still fails is redelivered and handled idempotently)."}, []string{"stage", "op"})
	m.OrderLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: "order", Name: "latency_seconds",
		Help: "Time from placement to a final status, by final status.", Buckets: []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300}}, []string{"status"})
	m.Transitions = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: "order", Name: "transitions_total",
		Help: "Order status transitions written."}, []string{"from", "to"})
	m.AWSRequests = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: "aws", Name: "requests_total",
		Help: "AWS API requests (each attempt), by service, operation and outcome (ok or the error code)."}, []string{"service", "operation", "outcome"})
	m.AWSContention = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: "aws", Name: "contention_total",
		Help: "AWS requests (each attempt) that lost to contention, by service, operation and reason (ConditionalCheckFailed, TransactionConflict); also counted in cloudcommerce_aws_requests_total with the reason as outcome, and not errors."}, []string{"service", "operation", "reason"})
	m.AWSConnections = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: "aws", Name: "connections_opened_total",
		Help: "New connections the AWS clients opened (each one a dial, and a TLS handshake on AWS), by service."}, []string{"service"})
	r.MustRegister(m.AWSConnections)
	m.BatchSize = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: "aws", Name: "batch_size_entries",
		Help: "Entries per batched request (receive, delete, events, notifications, visibility).", Buckets: []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}}, []string{"kind"})
	m.QueueMessages = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: "queue", Name: "messages",
		Help: "Approximate messages in a stage queue or its DLQ (sampled), by state (visible, in_flight, delayed)."}, []string{"stage", "queue", "state"})
	m.QueueOldest = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: "queue", Name: "oldest_message_age_seconds",
		Help: "Age of the oldest message seen in a stage queue's last receive (sampled)."}, []string{"stage"})
	m.Republished = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: "sweep", Name: "republished_total",
		Help: "Events re-published for orders stuck in a status, by status."}, []string{"status"})
	m.Intake = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: "intake", Name: "requests_total",
		Help: "Intake API requests by route and status code."}, []string{"route", "code"})
	m.Ready = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: "worker", Name: "ready",
		Help: "1 when the worker is ready (receiving), 0 when starting, draining or failing."})
	for _, c := range []prometheus.Collector{m.Received, m.Handled, m.HandlerDuration, m.PoolSize, m.Panics, m.DeadLettered, m.Deferred, m.Extended,
		m.AckFailures, m.OrderLatency, m.Transitions, m.AWSRequests, m.AWSContention, m.BatchSize, m.QueueMessages, m.QueueOldest, m.Republished, m.Intake, m.Ready} {
		f(c)
	}
	m.initSeries()
	return m
}

// InFlight registers the in-flight gauge of a stage as a function over the
// consumer's own counter.
func (m *Metrics) InFlight(stage pipeline.Stage, count func() float64) {
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: ns, Subsystem: "stage", Name: "in_flight_messages",
		Help: "Messages being handled right now.", ConstLabels: prometheus.Labels{"stage": string(stage)},
	}, count))
}

// Observer returns a pipeline.Observer that records transitions and
// end-to-end latency.
func (m *Metrics) Observer() pipeline.Observer {
	return &observer{
		transitions: NewChildren(func(k [2]pipeline.Status) prometheus.Counter {
			return m.Transitions.WithLabelValues(string(k[0]), string(k[1]))
		}),
		latency: NewChildren(func(s pipeline.Status) prometheus.Observer { return m.OrderLatency.WithLabelValues(string(s)) }),
	}
}

// observer records every transition and final status through cached
// children: it runs for every message.
type observer struct {
	transitions *Children[[2]pipeline.Status, prometheus.Counter]
	latency     *Children[pipeline.Status, prometheus.Observer]
}

func (o *observer) Transitioned(from, to pipeline.Status) {
	o.transitions.Get([2]pipeline.Status{from, to}).Inc()
}

func (o *observer) Finished(ord pipeline.Order, d time.Duration) {
	o.latency.Get(ord.Status).Observe(d.Seconds())
}
