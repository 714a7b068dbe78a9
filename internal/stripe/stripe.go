// Package stripe is the Stripe adapter of pipeline.PaymentGateway, on
// github.com/stripe/stripe-go.
//
// A charge is one PaymentIntent created and confirmed in the same request
// (amount in minor units, currency from the order, the order's payment
// token as payment_method, metadata order_id), sent with the charge's
// idempotency key (the order id) as Stripe's Idempotency-Key: a retried
// message replays Stripe's stored answer instead of charging again. A
// refund is a Refund of that PaymentIntent under the refund's own key.
//
// Errors are classified once, in classify: a card error (card_declined,
// insufficient_funds, expired_card, incorrect_cvc, ...) or an invalid
// request about the payment method or the amount is a
// *pipeline.DeclinedError carrying Stripe's code, which the payment stage
// records as PAYMENT_FAILED; everything else — rate limits (429), Stripe's
// 5xx, network failures, a concurrent request holding the same key (409),
// authentication and other configuration mistakes — is a plain error, so
// the message is retried through its visibility timeout and, if it never
// succeeds, lands in the DLQ for an operator rather than failing the
// customer's order for our own fault.
//
// The client makes exactly one HTTP request per call: stripe-go's own
// network retries are off (MaxNetworkRetries 0), because the pipeline's
// retry is the message's receive count with back-off, and stacking a second
// retry loop inside a handler's deadline only multiplies load during an
// outage.
package stripe

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	stripego "github.com/stripe/stripe-go/v82"

	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
)

// APIVersion is the Stripe API version this adapter is written and tested
// against. stripe-go sends the version it was generated for on every
// request (Stripe-Version); a test asserts the two agree, so upgrading the
// module forces a deliberate review of the error classification and the
// response fields this adapter reads.
const APIVersion = "2025-08-27.basil"

// EnvSecretKey is the environment variable the secret key is read from.
const EnvSecretKey = "CLOUDCOMMERCE_STRIPE_SECRET_KEY"

// Config configures the gateway. Zero values mean the defaults.
type Config struct {
	// SecretKey is the account's secret (sk_live_…, sk_test_…) or
	// restricted (rk_live_…, rk_test_…) key, from CLOUDCOMMERCE_STRIPE_SECRET_KEY.
	// Required. A restricted key needs write access to PaymentIntents and
	// Refunds (and read access to PaymentIntents for the refund lookup).
	SecretKey string
	// BaseURL of the API. Default https://api.stripe.com; tests point it at
	// a local server. A live key is only ever sent over https.
	BaseURL string
	// HTTPClient sends the requests. Default: a client with a 30s timeout
	// (each call is bounded by its context as well).
	HTTPClient *http.Client
	// RememberCharges is how many order id → PaymentIntent pairs of recent
	// successful charges are kept in memory for refunds that do not know
	// their charge id. Default 10000 (about 1 MB).
	RememberCharges int
}

// DefaultBaseURL is Stripe's API.
const DefaultBaseURL = "https://api.stripe.com"

// Validate reports every problem with the configuration at once. It never
// repeats the secret key.
func (c Config) Validate() error {
	var errs []error
	key := strings.TrimSpace(c.SecretKey)
	switch {
	case key == "":
		errs = append(errs, fmt.Errorf("%s is empty: set it to the Stripe account's secret key (sk_test_… in test mode, sk_live_… in production)", EnvSecretKey))
	case strings.HasPrefix(key, "pk_"):
		errs = append(errs, fmt.Errorf("%s holds a publishable key (pk_…): the server needs the secret key (sk_…) or a restricted key (rk_…)", EnvSecretKey))
	case !(strings.HasPrefix(key, "sk_test_") || strings.HasPrefix(key, "sk_live_") || strings.HasPrefix(key, "rk_test_") || strings.HasPrefix(key, "rk_live_")):
		errs = append(errs, fmt.Errorf("%s does not look like a Stripe secret key: want a key starting with sk_test_, sk_live_, rk_test_ or rk_live_", EnvSecretKey))
	case key != c.SecretKey:
		errs = append(errs, fmt.Errorf("%s has leading or trailing white space", EnvSecretKey))
	}
	if c.BaseURL != "" {
		u, err := url.Parse(c.BaseURL)
		switch {
		case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
			errs = append(errs, fmt.Errorf("Stripe base URL %q: want an absolute http(s) URL such as %s", c.BaseURL, DefaultBaseURL))
		case u.Scheme != "https" && IsLive(key):
			errs = append(errs, fmt.Errorf("Stripe base URL %q: a live key is only sent over https", c.BaseURL))
		}
	}
	if c.RememberCharges < 0 {
		errs = append(errs, fmt.Errorf("RememberCharges=%d: want 0 (the default, 10000) or more", c.RememberCharges))
	}
	return errors.Join(errs...)
}

