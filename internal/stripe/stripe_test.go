package stripe_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	stripego "github.com/stripe/stripe-go/v82"

	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
	"github.com/cloudcommerce/cloudcommerce/internal/stripe"
)

// The values the recorded responses in testdata/ carry.
const (
	testKey   = "sk_test_51QfK8cLkdIwHu7ixFAKEfakeFAKEfake"
	orderID   = "ord-7001"
	piID      = "pi_3QfK8rLkdIwHu7ix0Yb7xWqZ"
	refundID  = "re_3QfK8rLkdIwHu7ix0kP4sT7u"
	token     = "pm_card_visa"
	amount    = 2599
	currency  = "USD"
	chargeKey = orderID
)

// request is what the fake Stripe received.
type request struct {
	Method, Path string
	Header       http.Header
	Form         url.Values // the urlencoded body of a POST
	Query        url.Values
}

// reply is one recorded answer: a status, a testdata file (or a raw body)
// and extra headers.
type reply struct {
	status int
	file   string
	raw    string
	header map[string]string
	// hangUp closes the connection without answering (a network failure).
	hangUp bool
}

// fakeStripe is a local server standing in for api.stripe.com: it records
// every request and answers from a script of replies, the last one
// repeating.
type fakeStripe struct {
	t   *testing.T
	srv *httptest.Server

	mu       sync.Mutex
	requests []request
	script   map[string][]reply // by "METHOD path"
}

func newFake(t *testing.T) *fakeStripe {
	t.Helper()
	f := &fakeStripe{t: t, script: map[string][]reply{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

// on scripts the replies to "METHOD path", in order; the last repeats.
func (f *fakeStripe) on(route string, replies ...reply) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.script[route] = replies
}

func (f *fakeStripe) serve(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		f.t.Errorf("unparseable request body: %v", err)
	}
	req := request{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Query: r.URL.Query()}
	if r.Method == http.MethodPost {
		req.Form = r.PostForm
	}
	route := r.Method + " " + r.URL.Path
	f.mu.Lock()
	f.requests = append(f.requests, req)
	replies := f.script[route]
	var rep reply
	switch {
	case len(replies) == 0:
		rep = reply{status: 404, raw: `{"error":{"code":"resource_missing","message":"Unrecognized request URL (` + route + `).","type":"invalid_request_error"}}`}
		f.t.Errorf("unexpected request %s", route)
	default:
		rep = replies[0]
		if len(replies) > 1 {
			f.script[route] = replies[1:]
		}
	}
	f.mu.Unlock()
	if rep.hangUp {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			_ = conn.Close()
		}
		return
	}
	body := []byte(rep.raw)
	if rep.file != "" {
		var err error
		if body, err = os.ReadFile(filepath.Join("testdata", rep.file)); err != nil {
			f.t.Errorf("read %s: %v", rep.file, err)
		}
	}
	w.Header().Set("Request-Id", "req_fake123")
	w.Header().Set("Content-Type", "application/json")
	for k, v := range rep.header {
		w.Header().Set(k, v)
	}
	w.WriteHeader(rep.status)
	_, _ = w.Write(body)
}

func (f *fakeStripe) received() []request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]request(nil), f.requests...)
}

