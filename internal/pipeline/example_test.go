package pipeline_test

import (
	"fmt"
	"time"

	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
)

// Only the transitions of the state machine exist; each is one conditional
// write on the current status.
func ExampleCanTransition() {
	fmt.Println(pipeline.CanTransition(pipeline.StatusReserved, pipeline.StatusPaid))
	fmt.Println(pipeline.CanTransition(pipeline.StatusShipped, pipeline.StatusCancelled))
	// Output:
	// true
	// false
}

// Money is integer minor units of one ISO 4217 currency.
func ExampleNewOrder() {
	o, err := pipeline.NewOrder("ord-1", pipeline.OrderRequest{
		Customer: pipeline.Customer{ID: "c-1", Email: "ada@example.com"},
		Items: []pipeline.Item{
			{SKU: "SKU-WIDGET", Quantity: 3, UnitPrice: pipeline.Money{Amount: 1250, Currency: "EUR"}},
			{SKU: "SKU-GADGET", Quantity: 1, UnitPrice: pipeline.Money{Amount: 99, Currency: "EUR"}},
		},
		Payment:         pipeline.Payment{Token: "tok_visa"},
		ShippingAddress: pipeline.Address{Name: "Ada", Line1: "1 Rue", City: "Paris", PostalCode: "75001", Country: "FR"},
	}, time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
	fmt.Println(o.Status, pipeline.FormatMoney(o.Total), err)

	_, err = pipeline.NewOrder("ord-2", pipeline.OrderRequest{}, time.Now())
	fmt.Println(err)
	// Output:
	// PLACED 38.49 EUR <nil>
	// invalid order: customer.id: is required; customer.email: is required; items: must contain at least one item; payment.token: is required; shipping_address.name: is required; shipping_address.line1: is required; shipping_address.city: is required; shipping_address.postal_code: is required; shipping_address.country: is required
}
