package queue

import "testing"

func TestOrderIDOfAnEventBody(t *testing.T) {
	t.Parallel()
	for body, want := range map[string]string{
		`{"detail-type":"OrderPlaced","detail":{"order_id":"o-42","status":"PLACED"}}`: "o-42",
		`{"this is": not json`:       "",
		`{"detail":"not an object"}`: "",
	} {
		if got := orderID(body); got != want {
			t.Errorf("orderID(%s) = %q, want %q", body, got, want)
		}
	}
}
