package cost

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"

	"github.com/cloudcommerce/cloudcommerce/internal/awsconf"
)

// Write units from a recording. The workers of a benchmark run record
// each DynamoDB write request (awsconf.RecordWritesEnv): the table, the
// item's size and its short attributes, among them every index key.
// WriteUnits replays the recording item by item and charges what DynamoDB
// charges on demand (Amazon DynamoDB Developer Guide, "Read/write capacity
// mode" and "Global secondary indexes: provisioned throughput"):
//
//   - a table write: 1 WRU per started KB of the larger of the item
//     before and after (a Delete: the item deleted); twice that for an
//     item of TransactWriteItems; charged for a failed request too (a
//     failed condition consumes write capacity);
//   - an index write, only for a request that succeeded: an item entering
//     an index (its keys set) puts an entry, one leaving it deletes one,
//     one whose index key changes deletes and puts; with the keys
//     unchanged an ALL-projection index rewrites its entry, a KEYS_ONLY
//     one writes nothing. An entry is charged 1 WRU per started KB of its
//     size: the table and index keys for KEYS_ONLY, the item for ALL.
//
// Each request is attributed to the order it writes (the orders table
// item in it), so units per order are exact for the orders kept.

// Schema is a table's key and indexes as the topology declares them.
type Schema struct {
	// Label names the table in the results ("orders").
	Label   string
	Hash    string
	Range   string
	Indexes []IndexSchema
}

// IndexSchema is one global secondary index.
type IndexSchema struct {
	Name, Hash, Range string
	// Projection is ALL, KEYS_ONLY or INCLUDE (priced as ALL).
	Projection string
}

// WriteUnits is what a recording cost.
type WriteUnits struct {
	// Orders is how many distinct kept orders the writes were attributed to.
	Orders int
	// ByTarget is the WRU written for those orders by table label
	// ("orders") and index ("orders/by_open").
	ByTarget map[string]float64
	// Unattributed is the WRU of requests that wrote no kept order (stock
	// set-up, other orders).
	Unattributed float64
	// ItemBytes is the mean size of the kept orders' items as written.
	ItemBytes float64
}

// PerOrder is ByTarget divided by Orders.
func (u WriteUnits) PerOrder() map[string]float64 {
	out := make(map[string]float64, len(u.ByTarget))
	for k, v := range u.ByTarget {
		if u.Orders > 0 {
			out[k] = v / float64(u.Orders)
		}
	}
	return out
}

// Total is the WRU per order over every target.
func (u WriteUnits) Total() float64 {
	t := 0.0
	for _, v := range u.PerOrder() {
		t += v
	}
	return t
}

type itemState struct {
	attrs map[string]string
	bytes int
}

func kb(bytes int) float64 { return math.Max(1, math.Ceil(float64(bytes)/1024)) }

// RecordedWriteUnits reads a recording (awsconf.Call lines; lines without
// writes are skipped) and charges its writes to tables by name in
// schemas; writes to other tables are ignored. ordersTable names the table
// whose "order_id" attributes a request to an order; keep (nil: every
// order) chooses the orders counted.
func RecordedWriteUnits(r io.Reader, schemas map[string]Schema, ordersTable string, keep func(orderID string) bool) (WriteUnits, error) {
	u := WriteUnits{ByTarget: map[string]float64{}}
	items := map[string]*itemState{}
	orders := map[string]bool{}
	var itemBytes, itemWrites int
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for line := 1; sc.Scan(); line++ {
		var c awsconf.Call
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			return u, fmt.Errorf("recording line %d: %w", line, err)
		}
		if len(c.Writes) == 0 {
			continue
		}
		order := ""
		for _, w := range c.Writes {
			if w.Table == ordersTable && w.Attrs["order_id"] != "" {
				order = w.Attrs["order_id"]
				break
			}
		}
		counted := order != "" && (keep == nil || keep(order))
		charges := map[string]float64{}
		for _, w := range c.Writes {
			sch, ok := schemas[w.Table]
			if !ok {
				continue
			}
			key := w.Table + "\x00" + w.Attrs[sch.Hash] + "\x00" + w.Attrs[sch.Range]
			before := items[key]
			size := w.Bytes
			if before != nil && before.bytes > size {
				size = before.bytes
			}
			units := kb(size)
			if w.Transact {
				units *= 2
			}
			charges[sch.Label] += units
			if c.Failed || w.Op == "Check" {
				continue
			}
			after := apply(before, w)
			if counted && w.Table == ordersTable && after != nil {
				itemBytes += after.bytes
				itemWrites++
			}
			for _, ix := range sch.Indexes {
				charges[sch.Label+"/"+ix.Name] += indexUnits(sch, ix, before, after)
			}
			if after == nil {
				delete(items, key)
			} else {
				items[key] = after
			}
		}
		for k, v := range charges {
			if counted {
				u.ByTarget[k] += v
			} else {
				u.Unattributed += v
			}
		}
		if counted {
			orders[order] = true
		}
	}
	if err := sc.Err(); err != nil {
		return u, fmt.Errorf("read recording: %w", err)
	}
	u.Orders = len(orders)
	if itemWrites > 0 {
		u.ItemBytes = float64(itemBytes) / float64(itemWrites)
	}
	return u, nil
}

