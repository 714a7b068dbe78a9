package metrics_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/cloudcommerce/cloudcommerce/internal/metrics"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
)

var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

// described returns the name of every metric family m's collectors
// describe, read from the collectors themselves (not from what they have
// collected so far).
func described(t *testing.T, m *metrics.Metrics) []string {
	t.Helper()
	var names []string
	for field, c := range vectors(m) {
		ch := make(chan *prometheus.Desc, 16)
		go func() { c.Describe(ch); close(ch) }()
		for d := range ch {
			match := fqName.FindStringSubmatch(d.String())
			if match == nil {
				t.Fatalf("%s: no fqName in %s", field, d)
			}
			names = append(names, match[1])
		}
	}
	slices.Sort(names)
	return names
}

// TestEveryFamilyExistsFromTheStart: a registry nothing has happened to
// yet (an idle worker's) exposes every family its collectors describe,
// each with its known series at 0, and passes the linter.
func TestEveryFamilyExistsFromTheStart(t *testing.T) {
	t.Parallel()
	m := metrics.New()
	names := described(t, m)
	if len(names) < 17 {
		t.Fatalf("the collectors describe %d families; the struct changed shape", len(names))
	}
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		got[mf.GetName()] = mf
	}
	for _, name := range names {
		mf := got[name]
		if mf == nil || len(mf.GetMetric()) == 0 {
			t.Errorf("%s has no series before its first event", name)
			continue
		}
		for _, s := range mf.GetMetric() {
			var v float64
			switch {
			case s.Counter != nil:
				v = s.GetCounter().GetValue()
			case s.Gauge != nil:
				v = s.GetGauge().GetValue()
			case s.Histogram != nil:
				v = float64(s.GetHistogram().GetSampleCount())
			}
			if v != 0 {
				t.Errorf("%s%v starts at %g, want 0", name, s.GetLabel(), v)
			}
		}
	}
	problems, err := testutil.GatherAndLint(m.Registry, names...)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}

// TestKnownSeriesCoverWhatAlertsSelect checks the series the dashboard and
// the alert rules select on exist for every stage from the start.
func TestKnownSeriesCoverWhatAlertsSelect(t *testing.T) {
	t.Parallel()
	m := metrics.New()
	want := map[string]int{
		"cloudcommerce_stage_messages_handled_total":     len(pipeline.Stages) * 7,
		"cloudcommerce_deliveries_deferred_total":        len(pipeline.Stages) * len(pipeline.DeferReasons),
		"cloudcommerce_queue_messages":                   len(pipeline.Stages) * 2 * 3,
		"cloudcommerce_queue_oldest_message_age_seconds": len(pipeline.Stages),
		"cloudcommerce_stage_dead_lettered_total":        len(pipeline.Stages) * 5,
		"cloudcommerce_order_latency_seconds":            4, // SHIPPED, REJECTED, PAYMENT_FAILED, CANCELLED
		"cloudcommerce_order_transitions_total":          8,
	}
	for name, n := range want {
		if got := testutil.CollectAndCount(m.Registry, name); got != n {
			t.Errorf("%s: %d series at start, want %d", name, got, n)
		}
	}
	if v := testutil.ToFloat64(m.Handled.WithLabelValues(string(pipeline.StageShipping), "dead_lettered")); v != 0 {
		t.Errorf("shipping dead_lettered starts at %g", v)
	}
}

