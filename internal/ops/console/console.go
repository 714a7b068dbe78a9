// Package console is the operations console: one server-rendered page at
// /console for the person on call. It shows orders by status with counts,
// finds an order by id and shows its timeline (each transition, and the
// notifications sent when a notification log is available), the stock
// levels, and each stage's backlog and DLQ with the dead-lettered messages
// and a button that redrives them.
//
// It reads only what it shows, when the page is asked for, with a bounded
// context; a part that cannot be read says so and the rest of the page
// still renders. With an API key set, every page and action needs it: a
// login form trades the key for an HttpOnly, SameSite=Strict session cookie,
// and scripts send Authorization: Bearer <key>. The only action, redrive,
// is a POST behind that and Go's cross-origin protection. It never shows a
// customer's email, phone number or payment token, nor a message body.
package console

import (
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cloudcommerce/cloudcommerce/internal/ops/dlq"

	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"go.uber.org/zap"

	"github.com/cloudcommerce/cloudcommerce/internal/intake"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
	"github.com/cloudcommerce/cloudcommerce/internal/store"
)

// Store is what the console reads orders and stock through: an order by
// id, orders by status, and the listing reads of the DynamoDB store, which
// alone knows the tables' layout. Safe for concurrent use.
type Store interface {
	pipeline.OrderReader
	pipeline.OrderLister
	CountStatuses(ctx context.Context, max int) ([]store.StatusCount, error)
	RecentByStatus(ctx context.Context, status pipeline.Status, limit int) ([]store.OrderSummary, error)
	ListStock(ctx context.Context, limit int) ([]store.StockLevel, error)
}

// Config is what the console reads and acts on. Store, SQS, Queues and
// Log are required.
type Config struct {
	Store  Store
	SQS    *sqs.Client
	Queues map[pipeline.Stage]Queue
	// DeadLetters defaults to a dlq.Manager on Queues.
	DeadLetters DeadLetters
	// Notifications, when set, adds the notifications sent to a timeline.
	Notifications intake.NotificationLog
	// APIKey, when set, is required by every page and action: a session
	// cookie from the login form, or Authorization: Bearer <key>.
	APIKey string
	Log    *zap.Logger
	// RedriveMax is the most messages one redrive moves; default 1000.
	RedriveMax int
	// Timeout bounds the reads behind one page; default 10s.
	Timeout time.Duration
	// Now defaults to time.Now.
	Now func() time.Time
}

// Console serves the page. Safe for concurrent use.
type Console struct {
	cfg  Config
	tmpl *template.Template
}

//go:embed console.html
var files embed.FS

// New returns a console.
func New(cfg Config) *Console {
	if cfg.DeadLetters == nil {
		cfg.DeadLetters = &dlq.Manager{SQS: cfg.SQS, Queues: cfg.Queues, Log: cfg.Log}
	}
	cfg.RedriveMax = cmp.Or(cfg.RedriveMax, 1000)
	cfg.Timeout = cmp.Or(cfg.Timeout, 10*time.Second)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	tmpl := template.Must(template.New("console.html").Funcs(funcs).ParseFS(files, "console.html"))
	return &Console{cfg: cfg, tmpl: tmpl}
}

// Routes registers GET /console, POST /console/redrive and the login and
// logout forms on mux.
func (c *Console) Routes(mux *http.ServeMux) {
	csrf := http.NewCrossOriginProtection()
	mux.Handle("GET /console", c.locked(http.HandlerFunc(c.page)))
	mux.Handle("POST /console/redrive", csrf.Handler(http.HandlerFunc(c.redrive)))
	mux.HandleFunc("GET /console/login", c.loginForm)
	mux.Handle("POST /console/login", csrf.Handler(http.HandlerFunc(c.login)))
	mux.Handle("POST /console/logout", csrf.Handler(http.HandlerFunc(c.logout)))
}

// SessionCookie is the console's session cookie.
const SessionCookie = "cc_console_session"

// SessionTTL is how long a console login lasts.
const SessionTTL = 12 * time.Hour

// session returns a cookie value valid until exp: the expiry and an HMAC
// of it keyed by the API key, so the cookie never holds the key itself and
// changing the key ends every session.
func (c *Console) session(exp time.Time) string {
	ts := strconv.FormatInt(exp.Unix(), 10)
	return ts + "." + c.mac(ts)
}

