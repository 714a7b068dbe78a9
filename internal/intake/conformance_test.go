package intake_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sort"
	"strconv"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/cloudcommerce/cloudcommerce/internal/intake"
)

// conformance checks every response the API tests see against the OpenAPI
// document, and, after a full run, that every documented status of every
// operation was produced by some test.
type conformance struct {
	doc    *openapi3.T
	router routers.Router

	mu       sync.Mutex
	seen     map[string]int
	failures []string
}

var conf = loadConformance()

func loadConformance() *conformance {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(intake.OpenAPI)
	if err != nil {
		panic(fmt.Sprintf("load openapi.json: %v", err))
	}
	if err := doc.Validate(context.Background()); err != nil {
		panic(fmt.Sprintf("openapi.json is not a valid OpenAPI document: %v", err))
	}
	r, err := legacy.NewRouter(doc)
	if err != nil {
		panic(err)
	}
	return &conformance{doc: doc, router: r, seen: map[string]int{}}
}

func (c *conformance) fail(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.failures = append(c.failures, fmt.Sprintf(format, args...))
}

// wrap validates each response h gives against the document.
func (c *conformance) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		c.check(r, rec)
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	})
}

func (c *conformance) check(r *http.Request, rec *httptest.ResponseRecorder) {
	what := fmt.Sprintf("%s %s → %d", r.Method, r.URL.Path, rec.Code)
	if rec.Header().Get("X-Content-Type-Options") != "nosniff" {
		c.fail("%s: no X-Content-Type-Options: nosniff", what)
	}
	route, params, err := c.router.FindRoute(r)
	if err != nil {
		// Unknown route or method: the fallback answers a problem.
		if rec.Code != http.StatusNotFound && rec.Code != http.StatusMethodNotAllowed {
			c.fail("%s: an undocumented route answered other than 404/405", what)
		}
		if rec.Code == http.StatusMethodNotAllowed && rec.Header().Get("Allow") == "" {
			c.fail("%s: 405 without Allow", what)
		}
		var v any
		if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil || rec.Header().Get("Content-Type") != "application/problem+json" {
			c.fail("%s: not a problem document: %s", what, rec.Body.Bytes())
			return
		}
		if err := c.doc.Components.Schemas["Problem"].Value.VisitJSON(v, openapi3.EnableJSONSchema2020()); err != nil {
			c.fail("%s: %v", what, err)
		}
		c.record("fallback " + strconv.Itoa(rec.Code))
		return
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: r, PathParams: params, Route: route},
		Status:                 rec.Code,
		Header:                 rec.Header(),
		Body:                   io.NopCloser(bytes.NewReader(rec.Body.Bytes())),
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		c.fail("%s: %v\n%s", what, err, rec.Body.Bytes())
	}
	c.record(fmt.Sprintf("%s %s %d", route.Method, route.Path, rec.Code))
}

func (c *conformance) record(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seen[key]++
}

// report returns what failed; after a full run it also names every
// documented status no test produced.
func (c *conformance) report(full bool) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := slices.Clone(c.failures)
	if !full {
		return out
	}
	for path, item := range c.doc.Paths.Map() {
		for method, op := range item.Operations() {
			for status := range op.Responses.Map() {
				if key := fmt.Sprintf("%s %s %s", method, path, status); c.seen[key] == 0 {
					out = append(out, "no test produced "+key)
				}
			}
		}
	}
	for _, k := range []string{"fallback 404", "fallback 405"} {
		if c.seen[k] == 0 {
			out = append(out, "no test produced an unknown route's "+k)
		}
	}
	sort.Strings(out)
	return out
}

// conformanceRun runs the tests, then fails the run if a response broke the
// document or (on a full run) a documented status was never produced.
type conformanceRun struct{ m *testing.M }

func (c conformanceRun) Run() int {
	code := c.m.Run()
	full := flag.Lookup("test.run").Value.String() == "" && flag.Lookup("test.skip").Value.String() == "" && !testing.Short()
	if problems := conf.report(full); len(problems) > 0 {
		fmt.Fprintf(os.Stderr, "OpenAPI conformance: %d problem(s):\n", len(problems))
		for _, p := range problems {
			fmt.Fprintln(os.Stderr, "  "+p)
		}
		return 1
	}
	if full {
		fmt.Fprintf(os.Stderr, "OpenAPI conformance: %d responses checked, every documented status produced\n", conf.total())
	}
	return code
}

func (c *conformance) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.seen {
		n += v
	}
	return n
}

func TestOpenAPIIsServed(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	status, body := a.do(t, "GET", "/openapi.json", "", "", nil)
	if status != 200 || !bytes.Equal(body, intake.OpenAPI) {
		t.Fatalf("GET /openapi.json = %d, %d bytes; want the embedded document", status, len(body))
	}
	if !conf.doc.IsOpenAPI31OrLater() {
		t.Fatalf("the document is OpenAPI %s, want 3.1", conf.doc.OpenAPI)
	}
}