// TestAWSOperationsAreTheWorkers derives the AWS operations from the code
// the worker binary links (every <service>.<Operation>Input it builds) and
// checks metrics.AWSOperations names exactly those, so a new call gets its
// series from the start and a removed one leaves no stale series.
func TestAWSOperationsAreTheWorkers(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("runs go list")
	}
	services := map[string]string{ // import path -> service ID (the service label)
		"github.com/aws/aws-sdk-go-v2/service/sqs":         sqs.ServiceID,
		"github.com/aws/aws-sdk-go-v2/service/dynamodb":    dynamodb.ServiceID,
		"github.com/aws/aws-sdk-go-v2/service/eventbridge": eventbridge.ServiceID,
		"github.com/aws/aws-sdk-go-v2/service/sns":         sns.ServiceID,
	}
	// Code whose calls are not a running worker's: the one-shot `worker
	// provision` (topology's provision.go; its resolve.go looks up the
	// queue URLs the worker starts with), and the sandbox providers' ledger
	// (counted under its own service label, only when the sandbox stands in
	// for Stripe).
	skip := map[string]bool{
		"github.com/cloudcommerce/cloudcommerce/internal/sandbox": true,
	}
	skipFile := map[string]bool{"github.com/cloudcommerce/cloudcommerce/internal/topology/provision.go": true}
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}} {{.Dir}} {{join .GoFiles \",\"}}",
		"github.com/cloudcommerce/cloudcommerce/cmd/worker").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	found := map[string]map[string]bool{}
	fset := token.NewFileSet()
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 || !strings.HasPrefix(f[0], "github.com/cloudcommerce/cloudcommerce/") || skip[f[0]] {
			continue
		}
		for _, name := range strings.Split(f[2], ",") {
			if skipFile[f[0]+"/"+name] {
				continue
			}
			file, err := parser.ParseFile(fset, filepath.Join(f[1], name), nil, parser.SkipObjectResolution)
			if err != nil {
				t.Fatal(err)
			}
			local := map[string]string{} // local package name -> service ID
			for _, imp := range file.Imports {
				p, _ := strconv.Unquote(imp.Path.Value)
				if id, ok := services[p]; ok {
					n := filepath.Base(p)
					if imp.Name != nil {
						n = imp.Name.Name
					}
					local[n] = id
				}
			}
			ast.Inspect(file, func(n ast.Node) bool {
				sel, ok := n.(*ast.SelectorExpr)
				if !ok {
					return true
				}
				x, ok := sel.X.(*ast.Ident)
				if !ok {
					return true
				}
				if id, svc := local[x.Name]; svc && strings.HasSuffix(sel.Sel.Name, "Input") {
					if found[id] == nil {
						found[id] = map[string]bool{}
					}
					found[id][strings.TrimSuffix(sel.Sel.Name, "Input")] = true
				}
				return true
			})
		}
	}
	if len(found) == 0 {
		t.Fatal("found no AWS call in the worker's packages")
	}
	for _, id := range slices.Sorted(maps.Keys(found)) {
		got := slices.Sorted(maps.Keys(found[id]))
		want := slices.Sorted(slices.Values(metrics.AWSOperations[id]))
		if !slices.Equal(got, want) {
			t.Errorf("%s: the worker calls %v; metrics.AWSOperations lists %v", id, got, want)
		}
	}
	for id := range metrics.AWSOperations {
		if found[id] == nil {
			t.Errorf("metrics.AWSOperations lists %s, which the worker does not call", id)
		}
	}
}

// TestIntakeRoutesAreTheIntakes derives the intake's route labels from the
// handle(...) calls that register them and checks metrics.IntakeRoutes
// names exactly those (the notification inbox is devstack's only).
func TestIntakeRoutesAreTheIntakes(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile("../intake/intake.go")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range regexp.MustCompile(`handle\("[A-Z]+ [^"]+", "([a-z_]+)"`).FindAllStringSubmatch(string(src), -1) {
		if m[1] != "notifications" {
			got = append(got, m[1])
		}
	}
	if len(got) == 0 {
		t.Fatal("found no route registered in internal/intake/intake.go")
	}
	slices.Sort(got)
	if want := slices.Sorted(maps.Keys(metrics.IntakeRoutes)); !slices.Equal(got, want) {
		t.Errorf("the intake registers routes %v; metrics.IntakeRoutes lists %v", got, want)
	}
}
