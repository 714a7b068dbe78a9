package intake

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
)

// maxCachedPrices bounds the price cache: SKUs come from requests, so a
// client naming endless SKUs must not grow it without limit.
const maxCachedPrices = 10_000

// priceCache remembers catalogue prices (or their absence) for a short
// time, so that at steady load the intake answers a wrong price with 422
// without a read per order. It is an early answer only: the reservation's
// conditional write is what enforces the price. Safe for concurrent use.
type priceCache struct {
	ttl time.Duration
	mu  sync.Mutex
	m   map[string]cachedPrice
}

type cachedPrice struct {
	price *pipeline.Money
	at    time.Time
}

func (s *Server) priceCache() *priceCache {
	s.pricesOnce.Do(func() {
		s.prices = &priceCache{ttl: s.PriceTTL, m: map[string]cachedPrice{}}
		if s.prices.ttl <= 0 {
			s.prices.ttl = 5 * time.Second
		}
	})
	return s.prices
}

func (c *priceCache) put(sku string, price *pipeline.Money, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= maxCachedPrices {
		clear(c.m)
	}
	c.m[sku] = cachedPrice{price: price, at: now}
}

// lookup returns the fresh prices known for skus and the SKUs to read.
func (c *priceCache) lookup(skus []string, now time.Time) (map[string]*pipeline.Money, []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	known := make(map[string]*pipeline.Money, len(skus))
	var missing []string
	for _, sku := range skus {
		if _, done := known[sku]; done {
			continue
		}
		e, ok := c.m[sku]
		if ok && now.Sub(e.at) < c.ttl {
			known[sku] = e.price
			continue
		}
		known[sku] = nil
		missing = append(missing, sku)
	}
	return known, missing
}

// priceMismatches names every order line whose unit price differs from the
// catalogue price of its SKU.
func (s *Server) priceMismatches(ctx context.Context, items []pipeline.Item) ([]pipeline.FieldError, error) {
	c, now := s.priceCache(), s.now()
	skus := make([]string, len(items))
	for i, it := range items {
		skus[i] = it.SKU
	}
	known, missing := c.lookup(skus, now)
	if len(missing) > 0 {
		read, err := s.Store.Prices(ctx, missing)
		if err != nil {
			return nil, fmt.Errorf("read catalogue prices: %w", err)
		}
		for _, sku := range missing {
			var p *pipeline.Money
			if m, ok := read[sku]; ok {
				p = &m
			}
			known[sku] = p
			c.put(sku, p, now)
		}
	}
	var out []pipeline.FieldError
	for i, it := range items {
		if p := known[it.SKU]; p != nil && *p != it.UnitPrice {
			out = append(out, pipeline.FieldError{Field: fmt.Sprintf("items[%d].unit_price", i),
				Detail: fmt.Sprintf("must be the catalogue price of %s, %s, got %s", it.SKU, p, it.UnitPrice)})
		}
	}
	return out, nil
}
