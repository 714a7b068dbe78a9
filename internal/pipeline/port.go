package pipeline

import (
	"context"
	"time"
)

// Change is one conditional write: the order moves to Order.Status only if
// its stored status is From, and in the same atomic write the stock of
// Reserve lines is decremented (each only if enough is available) and the
// stock of Release lines is incremented.
type Change struct {
	// Order is the whole order after the change.
	Order Order
	// From is the status the stored order must have.
	From Status
	// Upsert also lets the write succeed when no order is stored yet, for
	// producers that put OrderPlaced straight on the bus.
	Upsert  bool
	Reserve []Line
	Release []Line
	// Doc, when set, is Order encoded by EncodeOrder, which the store
	// writes as it is instead of encoding Order again.
	Doc string
}

// The store port is split by consumer: each declares only what it uses.
// Implementations are safe for concurrent use; ctx bounds each call. Errors
// other than the documented sentinels and types are transient (throttling,
// network) and worth retrying.

// OrderReader reads one order.
type OrderReader interface {
	// Get returns the stored order, or ErrNotFound. Reads are strongly
	// consistent.
	Get(ctx context.Context, id string) (Order, error)
}

// Orders is what the stage handlers need: read an order, and move it with
// one conditional write.
type Orders interface {
	OrderReader
	// Reserve performs a change with Reserve lines like Apply and returns
	// the order as written: it records in StockShards the stock shard each
	// line's units were taken from, chosen inside the write.
	Reserve(ctx context.Context, ch Change) (Order, error)
	// Apply performs ch atomically. It returns ErrConflict when the status
	// condition fails and *StockError when a reservation cannot be met; in
	// both cases nothing was written.
	Apply(ctx context.Context, ch Change) error
}

// OrderCreator stores new orders (the intake API).
type OrderCreator interface {
	// Create stores a new PLACED order. With a non-empty idempotency key it
	// records key → (fingerprint, order id) in the same write; when the key
	// exists already it stores nothing and returns the existing order id,
	// or ErrIdempotencyMismatch if the fingerprint differs.
	Create(ctx context.Context, o Order, idempotencyKey, fingerprint string) (existingID string, err error)
}

// Catalogue reads catalogue prices (the intake API's early price check).
type Catalogue interface {
	// Prices returns the catalogue price of each of skus that has one; a
	// SKU without a price or without an inventory item is absent.
	Prices(ctx context.Context, skus []string) (map[string]Money, error)
}

// StockKeeper reads and sets stock (operator tools, seeding).
type StockKeeper interface {
	// SetStock sets the units of sku available for sale, replacing the
	// inventory item (so removing any catalogue price).
	SetStock(ctx context.Context, sku string, available int64) error
	// Stock returns the units of sku available, or ErrNotFound.
	Stock(ctx context.Context, sku string) (int64, error)
	// PutInventory replaces the inventory of it.SKU: its level (spread
	// over it.Shards items), catalogue price (none when it.UnitPrice is
	// nil) and shard count.
	PutInventory(ctx context.Context, it InventoryItem) error
	// Inventory returns the inventory of sku (the total over its shards),
	// or ErrNotFound.
	Inventory(ctx context.Context, sku string) (InventoryItem, error)
	// AdjustStock adds delta (negative to remove) to the level of sku in one
	// conditional write and returns the new level. It returns ErrNotFound
	// for an unknown SKU and *LevelError, writing nothing, when the level
	// would leave 0..MaxAvailable.
	AdjustStock(ctx context.Context, sku string, delta int64) (int64, error)
}

// OrderLister lists orders by status (the stuck-order sweep, the console).
type OrderLister interface {
	// ListByStatus returns up to limit orders in status last changed before
	// (and, when after is not zero, after) the given times, oldest first.
	ListByStatus(ctx context.Context, status Status, after, before time.Time, limit int) ([]Order, error)
}

// IntakeStore is what the intake API needs.
type IntakeStore interface {
	OrderReader
	OrderCreator
	Catalogue
	StockKeeper
}

// Store is every part of the port together, as the DynamoDB store
// implements it.
type Store interface {
	Orders
	OrderCreator
	Catalogue
	StockKeeper
	OrderLister
}

// MaxAvailable is the largest stock level of a SKU. Levels stay far below
// what an int64 holds, so releasing reserved units can never overflow.
const MaxAvailable = 1_000_000_000

// InventoryItem is a SKU's stock level and, when the catalogue sets one, the
// unit price every order line of the SKU must carry.
type InventoryItem struct {
	SKU       string
	Available int64
	// UnitPrice is nil when the SKU has no catalogue price; then any price
	// an order carries is accepted.
	UnitPrice *Money
	// Shards is how many items hold the stock (1..MaxShards; 0 means 1).
	// A hot SKU is sharded so that its reservations spread over several
	// DynamoDB items, each with its own write throughput.
	Shards int
}

// MaxShards is the most items a SKU's stock can be spread over.
const MaxShards = 32

// Publisher puts events on the bus. Publish returns only once every event
// is accepted by the bus (batched with other callers' events for efficiency),
// or an error; it is safe for concurrent use.
type Publisher interface {
	Publish(ctx context.Context, events ...Event) error
}

// Notification is a message to the customer about their order.
type Notification struct {
	// Event is OrderConfirmed, OrderShipped, OrderRejected, PaymentFailed or
	// OrderCancelled.
	Event    string
	OrderID  string
	Customer string
	// Channels the customer can be reached on: "email" always, "sms" when a
	// phone number is known.
	Channels []string
	Subject  string
	Text     string
}

// Notifier tells customers what happened. Notify returns once the
// notification is accepted by the topic; it is safe for concurrent use.
type Notifier interface {
	Notify(ctx context.Context, n Notification) error
}

// ChargeRequest asks the payment provider to capture money.
type ChargeRequest struct {
	// IdempotencyKey makes retries safe: the same key charges at most once
	// and returns the original charge.
	IdempotencyKey string
	OrderID        string
	Amount         Money
	Token          string
}

// RefundRequest asks the provider to return a charge in full.
type RefundRequest struct {
	IdempotencyKey string
	OrderID        string
	ChargeID       string
	Amount         Money
}

// PaymentGateway is the port to the payment provider. A *DeclinedError is
// permanent; any other error is transient and the call may be retried with
// the same idempotency key. Safe for concurrent use.
type PaymentGateway interface {
	Charge(ctx context.Context, r ChargeRequest) (chargeID string, err error)
	Refund(ctx context.Context, r RefundRequest) (refundID string, err error)
}

// ShipmentRequest asks the carrier to book a shipment.
type ShipmentRequest struct {
	// IdempotencyKey makes retries safe: the same key books once.
	IdempotencyKey string
	OrderID        string
	Address        Address
	Items          []Item
}

// Shipment is a booked shipment.
type Shipment struct {
	Carrier        string
	TrackingNumber string
}

// Carrier is the port to the shipping carrier. Errors are transient; safe for
// concurrent use.
type Carrier interface {
	Book(ctx context.Context, r ShipmentRequest) (Shipment, error)
	// Cancel voids a booking made with the same idempotency key, if any.
	Cancel(ctx context.Context, idempotencyKey string) error
}

// Observer hears about domain outcomes, for metrics. Safe for concurrent use.
type Observer interface {
	// Transitioned is called after a status change is written.
	Transitioned(from, to Status)
	// Finished is called when an order reaches a final status, with the time
	// from placement.
	Finished(o Order, sincePlaced time.Duration)
}

type nopObserver struct{}

func (nopObserver) Transitioned(Status, Status)   {}
func (nopObserver) Finished(Order, time.Duration) {}
