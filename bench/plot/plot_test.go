package plot_test

import (
	"bytes"
	"encoding/xml"
	"io"
	"strings"
	"testing"

	"github.com/cloudcommerce/cloudcommerce/bench/plot"
)

func TestSVGIsWellFormed(t *testing.T) {
	t.Parallel()
	svg := plot.SVG("Throughput & latency", "2 cores <shared>", 1000, []plot.Series{
		{Name: "batched", Color: "#1f77b4", Points: []plot.Point{{Offered: 50, Achieved: 50, P50Ms: 20, P99Ms: 40, Requests: 12, Pass: true}, {Offered: 300, Achieved: 260, P50Ms: 300, P99Ms: 2400, Requests: 9, Pass: false}}},
		{Name: "naive", Color: "#ff7f0e", Points: []plot.Point{{Offered: 50, Achieved: 49, P50Ms: 30, P99Ms: 80, Pass: true}}},
		{Name: "empty", Color: "#2ca02c"},
	})
	dec := xml.NewDecoder(bytes.NewReader(svg))
	for {
		_, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v\n%s", err, svg)
		}
	}
	for _, want := range []string{"batched", "naive", "p99 goal 1s", "&lt;shared&gt;"} {
		if !strings.Contains(string(svg), want) {
			t.Errorf("SVG lacks %q", want)
		}
	}
}
