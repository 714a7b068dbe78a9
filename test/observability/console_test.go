package observability_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/cloudcommerce/cloudcommerce/internal/dev/devstack"
	"github.com/cloudcommerce/cloudcommerce/internal/dev/testkit"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
)

const consoleKey = "console-test-key"

// consoleFixture is a running stack with a notification log (as devstack
// has), an order that went all the way, and a message waiting in the
// inventory DLQ whose order ships once it is redriven.
type consoleFixture struct {
	*stack
	shipped  string // an order placed through the intake, shipped
	stranded string // the order of the dead-lettered message
}

func consoleSetup(t *testing.T) *consoleFixture {
	t.Helper()
	env := testkit.Provision(t)
	inboxURL := env.SubscribeQueue(t)
	inbox := devstack.NewInbox(sqs.NewFromConfig(env.AWS), inboxURL, testLogger(t))
	ctx, cancel := context.WithCancel(context.Background())
	inboxDone := make(chan struct{})
	go func() { defer close(inboxDone); inbox.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-inboxDone })
	s := startOn(t, env, options{apiKey: consoleKey, notifications: inbox})
	s.stock(t, "SKU-CONSOLE-WIDGET", 40)
	s.stock(t, "SKU-CONSOLE-GADGET", 3)
	s.stock(t, "SKU-CONSOLE-SOLD-OUT", 0)

	f := &consoleFixture{stack: s}
	f.shipped = s.place(t, testkit.Order("tok_visa", "SKU-CONSOLE-WIDGET", "SKU-CONSOLE-GADGET"))
	if o := s.final(t, f.shipped); o.Status != pipeline.StatusShipped {
		t.Fatalf("order %s ended %s (%s)", f.shipped, o.Status, o.Reason)
	}
	// Two more that end otherwise, so the page has some variety.
	for _, r := range []pipeline.OrderRequest{testkit.Order("tok_chargeDeclined", "SKU-CONSOLE-WIDGET"), testkit.Order("tok_visa", "SKU-CONSOLE-SOLD-OUT")} {
		s.final(t, s.place(t, r))
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(inbox.ForOrder(f.shipped)) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("notifications for %s: %v", f.shipped, inbox.ForOrder(f.shipped))
		}
		time.Sleep(100 * time.Millisecond)
	}
	// As if the order's OrderPlaced had failed transiently until SQS moved
	// it to the DLQ after maxReceiveCount (such a message has no worker
	// attributes).
	o := mustOrder(t, "stranded-"+s.env.Prefix, testkit.Order("tok_visa", "SKU-CONSOLE-WIDGET"))
	f.stranded = o.ID
	s.send(t, s.env.QueueURL(pipeline.StageInventory, true), envelope(t, pipeline.EventOrderPlaced, o), nil)
	return f
}