func (f *fakeStripe) gateway(t *testing.T) *stripe.Gateway {
	t.Helper()
	g, err := stripe.New(stripe.Config{SecretKey: testKey, BaseURL: f.srv.URL, HTTPClient: f.srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func chargeRequest() pipeline.ChargeRequest {
	return pipeline.ChargeRequest{IdempotencyKey: chargeKey, OrderID: orderID, Amount: pipeline.Money{Amount: amount, Currency: currency}, Token: token}
}

// checkCommon asserts what Stripe requires of every request.
func checkCommon(t *testing.T, r request) {
	t.Helper()
	if got := r.Header.Get("Authorization"); got != "Bearer "+testKey {
		t.Errorf("%s %s: Authorization = %q, want the bearer secret key", r.Method, r.Path, got)
	}
	if got := r.Header.Get("Stripe-Version"); got != stripe.APIVersion {
		t.Errorf("%s %s: Stripe-Version = %q, want %q", r.Method, r.Path, got, stripe.APIVersion)
	}
	if r.Method == http.MethodPost {
		if got := r.Header.Get("Content-Type"); got != "application/x-www-form-urlencoded" {
			t.Errorf("%s %s: Content-Type = %q", r.Method, r.Path, got)
		}
	}
}

func wantForm(t *testing.T, r request, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got := r.Form.Get(k); got != v {
			t.Errorf("%s %s: form field %s = %q, want %q", r.Method, r.Path, k, got, v)
		}
	}
}

func TestAPIVersionIsPinned(t *testing.T) {
	t.Parallel()
	// Upgrading stripe-go changes the API version it sends. Review the
	// error classification and the fields the adapter reads, re-record
	// testdata/ if shapes changed, then update stripe.APIVersion.
	if stripego.APIVersion != stripe.APIVersion {
		t.Fatalf("stripe-go sends API version %s; the adapter is pinned to %s", stripego.APIVersion, stripe.APIVersion)
	}
}

func TestChargeCreatesAndConfirmsPaymentIntent(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	f.on("POST /v1/payment_intents", reply{status: 200, file: "payment_intent_succeeded.json"})
	id, err := f.gateway(t).Charge(context.Background(), chargeRequest())
	if err != nil {
		t.Fatalf("Charge: %v", err)
	}
	if id != piID {
		t.Errorf("charge id = %q, want the PaymentIntent id %q", id, piID)
	}
	reqs := f.received()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want exactly 1", len(reqs))
	}
	r := reqs[0]
	checkCommon(t, r)
	if got := r.Header.Get("Idempotency-Key"); got != chargeKey {
		t.Errorf("Idempotency-Key = %q, want the order id %q", got, chargeKey)
	}
	wantForm(t, r, map[string]string{
		"amount":                             "2599", // minor units, as given
		"currency":                           "usd",  // lowercased
		"payment_method":                     token,
		"confirm":                            "true",
		"automatic_payment_methods[enabled]": "true",
		"automatic_payment_methods[allow_redirects]": "never",
		"metadata[order_id]":                         orderID,
	})
}

func TestChargeClassifiesErrors(t *testing.T) {
	t.Parallel()
	shouldRetry := map[string]string{"Stripe-Should-Retry": "true"}
	cases := []struct {
		name string
		rep  reply
		// declined is the DeclinedError code, or "" for a transient error.
		declined string
	}{
		{"card declined", reply{status: 402, file: "error_card_declined.json"}, "card_declined"},
		{"insufficient funds", reply{status: 402, file: "error_card_declined_insufficient_funds.json"}, "card_declined"},
		{"expired card", reply{status: 402, file: "error_expired_card.json"}, "expired_card"},
		{"incorrect cvc", reply{status: 402, file: "error_incorrect_cvc.json"}, "incorrect_cvc"},
		{"no such payment method", reply{status: 400, file: "error_no_such_payment_method.json"}, "resource_missing"},
		{"amount too small", reply{status: 400, file: "error_amount_too_small.json"}, "amount_too_small"},
		{"card processing error", reply{status: 402, file: "error_processing_error.json"}, ""},
		{"rate limited", reply{status: 429, file: "error_rate_limit.json"}, ""},
		{"lock timeout", reply{status: 429, file: "error_lock_timeout.json", header: shouldRetry}, ""},
		{"server error", reply{status: 500, file: "error_api_error.json", header: shouldRetry}, ""},
		{"bad gateway page", reply{status: 502, raw: "<html><body>502 Bad Gateway</body></html>"}, ""},
		{"same key in flight", reply{status: 409, file: "error_idempotency_key_in_use.json", header: shouldRetry}, ""},
		{"key reused with other parameters", reply{status: 400, file: "error_idempotency_mismatch.json"}, ""},
		{"invalid API key", reply{status: 401, file: "error_invalid_api_key.json"}, ""},
		{"network failure", reply{hangUp: true}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t)
			f.on("POST /v1/payment_intents", c.rep)
			req := chargeRequest()
			if c.name == "no such payment method" {
				req.Token = "pm_card_bogus"
			}
			_, err := f.gateway(t).Charge(context.Background(), req)
			if err == nil {
				t.Fatal("Charge succeeded, want an error")
			}
			var declined *pipeline.DeclinedError
			isDeclined := errors.As(err, &declined)
			switch {
			case c.declined != "" && !isDeclined:
				t.Errorf("got transient %v, want declined %s", err, c.declined)
			case c.declined != "" && declined.Code != c.declined:
				t.Errorf("declined code = %q, want %q", declined.Code, c.declined)
			case c.declined == "" && isDeclined:
				t.Errorf("got declined %v, want a transient error", err)
			}
			if _, perm := pipeline.IsPermanent(err); perm {
				t.Errorf("IsPermanent(%v) = true: gateway errors are declined or transient, never dead-lettered", err)
			}
			if strings.Contains(err.Error(), req.Token) {
				t.Errorf("error text %q contains the payment token", err)
			}
			// stripe-go's own retries are off: one request, whatever the
			// Stripe-Should-Retry header says.
			if n := len(f.received()); n != 1 {
				t.Errorf("%d requests, want exactly 1 (no library retries)", n)
			}
		})
	}
}

