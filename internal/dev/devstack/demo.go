package devstack

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudcommerce/cloudcommerce/internal/awsconf"

	dto "github.com/prometheus/client_model/go"

	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
	"github.com/cloudcommerce/cloudcommerce/internal/store"
)

// DemoOptions configure a demo run.
type DemoOptions struct {
	Orders   int
	BaseURL  string
	APIKey   string
	Timeout  time.Duration
	Out      io.Writer
	Terminal bool // draw a progress bar instead of periodic lines
	Seed     uint64
	// Producers is how many orders are placed concurrently; default 8.
	Producers int
}

// DemoResult summarises a demo run.
type DemoResult struct {
	Orders           int
	ByStatus         map[pipeline.Status]int
	Stuck            []string
	Elapsed          time.Duration
	OrdersPerSecond  float64
	P50, P95, P99    time.Duration
	Max              time.Duration
	Latencies        []time.Duration
	RequestsPerOrder float64
	ByOperation      map[string]float64
	LedgerPerOrder   float64
	PlaceErrors      int
}

// DemoRequest returns the i-th demo order: mostly good cards over three
// plentiful SKUs, with a share of declined cards, transient processing
// errors and orders for the scarce SKU.
func DemoRequest(i int, r *rand.Rand) pipeline.OrderRequest {
	token := "tok_visa"
	switch i % 20 {
	case 3:
		token = "tok_chargeDeclined"
	case 7:
		token = "tok_processingError"
	}
	skus := []string{"SKU-WIDGET", "SKU-GADGET", "SKU-GIZMO"}
	var items []pipeline.Item
	if i%10 == 5 {
		items = append(items, pipeline.Item{SKU: "SKU-DOOHICKEY", Quantity: 2, UnitPrice: pipeline.Money{Amount: 4999, Currency: "USD"}})
	}
	for _, k := range r.Perm(3)[:1+r.IntN(2)] {
		items = append(items, pipeline.Item{SKU: skus[k], Quantity: int64(1 + r.IntN(3)), UnitPrice: pipeline.Money{Amount: int64(500 + 250*k), Currency: "USD"}})
	}
	return pipeline.OrderRequest{
		Customer:        pipeline.Customer{ID: fmt.Sprintf("cust-%04d", i%500), Email: fmt.Sprintf("customer%d@example.com", i%500), Phone: "+14155550100"},
		Items:           items,
		Payment:         pipeline.Payment{Token: token},
		ShippingAddress: pipeline.Address{Name: "Demo Customer", Line1: "1 Market St", City: "San Francisco", PostalCode: "94105", Country: "US"},
	}
}

