package observability_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/cloudcommerce/cloudcommerce/internal/config"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
)

// lockedBuffer collects log output from many goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// The patterns a customer's contact details and payment tokens have.
var (
	emailPattern = regexp.MustCompile(`[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}`)
	phonePattern = regexp.MustCompile(`\+[1-9][0-9]{6,14}`)
	tokenPattern = regexp.MustCompile(`\btok_[A-Za-z0-9_]+`)
)

func customer(n int) pipeline.Customer {
	return pipeline.Customer{ID: fmt.Sprintf("cust-leak-%d", n), Email: fmt.Sprintf("leak.customer%d@example.org", n), Phone: fmt.Sprintf("+1415555%04d", 1000+n)}
}

func request(n int, token string, skus ...string) pipeline.OrderRequest {
	items := make([]pipeline.Item, len(skus))
	for i, s := range skus {
		items[i] = pipeline.Item{SKU: s, Quantity: 1, UnitPrice: pipeline.Money{Amount: 999, Currency: "USD"}}
	}
	return pipeline.OrderRequest{Customer: customer(n), Items: items, Payment: pipeline.Payment{Token: token},
		ShippingAddress: pipeline.Address{Name: "Ada Leak", Line1: "1 Secret St", City: "London", PostalCode: "N1 1AA", Country: "GB"}}
}

