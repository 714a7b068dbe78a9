// Package intake is the HTTP API through which orders enter: it validates
// an order, records it (PLACED) and puts OrderPlaced on the bus, and it
// answers order and stock queries, stock adjustments, catalogue prices and
// cancellations. Bodies are decoded strictly (decode.go); bad input gets an
// RFC 9457 problem document naming every offending field; nothing is
// written on any error. openapi.json, served at GET /openapi.json, is the
// contract, and a test holds every response to it.
package intake

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	oteltrace "go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/cloudcommerce/cloudcommerce/internal/metrics"
	"github.com/cloudcommerce/cloudcommerce/internal/notify"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
	"github.com/cloudcommerce/cloudcommerce/internal/trace"
)

// MaxBodyBytes is the largest request body accepted.
const MaxBodyBytes = 64 << 10

// DeliveredNotification is a notification as the topic delivered it.
type DeliveredNotification = notify.Delivered

// NotificationLog answers which notifications reached a subscriber.
type NotificationLog = notify.Log

// Server is the intake API. Its zero value is not usable; set every field
// but Notifications and APIKey.
type Server struct {
	Service   *pipeline.Service
	Store     pipeline.IntakeStore
	Publisher pipeline.Publisher
	Log       *zap.Logger
	Metrics   *metrics.Metrics
	// APIKey, when set, is required as "Authorization: Bearer <key>".
	APIKey string
	// Notifications, when set, serves GET /v1/notifications.
	Notifications NotificationLog
	// Orders, when set, serves GET /v1/orders?customer_id=….
	Orders OrderLister
	// NewID returns a fresh order id; defaults to a UUIDv7.
	NewID func() string
	// Now defaults to time.Now.
	Now func() time.Time
	// Tracing, when set, makes a server span of every request, the parent
	// of the order's trace; when nil, no spans are made, and an incoming
	// traceparent header is still carried into the order.
	Tracing oteltrace.TracerProvider
	// PriceTTL is how long a catalogue price read for an early 422 is
	// reused; defaults to 5s. A price changed within it is still enforced
	// by the reservation's conditional write (the order ends REJECTED with
	// reason price_mismatch).
	PriceTTL time.Duration

	pricesOnce sync.Once
	prices     *priceCache
}

// Routes registers the API on mux.
func (s *Server) Routes(mux *http.ServeMux) {
	// The span starts (or continues the caller's traceparent) before
	// anything else, so the order placed records its context.
	traced := []otelhttp.Option{otelhttp.WithTracerProvider(trace.OrNoop(s.Tracing)), otelhttp.WithPropagators(trace.Propagator),
		otelhttp.WithMeterProvider(metricnoop.NewMeterProvider())}
	handle := func(pattern, route string, h func(http.ResponseWriter, *http.Request) (int, error)) {
		mux.Handle(pattern, otelhttp.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			code, err := s.serve(w, r, h)
			if err != nil {
				s.Log.Error("intake request failed", zap.String("route", route), zap.Error(err))
			}
			s.Metrics.Intake.WithLabelValues(route, strconv.Itoa(code)).Inc()
		}), pattern, traced...))
	}
	handle("POST /v1/orders", "place_order", s.placeOrder)
	if s.Orders != nil {
		handle("GET /v1/orders", "list_orders", s.listOrders)
	}
	handle("GET /v1/orders/{id}", "get_order", s.getOrder)
	handle("POST /v1/orders/{id}/cancel", "cancel_order", s.cancelOrder)
	handle("PUT /v1/inventory/{sku}", "put_inventory", s.putInventory)
	handle("GET /v1/inventory/{sku}", "get_inventory", s.getInventory)
	handle("POST /v1/inventory/{sku}/adjustments", "adjust_inventory", s.adjustInventory)
	if s.Notifications != nil {
		handle("GET /v1/notifications", "notifications", s.notifications)
	}
	mux.HandleFunc("GET /openapi.json", serveOpenAPI)
}

// Handler returns the API as an http.Handler.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	s.Routes(mux)
	return Fallback(mux)
}