// RunDemo places orders through the intake API at BaseURL, shows progress
// until every order is final (or the timeout), and summarises.
func (s *Stack) RunDemo(ctx context.Context, o DemoOptions) (*DemoResult, error) {
	if o.Producers <= 0 {
		o.Producers = 8
	}
	if o.Timeout <= 0 {
		o.Timeout = 3 * time.Minute
	}
	before := s.requestCounts()
	reader := store.New(awsconf.DynamoDB(s.Uncounted), store.Tables{
		Orders: s.Provisioned.Names.Tables["orders"], Inventory: s.Provisioned.Names.Tables["inventory"], Idempotency: s.Provisioned.Names.Tables["idempotency"]})
	notes := s.Inbox.Subscribe()

	var mu sync.Mutex
	ids := make([]string, 0, o.Orders)
	final := map[string]bool{}
	var placeErrs atomic.Int64
	start := time.Now()
	jobs := make(chan int)
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 30 * time.Second}
	for p := 0; p < o.Producers; p++ {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(o.Seed, uint64(p)))
			for i := range jobs {
				id, err := placeOrder(ctx, client, o.BaseURL, o.APIKey, DemoRequest(i, r), fmt.Sprintf("demo-%d-%d-%d", o.Seed, start.UnixNano(), i))
				if err != nil {
					placeErrs.Add(1)
					fmt.Fprintf(o.Out, "place order %d: %v\n", i, err)
					continue
				}
				mu.Lock()
				ids = append(ids, id)
				mu.Unlock()
			}
		}(p)
	}
	go func() {
		defer close(jobs)
		for i := 0; i < o.Orders; i++ {
			select {
			case jobs <- i:
			case <-ctx.Done():
				return
			}
		}
	}()
	placedAll := make(chan struct{})
	go func() { wg.Wait(); close(placedAll) }()

	deadline := time.NewTimer(o.Timeout)
	defer deadline.Stop()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	lastLine, lastCheck := time.Now(), time.Now()
	placingDone := false
	finalEvents := map[string]bool{"OrderShipped": true, "OrderRejected": true, "PaymentFailed": true, "OrderCancelled": true}
	for {
		select {
		case n := <-notes:
			if finalEvents[n.Event] {
				mu.Lock()
				final[n.OrderID] = true
				mu.Unlock()
			}
			continue
		case <-placedAll:
			placedAll = nil
			placingDone = true
		case <-tick.C:
		case <-deadline.C:
			fmt.Fprintln(o.Out)
			return s.summarise(ctx, reader, ids, start, before, int(placeErrs.Load()))
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		mu.Lock()
		placed, done := len(ids), 0
		for _, id := range ids {
			if final[id] {
				done++
			}
		}
		pending := make([]string, 0, 64)
		if time.Since(lastCheck) > 2*time.Second {
			for _, id := range ids {
				if !final[id] && len(pending) < 64 {
					pending = append(pending, id)
				}
			}
			lastCheck = time.Now()
		}
		mu.Unlock()
		// Notifications are the fast path; a periodic read catches orders
		// whose notification is still on its way.
		for _, id := range pending {
			if ord, err := reader.Get(ctx, id); err == nil && ord.Status.Final() {
				mu.Lock()
				final[id] = true
				mu.Unlock()
			}
		}
		if o.Terminal {
			fmt.Fprintf(o.Out, "\r%s", bar(done, placed, o.Orders, time.Since(start)))
		} else if time.Since(lastLine) >= 2*time.Second || (placingDone && done == placed) {
			fmt.Fprintf(o.Out, "progress: %d placed, %d final of %d (%.1fs)\n", placed, done, o.Orders, time.Since(start).Seconds())
			lastLine = time.Now()
		}
		if placingDone && done == placed {
			if o.Terminal {
				fmt.Fprintln(o.Out)
			}
			return s.summarise(ctx, reader, ids, start, before, int(placeErrs.Load()))
		}
	}
}

func bar(done, placed, total int, elapsed time.Duration) string {
	const width = 30
	filled := 0
	if total > 0 {
		filled = done * width / total
	}
	return fmt.Sprintf("[%s%s] %d/%d final, %d placed  %.1fs ", strings.Repeat("█", filled), strings.Repeat("░", width-filled), done, total, placed, elapsed.Seconds())
}

