// Package observability holds Puente's Prometheus alert rules (alerts.yaml) and Grafana
// dashboard (dashboard.json), embedded, with the types to read them. The files are what an
// operator loads (README.md beside them says how); this package is how the tests read them to
// check them against pkg/metrics.
package observability

import (
	_ "embed"
	"encoding/json"
	"fmt"

	"sigs.k8s.io/yaml"
)

//go:embed alerts.yaml
var alertsYAML []byte

//go:embed dashboard.json
var dashboardJSON []byte

// RuleFile is a Prometheus rule file, which is also a PrometheusRule's spec.
type RuleFile struct {
	Groups []RuleGroup `json:"groups"`
}

// RuleGroup is a group of rules evaluated together.
type RuleGroup struct {
	Name     string `json:"name"`
	Interval string `json:"interval,omitempty"`
	Rules    []Rule `json:"rules"`
}

// Rule is an alerting rule (Alert set) or a recording rule (Record set).
type Rule struct {
	Alert         string            `json:"alert,omitempty"`
	Record        string            `json:"record,omitempty"`
	Expr          string            `json:"expr"`
	For           string            `json:"for,omitempty"`
	KeepFiringFor string            `json:"keep_firing_for,omitempty"`
	Labels        map[string]string `json:"labels,omitempty"`
	Annotations   map[string]string `json:"annotations,omitempty"`
}

// Alerts decodes alerts.yaml strictly: a misspelt field (exprs, annotation) fails here rather
// than being ignored by Prometheus' loader or the operator's.
func Alerts() (*RuleFile, error) {
	var f RuleFile
	if err := yaml.UnmarshalStrict(alertsYAML, &f); err != nil {
		return nil, fmt.Errorf("alerts.yaml: %w", err)
	}
	return &f, nil
}

// Dashboard is the part of a Grafana dashboard the checks read; Grafana's other fields are
// left to Grafana.
type Dashboard struct {
	Title      string     `json:"title"`
	UID        string     `json:"uid"`
	Templating Templating `json:"templating"`
	Panels     []Panel    `json:"panels"`
}

// Templating holds the dashboard's variables.
type Templating struct {
	List []Variable `json:"list"`
}

// Variable is a dashboard variable ($namespace); Query is a label_values(...) call for the
// query variables.
type Variable struct {
	Name  string          `json:"name"`
	Type  string          `json:"type"`
	Query json.RawMessage `json:"query"`
}

// Panel is one panel; rows hold none of their own queries.
type Panel struct {
	ID      int      `json:"id"`
	Type    string   `json:"type"`
	Title   string   `json:"title"`
	Targets []Target `json:"targets"`
	Panels  []Panel  `json:"panels"` // a collapsed row's panels
}

// Target is one PromQL query of a panel.
type Target struct {
	RefID string `json:"refId"`
	Expr  string `json:"expr"`
}

// LoadDashboard decodes dashboard.json.
func LoadDashboard() (*Dashboard, error) {
	var d Dashboard
	if err := json.Unmarshal(dashboardJSON, &d); err != nil {
		return nil, fmt.Errorf("dashboard.json: %w", err)
	}
	return &d, nil
}

// AllPanels lists the dashboard's panels, those inside collapsed rows included.
func (d *Dashboard) AllPanels() []Panel {
	var out []Panel
	var walk func([]Panel)
	walk = func(ps []Panel) {
		for _, p := range ps {
			out = append(out, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}
