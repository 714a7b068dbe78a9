package loadgen

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// LedgerService is the service label of the sandbox payment ledger's calls,
// which stand for an external provider and are counted apart.
const LedgerService = "sandbox-ledger"

// Counters is one scrape of the workers' counters that the load generator
// reports, summed over every worker scraped.
type Counters struct {
	// Requests by "service operation", every outcome.
	Requests map[string]float64
	// Errors by "service operation outcome", outcomes other than ok.
	Errors map[string]float64
	// CPUSeconds is process_cpu_seconds_total.
	CPUSeconds float64
	// RSSBytes is process_resident_memory_bytes (summed).
	RSSBytes float64
	// Entries by batch kind (events, notifications, delete, receive,
	// visibility): the entries the batched calls carried.
	Entries map[string]float64
	// Received is the stage messages received (every stage, redeliveries
	// included): the SQS deliveries EventBridge made.
	Received float64
}

// Scrape reads /metrics from every URL and sums the counters.
func Scrape(ctx context.Context, c *http.Client, urls []string) (Counters, error) {
	total := Counters{Requests: map[string]float64{}, Errors: map[string]float64{}, Entries: map[string]float64{}}
	for _, u := range urls {
		one, err := scrapeOne(ctx, c, u)
		if err != nil {
			return total, err
		}
		for k, v := range one.Requests {
			total.Requests[k] += v
		}
		for k, v := range one.Errors {
			total.Errors[k] += v
		}
		for k, v := range one.Entries {
			total.Entries[k] += v
		}
		total.Received += one.Received
		total.CPUSeconds += one.CPUSeconds
		total.RSSBytes += one.RSSBytes
	}
	return total, nil
}

func scrapeOne(ctx context.Context, c *http.Client, url string) (Counters, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return Counters{}, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return Counters{}, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Counters{}, fmt.Errorf("scrape %s: %s", url, resp.Status)
	}
	return ParseCounters(resp.Body)
}

// ParseCounters reads the Prometheus text exposition format.
func ParseCounters(r io.Reader) (Counters, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(r)
	if err != nil {
		return Counters{}, fmt.Errorf("parse metrics: %w", err)
	}
	out := Counters{Requests: map[string]float64{}, Errors: map[string]float64{}, Entries: map[string]float64{}}
	if mf := mfs["cloudcommerce_aws_batch_size_entries"]; mf != nil {
		for _, m := range mf.GetMetric() {
			out.Entries[label(m, "kind")] += m.GetHistogram().GetSampleSum()
		}
	}
	if mf := mfs["cloudcommerce_stage_messages_received_total"]; mf != nil {
		for _, m := range mf.GetMetric() {
			out.Received += m.GetCounter().GetValue()
		}
	}
	if mf := mfs["cloudcommerce_aws_requests_total"]; mf != nil {
		for _, m := range mf.GetMetric() {
			svc, op, outcome := label(m, "service"), label(m, "operation"), label(m, "outcome")
			v := m.GetCounter().GetValue()
			out.Requests[svc+" "+op] += v
			if outcome != "ok" {
				out.Errors[svc+" "+op+" "+outcome] += v
			}
		}
	}
	if mf := mfs["process_cpu_seconds_total"]; mf != nil && len(mf.GetMetric()) > 0 {
		out.CPUSeconds = mf.GetMetric()[0].GetCounter().GetValue()
	}
	if mf := mfs["process_resident_memory_bytes"]; mf != nil && len(mf.GetMetric()) > 0 {
		out.RSSBytes = mf.GetMetric()[0].GetGauge().GetValue()
	}
	return out, nil
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// Breakdown is requests per order by "service operation", split into the
// pipeline's own calls and the sandbox ledger's.
type Breakdown struct {
	PerOrder    float64            `json:"per_order"`
	ByOperation map[string]float64 `json:"by_operation"`
	// Ledger is the sandbox payment ledger's calls per order (standing for
	// the payment provider; not part of PerOrder).
	Ledger float64 `json:"ledger_per_order"`
	// Errors are non-ok outcomes per order by "service operation outcome".
	Errors map[string]float64 `json:"errors_per_order,omitempty"`
	// Entries per order by batch kind: events put by the workers,
	// notifications published, deletes, ... (what list prices charge by).
	Entries map[string]float64 `json:"entries_per_order,omitempty"`
	// Deliveries is stage messages received per order.
	Deliveries float64 `json:"deliveries_per_order"`
}

// PerOrder turns the difference of two scrapes into requests per order.
func PerOrder(before, after Counters, orders int) Breakdown {
	b := Breakdown{ByOperation: map[string]float64{}, Errors: map[string]float64{}, Entries: map[string]float64{}}
	if orders <= 0 {
		return b
	}
	for k, v := range after.Entries {
		if d := (v - before.Entries[k]) / float64(orders); d > 0 {
			b.Entries[k] = d
		}
	}
	b.Deliveries = (after.Received - before.Received) / float64(orders)
	for k, v := range after.Requests {
		d := (v - before.Requests[k]) / float64(orders)
		if d <= 0 {
			continue
		}
		if strings.HasPrefix(k, LedgerService+" ") {
			b.Ledger += d
			continue
		}
		b.ByOperation[k] = d
		b.PerOrder += d
	}
	for k, v := range after.Errors {
		if d := (v - before.Errors[k]) / float64(orders); d > 0 {
			b.Errors[k] = d
		}
	}
	return b
}

// Add counts extra requests (the producer's own PutEvents) into the figure.
func (b *Breakdown) Add(key string, perOrder float64) {
	if perOrder <= 0 {
		return
	}
	b.ByOperation[key] += perOrder
	b.PerOrder += perOrder
}

// Keys returns the operations in a stable order, the largest first.
func (b Breakdown) Keys() []string {
	keys := make([]string, 0, len(b.ByOperation))
	for k := range b.ByOperation {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if b.ByOperation[keys[i]] != b.ByOperation[keys[j]] {
			return b.ByOperation[keys[i]] > b.ByOperation[keys[j]]
		}
		return keys[i] < keys[j]
	})
	return keys
}
