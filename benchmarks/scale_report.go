package benchmarks

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"text/tabwriter"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// Files WriteScaleReport writes.
const (
	ScaleReportJSON      = "scale.json"
	ScaleReportTable     = "scale.txt"
	PlotScaleN           = "scale_throughput_vs_n.svg"
	PlotScaleKeys        = "scale_throughput_vs_keys.svg"
	PlotScaleRSS         = "scale_rss_vs_keys.svg"
	PlotScaleCatchUpKeys = "scale_catchup_vs_keys.svg"
)

// WriteScaleTable writes one row per case: throughput, latency, the
// scale figures and the load average the case started at.
func WriteScaleTable(w io.Writer, results []ScaleResult) error {
	width := labelWidth(results, func(r ScaleResult) string { return r.Label })
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%-*s\tops/s\tp50 ms\tp99 ms\treq/batch\tCPU s/1k ops/replica\tmax RSS MiB\tcatch-up s\ttransfers\tsetup s\tload avg\t\n", width, "configuration")
	for _, r := range results {
		if r.Error != "" {
			fmt.Fprintf(tw, "%-*s\terror\t\t\t\t\t\t\t\t\t%.2f\t  %s\n", width, r.Label, r.LoadAvg1, oneLine(r.Error, 100))
			continue
		}
		rss, catchUp, transfers, setup := "-", "-", "-", "-"
		if r.CatchUpTransfers != nil {
			transfers = fmt.Sprintf("%.0f", *r.CatchUpTransfers)
		}
		if r.MaxRSSMiB > 0 {
			rss = fmt.Sprintf("%.0f", r.MaxRSSMiB)
		}
		if r.CatchUpMs != nil {
			catchUp = fmt.Sprintf("%.1f", *r.CatchUpMs/1000)
			if r.CaughtUp != nil && !*r.CaughtUp {
				catchUp = ">" + catchUp
			}
		}
		if r.SetupS > 0 {
			setup = fmt.Sprintf("%.0f", r.SetupS)
		}
		fmt.Fprintf(tw, "%-*s\t%.0f\t%.2f\t%.2f\t%.1f\t%.3f\t%s\t%s\t%s\t%s\t%.2f\t\n", width, r.Label, r.ThroughputOps,
			r.LatencyP50Ms, r.LatencyP99Ms, r.RequestsPerBatch, r.CPUSecondsPer1kOpsPerReplica, rss, catchUp, transfers, setup, r.LoadAvg1)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	for _, ratio := range ScaleRatios(results) {
		fmt.Fprintf(w, "%s: %.2f (target at least %.1f)\n", ratio.Name, ratio.Value, ratio.Target)
	}
	return nil
}

// ScaleRatio is one of issue 21's scale targets as measured.
type ScaleRatio struct {
	Name   string
	Value  float64
	Target float64
}

// ScaleRatios returns the targets the results allow to compute: PBFT
// n=10 over n=4 saturated throughput (SweepN), and PBFT n=4 at the
// largest preloaded state over the smallest (SweepKeys; at least 0.8 when
// those are 10 million and 10 thousand keys).
func ScaleRatios(results []ScaleResult) []ScaleRatio {
	find := func(match func(ScaleResult) bool) (ScaleResult, bool) {
		for _, r := range results {
			if r.Error == "" && r.Ops > 0 && r.Protocol == "pbft" && match(r) {
				return r, true
			}
		}
		return ScaleResult{}, false
	}
	var out []ScaleRatio
	n4, ok4 := find(func(r ScaleResult) bool { return r.Sweep == SweepN && r.Replicas == 4 })
	n10, ok10 := find(func(r ScaleResult) bool { return r.Sweep == SweepN && r.Replicas == 10 })
	if ok4 && ok10 && n4.ThroughputOps > 0 {
		out = append(out, ScaleRatio{"PBFT n=10 / n=4, saturated throughput", n10.ThroughputOps / n4.ThroughputOps, 0.5})
	}
	var small, large ScaleResult
	for _, r := range usableScale(results, SweepKeys) {
		if r.Protocol != "pbft" {
			continue
		}
		if small.Ops == 0 || r.PreloadKeys < small.PreloadKeys {
			small = r
		}
		if large.Ops == 0 || r.PreloadKeys > large.PreloadKeys {
			large = r
		}
	}
	if small.Ops > 0 && large.PreloadKeys > small.PreloadKeys && small.ThroughputOps > 0 {
		name := fmt.Sprintf("PBFT n=4 at %s keys / at %s keys, throughput", humanCount(large.PreloadKeys), humanCount(small.PreloadKeys))
		out = append(out, ScaleRatio{name, large.ThroughputOps / small.ThroughputOps, 0.8})
	}
	return out
}

// WriteScaleJSON writes the results as an indented JSON list.
func WriteScaleJSON(w io.Writer, results []ScaleResult) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(results); err != nil {
		return fmt.Errorf("write JSON: %w", err)
	}
	return nil
}

