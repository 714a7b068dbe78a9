// Package sandbox provides deterministic stand-ins for the two external
// providers, used by devstack and the tests:
//
//   - Gateway, a payment gateway keyed by test tokens: tok_visa succeeds,
//     tok_chargeDeclined is declined (permanent), tok_processingError fails
//     transiently on its first two attempts per idempotency key, then
//     succeeds. Any other token is declined as invalid. Its ledger of charges
//     and refunds lives in DynamoDB keyed by idempotency key, so "charged at
//     most once per order" can be checked after the fact.
//   - Carrier, which books shipments and returns a tracking number derived
//     from the order id, optionally after a delay (to exercise slow
//     handlers).
package sandbox

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
)

// Test tokens.
const (
	TokenVisa            = "tok_visa"
	TokenDeclined        = "tok_chargeDeclined"
	TokenProcessingError = "tok_processingError"
)

// TransientFailures is how many attempts per key tok_processingError fails.
const TransientFailures = 2

// ErrProcessing is the transient failure of tok_processingError.
var ErrProcessing = errors.New("sandbox: processing error, try again")

// Ledger entry kinds.
const (
	KindCapture = "capture"
	KindRefund  = "refund"
	kindAttempt = "attempts"
)

// Gateway is the sandbox pipeline.PaymentGateway. Safe for concurrent use.
type Gateway struct {
	db    *dynamodb.Client
	table string
	now   func() time.Time
}

var _ pipeline.PaymentGateway = (*Gateway)(nil)

// NewGateway returns a sandbox gateway keeping its ledger in table.
func NewGateway(db *dynamodb.Client, ledgerTable string) *Gateway {
	return &Gateway{db: db, table: ledgerTable, now: time.Now}
}

func sv(s string) types.AttributeValue { return &types.AttributeValueMemberS{Value: s} }
func nv(n int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(n, 10)}
}

func derive(prefix, key string) string {
	h := sha256.Sum256([]byte(key))
	return prefix + hex.EncodeToString(h[:12])
}

// Charge implements pipeline.PaymentGateway.
func (g *Gateway) Charge(ctx context.Context, r pipeline.ChargeRequest) (string, error) {
	switch r.Token {
	case TokenVisa:
	case TokenDeclined:
		return "", &pipeline.DeclinedError{Code: "card_declined", Message: "Your card was declined."}
	case TokenProcessingError:
		n, err := g.attempt(ctx, r.IdempotencyKey)
		if err != nil {
			return "", err
		}
		if n <= TransientFailures {
			return "", fmt.Errorf("attempt %d: %w", n, ErrProcessing)
		}
	default:
		return "", &pipeline.DeclinedError{Code: "invalid_token", Message: "No such payment method."}
	}
	if r.Amount.Amount < 0 || !pipeline.ValidCurrency(r.Amount.Currency) {
		return "", &pipeline.DeclinedError{Code: "invalid_amount", Message: "Invalid amount " + r.Amount.String()}
	}
	id := derive("ch_", r.IdempotencyKey)
	return g.record(ctx, r.IdempotencyKey, KindCapture, r.OrderID, id, r.Amount)
}

// Refund implements pipeline.PaymentGateway. It refunds the capture made
// under the order id (the key the payment stage charges with); with no such
// capture it declines with code no_charge.
func (g *Gateway) Refund(ctx context.Context, r pipeline.RefundRequest) (string, error) {
	capture, err := g.get(ctx, r.OrderID)
	if err != nil {
		return "", err
	}
	if capture == nil || attr(capture, "kind") != KindCapture {
		return "", &pipeline.DeclinedError{Code: "no_charge", Message: "There is no charge to refund for order " + r.OrderID}
	}
	amount, _ := strconv.ParseInt(attr(capture, "amount"), 10, 64)
	id := derive("re_", r.IdempotencyKey)
	return g.record(ctx, r.IdempotencyKey, KindRefund, r.OrderID, id, pipeline.Money{Amount: amount, Currency: attr(capture, "currency")})
}

