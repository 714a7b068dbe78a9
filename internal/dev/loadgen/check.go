package loadgen

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
)

// maxCheckPerTick bounds the completion reads per check: ten BatchGetItem
// requests of 100 keys, oldest orders first (they finish first).
const maxCheckPerTick = 1000

// wait returns once placing is over and every placed order is final, or
// when ctx ends.
func (r *run) wait(ctx context.Context) error {
	tick := time.NewTicker(r.cfg.CheckInterval)
	defer tick.Stop()
	placingDone := r.placingDone
	var pending []*order
	seen, final := 0, 0
	lastLine := time.Now()
	for {
		select {
		case <-tick.C:
		case <-placingDone:
			placingDone = nil
		case <-ctx.Done():
			if r.cfg.Terminal {
				fmt.Fprintln(r.cfg.Out)
			}
			return ctx.Err()
		}
		// Check what was pending at the last tick; orders placed since
		// join the next check.
		check := pending[:min(len(pending), maxCheckPerTick)]
		if len(check) > 0 {
			done := r.finalOnes(ctx, check)
			kept := pending[:0]
			for _, o := range pending {
				if done[o.id] {
					o.final = true
					final++
					continue
				}
				kept = append(kept, o)
			}
			pending = kept
		}
		r.mu.Lock()
		pending = append(pending, r.orders[seen:]...)
		seen = len(r.orders)
		r.mu.Unlock()
		over := placingDone == nil
		elapsed := time.Since(r.start)
		switch {
		case r.cfg.Terminal:
			fmt.Fprintf(r.cfg.Out, "\r%s", bar(final, seen, r.cfg.Orders, elapsed))
		case time.Since(lastLine) >= r.cfg.ProgressEvery || (over && len(pending) == 0):
			fmt.Fprintf(r.cfg.Out, "progress: %d placed, %d final of %d (%.1fs)\n", seen, final, r.cfg.Orders, elapsed.Seconds())
			lastLine = time.Now()
		}
		if over && len(pending) == 0 {
			if r.cfg.Terminal {
				fmt.Fprintln(r.cfg.Out)
			}
			return nil
		}
	}
}

func bar(done, placed, total int, elapsed time.Duration) string {
	const width = 30
	filled := 0
	if total > 0 {
		filled = min(width, done*width/total)
	}
	return fmt.Sprintf("[%s%s] %d/%d final, %d placed  %.1fs ", strings.Repeat("█", filled), strings.Repeat("░", width-filled), done, total, placed, elapsed.Seconds())
}

// finalOnes reads the status of the given orders (status only, 100 keys a
// request) and returns the ids whose status is final. Orders that could not
// be read stay pending.
func (r *run) finalOnes(ctx context.Context, list []*order) map[string]bool {
	done := map[string]bool{}
	for start := 0; start < len(list); start += 100 {
		part := list[start:min(start+100, len(list))]
		keys := make([]map[string]types.AttributeValue, len(part))
		for i, o := range part {
			keys[i] = map[string]types.AttributeValue{"order_id": &types.AttributeValueMemberS{Value: o.id}}
		}
		r.checkerCalls.Add(1)
		out, err := r.db.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: map[string]types.KeysAndAttributes{
			r.names.Tables["orders"]: {Keys: keys, ConsistentRead: aws.Bool(true), ProjectionExpression: aws.String("order_id, #s"),
				ExpressionAttributeNames: map[string]string{"#s": "status"}},
		}})
		if err != nil {
			if ctx.Err() == nil {
				fmt.Fprintf(r.cfg.Out, "check orders: %v\n", err)
			}
			return done
		}
		for _, item := range out.Responses[r.names.Tables["orders"]] {
			id, _ := item["order_id"].(*types.AttributeValueMemberS)
			st, _ := item["status"].(*types.AttributeValueMemberS)
			if id != nil && st != nil && pipeline.Status(st.Value).Final() {
				done[id.Value] = true
			}
		}
	}
	return done
}