// WriteScaleReport writes the results into dir (created if needed): the
// JSON list, the table and a plot per sweep present (throughput against
// n; throughput, peak memory and catch-up time against the state size).
// It returns the paths written.
func WriteScaleReport(dir string, results []ScaleResult) ([]string, error) {
	paths, err := writeJSONAndTable(dir, ScaleReportJSON, ScaleReportTable, results, func(w io.Writer) error { return WriteScaleTable(w, results) })
	if err != nil {
		return paths, err
	}
	plots := map[string]*plot.Plot{}
	var nResults []Result
	for _, r := range results {
		if r.Sweep == SweepN {
			nResults = append(nResults, r.Result)
		}
	}
	if len(usable(nResults)) > 0 {
		p, err := throughputVsNPlot(nResults)
		if err != nil {
			return paths, err
		}
		plots[PlotScaleN] = p
	}
	if keys := usableScale(results, SweepKeys); len(keys) > 0 {
		plots[PlotScaleKeys] = keysPlot(keys, "Saturated throughput against state size", "throughput (ops/s)",
			func(r ScaleResult) (float64, bool) { return r.ThroughputOps, true })
		plots[PlotScaleRSS] = keysPlot(keys, "Peak resident memory of a replica against state size", "max RSS (MiB)",
			func(r ScaleResult) (float64, bool) { return r.MaxRSSMiB, r.MaxRSSMiB > 0 })
		plots[PlotScaleCatchUpKeys] = keysPlot(keys, "Catch-up of a wiped replica under load", "catch-up time (s)",
			func(r ScaleResult) (float64, bool) {
				if r.CatchUpMs == nil || r.CaughtUp == nil || !*r.CaughtUp {
					return 0, false
				}
				return *r.CatchUpMs / 1000, true
			})
	}
	names := make([]string, 0, len(plots))
	for name := range plots {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if plots[name] == nil {
			continue
		}
		path := filepath.Join(dir, name)
		if err := plots[name].Save(16*vg.Centimeter, 11*vg.Centimeter, path); err != nil {
			return paths, fmt.Errorf("save %s: %w", path, err)
		}
		paths = append(paths, path)
	}
	return paths, nil
}

// usableScale keeps the sweep's results that measured something.
func usableScale(results []ScaleResult, sweep string) []ScaleResult {
	return slices.DeleteFunc(slices.Clone(results), func(r ScaleResult) bool {
		return r.Sweep != sweep || r.Error != "" || r.Ops == 0
	})
}

// keysPlot plots value against the preloaded keys (log scale), one line
// per protocol; results whose value is not ok are left out.
func keysPlot(results []ScaleResult, title, yLabel string, value func(ScaleResult) (float64, bool)) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "preloaded keys"
	p.Y.Label.Text = yLabel
	p.Legend.Top = true
	drawn := false
	for _, proto := range []string{"pbft", "raft"} {
		var pts plotter.XYs
		name := proto
		for _, r := range results {
			if v, ok := value(r); ok && r.Protocol == proto && r.PreloadKeys > 0 {
				pts = append(pts, plotter.XY{X: float64(r.PreloadKeys), Y: v})
				name = fmt.Sprintf("%s n=%d", proto, r.Replicas)
			}
		}
		if len(pts) == 0 {
			continue
		}
		slices.SortFunc(pts, func(a, b plotter.XY) int { return cmp.Compare(a.X, b.X) })
		if err := addSeries(p, pts, protocolStyle[proto], false, name); err != nil {
			continue
		}
		drawn = true
	}
	if !drawn {
		return nil
	}
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Y.Min = 0
	p.Y.Tick.Marker = plainTicks{}
	return p
}
