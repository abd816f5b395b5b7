package observability_test

import (
	"fmt"
	"slices"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"

	"puente.dev/pkg/metrics"
)

// targetLabels are the labels the scrape attaches to every series (README.md, "Scraping"):
// queries may select and group by them besides each metric's own.
var targetLabels = []string{"job", "instance", "namespace", "pod"}

// series names every series name Puente exposes to the labels it carries: each metric of
// metrics.All(), a histogram's _bucket (with le), _sum and _count, and up, which Prometheus
// records for each target.
func series() map[string][]string {
	out := map[string][]string{"up": {}}
	for _, m := range metrics.All() {
		if m.Type == "histogram" {
			out[m.Name+"_bucket"] = append(slices.Clone(m.Labels), "le")
			out[m.Name+"_sum"] = m.Labels
			out[m.Name+"_count"] = m.Labels
			continue
		}
		out[m.Name] = m.Labels
	}
	return out
}

// metricOf maps a series name back to its metric in metrics.All() ("up" to itself).
func metricOf(name string) string {
	for _, m := range metrics.All() {
		if m.Type == "histogram" {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if name == m.Name+suffix {
					return m.Name
				}
			}
		}
		if name == m.Name {
			return name
		}
	}
	return name
}

func parse(expr string) (parser.Expr, error) {
	return parser.NewParser(parser.Options{}).ParseExpr(expr)
}

// checkExpr parses expr and checks that every series it selects is one Puente exposes, that
// it names only labels that series carries (or the scrape's target labels), and that every
// by(...) or on(...) names a label some series under it carries. It returns the series names
// used.
func checkExpr(expr string) (used []string, errs []error) {
	e, err := parse(expr)
	if err != nil {
		return nil, []error{fmt.Errorf("does not parse: %w", err)}
	}
	known := series()
	// under lists the labels the series below a node carry, for the grouping checks.
	under := func(n parser.Node) map[string]bool {
		out := map[string]bool{}
		for _, l := range targetLabels {
			out[l] = true
		}
		parser.Inspect(n, func(n parser.Node, _ []parser.Node) error {
			if vs, ok := n.(*parser.VectorSelector); ok {
				for _, l := range known[selectorName(vs)] {
					out[l] = true
				}
			}
			return nil
		})
		return out
	}
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		switch n := n.(type) {
		case *parser.VectorSelector:
			name := selectorName(n)
			labelsOf, ok := known[name]
			if !ok {
				errs = append(errs, fmt.Errorf("selects %q, which is not a series Puente exposes (pkg/metrics.All)", name))
				return nil
			}
			used = append(used, name)
			for _, m := range n.LabelMatchers {
				if m.Name != model.MetricNameLabel && !slices.Contains(labelsOf, m.Name) && !slices.Contains(targetLabels, m.Name) {
					errs = append(errs, fmt.Errorf("selects %s by label %q, which it does not carry (it has %v)", name, m.Name, labelsOf))
				}
			}
		case *parser.AggregateExpr:
			if !n.Without {
				have := under(n.Expr)
				for _, l := range n.Grouping {
					if !have[l] {
						errs = append(errs, fmt.Errorf("%s by (%s): no series under it carries %q", n.Op, strings.Join(n.Grouping, ", "), l))
					}
				}
			}
		case *parser.BinaryExpr:
			if vm := n.VectorMatching; vm != nil && vm.On {
				lhs, rhs := under(n.LHS), under(n.RHS)
				for _, l := range vm.MatchingLabels {
					if !lhs[l] || !rhs[l] {
						errs = append(errs, fmt.Errorf("on (%s): %q is not carried by both sides", strings.Join(vm.MatchingLabels, ", "), l))
					}
				}
			}
		}
		return nil
	})
	return used, errs
}

// selectorName is a selector's metric name, written as name{...} or {__name__="name"}.
func selectorName(vs *parser.VectorSelector) string {
	if vs.Name != "" {
		return vs.Name
	}
	for _, m := range vs.LabelMatchers {
		if m.Name == model.MetricNameLabel && m.Type == labels.MatchEqual {
			return m.Value
		}
	}
	return ""
}