func TestDeclineKeepsIssuerReason(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	f.on("POST /v1/payment_intents", reply{status: 402, file: "error_card_declined_insufficient_funds.json"})
	_, err := f.gateway(t).Charge(context.Background(), chargeRequest())
	var declined *pipeline.DeclinedError
	if !errors.As(err, &declined) {
		t.Fatalf("got %v, want declined", err)
	}
	if want := "Your card has insufficient funds. (decline code insufficient_funds)"; declined.Message != want {
		t.Errorf("message = %q, want %q", declined.Message, want)
	}
}

func TestRetrySendsTheSameIdempotencyKey(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	f.on("POST /v1/payment_intents",
		reply{status: 500, file: "error_api_error.json"},
		reply{status: 429, file: "error_rate_limit.json"},
		reply{status: 200, file: "payment_intent_succeeded.json"})
	g := f.gateway(t)
	var err error
	for attempt := 1; attempt <= 3; attempt++ {
		// What a redelivered payment message does: the same request again.
		if _, err = g.Charge(context.Background(), chargeRequest()); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("third attempt: %v", err)
	}
	reqs := f.received()
	if len(reqs) != 3 {
		t.Fatalf("%d requests, want 3", len(reqs))
	}
	for i, r := range reqs {
		if got := r.Header.Get("Idempotency-Key"); got != chargeKey {
			t.Errorf("attempt %d: Idempotency-Key = %q, want %q", i+1, got, chargeKey)
		}
		if r.Form.Encode() != reqs[0].Form.Encode() {
			t.Errorf("attempt %d sent other parameters than the first (Stripe would answer idempotency_error):\n%s\n%s", i+1, r.Form.Encode(), reqs[0].Form.Encode())
		}
	}
}

func TestChargeNeedsAnIdempotencyKey(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	req := chargeRequest()
	req.IdempotencyKey = ""
	_, err := f.gateway(t).Charge(context.Background(), req)
	var declined *pipeline.DeclinedError
	if err == nil || errors.As(err, &declined) {
		t.Fatalf("got %v, want a transient error", err)
	}
	if n := len(f.received()); n != 0 {
		t.Errorf("%d requests sent without a key, want none", n)
	}
}