// get reads a console page with the API key (the console is locked).
func get(t *testing.T, u string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+consoleKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestConsoleServesTheOnCallView checks the page over plain HTTP (no
// browser needed) and the redrive's guards.
func TestConsoleServesTheOnCallView(t *testing.T) {
	t.Parallel()
	f := consoleSetup(t)
	base := f.srv.URL + "/console"

	code, body := get(t, base+"?order="+f.shipped)
	if code != http.StatusOK {
		t.Fatalf("GET /console: %d", code)
	}
	for _, want := range []string{`id="order-timeline"`, f.shipped, `data-status="PLACED"`, `data-status="RESERVED"`, `data-status="PAID"`,
		`data-status="SHIPPED"`, `data-event="OrderConfirmed"`, `data-event="OrderShipped"`, `data-sku="SKU-CONSOLE-GADGET"`,
		`id="dlq-inventory"`, `data-order="` + f.stranded + `"`, ">" + "max_receives" + "<", `id="count-shipped" data-count="1"`} {
		if !strings.Contains(body, want) {
			t.Errorf("the page lacks %s", want)
		}
	}
	for _, p := range []interface{ FindString(string) string }{emailPattern, phonePattern, tokenPattern} {
		if m := p.FindString(body); m != "" {
			t.Errorf("the page shows %q", m)
		}
	}
	if _, body := get(t, base+"?status=SHIPPED"); !strings.Contains(body, `href="/console?order=`+f.shipped+`"`) {
		t.Error("the SHIPPED list does not link the shipped order")
	}
	if _, body := get(t, base+"?order=no-such-order"); !strings.Contains(body, "There is no order no-such-order.") {
		t.Error("an unknown order id is not reported")
	}

	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	post := func(form url.Values, header http.Header) *http.Response {
		req, _ := http.NewRequest(http.MethodPost, base+"/redrive", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, v := range header {
			req.Header[k] = v
		}
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	dlq := f.env.QueueURL(pipeline.StageInventory, true)
	if r := post(url.Values{"stage": {"inventory"}, "api_key": {"wrong"}}, nil); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("redrive with a wrong key: %s, want 401", r.Status)
	}
	if r := post(url.Values{"stage": {"inventory"}, "api_key": {consoleKey}}, http.Header{"Origin": {"https://evil.example"}, "Sec-Fetch-Site": {"cross-site"}}); r.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site redrive: %s, want 403", r.Status)
	}
	if r := post(url.Values{"stage": {"billing"}, "api_key": {consoleKey}}, nil); r.StatusCode != http.StatusBadRequest {
		t.Errorf("redrive of an unknown stage: %s, want 400", r.Status)
	}
	if n := f.depth(t, dlq); n != 1 {
		t.Fatalf("refused redrives changed the DLQ: %d messages, want 1", n)
	}
	r := post(url.Values{"stage": {"inventory"}}, http.Header{"Authorization": {"Bearer " + consoleKey}})
	if r.StatusCode != http.StatusSeeOther || !strings.Contains(r.Header.Get("Location"), "moved=1") {
		t.Fatalf("redrive: %s to %q, want 303 with moved=1", r.Status, r.Header.Get("Location"))
	}
	if n := f.depth(t, dlq); n != 0 {
		t.Errorf("DLQ holds %d messages after the redrive", n)
	}
	if o := f.final(t, f.stranded); o.Status != pipeline.StatusShipped {
		t.Errorf("the redriven order ended %s (%s), want SHIPPED", o.Status, o.Reason)
	}
}

// chromium returns Debian's chromium (or another Chrome) binary, or skips.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no chromium binary found on PATH: run test/observability/install-chromium.sh (apt-get install chromium) to run the console's browser test")
	return ""
}

// TestConsoleInABrowser drives the console in headless chromium: the page
// loads, shows the order placed in the test with its timeline, and the
// redrive button (confirmed in the dialog, once signed in) empties the
// DLQ. With CLOUDCOMMERCE_CONSOLE_SCREENSHOT=path it saves a screenshot of
// the page there (docs/console.png is made so).
func TestConsoleInABrowser(t *testing.T) {
	t.Parallel()
	exe := chromium(t)
	f := consoleSetup(t)

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.NoSandbox,
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.WindowSize(1360, 900))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancelBrowser := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	defer cancelBrowser()
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()

	// The redrive asks for confirmation in a dialog, which the page waits
	// on: a second goroutine accepts it and notes what it said.
	// The console is locked: sign in through its form first.
	if err := chromedp.Do(ctx, chromedp.Navigate(f.srv.URL+"/console"), chromedp.WaitVisible("#login-key"),
		chromedp.SendKeys("#login-key", consoleKey), chromedp.Submit("#login"), chromedp.WaitVisible("#orders")); err != nil {
		t.Fatal(err)
	}
	dialogs := make(chan string, 4)
	events := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for ev, err := range events {
			if err != nil {
				return
			}
			dialogs <- ev.Message
			_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
		}
	}()

	run := func(what string, a ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, a...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Text(sel))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return v
	}
	run("find the order", chromedp.WaitVisible("#orders"), chromedp.SendKeys("#order-search", f.shipped), chromedp.Submit("#order-search"),
		chromedp.WaitVisible("#order-timeline"))
	status, timeline, dlq := text("#order-status"), text("#order-timeline"), text("#dlq-inventory")
	rows, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#order-timeline tbody tr").length`))
	if err != nil {
		t.Fatal(err)
	}
	if status != "SHIPPED" {
		t.Errorf("order status shows %q", status)
	}
	for _, want := range []string{"PLACED", "RESERVED", "PAID", "SHIPPED", "OrderConfirmed", "OrderShipped"} {
		if !strings.Contains(timeline, want) {
			t.Errorf("the timeline lacks %s:\n%s", want, timeline)
		}
	}
	if rows < 6 {
		t.Errorf("the timeline has %d rows, want the 4 transitions and 2 notifications", rows)
	}
	if !strings.Contains(dlq, f.stranded) || !strings.Contains(dlq, "max_receives") {
		t.Errorf("the inventory DLQ panel does not show the dead-lettered order %s:\n%s", f.stranded, dlq)
	}
	if path := os.Getenv("CLOUDCOMMERCE_CONSOLE_SCREENSHOT"); path != "" {
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG
		if err != nil {
			t.Fatal(err)
		}
		if !filepath.IsAbs(path) {
			path = filepath.Join("..", "..", path) // relative to the repository root
		}
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot saved to %s", path)
	}

	run("redrive", chromedp.Click("#redrive-inventory"), chromedp.WaitVisible("#flash"))
	flash := text("#flash")
	count, err := chromedp.Run(ctx, chromedp.AttributeValue("#dlq-count-inventory", "data-count"))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case msg := <-dialogs:
		if !strings.Contains(msg, "inventory DLQ") {
			t.Errorf("confirmation reads %q", msg)
		}
	default:
		t.Error("the redrive asked for no confirmation")
	}
	if !strings.Contains(flash, "Moved 1 message from the inventory DLQ") {
		t.Errorf("after the redrive the page says %q", flash)
	}
	if count.Value != "0" {
		t.Errorf("the page shows %s messages in the inventory DLQ after the redrive", count.Value)
	}
	if n := f.depth(t, f.env.QueueURL(pipeline.StageInventory, true)); n != 0 {
		t.Errorf("the inventory DLQ holds %d messages after the redrive", n)
	}
	if o := f.final(t, f.stranded); o.Status != pipeline.StatusShipped {
		t.Errorf("the redriven order ended %s, want SHIPPED", o.Status)
	}
}