func (c *Console) mac(ts string) string {
	m := hmac.New(sha256.New, []byte(c.cfg.APIKey))
	m.Write([]byte("cloudcommerce console session " + ts))
	return hex.EncodeToString(m.Sum(nil))
}

func (c *Console) validSession(v string) bool {
	ts, sig, ok := strings.Cut(v, ".")
	exp, err := strconv.ParseInt(ts, 10, 64)
	if !ok || err != nil || c.cfg.Now().Unix() >= exp {
		return false
	}
	return hmac.Equal([]byte(sig), []byte(c.mac(ts)))
}

// signedIn reports whether r carries the key (Bearer, any case of the
// scheme) or a valid session cookie, or no key is set.
func (c *Console) signedIn(r *http.Request) bool {
	if c.cfg.APIKey == "" || intake.Authorized(r.Header.Get("Authorization"), c.cfg.APIKey) {
		return true
	}
	ck, err := r.Cookie(SessionCookie)
	return err == nil && c.validSession(ck.Value)
}

// locked answers 401 with the login form unless the request is signed in.
func (c *Console) locked(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !c.signedIn(r) {
			c.renderLogin(w, http.StatusUnauthorized, "")
			return
		}
		h.ServeHTTP(w, r)
	})
}

func (c *Console) loginForm(w http.ResponseWriter, r *http.Request) {
	if c.signedIn(r) {
		http.Redirect(w, r, "/console", http.StatusSeeOther)
		return
	}
	c.renderLogin(w, http.StatusOK, "")
}

var loginPage = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>CloudCommerce · sign in</title>
<style>body{font:15px/1.5 system-ui,sans-serif;max-width:26rem;margin:4rem auto;padding:0 1rem}input,button{font:inherit;padding:.4rem .6rem}input{width:100%;box-sizing:border-box;margin:.4rem 0 .8rem}.error{color:#b00020}</style>
</head><body>
<h1>CloudCommerce operations console</h1>
<form method="post" action="/console/login" id="login">
<label for="login-key">API key (CLOUDCOMMERCE_API_KEY)</label>
<input type="password" name="api_key" id="login-key" required autocomplete="current-password" autofocus>
{{with .}}<p class="error" id="login-error">{{.}}</p>{{end}}
<button type="submit" id="login-submit">Sign in</button>
</form>
</body></html>`))

func (c *Console) renderLogin(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'")
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="cloudcommerce"`)
	}
	w.WriteHeader(status)
	if err := loginPage.Execute(w, msg); err != nil {
		c.cfg.Log.Warn("console login render failed", zap.Error(err))
	}
}

// login trades the API key for a session cookie: HttpOnly (no script can
// read it), SameSite=Strict (no other site can send it), Secure when served
// over TLS, scoped to /console.
func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	if c.cfg.APIKey == "" {
		http.Redirect(w, r, "/console", http.StatusSeeOther)
		return
	}
	if subtle.ConstantTimeCompare([]byte(r.PostFormValue("api_key")), []byte(c.cfg.APIKey)) != 1 {
		c.renderLogin(w, http.StatusUnauthorized, "That is not the API key.")
		return
	}
	exp := c.cfg.Now().Add(SessionTTL)
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: c.session(exp), Path: "/console", Expires: exp, MaxAge: int(SessionTTL / time.Second),
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	http.Redirect(w, r, "/console", http.StatusSeeOther)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: "", Path: "/console", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	http.Redirect(w, r, "/console/login", http.StatusSeeOther)
}

// maxCount is where counting stops: the orders of one status on
// by_status, or the orders read of the timeline in the compact format.
const maxCount = 10000

// StatusCount is the number of orders in a status (Capped: at least).
type StatusCount struct {
	Status pipeline.Status
	Count  int
	Capped bool
}

// OrderRow is an order in a list.
type OrderRow struct {
	ID         string
	Status     pipeline.Status
	CustomerID string
	UpdatedAt  time.Time
}

// TimelineEntry is one line of an order's timeline: a transition or a
// notification.
type TimelineEntry struct {
	At     time.Time
	Since  time.Duration
	Kind   string // "status" or "notification"
	Status pipeline.Status
	Event  string
	Detail string
}

