package reliability

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"

	"github.com/cloudcommerce/cloudcommerce/internal/bus"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
	"github.com/cloudcommerce/cloudcommerce/internal/sandbox"
)

// mix shapes a load plan.
type mix struct {
	Orders    int
	Stock     map[string]int64 // SKUs and their initial units
	Declined  float64          // share of orders paying with tok_chargeDeclined
	Transient float64          // share paying with tok_processingError
	Cancel    float64          // share of accepted orders cancelled via the API
	ViaBus    float64          // share put straight on the bus (the rest via the intake API)
	Rate      float64          // orders per second
}

// defaultMix is the crash and fault suites' load: several SKUs whose stock
// runs out (so rejections race reservations), a share of declined and
// transiently failing payments, and some cancellations.
func defaultMix(orders int, rate float64) mix {
	return mix{
		Orders: orders,
		Stock: map[string]int64{
			"SKU-A": int64(orders) / 3, "SKU-B": int64(orders) / 4, "SKU-C": int64(orders) / 10,
			"SKU-D": int64(orders), "SKU-E": 7,
		},
		Declined: 0.12, Transient: 0.12, Cancel: 0.08, ViaBus: 0.4, Rate: rate,
	}
}

// planned is one order of a plan, drawn up front from the seed.
type planned struct {
	n           int
	viaBus      bool
	id          string // known in advance for bus orders; set on acceptance otherwise
	key         string // Idempotency-Key for the intake
	req         pipeline.OrderRequest
	cancelAfter time.Duration // < 0: not cancelled
}

func plan(r *rt, m mix) []*planned {
	skus := make([]string, 0, len(m.Stock))
	for s := range m.Stock {
		skus = append(skus, s)
	}
	sort.Strings(skus)
	tag := fmt.Sprintf("%x", r.IntN(1<<30))
	out := make([]*planned, m.Orders)
	for i := range out {
		token := sandbox.TokenVisa
		switch x := r.Float64(); {
		case x < m.Declined:
			token = sandbox.TokenDeclined
		case x < m.Declined+m.Transient:
			token = sandbox.TokenProcessingError
		}
		lines := min(1+r.IntN(2), len(skus))
		seen := map[string]bool{}
		var items []pipeline.Item
		for len(items) < lines {
			sku := skus[r.IntN(len(skus))]
			if seen[sku] {
				continue
			}
			seen[sku] = true
			items = append(items, pipeline.Item{SKU: sku, Quantity: int64(1 + r.IntN(2)), UnitPrice: pipeline.Money{Amount: int64(100 + r.IntN(5000)), Currency: "USD"}})
		}
		p := &planned{n: i, viaBus: r.Float64() < m.ViaBus, key: fmt.Sprintf("load-%s-%d", tag, i), cancelAfter: -1,
			req: pipeline.OrderRequest{
				Customer:        pipeline.Customer{ID: fmt.Sprintf("cust-%d", r.IntN(50)), Email: "ada@example.com", Phone: "+14155550100"},
				Items:           items,
				Payment:         pipeline.Payment{Token: token},
				ShippingAddress: pipeline.Address{Name: "Ada Lovelace", Line1: "1 Main St", City: "London", PostalCode: "N1 1AA", Country: "GB"},
			}}
		if p.viaBus {
			p.id = fmt.Sprintf("bus-%s-%d", tag, i)
		}
		if r.Float64() < m.Cancel {
			// Mostly soon after acceptance, while the order is in flight.
			p.cancelAfter = r.Duration(0, 500*time.Millisecond)
		}
		out[i] = p
	}
	return out
}

// outcome is what the load generator saw: the orders accepted and the
// answers to cancellations.
type outcome struct {
	mu       sync.Mutex
	accepted map[string]*planned
	cancels  map[string]cancelResult
	lost     int // orders never accepted (ctx ended first)
}

// drive places the plan's orders at the mix's rate (intake orders through
// api(), bus orders with PutEvents in batches of up to 10) and cancels the
// chosen ones after their delay. It returns when every order and
// cancellation has an answer or ctx ends.
func drive(ctx context.Context, c *cluster, m mix, orders []*planned, api func() string) *outcome {
	r := c.r
	res := &outcome{accepted: map[string]*planned{}, cancels: map[string]cancelResult{}}
	var wg, cancels sync.WaitGroup
	accept := func(p *planned, id string) {
		res.mu.Lock()
		p.id = id
		res.accepted[id] = p
		res.mu.Unlock()
		if p.cancelAfter < 0 {
			return
		}
		cancels.Add(1)
		go func() {
			defer cancels.Done()
			sleepCtx(ctx, p.cancelAfter)
			cr := cancelOrder(ctx, api, id)
			res.mu.Lock()
			res.cancels[id] = cr
			res.mu.Unlock()
		}()
	}
	intake := make(chan *planned)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range intake {
				if id := placeOrder(ctx, r, api, p.req, p.key); id != "" {
					accept(p, id)
				} else {
					res.mu.Lock()
					res.lost++
					res.mu.Unlock()
				}
			}
		}()
	}
	var busBatch []*planned
	flushBus := func() {
		if len(busBatch) == 0 {
			return
		}
		batch := busBatch
		busBatch = nil
		entries := make([]ebtypes.PutEventsRequestEntry, len(batch))
		for i, p := range batch {
			o, err := pipeline.NewOrder(p.id, p.req, time.Now())
			if err != nil {
				r.Fatalf("plan produced an invalid order: %v", err)
			}
			if entries[i], err = bus.Entry(c.env.Prov.Names.Bus, pipeline.Event{Type: pipeline.EventOrderPlaced, Order: o}); err != nil {
				r.Fatal(err)
			}
		}
		for ctx.Err() == nil {
			out, err := c.env.EB.PutEvents(ctx, &eventbridge.PutEventsInput{Entries: entries})
			if err == nil && out.FailedEntryCount == 0 {
				for _, p := range batch {
					accept(p, p.id)
				}
				return
			}
			sleepCtx(ctx, 100*time.Millisecond)
		}
	}
	start := time.Now()
	for i, p := range orders {
		// Pace the load (not a correctness wait): order i goes at i/rate.
		if d := time.Until(start.Add(time.Duration(float64(i) / m.Rate * float64(time.Second)))); d > 0 {
			flushBus()
			sleepCtx(ctx, d)
		}
		if ctx.Err() != nil {
			break
		}
		if p.viaBus {
			busBatch = append(busBatch, p)
			if len(busBatch) == 10 {
				flushBus()
			}
			continue
		}
		select {
		case intake <- p:
		case <-ctx.Done():
		}
	}
	flushBus()
	close(intake)
	wg.Wait()
	cancels.Wait()
	return res
}