// IsLive reports whether key is a live-mode key (real money).
func IsLive(key string) bool {
	return strings.HasPrefix(key, "sk_live_") || strings.HasPrefix(key, "rk_live_")
}

// Gateway implements pipeline.PaymentGateway on Stripe. Safe for concurrent
// use.
type Gateway struct {
	api     *stripego.Client
	charges *recent
}

var _ pipeline.PaymentGateway = (*Gateway)(nil)

// New returns a gateway, or an error naming every configuration problem.
func New(cfg Config) (*Gateway, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("stripe configuration:\n%w", err)
	}
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if cfg.RememberCharges == 0 {
		cfg.RememberCharges = 10000
	}
	backends := stripego.NewBackendsWithConfig(&stripego.BackendConfig{
		HTTPClient: cfg.HTTPClient,
		URL:        stripego.String(strings.TrimRight(cfg.BaseURL, "/")),
		// One request per call: see the package comment.
		MaxNetworkRetries: stripego.Int64(0),
		// Errors are returned to the handler, which logs them once with the
		// order's context; the library's own logging would say it twice.
		LeveledLogger:   &stripego.LeveledLogger{Level: stripego.LevelNull},
		EnableTelemetry: stripego.Bool(false),
	})
	return &Gateway{api: stripego.NewClient(cfg.SecretKey, stripego.WithBackends(backends)), charges: newRecent(cfg.RememberCharges)}, nil
}

// Charge implements pipeline.PaymentGateway: it creates and confirms a
// PaymentIntent with r.IdempotencyKey as Stripe's Idempotency-Key and
// returns the PaymentIntent's id (pi_…) as the charge id.
func (g *Gateway) Charge(ctx context.Context, r pipeline.ChargeRequest) (string, error) {
	if r.IdempotencyKey == "" {
		// stripe-go would invent a random key, and a retry would charge twice.
		return "", fmt.Errorf("stripe: charge order %s: no idempotency key", r.OrderID)
	}
	params := &stripego.PaymentIntentCreateParams{
		Amount:        stripego.Int64(r.Amount.Amount),
		Currency:      stripego.String(strings.ToLower(r.Amount.Currency)),
		PaymentMethod: stripego.String(r.Token),
		Confirm:       stripego.Bool(true),
		// Server-side confirmation: no customer is present to follow a
		// redirect, so only payment methods that need none are allowed.
		AutomaticPaymentMethods: &stripego.PaymentIntentCreateAutomaticPaymentMethodsParams{
			Enabled:        stripego.Bool(true),
			AllowRedirects: stripego.String("never"),
		},
		Description: stripego.String("Order " + r.OrderID),
	}
	params.AddMetadata("order_id", r.OrderID)
	params.SetIdempotencyKey(r.IdempotencyKey)
	pi, err := g.api.V1PaymentIntents.Create(ctx, params)
	if err != nil {
		return "", classify(err, "charge order "+r.OrderID, r.Token)
	}
	if pi.Status == stripego.PaymentIntentStatusProcessing {
		// A replayed create answers with the status of the first attempt;
		// ask for the current one.
		cur, err := g.api.V1PaymentIntents.Retrieve(ctx, pi.ID, nil)
		if err != nil {
			return "", classify(err, "read payment intent "+pi.ID+" of order "+r.OrderID, r.Token)
		}
		pi = cur
	}
	switch pi.Status {
	case stripego.PaymentIntentStatusSucceeded:
		g.charges.put(r.OrderID, pi.ID)
		return pi.ID, nil
	case stripego.PaymentIntentStatusProcessing:
		return "", fmt.Errorf("stripe: charge order %s: payment intent %s is still processing", r.OrderID, pi.ID)
	case stripego.PaymentIntentStatusRequiresAction:
		// 3-D Secure or a similar customer step: nobody is there to take it.
		return "", &pipeline.DeclinedError{Code: string(stripego.ErrorCodeAuthenticationRequired),
			Message: "The card needs the customer to authenticate the payment, which an order placed in advance cannot do."}
	case stripego.PaymentIntentStatusRequiresPaymentMethod, stripego.PaymentIntentStatusCanceled:
		code, msg := "payment_failed", "The payment was not completed."
		if pi.LastPaymentError != nil {
			code, msg = declineCode(pi.LastPaymentError), declineMessage(pi.LastPaymentError, r.Token)
		}
		return "", &pipeline.DeclinedError{Code: code, Message: msg}
	default:
		// requires_capture or requires_confirmation: this request never asks
		// for them, so something else changed the intent. An operator must
		// look; retrying and then the DLQ get one's attention.
		return "", fmt.Errorf("stripe: charge order %s: payment intent %s has unexpected status %s", r.OrderID, pi.ID, pi.Status)
	}
}

