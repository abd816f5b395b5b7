package observability_test

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"puente.dev/pkg/metrics"
)

// tableRows returns the cells of the Markdown table rows under the "## heading" section of
// README.md, header and separator left out.
func tableRows(t *testing.T, heading string) [][]string {
	t.Helper()
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n## "+heading+"\n")
	if !ok {
		t.Fatalf("README.md has no section %q", heading)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	lines := strings.Split(section, "\n")
	first := slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(l, "|") })
	if first < 0 {
		t.Fatalf("README.md's section %q has no table", heading)
	}
	var rows [][]string
	// The first table only: its header and separator lines skipped.
	for _, line := range lines[first+2:] {
		if !strings.HasPrefix(line, "|") {
			break
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		rows = append(rows, cells)
	}
	return rows
}

var code = regexp.MustCompile("`([^`]+)`")

func codes(cell string) []string {
	var out []string
	for _, m := range code.FindAllStringSubmatch(cell, -1) {
		out = append(out, m[1])
	}
	return out
}

// TestReadmeListsEveryMetric: README.md's metrics table has one row per metric of
// metrics.All(), with its type and exactly its labels, in any order, and no other row.
func TestReadmeListsEveryMetric(t *testing.T) {
	rows := tableRows(t, "Metrics")
	documented := map[string][]string{}
	for _, r := range rows {
		if len(r) != 4 {
			t.Errorf("row %q: want 4 cells (metric, type, labels, meaning)", r)
			continue
		}
		names := codes(r[0])
		if len(names) != 1 || r[3] == "" {
			t.Errorf("row %q: want one `metric` and a meaning", r)
			continue
		}
		if _, dup := documented[names[0]]; dup {
			t.Errorf("%s is documented twice", names[0])
		}
		documented[names[0]] = append([]string{r[1]}, codes(r[2])...)
	}
	for _, m := range metrics.All() {
		got, ok := documented[m.Name]
		if !ok {
			t.Errorf("README.md does not document %s", m.Name)
			continue
		}
		delete(documented, m.Name)
		if got[0] != m.Type {
			t.Errorf("%s: README says %s, it is a %s", m.Name, got[0], m.Type)
		}
		labels := slices.Sorted(slices.Values(got[1:]))
		if want := slices.Sorted(slices.Values(m.Labels)); !slices.Equal(labels, want) {
			t.Errorf("%s: README lists labels %v, it has %v", m.Name, labels, want)
		}
	}
	for name := range documented {
		t.Errorf("README.md documents %s, which pkg/metrics does not define", name)
	}
}

// TestReadmeListsEveryAlert: each alert of alerts.yaml has a row in README.md's alerts table
// with its severity and what to do, and the table lists no other alert.
func TestReadmeListsEveryAlert(t *testing.T) {
	rows := map[string][]string{}
	for _, r := range tableRows(t, "Alerts") {
		if names := codes(r[0]); len(names) == 1 && len(r) == 4 {
			rows[names[0]] = r
		} else {
			t.Errorf("row %q: want `Alert` | severity | fires when | what to do", r)
		}
	}
	for _, a := range alerts(t) {
		r, ok := rows[a.Alert]
		if !ok {
			t.Errorf("README.md's alerts table has no row for %s", a.Alert)
			continue
		}
		delete(rows, a.Alert)
		if r[1] != a.Labels["severity"] {
			t.Errorf("%s: README says severity %s, alerts.yaml %s", a.Alert, r[1], a.Labels["severity"])
		}
		if r[2] == "" || r[3] == "" {
			t.Errorf("%s: README says neither when it fires nor what to do", a.Alert)
		}
	}
	for name := range rows {
		t.Errorf("README.md lists alert %s, which alerts.yaml does not define", name)
	}
}