// record writes a ledger entry once per key and returns its id; a repeat
// with the same key returns the first entry's id.
func (g *Gateway) record(ctx context.Context, key, kind, orderID, id string, m pipeline.Money) (string, error) {
	_, err := g.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: &g.table,
		Item: map[string]types.AttributeValue{
			"idempotency_key": sv(key), "kind": sv(kind), "order_id": sv(orderID), "id": sv(id),
			"amount": nv(m.Amount), "currency": sv(m.Currency), "created_at": sv(g.now().UTC().Format(time.RFC3339Nano)),
		},
		ConditionExpression: aws.String("attribute_not_exists(idempotency_key)"),
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		prev, err := g.get(ctx, key)
		if err != nil {
			return "", err
		}
		if prev == nil {
			return "", errors.New("sandbox ledger: entry vanished")
		}
		return attr(prev, "id"), nil
	}
	if err != nil {
		return "", fmt.Errorf("sandbox ledger: %w", err)
	}
	return id, nil
}

func (g *Gateway) get(ctx context.Context, key string) (map[string]types.AttributeValue, error) {
	out, err := g.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: &g.table, Key: map[string]types.AttributeValue{"idempotency_key": sv(key)}, ConsistentRead: aws.Bool(true)})
	if err != nil {
		return nil, fmt.Errorf("sandbox ledger: %w", err)
	}
	return out.Item, nil
}

func (g *Gateway) attempt(ctx context.Context, key string) (int64, error) {
	out, err := g.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 &g.table,
		Key:                       map[string]types.AttributeValue{"idempotency_key": sv(kindAttempt + "#" + key)},
		UpdateExpression:          aws.String("ADD attempts :one SET kind = :k"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":one": nv(1), ":k": sv(kindAttempt)},
		ReturnValues:              types.ReturnValueUpdatedNew,
	})
	if err != nil {
		return 0, fmt.Errorf("sandbox ledger: %w", err)
	}
	n, _ := strconv.ParseInt(attr(out.Attributes, "attempts"), 10, 64)
	return n, nil
}

func attr(item map[string]types.AttributeValue, name string) string {
	switch v := item[name].(type) {
	case *types.AttributeValueMemberS:
		return v.Value
	case *types.AttributeValueMemberN:
		return v.Value
	}
	return ""
}

// Entry is one ledger entry.
type Entry struct {
	Key     string
	Kind    string
	OrderID string
	ID      string
	Amount  pipeline.Money
}

// Entries scans the whole ledger (for checks and the console, not the hot
// path).
func (g *Gateway) Entries(ctx context.Context) ([]Entry, error) {
	var out []Entry
	p := dynamodb.NewScanPaginator(g.db, &dynamodb.ScanInput{TableName: &g.table})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("scan ledger: %w", err)
		}
		for _, it := range page.Items {
			kind := attr(it, "kind")
			if kind == kindAttempt {
				continue
			}
			amount, _ := strconv.ParseInt(attr(it, "amount"), 10, 64)
			out = append(out, Entry{Key: attr(it, "idempotency_key"), Kind: kind, OrderID: attr(it, "order_id"), ID: attr(it, "id"),
				Amount: pipeline.Money{Amount: amount, Currency: attr(it, "currency")}})
		}
	}
	return out, nil
}

// Carrier is the sandbox pipeline.Carrier.
type Carrier struct {
	// Delay is how long each booking takes (0: none).
	Delay time.Duration
}

var _ pipeline.Carrier = Carrier{}

// CarrierName is the name the sandbox carrier reports.
const CarrierName = "SandboxPost"

// Book implements pipeline.Carrier: the tracking number is a function of
// the idempotency key, so a repeated booking returns the same shipment.
func (c Carrier) Book(ctx context.Context, r pipeline.ShipmentRequest) (pipeline.Shipment, error) {
	if c.Delay > 0 {
		t := time.NewTimer(c.Delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return pipeline.Shipment{}, fmt.Errorf("sandbox carrier: %w", context.Cause(ctx))
		}
	}
	return pipeline.Shipment{Carrier: CarrierName, TrackingNumber: strings.ToUpper(derive("1Z", r.IdempotencyKey)[:18])}, nil
}

// Cancel implements pipeline.Carrier; sandbox bookings need no voiding.
func (Carrier) Cancel(context.Context, string) error { return nil }
