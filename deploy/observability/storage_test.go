package observability_test

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"
)

// memory is a read-only storage.Queryable over series written in PromQL's test notation
// ("name{a="b"} 0+10x90": one sample a minute from time 0), enough for the engine to evaluate
// rules over synthetic data without a TSDB.
type memory struct {
	series []storage.Series
}

// step is the notation's sample interval.
const step = time.Minute

func load(descs ...string) (*memory, error) {
	p := parser.NewParser(parser.Options{})
	m := &memory{}
	for _, d := range descs {
		lset, values, err := p.ParseSeriesDesc(d)
		if err != nil {
			return nil, fmt.Errorf("series %q: %w", d, err)
		}
		var samples []chunks.Sample
		for i, v := range values {
			if v.Omitted {
				continue
			}
			samples = append(samples, floatSample{t: int64(i) * step.Milliseconds(), f: v.Value})
		}
		m.series = append(m.series, storage.NewListSeries(lset, samples))
	}
	slices.SortFunc(m.series, func(a, b storage.Series) int { return labels.Compare(a.Labels(), b.Labels()) })
	return m, nil
}

func (m *memory) Querier(mint, maxt int64) (storage.Querier, error) { return m, nil }

func (m *memory) Select(_ context.Context, _ bool, _ *storage.SelectHints, matchers ...*labels.Matcher) storage.SeriesSet {
	var out []storage.Series
	for _, s := range m.series {
		if matchesAll(s.Labels(), matchers) {
			out = append(out, s)
		}
	}
	return &seriesSet{series: out, i: -1}
}

func matchesAll(lset labels.Labels, matchers []*labels.Matcher) bool {
	for _, m := range matchers {
		if !m.Matches(lset.Get(m.Name)) {
			return false
		}
	}
	return true
}

func (m *memory) LabelValues(context.Context, string, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, nil
}

func (m *memory) LabelNames(context.Context, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, nil
}

func (m *memory) Close() error { return nil }

type seriesSet struct {
	series []storage.Series
	i      int
}

func (s *seriesSet) Next() bool                        { s.i++; return s.i < len(s.series) }
func (s *seriesSet) At() storage.Series                { return s.series[s.i] }
func (s *seriesSet) Err() error                        { return nil }
func (s *seriesSet) Warnings() annotations.Annotations { return nil }

type floatSample struct {
	t int64
	f float64
}

func (s floatSample) T() int64                      { return s.t }
func (s floatSample) ST() int64                     { return 0 }
func (s floatSample) F() float64                    { return s.f }
func (s floatSample) H() *histogram.Histogram       { return nil }
func (s floatSample) FH() *histogram.FloatHistogram { return nil }
func (s floatSample) Type() chunkenc.ValueType      { return chunkenc.ValFloat }
func (s floatSample) Copy() chunks.Sample           { return s }

// minutes is how long every synthetic series runs: long enough for the widest window (30m)
// plus the longest for (30m).
const minutes = 90

// counter is a counter growing by perMinute.
func counter(name, lbls string, perMinute float64) string {
	return fmt.Sprintf("%s{%s} 0+%gx%d", name, lbls, perMinute, minutes)
}

// gauge is a gauge holding v.
func gauge(name, lbls string, v float64) string {
	return fmt.Sprintf("%s{%s} %gx%d", name, lbls, v, minutes)
}

// stepAt is a counter flat at 0 until minute at, then at 1.
func stepAt(name, lbls string, at int) string {
	return fmt.Sprintf("%s{%s} 0x%d 1x%d", name, lbls, at-1, minutes-at)
}

// histogramOf is a classic histogram observing perMinute values of v each minute, with
// upper bounds les (+Inf added).
func histogramOf(name, lbls string, les []float64, perMinute, v float64) []string {
	var out []string
	for _, le := range append(slices.Clone(les), math.Inf(1)) {
		inc := 0.0
		if v <= le {
			inc = perMinute
		}
		out = append(out, counter(name+"_bucket", join(lbls, fmt.Sprintf("le=%q", fmt.Sprint(le))), inc))
	}
	return append(out, counter(name+"_sum", lbls, perMinute*v), counter(name+"_count", lbls, perMinute))
}

func join(lbls ...string) string {
	var out []string
	for _, l := range lbls {
		if l != "" {
			out = append(out, l)
		}
	}
	return strings.Join(out, ", ")
}
