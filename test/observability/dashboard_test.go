package observability_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/cloudcommerce/cloudcommerce/internal/metrics"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
)

const (
	dashboardsDir = "../../deploy/grafana/dashboards"
	rulesDir      = "../../deploy/prometheus/rules"
)

// exported returns every series name a worker's /metrics can show: each
// metric of metrics.New with a series in every vector (so that vectors
// appear), the in-flight gauges, and the _bucket/_sum/_count series of the
// histograms and summaries.
func exported(t *testing.T) map[string]bool {
	t.Helper()
	m := metrics.New()
	for _, st := range pipeline.Stages {
		m.InFlight(st, func() float64 { return 0 })
	}
	if err := touchAll(m); err != nil {
		t.Fatal(err)
	}
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		n := mf.GetName()
		switch mf.GetType() {
		case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
			names[n+"_bucket"], names[n+"_sum"], names[n+"_count"] = true, true, true
		case dto.MetricType_SUMMARY:
			names[n], names[n+"_sum"], names[n+"_count"] = true, true, true
		default:
			names[n] = true
		}
	}
	return names
}

// touchAll gives every vector of m one series: it offers each label value
// lists of growing length until one fits.
func touchAll(m *metrics.Metrics) error {
	for _, c := range []prometheus.Collector{m.Received, m.Handled, m.HandlerDuration, m.PoolSize, m.Panics, m.DeadLettered, m.Deferred, m.Extended,
		m.AckFailures, m.OrderLatency, m.Transitions, m.AWSRequests, m.BatchSize, m.QueueMessages, m.QueueOldest, m.Republished, m.Intake} {
		var err error
		for n := 0; n <= 8; n++ {
			vals := make([]string, n)
			for i := range vals {
				vals[i] = "x"
			}
			switch v := c.(type) {
			case *prometheus.CounterVec:
				_, err = v.GetMetricWithLabelValues(vals...)
			case *prometheus.GaugeVec:
				_, err = v.GetMetricWithLabelValues(vals...)
			case *prometheus.HistogramVec:
				_, err = v.GetMetricWithLabelValues(vals...)
			}
			if err == nil {
				break
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// grafanaVars are Grafana's variables in a query, replaced before parsing:
// interval variables by a duration, template variables by a value.
var (
	intervalVar = regexp.MustCompile(`\$__(rate_interval|interval|range)\b|\$\{__(rate_interval|interval|range)\}`)
	templateVar = regexp.MustCompile(`\$\{[A-Za-z0-9_]+(:[a-z]+)?\}|\$[A-Za-z_][A-Za-z0-9_]*|\[\[[A-Za-z0-9_]+\]\]`)
	labelValues = regexp.MustCompile(`^label_values\((.+),\s*[A-Za-z_][A-Za-z0-9_]*\)$`)
)

func promqlParser() parser.Parser { return parser.NewParser(parser.Options{}) }

// metricNames parses a PromQL expression and returns the metric names its
// selectors name.
func metricNames(p parser.Parser, expr string) ([]string, error) {
	e, err := p.ParseExpr(expr)
	if err != nil {
		return nil, err
	}
	var names []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		name := vs.Name
		for _, m := range vs.LabelMatchers {
			if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
				name = m.Value
			}
		}
		names = append(names, name)
		return nil
	})
	return names, nil
}

type grafanaPanel struct {
	ID         int            `json:"id"`
	Type       string         `json:"type"`
	Title      string         `json:"title"`
	Datasource map[string]any `json:"datasource"`
	GridPos    *struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []struct {
		Expr       string         `json:"expr"`
		RefID      string         `json:"refId"`
		Datasource map[string]any `json:"datasource"`
	} `json:"targets"`
	Panels []grafanaPanel `json:"panels"`
}

type grafanaDashboard struct {
	UID           string         `json:"uid"`
	Title         string         `json:"title"`
	SchemaVersion int            `json:"schemaVersion"`
	Panels        []grafanaPanel `json:"panels"`
	Templating    struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Query      json.RawMessage `json:"query"`
			Datasource map[string]any  `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
}

// TestDashboardQueriesUseExportedMetrics parses every provisioned
// dashboard, parses each PromQL query with Prometheus's parser and checks
// that every metric it selects is one the worker exports, and that the
// panels use the provisioned datasource (uid "prometheus").
func TestDashboardQueriesUseExportedMetrics(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join(dashboardsDir, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no dashboards in %s (%v)", dashboardsDir, err)
	}
	have := exported(t)
	p := promqlParser()
	used := map[string]bool{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d grafanaDashboard
		dec := json.NewDecoder(strings.NewReader(string(b)))
		if err := dec.Decode(&d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if d.UID == "" || d.Title == "" || d.SchemaVersion == 0 {
			t.Errorf("%s: uid %q, title %q, schemaVersion %d: all are needed for provisioning", f, d.UID, d.Title, d.SchemaVersion)
		}
		check := func(where, expr string) {
			if strings.TrimSpace(expr) == "" {
				t.Errorf("%s: %s has an empty query", f, where)
				return
			}
			q := intervalVar.ReplaceAllString(expr, "5m")
			q = templateVar.ReplaceAllString(q, "inventory")
			names, err := metricNames(p, q)
			if err != nil {
				t.Errorf("%s: %s: query does not parse: %v\n  %s", f, where, err, expr)
				return
			}
			for _, n := range names {
				used[n] = true
				if !have[n] {
					t.Errorf("%s: %s: %s is not a metric the worker exports\n  %s", f, where, n, expr)
				}
			}
		}
		ids := map[int]string{}
		var walk func(ps []grafanaPanel)
		walk = func(ps []grafanaPanel) {
			for _, pn := range ps {
				where := "panel " + pn.Title
				if prev, dup := ids[pn.ID]; dup || pn.ID == 0 {
					t.Errorf("%s: %s: id %d is missing or also used by %q", f, where, pn.ID, prev)
				}
				ids[pn.ID] = pn.Title
				if pn.GridPos == nil || pn.GridPos.W == 0 || pn.GridPos.H == 0 {
					t.Errorf("%s: %s has no size", f, where)
				}
				walk(pn.Panels)
				if pn.Type == "row" {
					continue
				}
				if uid, _ := pn.Datasource["uid"].(string); uid != "prometheus" {
					t.Errorf("%s: %s uses datasource %v, want uid prometheus", f, where, pn.Datasource)
				}
				if len(pn.Targets) == 0 {
					t.Errorf("%s: %s has no query", f, where)
				}
				for _, tg := range pn.Targets {
					check(where+" query "+tg.RefID, tg.Expr)
				}
			}
		}
		walk(d.Panels)
		for _, v := range d.Templating.List {
			if v.Type != "query" {
				continue
			}
			var q struct {
				Query string `json:"query"`
			}
			if err := json.Unmarshal(v.Query, &q); err != nil {
				_ = json.Unmarshal(v.Query, &q.Query)
			}
			m := labelValues.FindStringSubmatch(strings.TrimSpace(q.Query))
			if m == nil {
				t.Errorf("%s: variable %s: query %q is not label_values(selector, label)", f, v.Name, q.Query)
				continue
			}
			check("variable "+v.Name, m[1])
		}
	}
	// What the dashboard is for: each of these must be on it.
	for _, n := range []string{
		"cloudcommerce_stage_messages_received_total", // throughput by stage
		"cloudcommerce_stage_messages_handled_total",  // outcomes, error ratio
		"cloudcommerce_order_latency_seconds_bucket",  // latency percentiles
		"cloudcommerce_stage_handler_duration_seconds_bucket",
		"cloudcommerce_queue_messages",                   // backlog and DLQ depth
		"cloudcommerce_queue_oldest_message_age_seconds", // age
		"cloudcommerce_aws_requests_total",               // AWS calls per order, AWS errors
		"cloudcommerce_order_latency_seconds_count",      // orders finished, the per-order denominator
	} {
		if !used[n] {
			t.Errorf("no dashboard shows %s", n)
		}
	}
}

// TestAlertRulesParseAndUseExportedMetrics loads every rule file with
// Prometheus's own rule parser (as `promtool check rules` does) and checks
// each expression's metrics against what the worker exports.
func TestAlertRulesParseAndUseExportedMetrics(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join(rulesDir, "*.yml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no rule files in %s (%v)", rulesDir, err)
	}
	have := exported(t)
	p := promqlParser()
	alerts := map[string]bool{}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, f := range files {
		// Legacy name validation: the compose stack runs Prometheus 2.x.
		groups, errs := rulefmt.ParseFile(f, false, model.LegacyValidation, p, quiet)
		for _, err := range errs {
			t.Error(err) // names the file
		}
		if groups == nil {
			continue
		}
		for _, g := range groups.Groups {
			for _, r := range g.Rules {
				where := f + ": " + r.Alert + r.Record
				names, err := metricNames(p, r.Expr)
				if err != nil {
					t.Errorf("%s: %v", where, err)
					continue
				}
				for _, n := range names {
					if !have[n] {
						t.Errorf("%s: %s is not a metric the worker exports", where, n)
					}
				}
				if r.Alert == "" {
					continue
				}
				alerts[r.Alert] = true
				if r.Labels["severity"] == "" || r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
					t.Errorf("%s: an alert needs a severity label and summary and description annotations", where)
				}
				if r.For == 0 {
					t.Errorf("%s: an alert without `for` pages on one bad scrape", where)
				}
			}
		}
	}
	var missing []string
	for _, a := range []string{"CloudCommerceDeadLetters", "CloudCommerceOldestMessageAge", "CloudCommerceHandlerErrorRatio", "CloudCommerceNoProgress", "CloudCommerceDeferredDeliveries"} {
		if !alerts[a] {
			missing = append(missing, a)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("alerts missing: %s", strings.Join(missing, ", "))
	}
}

// TestMetricCheckCatchesUnknownNames keeps the checks above honest: a typo
// in a metric name is caught, and histogram series resolve.
func TestMetricCheckCatchesUnknownNames(t *testing.T) {
	t.Parallel()
	have := exported(t)
	names, err := metricNames(promqlParser(), `sum(rate(cloudcommerce_stage_messages_handeld_total[5m])) / sum(rate(cloudcommerce_order_latency_seconds_count[5m]))`)
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 2 || have[names[0]] || !have[names[1]] {
		t.Fatalf("names %v: want the misspelt one unknown and the histogram count known", names)
	}
}
