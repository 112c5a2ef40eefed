package benchmarks

import (
	"cmp"
	"fmt"
	"image/color"
	"path/filepath"
	"slices"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Groups Compare puts its results in; the plots select by group.
const (
	GroupScaling     = "scaling"      // no fault, saturated closed loop, each n
	GroupFsyncOff    = "fsync-off"    // as scaling for the smallest n, fsync off
	GroupCrashBackup = "crash-backup" // one crashed backup or follower
	GroupCrashLeader = "crash-leader" // the primary or leader crashed mid-run
	GroupByzantine   = "byzantine"    // one Byzantine replica (PBFT)
	GroupOneClient   = "one-client"   // one client, one operation outstanding
	GroupRateSweep   = "rate-sweep"   // open loop at fractions of the saturated throughput
	GroupFloor       = "floor"        // PBFT's smallest n as ProtocolFloor: its data path without agreement
	GroupModerate    = "moderate"     // ModerateClients x ModerateWindow: tens of clients, one request each
)

// Plot file names WritePlots writes.
const (
	PlotThroughputLatency = "throughput_latency.svg"
	PlotThroughputVsN     = "throughput_vs_n.svg"
)

// protocolStyle gives each protocol one color throughout the plots.
var protocolStyle = map[string]color.RGBA{
	"pbft": {R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
	"raft": {R: 0xd6, G: 0x27, B: 0x28, A: 0xff},
	// The peer systems, beside pbftnode's modes.
	PeerEtcd:     {R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff},
	PeerCometBFT: {R: 0x94, G: 0x67, B: 0xbd, A: 0xff},
}

// WritePlots writes the two plots of the results into dir and returns
// their paths: throughput against p50 (and p99) latency for the smallest
// cluster of each protocol and peer system (one-client, moderate,
// open-loop sweep and saturated points), and saturated throughput
// against n (with PBFT's crypto ceiling for each n; a peer is one point
// at its size).
func WritePlots(dir string, results []Result) ([]string, error) {
	var paths []string
	for _, w := range []struct {
		name string
		make func([]Result) (*plot.Plot, error)
	}{{PlotThroughputLatency, throughputLatencyPlot}, {PlotThroughputVsN, throughputVsNPlot}} {
		p, err := w.make(results)
		if err != nil {
			return paths, err
		}
		path := filepath.Join(dir, w.name)
		if err := p.Save(16*vg.Centimeter, 11*vg.Centimeter, path); err != nil {
			return paths, fmt.Errorf("save %s: %w", path, err)
		}
		paths = append(paths, path)
	}
	return paths, nil
}

// usable keeps the results that measured something.
func usable(results []Result) []Result {
	return slices.DeleteFunc(slices.Clone(results), func(r Result) bool { return r.Error != "" || r.Ops == 0 })
}

// protocols lists the protocols present, PBFT first, then Raft and the
// peer systems.
func protocols(results []Result) []string {
	var out []string
	for _, p := range append([]string{"pbft", "raft"}, Peers...) {
		if slices.ContainsFunc(results, func(r Result) bool { return r.Protocol == p }) {
			out = append(out, p)
		}
	}
	return out
}

func throughputLatencyPlot(all []Result) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = "Throughput against latency (no fault, smallest cluster, fsync on)"
	p.X.Label.Text = "throughput (ops/s)"
	p.Y.Label.Text = "latency (ms), p50 solid, p99 dashed"
	p.Legend.Top, p.Legend.Left = true, true
	results := usable(all)
	drawn := false
	for _, proto := range protocols(results) {
		var curve []Result
		smallest := 0
		for _, r := range results {
			if r.Protocol == proto && r.Group == GroupScaling && (smallest == 0 || r.Replicas < smallest) {
				smallest = r.Replicas
			}
		}
		for _, r := range results {
			if r.Protocol != proto || r.Scenario != ScenarioNone || !r.Fsync {
				continue
			}
			if r.Group == GroupOneClient || r.Group == GroupModerate || r.Group == GroupRateSweep || (r.Group == GroupScaling && r.Replicas == smallest) {
				curve = append(curve, r)
			}
		}
		if len(curve) == 0 {
			continue
		}
		slices.SortFunc(curve, func(a, b Result) int { return cmp.Compare(a.ThroughputOps, b.ThroughputOps) })
		p50, p99 := make(plotter.XYs, len(curve)), make(plotter.XYs, len(curve))
		for i, r := range curve {
			p50[i] = plotter.XY{X: r.ThroughputOps, Y: r.LatencyP50Ms}
			p99[i] = plotter.XY{X: r.ThroughputOps, Y: r.LatencyP99Ms}
		}
		name := fmt.Sprintf("%s n=%d", proto, curve[0].Replicas)
		if err := addSeries(p, p50, protocolStyle[proto], false, name+" p50"); err != nil {
			return nil, err
		}
		if err := addSeries(p, p99, protocolStyle[proto], true, name+" p99"); err != nil {
			return nil, err
		}
		drawn = true
	}
	// Latencies span from about a millisecond (one client) to hundreds
	// (saturation): a log scale shows both ends. Without any point (every
	// run failed) the plot stays empty and linear: a log axis over
	// nothing panics.
	if drawn {
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	}
	p.X.Tick.Marker = plainTicks{}
	p.X.Min = 0
	return p, nil
}

func throughputVsNPlot(all []Result) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = "Saturated throughput against cluster size (no fault, fsync on)"
	p.X.Label.Text = "replicas n"
	p.Y.Label.Text = "throughput (ops/s)"
	p.Legend.Top = true
	results := usable(all)
	for _, proto := range protocols(results) {
		var pts, ceiling plotter.XYs
		for _, r := range results {
			if r.Protocol == proto && r.Group == GroupScaling {
				pts = append(pts, plotter.XY{X: float64(r.Replicas), Y: r.ThroughputOps})
				if r.CryptoCeilingOps != nil {
					ceiling = append(ceiling, plotter.XY{X: float64(r.Replicas), Y: *r.CryptoCeilingOps})
				}
			}
		}
		if len(pts) == 0 {
			continue
		}
		slices.SortFunc(pts, func(a, b plotter.XY) int { return cmp.Compare(a.X, b.X) })
		if err := addSeries(p, pts, protocolStyle[proto], false, proto); err != nil {
			return nil, err
		}
		if len(ceiling) > 0 {
			slices.SortFunc(ceiling, func(a, b plotter.XY) int { return cmp.Compare(a.X, b.X) })
			if err := addSeries(p, ceiling, protocolStyle[proto], true, proto+" crypto ceiling"); err != nil {
				return nil, err
			}
		}
	}
	if err := addFloor(p, results); err != nil {
		return nil, err
	}
	p.Y.Min = 0
	p.X.Tick.Marker = plainTicks{}
	p.Y.Tick.Marker = plainTicks{}
	return p, nil
}