// TestLogsNeverCarryContactDetailsOrTokens runs the whole pipeline with a
// debug-level JSON logger writing to a buffer — good orders, a declined
// card, an unknown token, transient payment failures, an out-of-stock
// order, an invalid order put on the bus, poison messages that carry
// contact details and tokens in their bodies, a wrong-status event, an
// invalid intake request, a cancellation, a redrive from the console, the
// sweep and the queue sampler — and checks that no log line holds an email
// address, a phone number or a payment token.
func TestLogsNeverCarryContactDetailsOrTokens(t *testing.T) {
	t.Parallel()
	buf := &lockedBuffer{}
	enc := zap.NewProductionEncoderConfig()
	enc.TimeKey, enc.EncodeTime = "time", zapcore.ISO8601TimeEncoder
	log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.AddSync(buf), zap.DebugLevel), zap.AddCaller())
	s := start(t, options{log: log, apiKey: "log-test-key", mutate: func(c *config.Worker) {
		c.SweepInterval, c.StuckAfter, c.QueueSampleInterval = time.Second, 3*time.Second, 300*time.Millisecond
	}})
	s.stock(t, "SKU-LOG", 100)
	s.stock(t, "SKU-LOG-SCARCE", 0)

	// Through the intake.
	ids := map[string]pipeline.Status{
		s.place(t, request(1, "tok_visa", "SKU-LOG")):              pipeline.StatusShipped,
		s.place(t, request(2, "tok_chargeDeclined", "SKU-LOG")):    pipeline.StatusPaymentFailed,
		s.place(t, request(3, "tok_live_SECRET4242", "SKU-LOG")):   pipeline.StatusPaymentFailed,
		s.place(t, request(4, "tok_processingError", "SKU-LOG")):   pipeline.StatusShipped,
		s.place(t, request(5, "tok_visa", "SKU-LOG-SCARCE")):       pipeline.StatusRejected,
		s.place(t, request(6, "tok_visa", "SKU-LOG", "SKU-GHOST")): pipeline.StatusRejected,
	}
	// An invalid request: answered 400, naming fields, logging nothing of it.
	bad := request(7, "tok_visa", "SKU-LOG")
	bad.Customer.Phone = "+1 (415) 555-0199 ext leak.bad@example.org"
	if code, body := s.post(t, "/v1/orders", bad); code != http.StatusBadRequest {
		t.Fatalf("invalid request: %d %s", code, body)
	}
	// A cancellation.
	cancelID := s.place(t, request(8, "tok_visa", "SKU-LOG"))
	if code, body := s.post(t, "/v1/orders/"+cancelID+"/cancel", struct{}{}); code != http.StatusOK && code != http.StatusConflict {
		t.Fatalf("cancel: %d %s", code, body)
	}

	inventory := s.env.QueueURL(pipeline.StageInventory, false)
	// An invalid order put on the bus by another producer: rejected by the
	// inventory stage (the total does not match the items).
	o, err := pipeline.NewOrder("log-invalid-"+s.env.Prefix, request(9, "tok_visa", "SKU-LOG"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	o.Total.Amount++
	s.send(t, inventory, envelope(t, pipeline.EventOrderPlaced, o), nil)
	ids[o.ID] = pipeline.StatusRejected
	// Poison messages carrying contact details and tokens in their bodies.
	s.send(t, inventory, `{"version":"0","id":"x","detail-type":"OrderPlaced","source":"cloudcommerce.orders","detail":`+
		`{"order_id":"poison-1","customer":{"id":"c","email":"poison.leak@example.org","phone":"+14155550133"},"payment":{"token":"tok_poison_SECRET"},"items":"not-a-list"}}`, nil)
	s.send(t, inventory, `email=raw.leak@example.org phone=+14155550144 token=tok_raw_SECRET {`, nil)
	// An event in a status the stage cannot take: dead-lettered as invalid.
	s.send(t, s.env.QueueURL(pipeline.StagePayment, false), envelope(t, pipeline.EventInventoryReserved, mustOrder(t, "log-wrong-"+s.env.Prefix, request(10, "tok_visa", "SKU-LOG"))), nil)

	for id, want := range ids {
		if got := s.final(t, id); got.Status != want {
			t.Errorf("order %s ended %s (%s), want %s", id, got.Status, got.Reason, want)
		}
	}
	dlq := s.env.QueueURL(pipeline.StageInventory, true)
	s.waitDepth(t, dlq, 2)
	s.waitDepth(t, s.env.QueueURL(pipeline.StagePayment, true), 1)

	// Redrive the poison messages from the console: they come back, fail
	// again and are dead-lettered again.
	form := url.Values{"stage": {"inventory"}, "api_key": {"log-test-key"}}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.PostForm(s.srv.URL+"/console/redrive", form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("redrive answered %s", resp.Status)
	}
	deadline := time.Now().Add(60 * time.Second)
	for testutil.ToFloat64(s.m.DeadLettered.WithLabelValues("inventory", pipeline.ReasonMalformed)) < 4 {
		if time.Now().After(deadline) {
			t.Fatal("the redriven poison messages were not dead-lettered again")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The console page renders (and logs nothing it should not).
	req, _ := http.NewRequest(http.MethodGet, s.srv.URL+"/console?order="+cancelID, nil)
	req.Header.Set("Authorization", "Bearer log-test-key")
	if resp, err := http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	} else if resp.Body.Close(); resp.StatusCode != http.StatusOK {
		t.Fatalf("console page answered %s", resp.Status)
	}
	s.stop()

	out := buf.String()
	var lines, retried, deadLettered int
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		lines++
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("log line is not JSON: %v: %s", err, line)
			continue
		}
		for _, p := range []*regexp.Regexp{emailPattern, phonePattern, tokenPattern} {
			if m := p.FindString(line); m != "" {
				t.Errorf("log line holds %q in clear: %s", m, line)
			}
		}
		switch rec["msg"] {
		case "handler failed; will retry":
			retried++
		case "message dead-lettered":
			deadLettered++
			for _, f := range []string{"stage", "message_id", "receive_count", "reason"} {
				if _, ok := rec[f]; !ok {
					t.Errorf("dead-letter log line lacks %s: %s", f, line)
				}
			}
		}
	}
	// The run went through the paths it was meant to.
	if lines < 10 || retried < 2 || deadLettered < 5 {
		t.Errorf("%d log lines, %d retries, %d dead-letterings: the run did not exercise the failure paths", lines, retried, deadLettered)
	}
	t.Logf("%d log lines checked (%d retries, %d dead-letterings)", lines, retried, deadLettered)
}

func mustOrder(t *testing.T, id string, r pipeline.OrderRequest) pipeline.Order {
	t.Helper()
	o, err := pipeline.NewOrder(id, r, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func envelope(t *testing.T, et pipeline.EventType, o pipeline.Order) string {
	t.Helper()
	detail, err := pipeline.EncodeDetail(pipeline.Event{Type: et, Order: o})
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(pipeline.Envelope{Version: "0", ID: o.ID, DetailType: string(et), Source: pipeline.EventSource,
		Account: "000000000000", Time: time.Now().UTC(), Region: "us-east-1", Resources: []string{}, Detail: json.RawMessage(detail)})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
