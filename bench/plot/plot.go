// Package plot draws the benchmark's throughput and latency versus offered
// load as a self-contained SVG, with nothing but the standard library.
package plot

import (
	"fmt"
	"html"
	"math"
	"strings"
)

// Point is one measured step.
type Point struct {
	Offered  float64 // orders/s offered
	Achieved float64 // orders/s completed
	P50Ms    float64
	P99Ms    float64
	// Requests is AWS requests per order (0: not drawn).
	Requests float64
	// Pass marks a step that met the latency goal (drawn filled).
	Pass bool
}

// Series is one configuration's steps, in offered order.
type Series struct {
	Name   string
	Color  string
	Points []Point
}

const (
	width  = 860
	height = 1000
	left   = 80
	right  = 190
	top1   = 50
	h1     = 240
	top2   = 360
	h2     = 240
	top3   = 670
	h3     = 240
)

// SVG returns the three-panel chart: completed vs offered orders/s (with
// the y = x line), p50 and p99 placed→final latency on a log scale with the
// goal line, and AWS requests per order.
func SVG(title, subtitle string, goalMs float64, series []Series) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", width, height)
	fmt.Fprintf(&b, `<text x="%d" y="22" font-size="16" font-weight="bold">%s</text>`+"\n", left, html.EscapeString(title))
	fmt.Fprintf(&b, `<text x="%d" y="38" fill="#555">%s</text>`+"\n", left, html.EscapeString(subtitle))

	maxX, maxY, maxLat := 0.0, 0.0, goalMs*2
	for _, s := range series {
		for _, p := range s.Points {
			maxX = math.Max(maxX, p.Offered)
			maxY = math.Max(maxY, math.Max(p.Achieved, p.Offered))
			maxLat = math.Max(maxLat, p.P99Ms)
		}
	}
	maxX = niceCeil(maxX * 1.05)
	maxY = niceCeil(maxY * 1.05)
	pw := float64(width - left - right)
	x := func(v float64) float64 { return left + v/maxX*pw }

	// Panel 1: throughput.
	y1 := func(v float64) float64 { return top1 + h1 - v/maxY*h1 }
	frame(&b, top1, h1, "completed orders/s")
	for _, t := range ticks(maxY) {
		gridY(&b, y1(t), fmt.Sprintf("%g", t))
	}
	fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#bbb" stroke-dasharray="4 4"/>`+"\n", x(0), y1(0), x(math.Min(maxX, maxY)), y1(math.Min(maxX, maxY)))
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" fill="#999">completed = offered</text>`+"\n", x(math.Min(maxX, maxY))-130, y1(math.Min(maxX, maxY))+14)
	for _, s := range series {
		line(&b, s, func(p Point) (float64, float64) { return x(p.Offered), y1(p.Achieved) }, "")
	}

	// Panel 2: latency, log scale.
	lo, hi := 1.0, math.Pow(10, math.Ceil(math.Log10(maxLat*1.2)))
	y2 := func(ms float64) float64 {
		ms = math.Max(ms, lo)
		return top2 + h2 - (math.Log10(ms)-math.Log10(lo))/(math.Log10(hi)-math.Log10(lo))*h2
	}
	frame(&b, top2, h2, "placed→final latency (log)")
	for v := lo; v <= hi; v *= 10 {
		gridY(&b, y2(v), fmtMs(v))
	}
	fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#d62728" stroke-dasharray="6 3"/>`+"\n", left, y2(goalMs), width-right, y2(goalMs))
	fmt.Fprintf(&b, `<text x="%d" y="%.1f" fill="#d62728">p99 goal %s</text>`+"\n", width-right+6, y2(goalMs)+4, fmtMs(goalMs))
	for _, s := range series {
		line(&b, s, func(p Point) (float64, float64) { return x(p.Offered), y2(p.P99Ms) }, "")
		line(&b, s, func(p Point) (float64, float64) { return x(p.Offered), y2(p.P50Ms) }, "3 3")
	}

	// Panel 3: AWS requests per order.
	maxR := 0.0
	for _, s := range series {
		for _, p := range s.Points {
			maxR = math.Max(maxR, p.Requests)
		}
	}
	maxR = niceCeil(maxR * 1.1)
	y3 := func(v float64) float64 { return top3 + h3 - v/maxR*h3 }
	frame(&b, top3, h3, "AWS requests per order")
	for _, t := range ticks(maxR) {
		gridY(&b, y3(t), fmt.Sprintf("%g", t))
	}
	for _, s := range series {
		var pts []Point
		for _, p := range s.Points {
			if p.Requests > 0 {
				pts = append(pts, p)
			}
		}
		line(&b, Series{Name: s.Name, Color: s.Color, Points: pts}, func(p Point) (float64, float64) { return x(p.Offered), y3(p.Requests) }, "")
	}

	// Shared x axis labels.
	for _, top := range []int{top1, top2, top3} {
		h := h1
		for _, t := range ticks(maxX) {
			fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%g</text>`+"\n", x(t), top+h+16, t)
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle" fill="#333">offered load, orders/s</text>`+"\n", left+pw/2, top+h+32)
	}

	// Legend.
	ly := top1 + 10
	for _, s := range series {
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"/>`+"\n", width-right+10, ly, width-right+34, ly, s.Color)
		fmt.Fprintf(&b, `<text x="%d" y="%d">%s</text>`+"\n", width-right+40, ly+4, html.EscapeString(s.Name))
		ly += 18
	}
	ly += 8
	fmt.Fprintf(&b, `<circle cx="%d" cy="%d" r="4" fill="#444"/><text x="%d" y="%d">p99 met the goal</text>`+"\n", width-right+22, ly, width-right+40, ly+4)
	ly += 18
	fmt.Fprintf(&b, `<circle cx="%d" cy="%d" r="4" fill="white" stroke="#444"/><text x="%d" y="%d">missed</text>`+"\n", width-right+22, ly, width-right+40, ly+4)
	ly2 := top2 + 10
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#444" stroke-width="2"/><text x="%d" y="%d">p99</text>`+"\n", width-right+10, ly2, width-right+34, ly2, width-right+40, ly2+4)
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#444" stroke-width="2" stroke-dasharray="3 3"/><text x="%d" y="%d">p50</text>`+"\n", width-right+10, ly2+18, width-right+34, ly2+18, width-right+40, ly2+22)
	b.WriteString("</svg>\n")
	return []byte(b.String())
}