// Refund implements pipeline.PaymentGateway: it refunds the PaymentIntent
// r.ChargeID in full, with r.IdempotencyKey as Stripe's Idempotency-Key.
//
// With an empty ChargeID (a charge that succeeded just before a cancel
// won, so the order never recorded it) the PaymentIntent is found by the
// order id: first among the charges this gateway made recently — the
// payment stage always calls Charge for the order immediately before such
// a refund, and a replayed Charge returns the same PaymentIntent, so this
// is the path taken — and otherwise through Stripe's search on
// metadata order_id. Search is eventually consistent (usually under a
// minute behind), so a charge made seconds ago by another process could be
// missed there; see docs/stripe.md. With no succeeded PaymentIntent for the
// order, Refund returns a *pipeline.DeclinedError with Code "no_charge".
func (g *Gateway) Refund(ctx context.Context, r pipeline.RefundRequest) (string, error) {
	if r.IdempotencyKey == "" {
		return "", fmt.Errorf("stripe: refund order %s: no idempotency key", r.OrderID)
	}
	piID := r.ChargeID
	if piID == "" {
		found, err := g.findCharge(ctx, r.OrderID)
		if err != nil {
			return "", err
		}
		if found == "" {
			return "", &pipeline.DeclinedError{Code: "no_charge", Message: "There is no succeeded payment to refund for order " + r.OrderID}
		}
		piID = found
	}
	params := &stripego.RefundCreateParams{
		// No amount: the refund is of whatever remains of the payment, in
		// its own currency, so a partial refund made by hand does not make
		// this one fail.
		PaymentIntent: stripego.String(piID),
		Reason:        stripego.String(string(stripego.RefundReasonRequestedByCustomer)),
	}
	params.AddMetadata("order_id", r.OrderID)
	params.SetIdempotencyKey(r.IdempotencyKey)
	re, err := g.api.V1Refunds.Create(ctx, params)
	if err != nil {
		return "", classify(err, "refund order "+r.OrderID, "")
	}
	switch re.Status {
	case stripego.RefundStatusFailed, stripego.RefundStatusCanceled:
		// Not "declined": the customer is owed the money. Retrying replays
		// this answer, so the message ends in the DLQ where an operator
		// refunds by hand.
		return "", fmt.Errorf("stripe: refund order %s: refund %s is %s (%s)", r.OrderID, re.ID, re.Status, re.FailureReason)
	}
	return re.ID, nil
}

// findCharge returns the id of the order's succeeded PaymentIntent, or "".
func (g *Gateway) findCharge(ctx context.Context, orderID string) (string, error) {
	if id, ok := g.charges.get(orderID); ok {
		return id, nil
	}
	params := &stripego.PaymentIntentSearchParams{SearchParams: stripego.SearchParams{
		Query: "metadata['order_id']:'" + searchEscape(orderID) + "'",
		Limit: stripego.Int64(10),
	}}
	for pi, err := range g.api.V1PaymentIntents.Search(ctx, params) {
		if err != nil {
			return "", classify(err, "find the payment of order "+orderID, "")
		}
		switch pi.Status {
		case stripego.PaymentIntentStatusSucceeded:
			return pi.ID, nil
		case stripego.PaymentIntentStatusProcessing:
			return "", fmt.Errorf("stripe: payment intent %s of order %s is still processing; refund later", pi.ID, orderID)
		}
	}
	return "", nil
}

func searchEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s)
}

// declinedCodes are invalid_request_error codes that mean this payment
// method or amount cannot be charged, as opposed to a mistake of ours.
var declinedCodes = map[stripego.ErrorCode]bool{
	stripego.ErrorCodeAmountTooLarge:                         true,
	stripego.ErrorCodeAmountTooSmall:                         true,
	stripego.ErrorCodeInvalidChargeAmount:                    true,
	stripego.ErrorCodePaymentMethodUnexpectedState:           true,
	stripego.ErrorCodePaymentMethodUnactivated:               true,
	stripego.ErrorCodePaymentMethodNotAvailable:              true,
	stripego.ErrorCodePaymentMethodProviderDecline:           true,
	stripego.ErrorCodePaymentMethodCustomerDecline:           true,
	stripego.ErrorCodePaymentMethodCurrencyMismatch:          true,
	stripego.ErrorCodePaymentMethodUnsupportedType:           true,
	stripego.ErrorCodePaymentMethodInvalidParameter:          true,
	stripego.ErrorCodePaymentMethodInvalidParameterTestmode:  true,
	stripego.ErrorCodePaymentIntentIncompatiblePaymentMethod: true,
	stripego.ErrorCodeChargeAlreadyRefunded:                  true,
	stripego.ErrorCodeChargeDisputed:                         true,
	stripego.ErrorCodeChargeNotRefundable:                    true,
}

