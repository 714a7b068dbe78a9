// Package store is the DynamoDB adapter of pipeline.Store: orders, stock and
// intake idempotency keys. Each pipeline.Change is exactly one conditional
// write (PutItem, or TransactWriteItems when stock moves with the order), so
// the write is the single source of truth for progress. There is no read
// before a write; reads happen only after a lost condition, to explain it.
//
// An order is stored as a few top-level attributes that conditions and the
// indexes need (order_id, status, updated_at for by_status; customer_id,
// placed_at for by_customer) plus the whole order as one JSON document,
// which keeps the mapping exact (integer money, times, the status history
// map) and the item small.
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

// StatusIndex is the orders table's index on (status, updated_at).
const StatusIndex = "by_status"

// IdempotencyTTL is how long an intake Idempotency-Key is remembered.
const IdempotencyTTL = 24 * time.Hour

// timeLayout is fixed-width so that updated_at sorts as a string.
const timeLayout = "2006-01-02T15:04:05.000000000Z"

// Store implements pipeline.Store on DynamoDB. Safe for concurrent use.
type Store struct {
	db     *dynamodb.Client
	tables Tables

	shards      shardCounts
	rebalancing sync.Map // sku → true while a rebalance runs
	rebalanced  sync.Map // sku → time.Time of the last rebalance started
}

var _ pipeline.Store = (*Store)(nil)

// New returns a store on the given tables.
func New(db *dynamodb.Client, t Tables) *Store { return &Store{db: db, tables: t} }

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
