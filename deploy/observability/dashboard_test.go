package observability_test

import (
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"

	"puente.dev/deploy/observability"
	"puente.dev/pkg/metrics"
)

// grafanaVariable matches $name, ${name} and ${name:format}: Grafana's interpolation.
var grafanaVariable = regexp.MustCompile(`\$\{?(__[a-z_]+|[a-zA-Z_][a-zA-Z0-9_]*)(?::[a-z]+)?\}?`)

// interpolate stands in for Grafana: a range variable becomes a duration, any other a regex
// that matches all.
func interpolate(expr string) string {
	return grafanaVariable.ReplaceAllStringFunc(expr, func(v string) string {
		name := grafanaVariable.FindStringSubmatch(v)[1]
		switch name {
		case "__rate_interval", "__interval", "__range":
			return "5m"
		case "__range_s", "__interval_ms":
			return "300"
		}
		return ".*"
	})
}

func dashboard(t *testing.T) *observability.Dashboard {
	t.Helper()
	d, err := observability.LoadDashboard()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestDashboardQueries: the dashboard decodes; every panel but a row has a query and a unique
// id; every query parses once Grafana's variables are filled in and uses only series and
// labels Puente exposes.
func TestDashboardQueries(t *testing.T) {
	d := dashboard(t)
	if d.Title == "" || d.UID == "" {
		t.Errorf("title %q, uid %q: both are needed to import and link the dashboard", d.Title, d.UID)
	}
	ids := map[int]bool{}
	for _, p := range d.AllPanels() {
		if ids[p.ID] {
			t.Errorf("panel id %d is used twice", p.ID)
		}
		ids[p.ID] = true
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			if _, errs := checkExpr(interpolate(q.Expr)); len(errs) > 0 {
				t.Errorf("panel %q, query %s: %v\n%s", p.Title, q.RefID, errs, q.Expr)
			}
		}
	}
}

// TestDashboardShowsEveryMetric: each metric of metrics.All() appears in some panel's query.
func TestDashboardShowsEveryMetric(t *testing.T) {
	shown := map[string]bool{}
	for _, p := range dashboard(t).AllPanels() {
		for _, q := range p.Targets {
			used, _ := checkExpr(interpolate(q.Expr))
			for _, s := range used {
				shown[metricOf(s)] = true
			}
		}
	}
	for _, m := range metrics.All() {
		if !shown[m.Name] {
			t.Errorf("%s (%s) is on no panel of dashboard.json", m.Name, m.Help)
		}
	}
}

// labelValues matches a query variable's label_values(selector, label).
var labelValues = regexp.MustCompile(`^label_values\((.+),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)$`)

// TestDashboardVariables: the dashboard is templated by data source, namespace and gRPC
// service, and each query variable's label_values names a series that carries the label.
func TestDashboardVariables(t *testing.T) {
	var names []string
	for _, v := range dashboard(t).Templating.List {
		names = append(names, v.Name)
		if v.Type != "query" {
			continue
		}
		var q struct {
			Query string `json:"query"`
		}
		if err := json.Unmarshal(v.Query, &q); err != nil {
			// Older dashboards store the query as a plain string.
			if err := json.Unmarshal(v.Query, &q.Query); err != nil {
				t.Errorf("variable %s: query %s: %v", v.Name, v.Query, err)
				continue
			}
		}
		m := labelValues.FindStringSubmatch(strings.TrimSpace(q.Query))
		if m == nil {
			t.Errorf("variable %s: query %q is not label_values(selector, label)", v.Name, q.Query)
			continue
		}
		used, errs := checkExpr(interpolate(m[1]))
		for _, err := range errs {
			t.Errorf("variable %s: %v", v.Name, err)
		}
		for _, s := range used {
			if !slices.Contains(series()[s], m[2]) && !slices.Contains(targetLabels, m[2]) {
				t.Errorf("variable %s: %s has no label %q", v.Name, s, m[2])
			}
		}
	}
	for _, want := range []string{"datasource", "namespace", "service"} {
		if !slices.Contains(names, want) {
			t.Errorf("no $%s variable; the dashboard has %v", want, names)
		}
	}
}
