// Package pipeline is the order domain of CloudCommerce: the order and its
// state machine, money, validation, the events that move an order between
// stages, and the three stage handlers (inventory, payment, shipping) plus
// cancellation.
//
// It imports no AWS package. Everything it needs from the outside world is a
// small interface declared here (Store, Publisher, Notifier, PaymentGateway,
// Carrier) and implemented by the adapters beside it. The handlers rely on
// the store's conditional writes as the single source of truth for progress:
// every transition is one conditional write on the current status, and a
// handler that loses the condition reads the order and decides whether it is
// a duplicate (acknowledge, re-emit downstream when needed) or a conflict.
//
// Files: order.go (the order, its states and validation), event.go (events
// and the EventBridge envelope, parsed only here), port.go (the interfaces),
// errors.go, stage.go (stages, messages, outcomes and the dispatch to a
// stage's handler), handlers.go (the three stage handlers and what they
// announce), resolve.go (what a lost condition means), cancel.go
// (cancellation and refunds), notification.go (the customer-facing text).
package pipeline