// addFloor marks the floor runs (ProtocolFloor: PBFT without agreement)
// as triangles in PBFT's color, the most PBFT could reach at that n.
func addFloor(p *plot.Plot, results []Result) error {
	var pts plotter.XYs
	for _, r := range results {
		if r.Protocol == ProtocolFloor && r.Scenario == ScenarioNone {
			pts = append(pts, plotter.XY{X: float64(r.Replicas), Y: r.ThroughputOps})
		}
	}
	if len(pts) == 0 {
		return nil
	}
	scatter, err := plotter.NewScatter(pts)
	if err != nil {
		return fmt.Errorf("plot floor: %w", err)
	}
	scatter.Color = protocolStyle["pbft"]
	scatter.Shape = draw.TriangleGlyph{}
	scatter.Radius = vg.Points(4)
	p.Add(scatter)
	p.Legend.Add("floor (PBFT without agreement)", scatter)
	return nil
}

// plainTicks are plot.DefaultTicks labelled without trailing zeros.
type plainTicks struct{}

func (plainTicks) Ticks(lo, hi float64) []plot.Tick {
	ticks := plot.DefaultTicks{}.Ticks(lo, hi)
	for i := range ticks {
		if ticks[i].Label != "" {
			ticks[i].Label = strconv.FormatFloat(ticks[i].Value, 'f', -1, 64)
		}
	}
	return ticks
}

// addSeries adds a line with points in c (dashed if asked) to the legend.
func addSeries(p *plot.Plot, pts plotter.XYs, c color.RGBA, dashed bool, name string) error {
	line, points, err := plotter.NewLinePoints(pts)
	if err != nil {
		return fmt.Errorf("plot %s: %w", name, err)
	}
	line.Color, points.Color = c, c
	line.Width = vg.Points(1.5)
	points.Shape = draw.CircleGlyph{}
	if dashed {
		line.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		points.Shape = draw.CrossGlyph{}
	}
	p.Add(line, points)
	p.Legend.Add(name, line, points)
	return nil
}
