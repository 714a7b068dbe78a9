package loadgen

import (
	"fmt"
	"math/rand/v2"

	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
	"github.com/cloudcommerce/cloudcommerce/internal/sandbox"
)

// Mix shapes the orders a run places. Shares are fractions of all orders
// (0..1) and are drawn per order from the seeded generator, so a run with
// the same seed places the same orders.
type Mix struct {
	// Declined is the share paid with a card the sandbox gateway declines
	// (final status PAYMENT_FAILED). Default 0.05.
	Declined float64
	// Transient is the share paid with a token that fails twice before it
	// succeeds (retried through the visibility timeout, so those orders
	// take at least RetryBase + 2·RetryBase longer). Default 0.05.
	Transient float64
	// Scarce is the share that also asks for the scarce SKU, whose stock
	// runs out during the run (final status REJECTED). Default 0.10.
	Scarce float64
	// ScarceStock is the scarce SKU's starting stock; default a quarter of
	// the units the scarce orders ask for, so most of them are rejected
	// once it runs out.
	ScarceStock int64
}

// DefaultMix is the realistic mix: mostly good cards over four plentiful
// SKUs, 5% declined cards, 5% transient processing errors and 10% of orders
// for a SKU that sells out.
func DefaultMix() Mix { return Mix{Declined: 0.05, Transient: 0.05, Scarce: 0.10} }

// SKUs the load generator stocks; ScarceSKU is the one that runs out.
var (
	PlentifulSKUs = []string{"LG-WIDGET", "LG-GADGET", "LG-GIZMO", "LG-SPROCKET"}
	ScarceSKU     = "LG-DOOHICKEY"
)

// Validate reports shares outside 0..1 or adding up to more than 1.
func (m Mix) Validate() error {
	for _, s := range []struct {
		name string
		v    float64
	}{{"declined", m.Declined}, {"transient", m.Transient}, {"scarce", m.Scarce}} {
		if s.v < 0 || s.v > 1 {
			return fmt.Errorf("%s share %v: want 0..1", s.name, s.v)
		}
	}
	if m.Declined+m.Transient > 1 {
		return fmt.Errorf("declined + transient shares %v exceed 1", m.Declined+m.Transient)
	}
	if m.ScarceStock < 0 {
		return fmt.Errorf("scarce stock %d: must not be negative", m.ScarceStock)
	}
	return nil
}

// Request returns the i-th order request of the mix, drawing from r.
func (m Mix) Request(i int, r *rand.Rand) pipeline.OrderRequest {
	token := sandbox.TokenVisa
	switch u := r.Float64(); {
	case u < m.Declined:
		token = sandbox.TokenDeclined
	case u < m.Declined+m.Transient:
		token = sandbox.TokenProcessingError
	}
	var items []pipeline.Item
	if r.Float64() < m.Scarce {
		items = append(items, pipeline.Item{SKU: ScarceSKU, Quantity: 2, UnitPrice: pipeline.Money{Amount: 4999, Currency: "USD"}})
	}
	perm := r.Perm(len(PlentifulSKUs))
	for _, k := range perm[:1+r.IntN(2)] {
		items = append(items, pipeline.Item{SKU: PlentifulSKUs[k], Quantity: int64(1 + r.IntN(3)),
			UnitPrice: pipeline.Money{Amount: int64(500 + 250*k), Currency: "USD"}})
	}
	c := i % 1000
	return pipeline.OrderRequest{
		Customer:        pipeline.Customer{ID: fmt.Sprintf("lg-cust-%04d", c), Email: fmt.Sprintf("customer%d@example.com", c), Phone: "+14155550100"},
		Items:           items,
		Payment:         pipeline.Payment{Token: token},
		ShippingAddress: pipeline.Address{Name: "Load Test", Line1: "1 Market St", City: "San Francisco", PostalCode: "94105", Country: "US"},
	}
}

// Stock returns the starting stock of every SKU for a run of n orders:
// more than enough of the plentiful ones, little of the scarce one.
func (m Mix) Stock(n int) map[string]int64 {
	out := map[string]int64{}
	for _, sku := range PlentifulSKUs {
		out[sku] = int64(n)*3 + 1000
	}
	scarce := m.ScarceStock
	if scarce == 0 {
		// Scarce orders ask for 2 units each; stock a quarter of them.
		scarce = max(2, int64(m.Scarce*float64(n)*2/4))
	}
	out[ScarceSKU] = scarce
	return out
}