// apply is the item after w (nil: deleted).
func apply(before *itemState, w awsconf.Write) *itemState {
	switch w.Op {
	case "Delete":
		return nil
	case "Put":
		return &itemState{attrs: w.Attrs, bytes: w.Bytes}
	}
	after := &itemState{attrs: map[string]string{}, bytes: w.Bytes}
	if before != nil {
		for k, v := range before.attrs {
			after.attrs[k] = v
		}
		after.bytes = max(before.bytes, w.Bytes)
	}
	for k, v := range w.Attrs {
		after.attrs[k] = v
	}
	for _, k := range w.Removes {
		delete(after.attrs, k)
	}
	return after
}

// indexUnits is what one item write costs ix.
func indexUnits(sch Schema, ix IndexSchema, before, after *itemState) float64 {
	in := func(s *itemState) bool {
		if s == nil {
			return false
		}
		if _, ok := s.attrs[ix.Hash]; !ok {
			return false
		}
		if ix.Range != "" {
			if _, ok := s.attrs[ix.Range]; !ok {
				return false
			}
		}
		return true
	}
	entry := func(s *itemState) float64 {
		if ix.Projection != "KEYS_ONLY" {
			return kb(s.bytes)
		}
		n := 0
		for _, a := range []string{sch.Hash, sch.Range, ix.Hash, ix.Range} {
			if a != "" {
				n += len(a) + len(s.attrs[a])
			}
		}
		return kb(n)
	}
	was, is := in(before), in(after)
	switch {
	case !was && !is:
		return 0
	case !was:
		return entry(after)
	case !is:
		return entry(before)
	}
	same := func(a string) bool {
		return a == "" || (before.attrs[a] == after.attrs[a] && after.attrs[a] != "?")
	}
	if !same(ix.Hash) || !same(ix.Range) {
		return entry(before) + entry(after)
	}
	if ix.Projection != "KEYS_ONLY" {
		return entry(after)
	}
	return 0
}

// PrintWriteUnits writes the WRU per order of runs side by side, by table
// and index, as a Markdown table.
func PrintWriteUnits(w io.Writer, names []string, runs []WriteUnits) {
	targets := map[string]bool{}
	for _, r := range runs {
		for k := range r.ByTarget {
			targets[k] = true
		}
	}
	keys := make([]string, 0, len(targets))
	for k := range targets {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Fprint(w, "| WRU per order (recorded writes) |")
	for _, n := range names {
		fmt.Fprintf(w, " %s |", n)
	}
	fmt.Fprint(w, "\n|---|")
	for range names {
		fmt.Fprint(w, "---:|")
	}
	fmt.Fprintln(w)
	for _, k := range keys {
		fmt.Fprintf(w, "| %s |", k)
		for _, r := range runs {
			fmt.Fprintf(w, " %.2f |", r.PerOrder()[k])
		}
		fmt.Fprintln(w)
	}
	fmt.Fprint(w, "| **total** |")
	for _, r := range runs {
		fmt.Fprintf(w, " **%.2f** |", r.Total())
	}
	fmt.Fprint(w, "\n| orders / mean order item bytes |")
	for _, r := range runs {
		fmt.Fprintf(w, " %d / %.0f |", r.Orders, r.ItemBytes)
	}
	fmt.Fprintln(w)
}