// OrderDetail is the order looked up by id.
type OrderDetail struct {
	View     intake.OrderView
	TraceID  string
	Timeline []TimelineEntry
	Notes    bool // a notification log is available
}

// StageRow is a stage's queue and DLQ.
type StageRow struct {
	Stage                      pipeline.Stage
	Visible, InFlight, Delayed int
	DLQ                        int
	DeadLetters                []DeadLetter
	Err                        string
}

// StockRow is one SKU's stock.
type StockRow struct {
	SKU       string
	Available int64
}

// Page is everything the template renders.
type Page struct {
	Now        time.Time
	Flash      string
	FlashError bool
	Locked     bool // an API key guards the console: offer to sign out

	Counts    []StatusCount
	CountsErr string
	Total     int

	Status    pipeline.Status // the list shown: a status, or "" for stuck-looking orders
	Orders    []OrderRow
	OrdersErr string

	Query    string
	Order    *OrderDetail
	OrderErr string

	Stages []StageRow

	Stock    []StockRow
	StockErr string
}

func (c *Console) page(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), c.cfg.Timeout)
	defer cancel()
	q := r.URL.Query()
	p := &Page{Now: c.cfg.Now().UTC(), Locked: c.cfg.APIKey != "", Query: strings.TrimSpace(q.Get("order"))}
	p.Flash, p.FlashError = flash(q)
	if st := pipeline.Status(strings.ToUpper(q.Get("status"))); st.Valid() {
		p.Status = st
	}
	var wg sync.WaitGroup
	wg.Go(func() { c.counts(ctx, p) })
	wg.Go(func() { c.orders(ctx, p) })
	wg.Go(func() { c.order(ctx, p) })
	wg.Go(func() { c.stages(ctx, p) })
	wg.Go(func() { c.stock(ctx, p) })
	wg.Wait()
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'")
	if err := c.tmpl.Execute(w, p); err != nil {
		c.cfg.Log.Warn("console page render failed", zap.Error(err))
	}
}

