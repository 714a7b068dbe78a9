package intake_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/cloudcommerce/cloudcommerce/internal/intake"
	"github.com/cloudcommerce/cloudcommerce/internal/metrics"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
)

// nopStore and nopPublisher accept everything, so the benchmarks measure
// the intake's own work: decoding with exact field paths, validation,
// building the order, encoding the answer.
type nopStore struct{ pipeline.Store }

func (nopStore) Create(context.Context, pipeline.Order, string, string) (string, error) {
	return "", nil
}

// Prices answers that no SKU has a catalogue price; the intake caches the
// answer, so steady load reads it once per SKU per PriceTTL.
func (nopStore) Prices(context.Context, []string) (map[string]pipeline.Money, error) {
	return nil, nil
}

type nopPublisher struct{}

func (nopPublisher) Publish(context.Context, ...pipeline.Event) error { return nil }

func benchServer() http.Handler {
	var n atomic.Int64
	s := &intake.Server{Store: nopStore{}, Publisher: nopPublisher{}, Log: zap.NewNop(), Metrics: metrics.New(),
		NewID: func() string { return "order-" + strconv.FormatInt(n.Add(1), 10) },
		Now:   func() time.Time { return time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC) }}
	return s.Handler()
}

func benchBody(b *testing.B, mutate func(map[string]any)) []byte {
	b.Helper()
	body := validBody()
	if mutate != nil {
		mutate(body)
	}
	raw, err := json.Marshal(body)
	if err != nil {
		b.Fatal(err)
	}
	return raw
}

func benchPost(b *testing.B, h http.Handler, body []byte, idem bool, want int) {
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/v1/orders", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if idem {
			i++
			req.Header.Set("Idempotency-Key", "bench-"+strconv.Itoa(i))
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != want {
			b.Fatalf("status %d, want %d: %s", rec.Code, want, rec.Body)
		}
	}
}

// BenchmarkPlaceOrder is POST /v1/orders through the whole handler
// (routing, tracing middleware with a no-op provider, decoding with exact
// field paths, validation, order building) with a store and bus that cost
// nothing.
func BenchmarkPlaceOrder(b *testing.B) {
	benchPost(b, benchServer(), benchBody(b, nil), false, http.StatusAccepted)
}

// BenchmarkPlaceOrderIdempotent adds the Idempotency-Key fingerprint (a
// canonical re-encoding and SHA-256 of the request).
func BenchmarkPlaceOrderIdempotent(b *testing.B) {
	benchPost(b, benchServer(), benchBody(b, nil), true, http.StatusAccepted)
}

// BenchmarkPlaceOrderInvalid is the 400 path: every offending field named.
func BenchmarkPlaceOrderInvalid(b *testing.B) {
	body := benchBody(b, func(m map[string]any) {
		m["customer"] = map[string]any{"id": "", "email": "not-an-email"}
		m["surprise"] = true
	})
	benchPost(b, benchServer(), body, false, http.StatusBadRequest)
}