// readAll reads every order in full (the final pass, after the counters
// are read), 100 a request, four requests at a time.
func (r *run) readAll(ctx context.Context, ids []string) (map[string]storedOrder, error) {
	table := r.names.Tables["orders"]
	out := make(map[string]storedOrder, len(ids))
	var mu sync.Mutex
	var firstErr error
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for start := 0; start < len(ids); start += 100 {
		part := ids[start:min(start+100, len(ids))]
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			keys := make([]map[string]types.AttributeValue, len(part))
			for i, id := range part {
				keys[i] = map[string]types.AttributeValue{"order_id": &types.AttributeValueMemberS{Value: id}}
			}
			for attempt := 0; len(keys) > 0 && attempt < 10; attempt++ {
				r.checkerCalls.Add(1)
				res, err := r.db.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: map[string]types.KeysAndAttributes{
					table: {Keys: keys, ConsistentRead: aws.Bool(true)}}})
				if err != nil {
					mu.Lock()
					firstErr = fmt.Errorf("read orders: %w", err)
					mu.Unlock()
					return
				}
				for _, item := range res.Responses[table] {
					doc, ok := item["order"].(*types.AttributeValueMemberS)
					if !ok {
						continue
					}
					var o pipeline.Order
					if err := json.Unmarshal([]byte(doc.Value), &o); err != nil {
						continue
					}
					mu.Lock()
					out[o.ID] = storedOrder{Order: o, bytes: itemSize(item)}
					mu.Unlock()
				}
				keys = res.UnprocessedKeys[table].Keys
			}
		}()
	}
	wg.Wait()
	return out, firstErr
}

type storedOrder struct {
	pipeline.Order
	bytes int
}

// itemSize is a DynamoDB item's size as capacity units count it: the
// lengths of attribute names and string values (numbers count their digits,
// roughly).
func itemSize(item map[string]types.AttributeValue) int {
	n := 0
	for k, v := range item {
		n += len(k)
		switch a := v.(type) {
		case *types.AttributeValueMemberS:
			n += len(a.Value)
		case *types.AttributeValueMemberN:
			n += len(a.Value)
		}
	}
	return n
}

// summarise fills in outcomes and latencies from the stored orders.
func (r *run) summarise(ctx context.Context, res *Result) error {
	r.mu.Lock()
	orders := append([]*order(nil), r.orders...)
	r.mu.Unlock()
	ids := make([]string, len(orders))
	for i, o := range orders {
		ids[i] = o.id
	}
	stored, err := r.readAll(ctx, ids)
	if err != nil {
		return err
	}
	res.Placed, res.PlaceErrors = len(orders), int(r.placeErrs.Load())
	res.ByStatus = map[string]int{}
	res.MaxPlaceLagMs = ms(time.Duration(r.maxLag.Load()))
	if !r.placeEnd.IsZero() && res.Placed > 0 {
		res.PlaceRate = float64(res.Placed) / r.placeEnd.Sub(r.start).Seconds()
	}
	var first, last time.Time
	var happy []time.Duration
	var bytes, lines int
	var done []time.Time
	for _, o := range orders {
		so, ok := stored[o.id]
		if !ok {
			res.ByStatus["NOT_FOUND"]++
			res.NotFinal++
			continue
		}
		res.ByStatus[string(so.Status)]++
		bytes += so.bytes
		lines += len(so.Lines())
		if !so.Status.Final() {
			res.NotFinal++
			continue
		}
		res.Final++
		d := so.UpdatedAt.Sub(so.PlacedAt)
		res.latencies = append(res.latencies, d)
		if !o.transient {
			happy = append(happy, d)
		}
		done = append(done, so.UpdatedAt)
		if first.IsZero() || so.PlacedAt.Before(first) {
			first = so.PlacedAt
		}
		if so.UpdatedAt.After(last) {
			last = so.UpdatedAt
		}
	}
	if n := len(stored); n > 0 {
		res.AvgOrderItemBytes = float64(bytes) / float64(n)
		res.AvgLines = float64(lines) / float64(n)
	}
	sort.Slice(res.latencies, func(i, j int) bool { return res.latencies[i] < res.latencies[j] })
	sort.Slice(happy, func(i, j int) bool { return happy[i] < happy[j] })
	l := res.latencies
	res.P50Ms, res.P95Ms, res.P99Ms = ms(Percentile(l, 50)), ms(Percentile(l, 95)), ms(Percentile(l, 99))
	if len(l) > 0 {
		res.MaxMs = ms(l[len(l)-1])
	}
	res.P99HappyMs = ms(Percentile(happy, 99))
	if last.After(first) {
		res.ElapsedSeconds = last.Sub(first).Seconds()
		res.OrdersPerSecond = float64(res.Final) / res.ElapsedSeconds
	}
	sort.Slice(done, func(i, j int) bool { return done[i].Before(done[j]) })
	if n := len(done); n > 0 {
		k := max(1, int(0.99*float64(n)))
		if t := done[k-1]; t.After(first) {
			res.OrdersPerSecond99 = float64(k) / t.Sub(first).Seconds()
			res.FirstPlaced, res.Done99 = first, t
		}
	}
	return nil
}
