package notify

import "time"

// Delivered is a notification as the topic delivered it to a subscriber.
type Delivered struct {
	Event      string            `json:"event"`
	OrderID    string            `json:"order_id"`
	Subject    string            `json:"subject"`
	Message    string            `json:"message"`
	Attributes map[string]string `json:"attributes"`
	ReceivedAt time.Time         `json:"received_at"`
}

// Log answers which notifications reached a subscriber (devstack
// subscribes a queue to the topic). Safe for concurrent use.
type Log interface {
	ForOrder(orderID string) []Delivered
}