func frame(b *strings.Builder, top, h int, label string) {
	fmt.Fprintf(b, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#333"/>`+"\n", left, top, width-left-right, h)
	fmt.Fprintf(b, `<text transform="translate(18 %d) rotate(-90)" text-anchor="middle" fill="#333">%s</text>`+"\n", top+h/2, html.EscapeString(label))
}

func gridY(b *strings.Builder, y float64, label string) {
	fmt.Fprintf(b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#eee"/>`+"\n", left, y, width-right, y)
	fmt.Fprintf(b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", left-6, y+4, label)
}

func line(b *strings.Builder, s Series, at func(Point) (float64, float64), dash string) {
	if len(s.Points) == 0 {
		return
	}
	var pts []string
	for _, p := range s.Points {
		px, py := at(p)
		pts = append(pts, fmt.Sprintf("%.1f,%.1f", px, py))
	}
	d := ""
	if dash != "" {
		d = fmt.Sprintf(` stroke-dasharray="%s"`, dash)
	}
	fmt.Fprintf(b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"%s/>`+"\n", strings.Join(pts, " "), s.Color, d)
	for _, p := range s.Points {
		px, py := at(p)
		fill := s.Color
		if !p.Pass {
			fill = "white"
		}
		fmt.Fprintf(b, `<circle cx="%.1f" cy="%.1f" r="3.5" fill="%s" stroke="%s"/>`+"\n", px, py, fill, s.Color)
	}
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

func ticks(max float64) []float64 {
	step := niceCeil(max / 6)
	var out []float64
	for t := 0.0; t <= max+1e-9; t += step {
		out = append(out, t)
	}
	return out
}

func fmtMs(ms float64) string {
	if ms >= 1000 {
		return fmt.Sprintf("%gs", ms/1000)
	}
	return fmt.Sprintf("%gms", ms)
}
