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
// placed_at (by_customer, set by the creating write and never changed);
// open, set while the order is in progress and removed by the final
// transition (by_open, with placed_at); outcome and closed_at, set only by
// the final transition (by_outcome); and in the JSON format updated_at
// (by_status, the index of the previous layout, fed while a release that
// reads it may run). Indexes project only keys: a write that changes no
// index key writes no index, so an order pays for an index entry when it
// is created, when it leaves by_open and when it enters by_outcome.
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

// OpenIndex is the sparse index of orders in progress on (open,
// placed_at); OutcomeIndex the sparse index of finished orders on
// (outcome, closed_at).
const (
	OpenIndex    = "by_open"
	OutcomeIndex = "by_outcome"
)

// Sparse index key attributes, and the one value of open.
const (
	openAttr     = "open"
	openValue    = "1"
	outcomeAttr  = "outcome"
	closedAtAttr = "closed_at"
)

// IdempotencyTTL is how long an intake Idempotency-Key is remembered.
const IdempotencyTTL = 24 * time.Hour

// timeLayout is fixed-width so that updated_at sorts as a string.
const timeLayout = "2006-01-02T15:04:05.000000000Z"

// Store implements pipeline.Store on DynamoDB. Safe for concurrent use.
type Store struct {
	db     *dynamodb.Client
	tables Tables
	format Format

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