func placeOrder(ctx context.Context, c *http.Client, base, key string, req pipeline.OrderRequest, idem string) (string, error) {
	body, _ := json.Marshal(req)
	for attempt := 0; ; attempt++ {
		r, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/orders", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("Idempotency-Key", idem)
		if key != "" {
			r.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := c.Do(r)
		if err == nil {
			var out struct {
				OrderID string `json:"order_id"`
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusAccepted && json.Unmarshal(b, &out) == nil {
				return out.OrderID, nil
			}
			err = fmt.Errorf("intake answered %d: %s", resp.StatusCode, bytes.TrimSpace(b))
			if resp.StatusCode < 500 {
				return "", err
			}
		}
		// Retrying with the same Idempotency-Key can never create a second order.
		if attempt >= 4 || ctx.Err() != nil {
			return "", err
		}
		time.Sleep(time.Duration(100<<attempt) * time.Millisecond)
	}
}

func (s *Stack) summarise(ctx context.Context, reader *store.Store, ids []string, start time.Time, before map[string]float64, placeErrs int) (*DemoResult, error) {
	res := &DemoResult{Orders: len(ids), ByStatus: map[pipeline.Status]int{}, ByOperation: map[string]float64{}, PlaceErrors: placeErrs}
	var last time.Time
	for _, id := range ids {
		o, err := reader.Get(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("read order %s: %w", id, err)
		}
		res.ByStatus[o.Status]++
		if !o.Status.Final() {
			res.Stuck = append(res.Stuck, fmt.Sprintf("%s (%s)", id, o.Status))
			continue
		}
		res.Latencies = append(res.Latencies, o.UpdatedAt.Sub(o.PlacedAt))
		if o.UpdatedAt.After(last) {
			last = o.UpdatedAt
		}
	}
	sort.Slice(res.Latencies, func(i, j int) bool { return res.Latencies[i] < res.Latencies[j] })
	res.P50, res.P95, res.P99 = Percentile(res.Latencies, 50), Percentile(res.Latencies, 95), Percentile(res.Latencies, 99)
	if n := len(res.Latencies); n > 0 {
		res.Max = res.Latencies[n-1]
	}
	res.Elapsed = last.Sub(start)
	if res.Elapsed > 0 {
		res.OrdersPerSecond = float64(len(res.Latencies)) / res.Elapsed.Seconds()
	}
	after := s.requestCounts()
	if len(ids) > 0 {
		for k, v := range after {
			d := (v - before[k]) / float64(len(ids))
			if d <= 0 {
				continue
			}
			if strings.HasPrefix(k, "sandbox-ledger ") {
				res.LedgerPerOrder += d
				continue
			}
			res.ByOperation[k] = d
			res.RequestsPerOrder += d
		}
	}
	return res, nil
}

// Percentile returns the p-th percentile of sorted durations (nearest rank).
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// requestCounts returns the AWS request counter by "service operation".
func (s *Stack) requestCounts() map[string]float64 {
	out := map[string]float64{}
	mfs, err := s.Metrics.Registry.Gather()
	if err != nil {
		return out
	}
	for _, mf := range mfs {
		if mf.GetName() != "cloudcommerce_aws_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			out[labelKey(m)] += m.GetCounter().GetValue()
		}
	}
	return out
}

func labelKey(m *dto.Metric) string {
	var svc, op string
	for _, l := range m.GetLabel() {
		switch l.GetName() {
		case "service":
			svc = l.GetValue()
		case "operation":
			op = l.GetValue()
		}
	}
	return svc + " " + op
}

// Print writes the summary.
func (r *DemoResult) Print(w io.Writer) {
	fmt.Fprintf(w, "\n%d orders in %.2fs: %.1f orders/s\n", r.Orders, r.Elapsed.Seconds(), r.OrdersPerSecond)
	fmt.Fprintln(w, "final status:")
	for _, st := range pipeline.AllStatuses {
		if n := r.ByStatus[st]; n > 0 {
			fmt.Fprintf(w, "  %-15s %d\n", st, n)
		}
	}
	fmt.Fprintf(w, "placed→final latency: p50 %s  p95 %s  p99 %s  max %s\n", round(r.P50), round(r.P95), round(r.P99), round(r.Max))
	fmt.Fprint(w, Histogram(r.Latencies))
	fmt.Fprintf(w, "AWS requests per order: %.2f (plus %.2f by the sandbox payment ledger, standing for the provider)\n", r.RequestsPerOrder, r.LedgerPerOrder)
	keys := make([]string, 0, len(r.ByOperation))
	for k := range r.ByOperation {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "  %-40s %.2f\n", k, r.ByOperation[k])
	}
	if r.PlaceErrors > 0 {
		fmt.Fprintf(w, "%d orders could not be placed\n", r.PlaceErrors)
	}
	if len(r.Stuck) > 0 {
		fmt.Fprintf(w, "NOT FINAL (%d): %s\n", len(r.Stuck), strings.Join(r.Stuck, ", "))
	}
}

func round(d time.Duration) time.Duration {
	if d > time.Second {
		return d.Round(10 * time.Millisecond)
	}
	return d.Round(100 * time.Microsecond)
}

// Histogram renders latencies as a small text histogram on a log scale.
func Histogram(sorted []time.Duration) string {
	if len(sorted) == 0 {
		return ""
	}
	bounds := []time.Duration{10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond,
		500 * time.Millisecond, time.Second, 2500 * time.Millisecond, 5 * time.Second, 10 * time.Second, 30 * time.Second, time.Hour}
	counts := make([]int, len(bounds))
	for _, d := range sorted {
		for i, b := range bounds {
			if d <= b {
				counts[i]++
				break
			}
		}
	}
	peak := 0
	for _, c := range counts {
		peak = max(peak, c)
	}
	var b strings.Builder
	lo := time.Duration(0)
	for i, c := range counts {
		if c > 0 {
			label := fmt.Sprintf("≤%s", bounds[i])
			if bounds[i] == time.Hour {
				label = fmt.Sprintf(">%s", lo)
			}
			fmt.Fprintf(&b, "  %8s │%s %d\n", label, strings.Repeat("▇", max(1, c*30/peak)), c)
		}
		lo = bounds[i]
	}
	return b.String()
}
