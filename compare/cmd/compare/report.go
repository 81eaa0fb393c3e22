package main

import (
	"fmt"
	"math"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/nfsflock/nfsflock/retry"
)

// table renders the figures and the targets of issue 10 as Markdown.
func (r *results) table(o options) string {
	var b strings.Builder
	cols := []string{"nfsflock", "raw", "flufl", "gofrs", "proper"}
	fmt.Fprintf(&b, "## Figures (%s, %d CPUs)\n\n", runtime.GOOS, runtime.NumCPU())
	fmt.Fprintf(&b, "| measure |")
	for _, c := range cols {
		fmt.Fprintf(&b, " %s |", peerTitles[c])
	}
	fmt.Fprintf(&b, "\n|---|%s\n", strings.Repeat("---:|", len(cols)))
	row := func(name string, cell func(peer string) string) {
		fmt.Fprintf(&b, "| %s |", name)
		for _, c := range cols {
			s := cell(c)
			if s == "" {
				s = "–"
			}
			fmt.Fprintf(&b, " %s |", s)
		}
		b.WriteString("\n")
	}
	row("uncontended cycle, new lock object each time", func(p string) string {
		if p == "gofrs" {
			return "" // measured with one object: a new one is just a file name
		}
		return dur(r.cycle, p)
	})
	row("uncontended cycle, one lock object reused", func(p string) string {
		switch p {
		case "nfsflock":
			return dur(r.cycle, "nfsflock-reuse")
		case "gofrs":
			return dur(r.cycle, "gofrs")
		}
		return ""
	})
	row(fmt.Sprintf("hand-off, 2 processes: median (n=%d)", o.handoffs), func(p string) string { return stat(r.handoff[p], 0.5) })
	row("hand-off, 2 processes: p99", func(p string) string { return stat(r.handoff[p], 0.99) })
	row(fmt.Sprintf("hand-off through a crowd of %d: median", o.crowd), func(p string) string { return stat(r.handoff[p+"-crowd"], 0.5) })
	row(fmt.Sprintf("hand-off through a crowd of %d: p99", o.crowd), func(p string) string { return stat(r.handoff[p+"-crowd"], 0.99) })
	row("hand-off across two sshfs clients: median", func(p string) string { return stat(r.handoff[p+"-sshfs"], 0.5) })
	row(fmt.Sprintf("CPU of %d blocked processes over %v (one core = 100%%)", o.idlers, o.idle), func(p string) string {
		if c, ok := r.idle[p]; ok {
			return fmt.Sprintf("%.2f%%", 100*c)
		}
		return ""
	})
	row("contention: acquisitions/s of one process alone", func(p string) string {
		if f, ok := r.fair[p]; ok {
			return fmt.Sprintf("%.0f", f.single)
		}
		return ""
	})
	row(fmt.Sprintf("contention: acquisitions/s of %d processes together (cycles each)", o.fairProcs), func(p string) string {
		if f, ok := r.fair[p]; ok {
			return fmt.Sprintf("%.0f (%d)", f.total, f.cycles)
		}
		return ""
	})
	row("contention: CPU per acquisition, one process alone / all together", func(p string) string {
		if f, ok := r.fair[p]; ok && f.singleCPU > 0 {
			return fmt.Sprintf("%v / %v", f.singleCPU.Round(time.Microsecond), f.totalCPU.Round(time.Microsecond))
		}
		return ""
	})
	row("contention: slowest process's time / fastest's", func(p string) string {
		if f, ok := r.fair[p]; ok {
			return fmt.Sprintf("%.2f", f.spread)
		}
		return ""
	})
	row(fmt.Sprintf("crash: taken after the rules allow, median (n=%d)", o.crashes), func(p string) string { return stat(r.crash[p], 0.5) })
	row("crash, dead-owner break: taken after the kill, median", func(p string) string {
		if p == "nfsflock" {
			return stat(r.crash["nfsflock-deadowner"], 0.5)
		}
		return ""
	})

	fmt.Fprintf(&b, "\n## Targets of issue 10\n\n| # | target | measured | met |\n|---|---|---|---|\n")
	target := func(n int, what string, v float64, ok bool, format string) {
		if math.IsNaN(v) {
			fmt.Fprintf(&b, "| %d | %s | not measured | – |\n", n, what)
			return
		}
		met := "no"
		if ok {
			met = "yes"
		}
		fmt.Fprintf(&b, "| %d | %s | "+format+" | %s |\n", n, what, v, met)
	}
	ms := func(d []time.Duration, q float64) float64 {
		if len(d) == 0 {
			return math.NaN()
		}
		return float64(quantile(d, q)) / 1e6
	}
	ratio := func(a, b string) float64 {
		x, ok1 := r.cycle[a]
		y, ok2 := r.cycle[b]
		if !ok1 || !ok2 || y == 0 {
			return math.NaN()
		}
		return float64(x) / float64(y)
	}
	v := ms(r.handoff["nfsflock"], 0.5)
	target(1, "hand-off on one host: median ≤ 2 ms", v, v <= 2, "%.2f ms")
	v = ms(r.handoff["nfsflock"], 0.99)
	target(1, "hand-off on one host: p99 < 20 ms", v, v < 20, "%.2f ms")
	v = ms(r.handoff["nfsflock-crowd"], 0.99)
	target(1, fmt.Sprintf("hand-off through %d waiters: p99 < 20 ms", o.crowd), v, v < 20, "%.2f ms")
	v = ratio("nfsflock-reuse", "gofrs")
	target(2, "reused Lock's cycle ≤ 2 × gofrs/flock's", v, v <= 2, "%.1f×")
	v = ratio("nfsflock", "raw")
	target(3, "new Lock's cycle ≤ 1.3 × the raw syscalls'", v, v <= 1.3, "%.2f×")
	v = ratio("flufl", "nfsflock-reuse")
	target(3, "flufl.lock's cycle ≥ 3 × nfsflock's (reused Lock)", v, v >= 3, "%.1f×")
	v = ratio("flufl", "nfsflock")
	target(3, "flufl.lock's cycle ≥ 3 × nfsflock's (new Lock)", v, v >= 3, "%.1f×")
	capMs := float64(retry.Default().Max) / 1e6
	v = ms(r.handoff["nfsflock-sshfs"], 0.5)
	target(4, fmt.Sprintf("hand-off across sshfs clients: median ≤ the retry cap, %.0f ms", capMs), v, v <= capMs, "%.0f ms")
	v = math.NaN()
	if c, ok := r.idle["nfsflock"]; ok {
		v = 100 * c
	}
	target(5, fmt.Sprintf("%d blocked processes: < 2%% of a core together", o.idlers), v, v < 2, "%.2f%%")
	v, w := math.NaN(), math.NaN()
	if f, ok := r.fair["nfsflock"]; ok {
		v, w = f.total/f.single, f.spread
	}
	target(6, fmt.Sprintf("%d processes: throughput ≥ ½ of one process's", o.fairProcs), v, v >= 0.5, "%.2f×")
	target(6, "slowest process ≤ 2 × the fastest", w, w <= 2, "%.2f×")
	v = ms(r.crash["nfsflock"], 0.99)
	target(7, "crash: taken ≤ 100 ms after expiry + slop (worst)", v, v <= 100, "%.0f ms")
	v = ms(r.crash["nfsflock-deadowner"], 0.99)
	target(7, "crash, dead-owner break: taken ≤ 100 ms after the kill (worst)", v, v <= 100, "%.0f ms")
	for _, s := range r.skipped {
		fmt.Fprintf(&b, "\nNot measured: %s.\n", s)
	}
	return b.String()
}