// flash turns the redirect after a redrive into a message. Only known
// values are shown, never text from the URL.
func flash(q url.Values) (string, bool) {
	st := pipeline.Stage(q.Get("redriven"))
	if !slices.Contains(pipeline.Stages, st) {
		return "", false
	}
	n, _ := strconv.Atoi(q.Get("moved"))
	msg := fmt.Sprintf("Moved %d message%s from the %s DLQ back to the %s queue.", n, plural(n), st, st)
	u, _ := strconv.Atoi(q.Get("unsent"))
	if u > 0 {
		msg += fmt.Sprintf(" %d message%s the %s queue did not accept %s still in the DLQ (see the worker log for their ids and reasons).", u, plural(u), st, map[bool]string{true: "is", false: "are"}[u == 1])
	}
	if q.Get("failed") == "1" {
		return msg + " The redrive stopped on an error (see the worker log); messages not moved are still in the DLQ.", true
	}
	return msg, u > 0
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func errText(what string, err error) string {
	if errors.Is(err, context.DeadlineExceeded) {
		return "could not read " + what + " in time"
	}
	return "could not read " + what + ": " + err.Error()
}

// counts counts the orders of every status (store.CountStatuses: a COUNT
// query per status on by_status, or in the compact format the statuses of
// the most recently placed orders).
func (c *Console) counts(ctx context.Context, p *Page) {
	got, err := c.cfg.Store.CountStatuses(ctx, maxCount)
	if err != nil {
		p.CountsErr = errText("order counts", err)
	}
	p.Counts = make([]StatusCount, len(got))
	for i, sc := range got {
		p.Counts[i] = StatusCount{Status: sc.Status, Count: sc.Count, Capped: sc.Capped}
		p.Total += sc.Count
	}
}

// orders lists the chosen status's most recent orders, or with no status
// chosen the oldest orders still in progress: the ones that may be stuck.
func (c *Console) orders(ctx context.Context, p *Page) {
	if p.Status == "" {
		var rows []OrderRow
		for _, st := range []pipeline.Status{pipeline.StatusPlaced, pipeline.StatusReserved, pipeline.StatusPaid} {
			list, err := c.cfg.Store.ListByStatus(ctx, st, time.Time{}, p.Now, 10)
			if err != nil {
				p.OrdersErr = errText("orders in progress", err)
				return
			}
			for _, o := range list {
				rows = append(rows, OrderRow{ID: o.ID, Status: o.Status, CustomerID: o.Customer.ID, UpdatedAt: o.UpdatedAt})
			}
		}
		sort.Slice(rows, func(i, j int) bool { return rows[i].UpdatedAt.Before(rows[j].UpdatedAt) })
		p.Orders = rows[:min(len(rows), 15)]
		return
	}
	list, err := c.cfg.Store.RecentByStatus(ctx, p.Status, 50)
	if err != nil {
		p.OrdersErr = errText(string(p.Status)+" orders", err)
		return
	}
	for _, o := range list {
		p.Orders = append(p.Orders, OrderRow{ID: o.ID, Status: o.Status, CustomerID: o.CustomerID, UpdatedAt: o.UpdatedAt})
	}
}

func (c *Console) order(ctx context.Context, p *Page) {
	if p.Query == "" {
		return
	}
	o, err := c.cfg.Store.Get(ctx, p.Query)
	if errors.Is(err, pipeline.ErrNotFound) {
		p.OrderErr = "There is no order " + p.Query + "."
		return
	}
	if err != nil {
		p.OrderErr = errText("order "+p.Query, err)
		return
	}
	d := &OrderDetail{View: intake.View(o), TraceID: traceID(o.Trace), Notes: c.cfg.Notifications != nil}
	for _, h := range o.Timeline() {
		d.Timeline = append(d.Timeline, TimelineEntry{At: h.At, Kind: "status", Status: h.Status, Detail: statusDetail(o, h.Status)})
	}
	if c.cfg.Notifications != nil {
		for _, n := range c.cfg.Notifications.ForOrder(o.ID) {
			d.Timeline = append(d.Timeline, TimelineEntry{At: n.ReceivedAt, Kind: "notification", Event: n.Event,
				Detail: n.Subject + channels(n.Attributes["channel"])})
		}
	}
	sort.SliceStable(d.Timeline, func(i, j int) bool { return d.Timeline[i].At.Before(d.Timeline[j].At) })
	for i := range d.Timeline {
		d.Timeline[i].Since = d.Timeline[i].At.Sub(o.PlacedAt)
	}
	p.Order = d
}

// channels renders the channel attribute (a String.Array, ["email","sms"]).
func channels(attr string) string {
	v := strings.NewReplacer("[", "", "]", "", `"`, "", ",", ", ").Replace(attr)
	if v == "" {
		return ""
	}
	return " · " + v
}

// statusDetail says what a transition did, from what the order records.
func statusDetail(o pipeline.Order, st pipeline.Status) string {
	switch st {
	case pipeline.StatusPlaced:
		return "placed: " + pipeline.FormatMoney(o.Total)
	case pipeline.StatusReserved:
		return "stock reserved"
	case pipeline.StatusPaid:
		if o.ChargeID != "" {
			return "payment captured: " + o.ChargeID
		}
		return "payment captured"
	case pipeline.StatusShipped:
		return strings.TrimSpace("shipped " + o.Carrier + " " + o.TrackingNumber)
	case pipeline.StatusRejected, pipeline.StatusPaymentFailed, pipeline.StatusCancelled:
		return o.Reason
	}
	return ""
}

// traceID returns the trace id of a W3C traceparent, for looking the order
// up in the tracing backend.
func traceID(traceparent string) string {
	parts := strings.Split(traceparent, "-")
	if len(parts) != 4 || len(parts[1]) != 32 {
		return ""
	}
	return parts[1]
}

// stages reads each stage queue's and DLQ's depths, and peeks at the DLQs
// that are not empty.
func (c *Console) stages(ctx context.Context, p *Page) {
	p.Stages = make([]StageRow, len(pipeline.Stages))
	var wg sync.WaitGroup
	for i, st := range pipeline.Stages {
		wg.Go(func() {
			row := StageRow{Stage: st}
			defer func() { p.Stages[i] = row }()
			q := c.cfg.Queues[st]
			main, err := c.depth(ctx, q.URL)
			if err != nil {
				row.Err = errText(string(st)+" queue", err)
				return
			}
			row.Visible, row.InFlight, row.Delayed = main[0], main[1], main[2]
			dlq, err := c.depth(ctx, q.DLQURL)
			if err != nil {
				row.Err = errText(string(st)+" DLQ", err)
				return
			}
			row.DLQ = dlq[0] + dlq[1] + dlq[2]
			if row.DLQ == 0 {
				return
			}
			row.DeadLetters, err = c.cfg.DeadLetters.List(ctx, st)
			if err != nil {
				row.Err = errText(string(st)+" dead letters", err)
			}
		})
	}
	wg.Wait()
}

// depth returns a queue's approximate visible, in-flight and delayed
// messages.
func (c *Console) depth(ctx context.Context, url string) ([3]int, error) {
	names := []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages,
		sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible, sqstypes.QueueAttributeNameApproximateNumberOfMessagesDelayed}
	out, err := c.cfg.SQS.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: &url, AttributeNames: names})
	if err != nil {
		return [3]int{}, err
	}
	var d [3]int
	for i, n := range names {
		d[i], _ = strconv.Atoi(out.Attributes[string(n)])
	}
	return d, nil
}

