// Package store is the DynamoDB adapter of pipeline.Store: orders, stock and
// intake idempotency keys. Each pipeline.Change is exactly one conditional
// write (PutItem, or TransactWriteItems when stock moves with the order), so
// the write is the single source of truth for progress. There is no read
// before a write; reads happen only after a lost condition, to explain it.
//
// An order is stored as a few top-level attributes that conditions and the
// indexes need plus the whole order as one document (codec.go), which
// keeps the mapping exact (integer money, times, the status history map).
// The attributes: order_id; status (the write conditions); customer_id and
// placed_at (by_customer); placed_bucket, with placed_at (by_placed, the
// timeline of every order); all three set by the creating write and never
// changed. open (by_open, with placed_at) marks an order the stuck-order
// sweep must watch: in the compact format a write sets it only on an
// order not done whose placement is older than the stuck age, and the
// sweep sets it on such an order nothing has written since (overdue.go),
// so an order that finishes in time never enters by_open. In the JSON
// format, written while the previous release may run beside this one,
// every write also sets that release's keys: open while the order is in
// progress, outcome and closed_at once it is final (by_outcome), and
// updated_at (by_status). Indexes project only keys: a write that changes
// no index key writes no index, so an order that finishes in time pays
// for two index entries in the compact format, both when it is created.
package store

import (
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
)

// Tables names the DynamoDB tables the store uses.
type Tables struct {
	Orders      string
	Inventory   string
	Idempotency string
}

// StatusIndex is the orders table's index on (status, updated_at) of the
// previous layout: fed only in FormatJSON, read while it exists.
const StatusIndex = "by_status"

// OpenIndex is the sparse index on (open, placed_at) of the orders the
// sweep watches (in FormatJSON: every order in progress, as the previous
// release wrote it); OutcomeIndex the sparse index of finished orders on
// (outcome, closed_at), fed only in FormatJSON, which the previous release
// reads.
const (
	OpenIndex    = "by_open"
	OutcomeIndex = "by_outcome"
)

// TimelineIndex is the index of every order by when it was placed, on
// (placed_bucket, placed_at): the status listings of the compact format
// and the sweep's walk (overdue.go) read it.
const TimelineIndex = "by_placed"

// Sparse index key attributes, and the one value of open and of
// placed_bucket.
const (
	openAttr      = "open"
	openValue     = "1"
	outcomeAttr   = "outcome"
	closedAtAttr  = "closed_at"
	timelineAttr  = "placed_bucket"
	timelineValue = "0"
)

// DefaultStuckAfter is the stuck age a store assumes until SetStuckAfter
// (the worker's CLOUDCOMMERCE_STUCK_AFTER default).
const DefaultStuckAfter = 2 * time.Minute

// IdempotencyTTL is how long an intake Idempotency-Key is remembered.
const IdempotencyTTL = 24 * time.Hour

// timeLayout is fixed-width so that updated_at sorts as a string.
const timeLayout = "2006-01-02T15:04:05.000000000Z"

// Store implements pipeline.Store on DynamoDB. Safe for concurrent use.
type Store struct {
	db     *dynamodb.Client
	tables Tables
	format Format
	// stuckAfter is the age past which an order not done is written with
	// open in FormatCompact (0: DefaultStuckAfter); now is the clock.
	stuckAfter time.Duration
	now        func() time.Time

	shards      shardCounts
	rebalancing sync.Map // sku → true while a rebalance runs
	rebalanced  sync.Map // sku → time.Time of the last rebalance started
}

var _ pipeline.Store = (*Store)(nil)

// New returns a store on the given tables that writes orders in FormatJSON.
func New(db *dynamodb.Client, t Tables) *Store { return &Store{db: db, tables: t} }

// NewFormat returns a store on the given tables that writes orders in f.
func NewFormat(db *dynamodb.Client, t Tables, f Format) *Store {
	return &Store{db: db, tables: t, format: f}
}

// Format is the form in which the store writes orders.
func (st *Store) Format() Format { return st.format }

// SetStuckAfter sets the age at which an order not done counts as stuck
// (the sweep's CLOUDCOMMERCE_STUCK_AFTER). Call it before the store is used.
func (st *Store) SetStuckAfter(d time.Duration) { st.stuckAfter = d }

// overdueBefore is the placement time before which an order not done is
// overdue: written with open, and passed by the sweep's walk.
func (st *Store) overdueBefore() time.Time {
	d := st.stuckAfter
	if d <= 0 {
		d = DefaultStuckAfter
	}
	now := time.Now
	if st.now != nil {
		now = st.now
	}
	return now().Add(-d)
}

func s(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
func n(v int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(v, 10)}
}

func hasCode(reasons []types.CancellationReason, code string) bool {
	for _, r := range reasons {
		if aws.ToString(r.Code) == code {
			return true
		}
	}
	return false
}
