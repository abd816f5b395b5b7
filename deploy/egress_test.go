package deploy_test

import (
	"slices"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"puente.dev/deploy/manifest"
)

// upstreamServices call providers or deliver webhooks, and so may open HTTPS to the internet.
var upstreamServices = []string{"connection", "extraction", "sync", "webhook"}

// testEgress: with egress denied by default, each service may reach DNS; the services with
// tables (and the migration Jobs) Postgres; only the upstream services port 443.
func testEgress(t *testing.T, set *manifest.Set) {
	for _, d := range set.Deployments {
		svc := d.Spec.Template.Labels["app.kubernetes.io/component"]
		podLabels := d.Spec.Template.Labels
		if got := egressAllows(set.NetworkPolicies, podLabels, 53); !got {
			t.Errorf("Deployment/%s cannot reach DNS", d.Name)
		}
		if got, want := egressAllows(set.NetworkPolicies, podLabels, 5432), svc != "gateway"; got != want {
			t.Errorf("Deployment/%s: egress to Postgres allowed %v, want %v", d.Name, got, want)
		}
		if got, want := egressAllows(set.NetworkPolicies, podLabels, 443), slices.Contains(upstreamServices, svc); got != want {
			t.Errorf("Deployment/%s: egress to HTTPS allowed %v, want %v", d.Name, got, want)
		}
	}
	for _, j := range set.Jobs {
		if !egressAllows(set.NetworkPolicies, j.Spec.Template.Labels, 5432) || !egressAllows(set.NetworkPolicies, j.Spec.Template.Labels, 53) {
			t.Errorf("Job/%s cannot reach Postgres and DNS", j.Name)
		}
		if egressAllows(set.NetworkPolicies, j.Spec.Template.Labels, 443) {
			t.Errorf("Job/%s may open HTTPS connections", j.Name)
		}
	}
}

// egressAllows reports whether some egress policy selecting the pod allows TCP or UDP to port
// (to any destination: the rules' peers are checked by review, the ports by this test).
func egressAllows(policies []*networkingv1.NetworkPolicy, podLabels map[string]string, port int32) bool {
	for _, np := range policies {
		if !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress) {
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
		if err != nil || !sel.Matches(labels.Set(podLabels)) {
			continue
		}
		for _, rule := range np.Spec.Egress {
			if len(rule.Ports) == 0 {
				return true
			}
			for _, p := range rule.Ports {
				if p.Port == nil || p.Port.IntVal == port {
					return true
				}
			}
		}
	}
	return false
}