// maxSKUs is where the stock scan stops.
const maxSKUs = 500

func (c *Console) stock(ctx context.Context, p *Page) {
	list, err := c.cfg.Store.ListStock(ctx, maxSKUs)
	if err != nil {
		p.StockErr = errText("stock", err)
		return
	}
	for _, l := range list {
		p.Stock = append(p.Stock, StockRow{SKU: l.SKU, Available: l.Available})
	}
	sort.Slice(p.Stock, func(i, j int) bool { return p.Stock[i].SKU < p.Stock[j].SKU })
}

// authorized checks for a session, the Authorization header, or the key in
// the form (for scripts that post the form directly).
func (c *Console) authorized(r *http.Request) bool {
	if c.signedIn(r) {
		return true
	}
	got := r.PostFormValue("api_key")
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(c.cfg.APIKey)) == 1
}

func (c *Console) redrive(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	st := pipeline.Stage(r.PostFormValue("stage"))
	if !slices.Contains(pipeline.Stages, st) {
		http.Error(w, "unknown stage: want inventory, payment or shipping", http.StatusBadRequest)
		return
	}
	if !c.authorized(r) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = fmt.Fprint(w, `<!doctype html><title>API key required</title><p>Redrive needs the worker's API key (CLOUDCOMMERCE_API_KEY). Nothing was moved. <a href="/console">Back to the console</a></p>`)
		return
	}
	// The messages move whether or not the person waits for the answer.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 2*time.Minute)
	defer cancel()
	n, err := c.cfg.DeadLetters.Redrive(ctx, st, c.cfg.RedriveMax)
	v := url.Values{"redriven": {string(st)}, "moved": {strconv.Itoa(n)}}
	var unsent *dlq.UnsentError
	switch {
	case errors.As(err, &unsent):
		// The rest of the DLQ moved; these stay in it.
		v.Set("unsent", strconv.Itoa(len(unsent.Unsent)))
		c.cfg.Log.Error("console redrive left messages in the DLQ", zap.String("stage", string(st)), zap.Int("moved", n),
			zap.Int("unsent", len(unsent.Unsent)), zap.Any("unsent_messages", unsent.Unsent))
	case err != nil:
		v.Set("failed", "1")
		c.cfg.Log.Error("console redrive failed", zap.String("stage", string(st)), zap.Int("moved", n), zap.Error(err))
	default:
		c.cfg.Log.Info("console redrive", zap.String("stage", string(st)), zap.Int("moved", n))
	}
	http.Redirect(w, r, "/console?"+v.Encode()+"#stages", http.StatusSeeOther)
}

var funcs = template.FuncMap{
	"ts": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05.000Z")
	},
	"ago": func(now, t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return round(now.Sub(t)) + " ago"
	},
	"clock": func(t time.Time) string { return t.UTC().Format("15:04:05.000") },
	"dur":   round,
	"money": pipeline.FormatMoney,
	"lower": func(s pipeline.Status) string { return strings.ToLower(string(s)) },
	"final": func(s pipeline.Status) bool { return s.Final() },
	"pct": func(n, total int) int {
		if n == 0 || total == 0 {
			return 0
		}
		return max(1, n*100/total)
	},
	"low": func(n int64) bool { return n < 10 },
}

func round(d time.Duration) string {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(10 * time.Millisecond).String()
	case d < time.Hour:
		return d.Round(time.Second).String()
	}
	return d.Round(time.Minute).String()
}