func TestChargeStatuses(t *testing.T) {
	t.Parallel()
	t.Run("requires action is declined", func(t *testing.T) {
		t.Parallel()
		f := newFake(t)
		f.on("POST /v1/payment_intents", reply{status: 200, file: "payment_intent_requires_action.json"})
		_, err := f.gateway(t).Charge(context.Background(), chargeRequest())
		var declined *pipeline.DeclinedError
		if !errors.As(err, &declined) || declined.Code != "authentication_required" {
			t.Fatalf("got %v, want declined authentication_required", err)
		}
	})
	t.Run("processing is read again", func(t *testing.T) {
		t.Parallel()
		f := newFake(t)
		f.on("POST /v1/payment_intents", reply{status: 200, file: "payment_intent_processing.json"})
		f.on("GET /v1/payment_intents/"+piID, reply{status: 200, file: "payment_intent_processing.json"}, reply{status: 200, file: "payment_intent_succeeded.json"})
		g := f.gateway(t)
		_, err := g.Charge(context.Background(), chargeRequest())
		var declined *pipeline.DeclinedError
		if err == nil || errors.As(err, &declined) {
			t.Fatalf("first attempt: got %v, want a transient error while processing", err)
		}
		id, err := g.Charge(context.Background(), chargeRequest())
		if err != nil || id != piID {
			t.Fatalf("second attempt: got %q, %v; want %s", id, err, piID)
		}
		for _, r := range f.received() {
			checkCommon(t, r)
		}
	})
}

func TestRefundByChargeID(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	f.on("POST /v1/refunds", reply{status: 200, file: "refund_succeeded.json"})
	id, err := f.gateway(t).Refund(context.Background(), pipeline.RefundRequest{
		IdempotencyKey: pipeline.RefundKey(orderID), OrderID: orderID, ChargeID: piID, Amount: pipeline.Money{Amount: amount, Currency: currency}})
	if err != nil {
		t.Fatalf("Refund: %v", err)
	}
	if id != refundID {
		t.Errorf("refund id = %q, want %q", id, refundID)
	}
	reqs := f.received()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	r := reqs[0]
	checkCommon(t, r)
	if got := r.Header.Get("Idempotency-Key"); got != pipeline.RefundKey(orderID) {
		t.Errorf("Idempotency-Key = %q, want the refund's own key %q", got, pipeline.RefundKey(orderID))
	}
	wantForm(t, r, map[string]string{"payment_intent": piID, "reason": "requested_by_customer", "metadata[order_id]": orderID})
	if r.Form.Has("amount") {
		t.Errorf("refund names an amount (%s); a full refund leaves it out", r.Form.Get("amount"))
	}
}

func TestRefundWithoutChargeIDUsesTheChargeJustMade(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	f.on("POST /v1/payment_intents", reply{status: 200, file: "payment_intent_succeeded.json"})
	f.on("POST /v1/refunds", reply{status: 200, file: "refund_succeeded.json"})
	g := f.gateway(t)
	// The payment stage's undo: it charged, lost the race to a cancel, and
	// refunds by order id.
	if _, err := g.Charge(context.Background(), chargeRequest()); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Refund(context.Background(), pipeline.RefundRequest{IdempotencyKey: pipeline.RefundKey(orderID), OrderID: orderID}); err != nil {
		t.Fatalf("Refund: %v", err)
	}
	reqs := f.received()
	if len(reqs) != 2 || reqs[1].Path != "/v1/refunds" {
		t.Fatalf("requests %v, want the charge then the refund and no search", paths(reqs))
	}
	wantForm(t, reqs[1], map[string]string{"payment_intent": piID})
}

func TestRefundWithoutChargeIDSearchesByOrder(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	f.on("GET /v1/payment_intents/search", reply{status: 200, file: "search_payment_intents.json"})
	f.on("POST /v1/refunds", reply{status: 200, file: "refund_succeeded.json"})
	id, err := f.gateway(t).Refund(context.Background(), pipeline.RefundRequest{IdempotencyKey: pipeline.RefundKey(orderID), OrderID: orderID})
	if err != nil || id != refundID {
		t.Fatalf("Refund: %q, %v", id, err)
	}
	reqs := f.received()
	if len(reqs) != 2 {
		t.Fatalf("requests %v, want a search then a refund", paths(reqs))
	}
	checkCommon(t, reqs[0])
	if got, want := reqs[0].Query.Get("query"), "metadata['order_id']:'"+orderID+"'"; got != want {
		t.Errorf("search query = %q, want %q", got, want)
	}
	wantForm(t, reqs[1], map[string]string{"payment_intent": piID})
}

