package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/google/uuid"

	"github.com/cloudcommerce/cloudcommerce/internal/bus"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
	"github.com/cloudcommerce/cloudcommerce/internal/sandbox"
)

// post places one order through the intake API, retrying 5xx answers and
// transport errors a few times (with the same Idempotency-Key, when sent,
// so a retry can never create a second order).
func (r *run) post(ctx context.Context, req pipeline.OrderRequest, idem string) (string, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return "", err
	}
	for attempt := 0; ; attempt++ {
		hr, err := http.NewRequestWithContext(ctx, http.MethodPost, r.cfg.APIURL+"/v1/orders", bytes.NewReader(body))
		if err != nil {
			return "", err
		}
		hr.Header.Set("Content-Type", "application/json")
		if *r.cfg.IdempotencyKey {
			hr.Header.Set("Idempotency-Key", idem)
		}
		if r.cfg.APIKey != "" {
			hr.Header.Set("Authorization", "Bearer "+r.cfg.APIKey)
		}
		resp, err := r.http.Do(hr)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var out struct {
				OrderID string `json:"order_id"`
			}
			if resp.StatusCode == http.StatusAccepted && json.Unmarshal(b, &out) == nil && out.OrderID != "" {
				return out.OrderID, nil
			}
			err = fmt.Errorf("intake answered %d: %s", resp.StatusCode, bytes.TrimSpace(b))
			if resp.StatusCode < 500 {
				return "", err
			}
		}
		if attempt >= 3 || ctx.Err() != nil || !*r.cfg.IdempotencyKey {
			return "", err
		}
		select {
		case <-time.After(time.Duration(100<<attempt) * time.Millisecond):
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
}

// putBatch puts orders first..first+n-1 on the bus in one PutEvents (n ≤ 10),
// retrying failed entries a few times. Each order's PlacedAt is the moment
// of the put, so producer-side batching is not counted as latency.
func (r *run) putBatch(ctx context.Context, first, n int) {
	now := time.Now().UTC()
	entries := make([]types.PutEventsRequestEntry, 0, n)
	orders := make([]*order, 0, n)
	for i := first; i < first+n; i++ {
		req := r.request(i)
		o, err := pipeline.NewOrder(uuid.Must(uuid.NewV7()).String(), req, now)
		if err == nil {
			var e types.PutEventsRequestEntry
			if e, err = bus.Entry(r.names.Bus, pipeline.Event{Type: pipeline.EventOrderPlaced, Order: o}); err == nil {
				entries = append(entries, e)
				orders = append(orders, &order{id: o.ID, transient: req.Payment.Token == sandbox.TokenProcessingError})
				continue
			}
		}
		r.placeErrs.Add(1)
		fmt.Fprintf(r.cfg.Out, "build order %d: %v\n", i, err)
	}
	for attempt := 0; len(entries) > 0; attempt++ {
		r.putCalls.Add(1)
		out, err := r.eb.PutEvents(ctx, &eventbridge.PutEventsInput{Entries: entries})
		if err == nil && out.FailedEntryCount == 0 {
			r.placed(orders...)
			return
		}
		if err == nil {
			// Keep the failed entries for the next attempt; the rest are
			// on the bus.
			var retryE []types.PutEventsRequestEntry
			var retryO []*order
			for i, res := range out.Entries {
				if i >= len(entries) {
					break
				}
				if res.ErrorCode != nil {
					retryE, retryO = append(retryE, entries[i]), append(retryO, orders[i])
				} else {
					r.placed(orders[i])
				}
			}
			if len(out.Entries) != len(entries) {
				// No per-entry answer: retry all (consumers are idempotent).
				retryE, retryO = entries, orders
			}
			entries, orders = retryE, retryO
			err = fmt.Errorf("%d entries failed, first: %s", out.FailedEntryCount, aws.ToString(firstError(out.Entries)))
		}
		if attempt >= 3 || ctx.Err() != nil {
			if ctx.Err() == nil {
				r.placeErrs.Add(int64(len(entries)))
				fmt.Fprintf(r.cfg.Out, "put %d orders on the bus: %v\n", len(entries), err)
			}
			return
		}
		select {
		case <-time.After(time.Duration(100<<attempt) * time.Millisecond):
		case <-ctx.Done():
			return
		}
	}
}

func firstError(rs []types.PutEventsResultEntry) *string {
	for _, e := range rs {
		if e.ErrorCode != nil {
			return e.ErrorCode
		}
	}
	return nil
}
