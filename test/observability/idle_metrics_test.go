package observability_test

import (
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/cloudcommerce/cloudcommerce/internal/metrics"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
)

var descName = regexp.MustCompile(`fqName: "([^"]+)"`)

// registeredFamilies returns every cloudcommerce_ family the metrics
// package registers: what each collector of metrics.New describes, and
// the in-flight gauges a worker registers per stage.
func registeredFamilies(t *testing.T) []string {
	t.Helper()
	m := metrics.New()
	for _, st := range pipeline.Stages {
		m.InFlight(st, func() float64 { return 0 })
	}
	set := map[string]bool{}
	v := reflect.ValueOf(m).Elem()
	for i := 0; i < v.NumField(); i++ {
		if !v.Type().Field(i).IsExported() {
			continue // caches of children of the exported vectors
		}
		c, ok := v.Field(i).Interface().(prometheus.Collector)
		if !ok || v.Type().Field(i).Name == "Registry" {
			continue
		}
		ch := make(chan *prometheus.Desc, 16)
		go func() { c.Describe(ch); close(ch) }()
		for d := range ch {
			if match := descName.FindStringSubmatch(d.String()); match != nil {
				set[match[1]] = true
			}
		}
	}
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "cloudcommerce_") {
			set[mf.GetName()] = true
		}
	}
	var names []string
	for n := range set {
		if strings.HasPrefix(n, "cloudcommerce_") {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names
}

// TestIdleWorkerListsEveryFamily: before any order, a worker's /metrics
// lists every cloudcommerce_ family the package registers, so dashboards
// show 0 instead of "no data" and rate() alerts have a series to work on.
func TestIdleWorkerListsEveryFamily(t *testing.T) {
	t.Parallel()
	want := registeredFamilies(t)
	if len(want) < 18 {
		t.Fatalf("found %d registered families; the metrics package changed shape", len(want))
	}
	s := start(t, options{})
	resp, err := http.Get(s.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	got, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	var missing []string
	for _, name := range want {
		if mf := got[name]; mf == nil || len(mf.GetMetric()) == 0 {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		t.Errorf("an idle worker's /metrics lacks %d of %d families: %s", len(missing), len(want), strings.Join(missing, ", "))
	}
	for _, st := range pipeline.Stages {
		var found bool
		for _, s := range got["cloudcommerce_stage_messages_handled_total"].GetMetric() {
			labels := map[string]string{}
			for _, l := range s.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			found = found || labels["stage"] == string(st) && labels["outcome"] == "dead_lettered"
		}
		if !found {
			t.Errorf("no %s dead_lettered series on an idle worker", st)
		}
	}
	t.Logf("an idle worker lists all %d cloudcommerce_ families", len(want))
}