func dur(m map[string]time.Duration, k string) string {
	d, ok := m[k]
	if !ok {
		return ""
	}
	return fmtDur(d)
}

func stat(d []time.Duration, q float64) string {
	if len(d) == 0 {
		return ""
	}
	return fmtDur(quantile(d, q))
}

func fmtDur(d time.Duration) string {
	switch a := d.Abs(); {
	case a < time.Millisecond:
		return fmt.Sprintf("%.1f µs", float64(d)/1e3)
	case a < time.Second:
		return fmt.Sprintf("%.2f ms", float64(d)/1e6)
	default:
		return fmt.Sprintf("%.2f s", d.Seconds())
	}
}

// series are the hand-off distributions the plot shows, in order.
var series = []struct{ key, title, color string }{
	{"nfsflock", "nfsflock, 2 processes", "#1f77b4"},
	{"nfsflock-crowd", "nfsflock, a crowd of waiters", "#17becf"},
	{"nfsflock-sshfs", "nfsflock, across 2 sshfs clients", "#9467bd"},
	{"gofrs", "gofrs/flock (flock(2)), 2 processes", "#2ca02c"},
	{"gofrs-crowd", "gofrs/flock, a crowd of waiters", "#98df8a"},
	{"flufl", "flufl.lock, 2 processes", "#d62728"},
	{"proper", "proper-lockfile, 2 processes", "#ff7f0e"},
}