// retryableCardCodes are card errors Stripe documents as worth retrying.
var retryableCardCodes = map[stripego.ErrorCode]bool{
	stripego.ErrorCodeProcessingError: true,
}

// classify turns a stripe-go error into a *pipeline.DeclinedError
// (permanent) or a plain error (transient). token, when set, is removed
// from messages: payment tokens are never logged.
func classify(err error, doing, token string) error {
	var se *stripego.Error
	if !errors.As(err, &se) {
		// Transport failure, timeout, cancelled context or an unreadable
		// answer (a proxy's HTML error page): retry.
		return fmt.Errorf("stripe: %s: %w", doing, err)
	}
	declined := false
	switch {
	case se.Type == stripego.ErrorTypeCard:
		declined = !retryableCardCodes[se.Code]
	case se.HTTPStatusCode == http.StatusPaymentRequired:
		declined = true
	case se.Type == stripego.ErrorTypeInvalidRequest && se.HTTPStatusCode == http.StatusBadRequest:
		declined = declinedCodes[se.Code] ||
			(se.Code == stripego.ErrorCodeResourceMissing && strings.HasPrefix(se.Param, "payment_method"))
	}
	if declined {
		return &pipeline.DeclinedError{Code: declineCode(se), Message: declineMessage(se, token)}
	}
	// 429 (rate limit, lock timeout), 5xx, 409 idempotency_key_in_use (the
	// same key is in flight elsewhere: the retry replays its answer), 400
	// idempotency_error (a key reused with other parameters), 401/403 and
	// other invalid requests: retry, then the DLQ.
	return &transientError{doing: doing, status: se.HTTPStatusCode, typ: string(se.Type), code: string(se.Code),
		msg: redact(se.Msg, token), requestID: se.RequestID, err: se}
}

func declineCode(se *stripego.Error) string {
	if se.Code != "" {
		return string(se.Code)
	}
	if se.DeclineCode != "" {
		return string(se.DeclineCode)
	}
	return string(se.Type)
}

// declineMessage is Stripe's message for the customer, with the issuer's
// decline code (insufficient_funds, lost_card, ...) when there is one.
func declineMessage(se *stripego.Error, token string) string {
	msg := redact(se.Msg, token)
	if se.DeclineCode != "" && string(se.DeclineCode) != string(se.Code) {
		msg += " (decline code " + string(se.DeclineCode) + ")"
	}
	return msg
}

func redact(msg, token string) string {
	if token == "" {
		return msg
	}
	return strings.ReplaceAll(msg, token, "[payment method]")
}

// transientError is a Stripe API error worth retrying. Its text is short
// and has no payment details (the stripe-go error's own text is the whole
// error object as JSON).
type transientError struct {
	doing, typ, code, msg, requestID string
	status                           int
	err                              *stripego.Error
}

func (e *transientError) Error() string {
	s := fmt.Sprintf("stripe: %s: HTTP %d %s", e.doing, e.status, e.typ)
	if e.code != "" {
		s += " " + e.code
	}
	if e.msg != "" {
		s += ": " + e.msg
	}
	if e.requestID != "" {
		s += " (request " + e.requestID + ")"
	}
	return s
}

func (e *transientError) Unwrap() error { return e.err }

// recent remembers the latest n key → value pairs (a ring of keys).
type recent struct {
	mu   sync.Mutex
	m    map[string]string
	ring []string
	next int
}

func newRecent(n int) *recent {
	return &recent{m: make(map[string]string, min(n, 1024)), ring: make([]string, n)}
}

func (r *recent) put(k, v string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.m[k]; !ok {
		if old := r.ring[r.next]; old != "" {
			delete(r.m, old)
		}
		r.ring[r.next] = k
		r.next = (r.next + 1) % len(r.ring)
	}
	r.m[k] = v
}

func (r *recent) get(k string) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	v, ok := r.m[k]
	return v, ok
}
