// Package orders carries out `worker orders show` and `worker orders
// list`: an order's status, lines, total, tracking number or reason,
// timeline and notifications, and listings by status or by customer, as
// text for a person or JSON for a script. It reads through package store,
// like the intake API and the console; it knows no table layout.
package orders

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cloudcommerce/cloudcommerce/internal/intake"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
	"github.com/cloudcommerce/cloudcommerce/internal/store"
)

// Reader is what the commands read: store.Store. Safe for concurrent use.
type Reader interface {
	// Get returns the order or an error wrapping pipeline.ErrNotFound.
	Get(ctx context.Context, id string) (pipeline.Order, error)
	// ByStatus and ByCustomer return one page (limit 1..store.MaxPage)
	// after cursor ("" first), newest first.
	ByStatus(ctx context.Context, status pipeline.Status, limit int, cursor string) (store.OrderPage, error)
	ByCustomer(ctx context.Context, customerID string, limit int, cursor string) (store.OrderPage, error)
}

// MaxList is the most orders one `orders list` prints.
const MaxList = 1000

// DefaultList is how many orders `orders list` prints without --limit.
const DefaultList = 20

// Command prints to Out what it read from Store.
type Command struct {
	Store Reader
	Out   io.Writer
}

// ErrUnknownOrder is returned by Show for an id no order has.
var ErrUnknownOrder = errors.New("no such order")

// Notice is a customer notification the pipeline sent for a transition.
type Notice struct {
	Event    string          `json:"event"`
	Status   pipeline.Status `json:"status"`
	At       time.Time       `json:"at"`
	Channels []string        `json:"channels"`
	Subject  string          `json:"subject"`
}

// Detail is what `orders show --json` prints: the order as the API shows
// it, and the notifications sent.
type Detail struct {
	intake.OrderView
	Notifications []Notice `json:"notifications"`
}

// Notices returns the notifications the pipeline sends for the
// transitions o has made, in order. A stage acknowledges the message that
// made a transition only once SNS has accepted its notification, so each
// was sent (at least once) unless the transition's message is still being
// handled or was dead-lettered. At is the transition's time.
func Notices(o pipeline.Order) []Notice {
	out := []Notice{}
	for _, h := range o.Timeline() {
		at := o
		at.Status = h.Status
		if n, ok := pipeline.NotificationFor(at); ok {
			out = append(out, Notice{Event: n.Event, Status: h.Status, At: h.At, Channels: n.Channels, Subject: n.Subject})
		}
	}
	return out
}

// Show prints the order with id, or returns an error wrapping
// ErrUnknownOrder.
func (c Command) Show(ctx context.Context, id string, asJSON bool) error {
	if !pipeline.ValidID(id) {
		return fmt.Errorf("order %q: %w (order ids are 1-128 letters, digits or ._:-)", id, ErrUnknownOrder)
	}
	o, err := c.Store.Get(ctx, id)
	if errors.Is(err, pipeline.ErrNotFound) {
		return fmt.Errorf("order %s: %w", id, ErrUnknownOrder)
	}
	if err != nil {
		return fmt.Errorf("read order %s: %w", id, err)
	}
	d := Detail{OrderView: intake.View(o), Notifications: Notices(o)}
	if asJSON {
		return writeJSON(c.Out, d)
	}
	return c.showText(d)
}

func (c Command) showText(d Detail) error {
	w := tabwriter.NewWriter(c.Out, 0, 4, 2, ' ', 0)
	line := func(k, v string) { fmt.Fprintf(w, "%s\t%s\n", k, v) }
	line("order", d.OrderID)
	line("status", string(d.Status))
	line("customer", d.CustomerID)
	line("total", pipeline.FormatMoney(d.Total))
	line("placed", stamp(d.PlacedAt))
	line("updated", stamp(d.UpdatedAt))
	if d.TrackingNumber != "" {
		line("tracking", d.TrackingNumber+" ("+d.Carrier+")")
	}
	if d.Reason != "" {
		line("reason", d.Reason)
	}
	if d.Refunded {
		line("refunded", "yes")
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(c.Out, "\nlines")
	for _, it := range d.Items {
		fmt.Fprintf(w, "  %s\t%d × %s\t%s\n", it.SKU, it.Quantity, pipeline.FormatMoney(it.UnitPrice),
			pipeline.FormatMoney(pipeline.Money{Amount: it.UnitPrice.Amount * it.Quantity, Currency: it.UnitPrice.Currency}))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(c.Out, "\ntimeline")
	for _, h := range d.History {
		fmt.Fprintf(w, "  %s\t+%s\t%s\n", stamp(h.At), h.At.Sub(d.PlacedAt).Round(time.Millisecond), h.Status)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(c.Out, "\nnotifications")
	if len(d.Notifications) == 0 {
		fmt.Fprintln(c.Out, "  none yet")
	}
	for _, n := range d.Notifications {
		fmt.Fprintf(w, "  %s\t%s\t%s\t%s\n", stamp(n.At), n.Event, strings.Join(n.Channels, ","), n.Subject)
	}
	return w.Flush()
}

// ListByStatus prints up to limit (1..MaxList) orders in status, the most
// recently changed first.
func (c Command) ListByStatus(ctx context.Context, status pipeline.Status, limit int, asJSON bool) error {
	if !status.Valid() {
		return fmt.Errorf("--status %q: want one of %s", status, statusNames())
	}
	return c.list(limit, asJSON, func(n int, cursor string) (store.OrderPage, error) {
		return c.Store.ByStatus(ctx, status, n, cursor)
	})
}

// ListByCustomer prints up to limit (1..MaxList) of the customer's
// orders, the most recently placed first.
func (c Command) ListByCustomer(ctx context.Context, customerID string, limit int, asJSON bool) error {
	if !pipeline.ValidID(customerID) {
		return fmt.Errorf("--customer %q: customer ids are 1-128 letters, digits or ._:-", customerID)
	}
	return c.list(limit, asJSON, func(n int, cursor string) (store.OrderPage, error) {
		return c.Store.ByCustomer(ctx, customerID, n, cursor)
	})
}

// list prints up to limit rows, reading page after page.
func (c Command) list(limit int, asJSON bool, page func(n int, cursor string) (store.OrderPage, error)) error {
	if limit < 1 || limit > MaxList {
		return fmt.Errorf("--limit %d: want 1 to %d", limit, MaxList)
	}
	rows := []store.OrderRow{}
	cursor := ""
	for len(rows) < limit {
		p, err := page(min(limit-len(rows), store.MaxPage), cursor)
		if err != nil {
			return err
		}
		rows = append(rows, p.Orders...)
		if p.Next == "" {
			break
		}
		cursor = p.Next
	}
	if asJSON {
		return writeJSON(c.Out, rows)
	}
	if len(rows) == 0 {
		fmt.Fprintln(c.Out, "no orders")
		return nil
	}
	w := tabwriter.NewWriter(c.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ORDER\tSTATUS\tCUSTOMER\tTOTAL\tPLACED\tUPDATED")
	for _, r := range rows {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Status, r.CustomerID, pipeline.FormatMoney(r.Total), stamp(r.PlacedAt), stamp(r.UpdatedAt))
	}
	return w.Flush()
}

func statusNames() string {
	names := make([]string, len(pipeline.AllStatuses))
	for i, s := range pipeline.AllStatuses {
		names[i] = string(s)
	}
	return strings.Join(names, ", ")
}

// stamp is a time in UTC to the millisecond.
func stamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