func TestRefundWithNothingCharged(t *testing.T) {
	t.Parallel()
	for _, file := range []string{"search_payment_intents_empty.json", "search_payment_intents_declined.json"} {
		t.Run(file, func(t *testing.T) {
			t.Parallel()
			f := newFake(t)
			f.on("GET /v1/payment_intents/search", reply{status: 200, file: file})
			_, err := f.gateway(t).Refund(context.Background(), pipeline.RefundRequest{IdempotencyKey: pipeline.RefundKey(orderID), OrderID: orderID})
			var declined *pipeline.DeclinedError
			if !errors.As(err, &declined) || declined.Code != "no_charge" {
				t.Fatalf("got %v, want declined no_charge", err)
			}
			if reqs := f.received(); len(reqs) != 1 {
				t.Errorf("requests %v, want only the search", paths(reqs))
			}
		})
	}
}

func TestRefundErrors(t *testing.T) {
	t.Parallel()
	req := pipeline.RefundRequest{IdempotencyKey: pipeline.RefundKey(orderID), OrderID: orderID, ChargeID: piID}
	t.Run("failed refund is retried, not declined", func(t *testing.T) {
		t.Parallel()
		f := newFake(t)
		f.on("POST /v1/refunds", reply{status: 200, file: "refund_failed.json"})
		_, err := f.gateway(t).Refund(context.Background(), req)
		var declined *pipeline.DeclinedError
		if err == nil || errors.As(err, &declined) {
			t.Fatalf("got %v, want a transient error (the customer is owed the money)", err)
		}
	})
	t.Run("server error is transient", func(t *testing.T) {
		t.Parallel()
		f := newFake(t)
		f.on("POST /v1/refunds", reply{status: 500, file: "error_api_error.json"})
		_, err := f.gateway(t).Refund(context.Background(), req)
		var declined *pipeline.DeclinedError
		if err == nil || errors.As(err, &declined) {
			t.Fatalf("got %v, want transient", err)
		}
	})
}

func paths(reqs []request) []string {
	out := make([]string, len(reqs))
	for i, r := range reqs {
		out[i] = r.Method + " " + r.Path
	}
	return out
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		cfg  stripe.Config
		want []string // substrings of the error; none means valid
	}{
		{"test key", stripe.Config{SecretKey: testKey}, nil},
		{"restricted live key", stripe.Config{SecretKey: "rk_live_abc"}, nil},
		{"empty", stripe.Config{}, []string{"CLOUDCOMMERCE_STRIPE_SECRET_KEY is empty"}},
		{"publishable", stripe.Config{SecretKey: "pk_test_abc"}, []string{"publishable key"}},
		{"not a key", stripe.Config{SecretKey: "hunter2"}, []string{"does not look like a Stripe secret key"}},
		{"white space", stripe.Config{SecretKey: testKey + "\n"}, []string{"white space"}},
		{"bad URL", stripe.Config{SecretKey: testKey, BaseURL: "api.stripe.com"}, []string{"absolute http(s) URL"}},
		{"live key over http", stripe.Config{SecretKey: "sk_live_abc", BaseURL: "http://127.0.0.1:1"}, []string{"only sent over https"}},
		{"every problem at once", stripe.Config{BaseURL: "::", RememberCharges: -1}, []string{"is empty", "absolute http(s) URL", "RememberCharges"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			err := c.cfg.Validate()
			if len(c.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate passed, want an error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if c.cfg.SecretKey != "" && strings.Contains(err.Error(), strings.TrimSpace(c.cfg.SecretKey)) {
				t.Errorf("error %q repeats the key", err)
			}
			if _, nerr := stripe.New(c.cfg); nerr == nil {
				t.Error("New accepted an invalid configuration")
			}
		})
	}
}