// Fallback answers what mux has no route for with problem documents: 404
// for an unknown path, 405 (keeping the Allow header) for a known path
// with another method. Every answer carries X-Content-Type-Options: nosniff.
func Fallback(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		h, pattern := mux.Handler(r)
		if pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		rec := &headerRecorder{header: http.Header{}}
		h.ServeHTTP(rec, r)
		switch rec.code {
		case http.StatusMethodNotAllowed:
			w.Header().Set("Allow", rec.header.Get("Allow"))
			problem(w, http.StatusMethodNotAllowed, "Method Not Allowed", r.Method+" is not allowed on "+r.URL.Path+"; allowed: "+rec.header.Get("Allow"), nil)
		default:
			problem(w, http.StatusNotFound, "Not Found", "no route "+r.URL.Path, nil)
		}
	})
}

// headerRecorder keeps the status and headers of the mux's own 404/405
// answer, discarding its plain-text body.
type headerRecorder struct {
	header http.Header
	code   int
}

func (h *headerRecorder) Header() http.Header         { return h.header }
func (h *headerRecorder) Write(b []byte) (int, error) { return len(b), nil }
func (h *headerRecorder) WriteHeader(code int)        { h.code = code }

func (s *Server) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request, h func(http.ResponseWriter, *http.Request) (int, error)) (int, error) {
	// Answers name orders, customers and stock: no cache may keep them,
	// and no browser may sniff them into something executable.
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	if s.APIKey != "" && !Authorized(r.Header.Get("Authorization"), s.APIKey) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="cloudcommerce"`)
		return problem(w, http.StatusUnauthorized, "Unauthorized", "a valid API key is required: Authorization: Bearer <key>", nil), nil
	}
	return h(w, r)
}

// Authorized reports whether an Authorization header value carries key in
// the Bearer scheme, whose name is case-insensitive (RFC 9110 §11.1). The
// key is compared in constant time.
func Authorized(header, key string) bool {
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || key == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(strings.TrimLeft(token, " ")), []byte(key)) == 1
}

// Problem is an RFC 9457 problem document. It lists at most
// MaxProblemErrors errors; MoreErrors says how many more were found.
type Problem struct {
	Type       string                `json:"type"`
	Title      string                `json:"title"`
	Status     int                   `json:"status"`
	Detail     string                `json:"detail,omitempty"`
	Errors     []pipeline.FieldError `json:"errors,omitempty"`
	MoreErrors int                   `json:"more_errors,omitempty"`
}

// MaxProblemBytes bounds the size of a problem document, whatever the
// request: texts that quote the request are cut (see clip) and, should the
// listed errors still not fit, fewer are listed and counted in MoreErrors.
const MaxProblemBytes = 16 << 10

func problem(w http.ResponseWriter, status int, title, detail string, fields []pipeline.FieldError) int {
	detail = clip(detail, maxDetailLen)
	n := min(len(fields), MaxProblemErrors)
	var b []byte
	for {
		p := Problem{Type: "about:blank", Title: title, Status: status, Detail: detail, Errors: make([]pipeline.FieldError, n)}
		for i, e := range fields[:n] {
			p.Errors[i] = pipeline.FieldError{Field: clip(e.Field, maxFieldLen), Detail: clip(e.Detail, maxDetailLen)}
		}
		if n < len(fields) {
			p.MoreErrors = len(fields) - n
			p.Detail += fmt.Sprintf(" (the first %d errors are listed; %d more were found)", n, p.MoreErrors)
		}
		b, _ = json.Marshal(p)
		if len(b) < MaxProblemBytes || n == 0 {
			break
		}
		n /= 2
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
	return status
}

// badBody answers a body that is not well-formed JSON (syntax, duplicate
// member names, invalid UTF-8), naming where the problem is.
func badBody(w http.ResponseWriter, err error, fields []pipeline.FieldError) int {
	return problem(w, http.StatusBadRequest, "Bad Request", err.Error(), fields)
}

func reply(w http.ResponseWriter, status int, v any) int {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
	return status
}

// readJSON enforces the content type and size limit and returns the body,
// or writes the problem and returns a non-zero status.
func readJSON(w http.ResponseWriter, r *http.Request) ([]byte, int) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return nil, problem(w, http.StatusUnsupportedMediaType, "Unsupported Media Type", "the body must be JSON with Content-Type: application/json", nil)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return nil, problem(w, http.StatusRequestEntityTooLarge, "Content Too Large", fmt.Sprintf("the body must be at most %d bytes", MaxBodyBytes), nil)
	}
	if err != nil {
		return nil, problem(w, http.StatusBadRequest, "Bad Request", "could not read the body: "+err.Error(), nil)
	}
	return body, 0
}

var idemKey = regexp.MustCompile(`^[\x21-\x7e]{1,255}$`)

// PlaceOrderResponse is the 202 answer of POST /v1/orders.
type PlaceOrderResponse struct {
	OrderID string          `json:"order_id"`
	Status  pipeline.Status `json:"status"`
}

func (s *Server) placeOrder(w http.ResponseWriter, r *http.Request) (int, error) {
	_, keySent := r.Header["Idempotency-Key"]
	key := r.Header.Get("Idempotency-Key")
	if keySent && !idemKey.MatchString(key) {
		return problem(w, http.StatusBadRequest, "Bad Request", "invalid header", []pipeline.FieldError{{Field: "Idempotency-Key", Detail: "must be 1-255 printable ASCII characters"}}), nil
	}
	body, code := readJSON(w, r)
	if code != 0 {
		return code, nil
	}
	req, fields, err := decodeOrder(body)
	if errors.Is(err, errSyntax) {
		return badBody(w, err, fields), nil
	}
	if err != nil {
		return problem(w, http.StatusInternalServerError, "Internal Server Error", "could not validate the order", nil), err
	}
	if len(fields) > 0 {
		return problem(w, http.StatusBadRequest, "Invalid order", fmt.Sprintf("%d field(s) are invalid", len(fields)), fields), nil
	}
	mismatch, err := s.priceMismatches(r.Context(), req.Items)
	if err != nil {
		return problem(w, http.StatusServiceUnavailable, "Service Unavailable", "could not read the catalogue prices; retry", nil), err
	}
	if len(mismatch) > 0 {
		return problem(w, http.StatusUnprocessableEntity, "Price mismatch", "unit prices must be the catalogue prices of their SKUs", mismatch), nil
	}
	id := uuid.Must(uuid.NewV7()).String()
	if s.NewID != nil {
		id = s.NewID()
	}
	o, err := pipeline.NewOrder(id, req, s.now())
	if err != nil {
		var ve *pipeline.ValidationError
		if errors.As(err, &ve) {
			return problem(w, http.StatusBadRequest, "Invalid order", err.Error(), ve.Fields), nil
		}
		return problem(w, http.StatusInternalServerError, "Internal Server Error", "could not build the order", nil), err
	}
	o.Trace = trace.Traceparent(r.Context())
	oteltrace.SpanFromContext(r.Context()).SetAttributes(trace.AttrOrderID.String(o.ID))
	fingerprint := ""
	if key != "" {
		canon, _ := json.Marshal(req)
		sum := sha256.Sum256(canon)
		fingerprint = hex.EncodeToString(sum[:])
	}
	existing, err := s.Store.Create(r.Context(), o, key, fingerprint)
	switch {
	case errors.Is(err, pipeline.ErrIdempotencyMismatch):
		return problem(w, http.StatusUnprocessableEntity, "Idempotency-Key reused", "this Idempotency-Key was used with a different request body",
			[]pipeline.FieldError{{Field: "Idempotency-Key", Detail: "was used before with a different request"}}), nil
	case err != nil:
		return problem(w, http.StatusServiceUnavailable, "Service Unavailable", "the order could not be recorded; retry with the same Idempotency-Key", nil), err
	case existing != "":
		return s.replay(w, r.Context(), existing)
	}
	s.publishPlaced(r.Context(), o)
	w.Header().Set("Location", "/v1/orders/"+o.ID)
	return reply(w, http.StatusAccepted, PlaceOrderResponse{OrderID: o.ID, Status: o.Status}), nil
}

// replay answers a repeated request with the order the key created first,
// publishing OrderPlaced again if the order has not moved on (the earlier
// attempt may have died before publishing).
func (s *Server) replay(w http.ResponseWriter, ctx context.Context, id string) (int, error) {
	o, err := s.Store.Get(ctx, id)
	if err != nil {
		return problem(w, http.StatusServiceUnavailable, "Service Unavailable", "could not read the order of this Idempotency-Key; retry", nil), err
	}
	if o.Status == pipeline.StatusPlaced {
		s.publishPlaced(ctx, o)
	}
	w.Header().Set("Location", "/v1/orders/"+o.ID)
	return reply(w, http.StatusAccepted, PlaceOrderResponse{OrderID: o.ID, Status: o.Status}), nil
}

// publishPlaced puts OrderPlaced on the bus. The order is recorded already,
// so a failure here does not fail the request: the stuck-order sweep
// publishes it later.
func (s *Server) publishPlaced(ctx context.Context, o pipeline.Order) {
	if err := s.Publisher.Publish(ctx, pipeline.Event{Type: pipeline.EventOrderPlaced, Order: o}); err != nil {
		s.Log.Warn("OrderPlaced not published; the stuck-order sweep will publish it", zap.String("order_id", o.ID), zap.Error(err))
	}
}

// OrderView is the public form of an order.
type OrderView struct {
	OrderID         string                  `json:"order_id"`
	Status          pipeline.Status         `json:"status"`
	CustomerID      string                  `json:"customer_id"`
	Items           []pipeline.Item         `json:"items"`
	Total           pipeline.Money          `json:"total"`
	ShippingAddress pipeline.Address        `json:"shipping_address"`
	TrackingNumber  string                  `json:"tracking_number,omitempty"`
	Carrier         string                  `json:"carrier,omitempty"`
	Reason          string                  `json:"reason,omitempty"`
	Refunded        bool                    `json:"refunded,omitempty"`
	PlacedAt        time.Time               `json:"placed_at"`
	UpdatedAt       time.Time               `json:"updated_at"`
	History         []pipeline.HistoryEntry `json:"history"`
}

// View returns the public form of o (no payment token, no contact details).
func View(o pipeline.Order) OrderView {
	return OrderView{OrderID: o.ID, Status: o.Status, CustomerID: o.Customer.ID, Items: o.Items, Total: o.Total,
		ShippingAddress: o.ShippingAddress, TrackingNumber: o.TrackingNumber, Carrier: o.Carrier, Reason: o.Reason,
		Refunded: o.RefundID != "", PlacedAt: o.PlacedAt, UpdatedAt: o.UpdatedAt, History: o.Timeline()}
}

// noSuchOrder answers for an id no order has. An id that is not
// pipeline.ValidID names no order, and is never sent to DynamoDB, which
// refuses keys over 2048 bytes with a ValidationException.
func noSuchOrder(w http.ResponseWriter) int {
	return problem(w, http.StatusNotFound, "Not Found", "no order with this id", nil)
}

func (s *Server) getOrder(w http.ResponseWriter, r *http.Request) (int, error) {
	if !pipeline.ValidID(r.PathValue("id")) {
		return noSuchOrder(w), nil
	}
	o, err := s.Store.Get(r.Context(), r.PathValue("id"))
	if errors.Is(err, pipeline.ErrNotFound) {
		return problem(w, http.StatusNotFound, "Not Found", "no order "+r.PathValue("id"), nil), nil
	}
	if err != nil {
		return problem(w, http.StatusServiceUnavailable, "Service Unavailable", "could not read the order; retry", nil), err
	}
	return reply(w, http.StatusOK, View(o)), nil
}

func (s *Server) cancelOrder(w http.ResponseWriter, r *http.Request) (int, error) {
	if !pipeline.ValidID(r.PathValue("id")) {
		return noSuchOrder(w), nil
	}
	o, err := s.Service.Cancel(r.Context(), r.PathValue("id"))
	var se *pipeline.StatusError
	switch {
	case errors.Is(err, pipeline.ErrNotFound):
		return problem(w, http.StatusNotFound, "Not Found", "no order "+r.PathValue("id"), nil), nil
	case errors.As(err, &se):
		return problem(w, http.StatusConflict, "Conflict", fmt.Sprintf("order %s is %s and can no longer be cancelled", se.OrderID, se.Status),
			[]pipeline.FieldError{{Field: "status", Detail: string(se.Status)}}), nil
	case err != nil && o.Status == pipeline.StatusCancelled:
		// Cancelled; a follow-up (refund, announcement) failed and is
		// retried by the sweep.
		s.Log.Warn("order cancelled; follow-up will be retried", zap.String("order_id", o.ID), zap.Error(err))
	case err != nil:
		return problem(w, http.StatusServiceUnavailable, "Service Unavailable", "could not cancel the order; retry", nil), err
	}
	return reply(w, http.StatusOK, View(o)), nil
}

var skuPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// StockView is the body of the inventory endpoints. Available is the
// total over the SKU's shards, Shards how many items hold it. UnitPrice is
// the catalogue price, absent when the SKU has none.
type StockView struct {
	SKU       string          `json:"sku"`
	Available int64           `json:"available"`
	UnitPrice *pipeline.Money `json:"unit_price,omitempty"`
	Shards    int             `json:"shards"`
}

func skuProblem(w http.ResponseWriter) int {
	return problem(w, http.StatusBadRequest, "Bad Request", "invalid SKU", []pipeline.FieldError{{Field: "sku", Detail: "must be 1-64 letters, digits or ._-"}})
}

// putInventory replaces the SKU's inventory item: its level and its
// catalogue price (none when unit_price is left out).
func (s *Server) putInventory(w http.ResponseWriter, r *http.Request) (int, error) {
	sku := r.PathValue("sku")
	if !skuPattern.MatchString(sku) {
		return skuProblem(w), nil
	}
	body, code := readJSON(w, r)
	if code != 0 {
		return code, nil
	}
	it, fields, err := decodeStock(sku, body)
	if err != nil {
		return badBody(w, err, fields), nil
	}
	if len(fields) > 0 {
		return problem(w, http.StatusBadRequest, "Invalid stock", fmt.Sprintf("%d field(s) are invalid", len(fields)), fields), nil
	}
	if err := s.Store.PutInventory(r.Context(), it); err != nil {
		return problem(w, http.StatusServiceUnavailable, "Service Unavailable", "could not set the stock; retry", nil), err
	}
	s.priceCache().put(sku, it.UnitPrice, s.now())
	return reply(w, http.StatusOK, StockView{SKU: sku, Available: it.Available, UnitPrice: it.UnitPrice, Shards: it.Shards}), nil
}

func (s *Server) getInventory(w http.ResponseWriter, r *http.Request) (int, error) {
	sku := r.PathValue("sku")
	if !skuPattern.MatchString(sku) {
		return skuProblem(w), nil
	}
	it, err := s.Store.Inventory(r.Context(), sku)
	if errors.Is(err, pipeline.ErrNotFound) {
		return problem(w, http.StatusNotFound, "Not Found", "no SKU "+sku, nil), nil
	}
	if err != nil {
		return problem(w, http.StatusServiceUnavailable, "Service Unavailable", "could not read the stock; retry", nil), err
	}
	return reply(w, http.StatusOK, StockView{SKU: sku, Available: it.Available, UnitPrice: it.UnitPrice, Shards: max(it.Shards, 1)}), nil
}

// AdjustmentView is the 200 answer of POST /v1/inventory/{sku}/adjustments.
type AdjustmentView struct {
	SKU       string `json:"sku"`
	Delta     int64  `json:"delta"`
	Available int64  `json:"available"`
}

// adjustInventory adds delta to the level in one conditional write, so a
// restock while orders run keeps every reservation made meanwhile.
func (s *Server) adjustInventory(w http.ResponseWriter, r *http.Request) (int, error) {
	sku := r.PathValue("sku")
	if !skuPattern.MatchString(sku) {
		return skuProblem(w), nil
	}
	body, code := readJSON(w, r)
	if code != 0 {
		return code, nil
	}
	delta, fields, err := decodeAdjustment(body)
	if err != nil {
		return badBody(w, err, fields), nil
	}
	if len(fields) > 0 {
		return problem(w, http.StatusBadRequest, "Invalid adjustment", fmt.Sprintf("%d field(s) are invalid", len(fields)), fields), nil
	}
	n, err := s.Store.AdjustStock(r.Context(), sku, delta)
	var le *pipeline.LevelError
	switch {
	case errors.Is(err, pipeline.ErrNotFound):
		return problem(w, http.StatusNotFound, "Not Found", "no SKU "+sku, nil), nil
	case errors.As(err, &le):
		return problem(w, http.StatusConflict, "Conflict", le.Error(),
			[]pipeline.FieldError{{Field: "available", Detail: fmt.Sprintf("is %d; the level must stay from 0 to %d", le.Available, pipeline.MaxAvailable)}}), nil
	case err != nil:
		return problem(w, http.StatusServiceUnavailable, "Service Unavailable", "could not adjust the stock; retry", nil), err
	}
	return reply(w, http.StatusOK, AdjustmentView{SKU: sku, Delta: delta, Available: n}), nil
}

func (s *Server) notifications(w http.ResponseWriter, r *http.Request) (int, error) {
	id := r.URL.Query().Get("order_id")
	if id == "" {
		return problem(w, http.StatusBadRequest, "Bad Request", "order_id is required", []pipeline.FieldError{{Field: "order_id", Detail: "is required"}}), nil
	}
	list := s.Notifications.ForOrder(id)
	if list == nil {
		list = []DeliveredNotification{}
	}
	return reply(w, http.StatusOK, map[string]any{"order_id": id, "notifications": list}), nil
}
