package pipeline

import (
	"fmt"
	"strings"
)

// NotificationFor returns the customer notification for the order's status.
func NotificationFor(o Order) (Notification, bool) {
	n := Notification{OrderID: o.ID, Customer: o.Customer.ID, Channels: []string{"email"}}
	if o.Customer.Phone != "" {
		n.Channels = append(n.Channels, "sms")
	}
	total := FormatMoney(o.Total)
	switch o.Status {
	case StatusPaid:
		n.Event = "OrderConfirmed"
		n.Subject = "Your order " + o.ID + " is confirmed"
		n.Text = fmt.Sprintf("Thank you! We received your payment of %s for order %s (%s). We will tell you when it ships.", total, o.ID, itemSummary(o.Items))
	case StatusShipped:
		n.Event = "OrderShipped"
		n.Subject = "Your order " + o.ID + " has shipped"
		n.Text = fmt.Sprintf("Order %s is on its way with %s. Tracking number: %s.", o.ID, o.Carrier, o.TrackingNumber)
	case StatusRejected:
		n.Event = "OrderRejected"
		n.Subject = "We could not accept your order " + o.ID
		n.Text = fmt.Sprintf("Sorry, order %s could not be accepted: %s. You have not been charged.", o.ID, o.Reason)
	case StatusPaymentFailed:
		n.Event = "PaymentFailed"
		n.Subject = "Payment for your order " + o.ID + " failed"
		n.Text = fmt.Sprintf("The payment of %s for order %s was declined, so the order was not placed. You have not been charged.", total, o.ID)
	case StatusCancelled:
		n.Event = "OrderCancelled"
		n.Subject = "Your order " + o.ID + " is cancelled"
		n.Text = fmt.Sprintf("Order %s is cancelled.", o.ID)
		if o.ChargeID != "" {
			n.Text += fmt.Sprintf(" The payment of %s will be refunded.", total)
		}
	default:
		return Notification{}, false
	}
	return n, true
}

func itemSummary(items []Item) string {
	var units int64
	for _, it := range items {
		units += it.Quantity
	}
	if units == 1 {
		return "1 item"
	}
	return fmt.Sprintf("%d items", units)
}

// FormatMoney renders an amount in major units, e.g. "12.50 USD".
func FormatMoney(m Money) string {
	digits, ok := currencies[m.Currency]
	if !ok || digits == 0 {
		return fmt.Sprintf("%d %s", m.Amount, m.Currency)
	}
	div := int64(1)
	for i := 0; i < digits; i++ {
		div *= 10
	}
	sign := ""
	a := m.Amount
	if a < 0 {
		sign, a = "-", -a
	}
	frac := fmt.Sprintf("%0*d", digits, a%div)
	return sign + fmt.Sprintf("%d", a/div) + "." + frac + " " + strings.TrimSpace(m.Currency)
}