// svg plots each hand-off distribution as a cumulative curve over a
// logarithmic time axis from 10 µs to 10 s. Times below 10 µs (a waiter
// can return before the holder's Release does) are drawn at 10 µs.
func (r *results) svg() string {
	const (
		w, h                = 760, 420
		left, right         = 70, 20
		top, bottom         = 20, 150
		lo, hi      float64 = -5, 1 // log10 seconds
	)
	pw, ph := float64(w-left-right), float64(h-top-bottom)
	x := func(d time.Duration) float64 {
		s := math.Log10(math.Max(d.Seconds(), 1e-5))
		return float64(left) + pw*(math.Min(s, hi)-lo)/(hi-lo)
	}
	y := func(f float64) float64 { return float64(top) + ph*(1-f) }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", w, h, w, h)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", w, h)
	labels := []string{"10 µs", "100 µs", "1 ms", "10 ms", "100 ms", "1 s", "10 s"}
	for i, l := range labels {
		px := float64(left) + pw*float64(i)/(hi-lo)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", px, top, px, float64(top)+ph)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", px, float64(top)+ph+16, l)
	}
	for _, f := range []float64{0, 0.25, 0.5, 0.75, 1} {
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", left, y(f), float64(left)+pw, y(f))
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%g</text>`+"\n", left-6, y(f)+4, f)
	}
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">time from the holder's release returning to the waiter's acquire returning</text>`+"\n", float64(left)+pw/2, float64(top)+ph+34)
	fmt.Fprintf(&b, `<text transform="translate(16 %.1f) rotate(-90)" text-anchor="middle">fraction of hand-offs</text>`+"\n", float64(top)+ph/2)
	ly := float64(top) + ph + 56
	for _, s := range series {
		d := slices.Clone(r.handoff[s.key])
		if len(d) == 0 {
			continue
		}
		slices.Sort(d)
		var pts []string
		pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(d[0]), y(0)))
		for i, v := range d {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(v), y(float64(i)/float64(len(d)))), fmt.Sprintf("%.1f,%.1f", x(v), y(float64(i+1)/float64(len(d)))))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", s.color, strings.Join(pts, " "))
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s" stroke-width="3"/>`+"\n", left, ly-4, left+24, ly-4, s.color)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f">%s: median %s, p99 %s, n=%d</text>`+"\n", left+32, ly, s.title, fmtDur(quantile(d, 0.5)), fmtDur(quantile(d, 0.99)), len(d))
		ly += 14
	}
	b.WriteString("</svg>\n")
	return b.String()
}
