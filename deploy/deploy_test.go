package deploy_test

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"puente.dev/deploy/manifest"
	"puente.dev/deploy/policy"
)

var overlays = []string{"overlays/dev", "overlays/prod"}

// calls is who calls whom over gRPC, besides authtoken, which every service calls (JWKS,
// users). webhook → extraction is Klavi's pushed reports (services/puente/suite/upstream_klavi.go).
var calls = map[string][]string{
	"authtoken":  {},
	"consent":    {"webhook", "extraction", "sync"},
	"connection": {"consent", "webhook"},
	"extraction": {"consent", "connection", "webhook"},
	"sync":       {"consent", "extraction", "webhook", "connection"},
	"webhook":    {"connection", "sync", "extraction"},
	"gateway":    {"authtoken", "connection", "consent", "webhook", "extraction", "sync"},
}

// dbServices own tables and so have a migration Job.
var dbServices = []string{"authtoken", "consent", "connection", "extraction", "sync", "webhook"}

// callees is what a service dials: what it calls plus authtoken.
func callees(service string) []string {
	out := slices.Clone(calls[service])
	if service != "authtoken" && !slices.Contains(out, "authtoken") {
		out = append(out, "authtoken")
	}
	slices.Sort(out)
	return out
}

// graph inverts calls into the NetworkPolicy check's callers.
func graph() policy.CallGraph {
	callers := map[string][]string{}
	for svc := range calls {
		callers[svc] = []string{}
	}
	for caller := range calls {
		for _, callee := range callees(caller) {
			callers[callee] = append(callers[callee], caller)
		}
	}
	return policy.CallGraph{Label: "app.kubernetes.io/component", Callers: callers, Public: []string{"gateway"}, Scrape: &scrape}
}

// scrape is where Prometheus reaches every pod's metrics (PUENTE_METRICS_ADDR): the namespace
// named monitoring, as base/networkpolicies.yaml and observability/README.md say.
var scrape = policy.Scrape{
	Port: 9464, PortName: "metrics", Path: "/metrics",
	Namespace: metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "monitoring"}},
}

func checks() map[string]policy.Check {
	return map[string]policy.Check{
		"probes":            policy.Probes,
		"resources":         policy.Resources,
		"security-context":  policy.SecurityContext,
		"service-account":   policy.ServiceAccounts,
		"disruption-budget": policy.DisruptionBudgets,
		"autoscaler":        policy.Autoscalers,
		"no-secret-values":  policy.NoSecretValues,
		"headless-grpc":     policy.HeadlessGRPC,
		"network-isolation": policy.NetworkIsolation(graph()),
		"metrics-scrape":    policy.Scraped(scrape),
	}
}

func build(t *testing.T, overlay string) *manifest.Set {
	t.Helper()
	set, err := manifest.Build(overlay)
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// TestOverlays builds each overlay once (kustomize is the slow part) and runs every test on
// the result.
func TestOverlays(t *testing.T) {
	known := variablesPuenteReads(t)
	sets := map[string]*manifest.Set{}
	for _, overlay := range overlays {
		sets[overlay] = build(t, overlay)
	}
	for _, overlay := range overlays {
		t.Run(overlay, func(t *testing.T) {
			set := sets[overlay]
			for _, name := range slices.Sorted(maps.Keys(checks())) {
				t.Run("policy/"+name, func(t *testing.T) {
					for _, v := range checks()[name](set) {
						t.Error(v)
					}
				})
			}
			t.Run("runs every service", func(t *testing.T) { testRunsEveryService(t, set) })
			t.Run("services dial their callees", func(t *testing.T) { testDialsCallees(t, set) })
			t.Run("egress", func(t *testing.T) { testEgress(t, set) })
			t.Run("serves metrics on the scraped port", func(t *testing.T) { testMetricsAddr(t, set) })
			t.Run("sets only variables Puente reads", func(t *testing.T) { testSetsOnlyVariablesPuenteReads(t, set, known) })
		})
	}
	t.Run("dev", func(t *testing.T) { testDev(t, sets["overlays/dev"]) })
	t.Run("prod", func(t *testing.T) { testProd(t, sets["overlays/prod"], sets["overlays/dev"]) })
}

// testRunsEveryService: a Deployment per service serving it, a migration Job per service
// with tables, all in the overlay's namespace, and no Secret objects.
func testRunsEveryService(t *testing.T, set *manifest.Set) {
	deployments := map[string][]string{}
	for _, d := range set.Deployments {
		c := d.Spec.Template.Spec.Containers[0]
		deployments[d.Name] = append(slices.Clone(c.Command), c.Args...)
		if d.Namespace == "" {
			t.Errorf("Deployment/%s has no namespace", d.Name)
		}
	}
	for svc := range calls {
		want := []string{"/usr/local/bin/puente", "serve", "-service=" + svc}
		if got := deployments["puente-"+svc]; !slices.Equal(got, want) {
			t.Errorf("Deployment/puente-%s runs %q, want %q", svc, got, want)
		}
	}
	if len(deployments) != len(calls) {
		t.Errorf("%d Deployments, want %d: %v", len(deployments), len(calls), slices.Sorted(maps.Keys(deployments)))
	}
	jobs := map[string][]string{}
	for _, j := range set.Jobs {
		c := j.Spec.Template.Spec.Containers[0]
		jobs[j.Name] = append(slices.Clone(c.Command), c.Args...)
	}
	for _, svc := range dbServices {
		want := []string{"/usr/local/bin/puente", "migrate", "-service=" + svc}
		if got := jobs["puente-migrate-"+svc]; !slices.Equal(got, want) {
			t.Errorf("Job/puente-migrate-%s runs %q, want %q", svc, got, want)
		}
	}
	if len(set.Secrets) != 0 {
		t.Errorf("the manifests hold %d Secret objects; the operator creates them", len(set.Secrets))
	}
}

// testMetricsAddr: the address each container serves /metrics on (PUENTE_METRICS_ADDR, from
// the ConfigMap or its own env) is the port the annotations and network policies open.
func testMetricsAddr(t *testing.T, set *manifest.Set) {
	configMaps := map[string]map[string]string{}
	for _, cm := range set.ConfigMaps {
		configMaps[cm.Name] = cm.Data
	}
	for _, d := range set.Deployments {
		c := d.Spec.Template.Spec.Containers[0]
		addr, found := "", false
		for _, from := range c.EnvFrom {
			if from.ConfigMapRef != nil {
				if v, ok := configMaps[from.ConfigMapRef.Name]["PUENTE_METRICS_ADDR"]; ok {
					addr, found = v, true
				}
			}
		}
		for _, e := range c.Env {
			if e.Name == "PUENTE_METRICS_ADDR" {
				addr, found = e.Value, true
			}
		}
		if want := fmt.Sprintf(":%d", scrape.Port); !found || addr != want {
			t.Errorf("Deployment/%s: PUENTE_METRICS_ADDR=%q (set: %v), want %q on every interface", d.Name, addr, found, want)
		}
	}
}

// testDialsCallees: every service is given the address of each service it calls, a headless
// Service with that name exists, and no service is given an address the network policies
// would not let it reach.
func testDialsCallees(t *testing.T, set *manifest.Set) {
	services := map[string]*corev1.Service{}
	for _, s := range set.Services {
		services[s.Name] = s
	}
	for _, d := range set.Deployments {
		svc := d.Spec.Template.Labels["app.kubernetes.io/component"]
		env := map[string]string{}
		for _, e := range d.Spec.Template.Spec.Containers[0].Env {
			if strings.HasSuffix(e.Name, "_ADDR") {
				env[e.Name] = e.Value
			}
		}
		var dialled []string
		for name, addr := range env {
			callee := strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(name, "PUENTE_"), "_ADDR"))
			dialled = append(dialled, callee)
			short := fmt.Sprintf("dns:///puente-%s:9090", callee)
			long := fmt.Sprintf("dns:///puente-%s.%s.svc.cluster.local:9090", callee, d.Namespace)
			if addr != short && addr != long {
				t.Errorf("Deployment/%s: %s=%q, want %s or %s", d.Name, name, addr, short, long)
			}
			if s := services["puente-"+callee]; s == nil || s.Spec.ClusterIP != corev1.ClusterIPNone {
				t.Errorf("Deployment/%s dials %s, which has no headless Service puente-%s", d.Name, name, callee)
			}
		}
		slices.Sort(dialled)
		if want := callees(svc); !slices.Equal(dialled, want) {
			t.Errorf("Deployment/%s is given addresses of %v, want %v", d.Name, dialled, want)
		}
	}
}

func testDev(t *testing.T, set *manifest.Set) {
	for _, image := range images(set) {
		if !strings.HasSuffix(image, ":dev") {
			t.Errorf("image %s, want tag dev", image)
		}
	}
	for _, h := range set.Autoscalers {
		if *h.Spec.MinReplicas != 1 || h.Spec.MaxReplicas != 2 {
			t.Errorf("HorizontalPodAutoscaler/%s scales %d..%d, want 1..2", h.Name, *h.Spec.MinReplicas, h.Spec.MaxReplicas)
		}
	}
	if hosts := ingressHosts(set); len(hosts) == 0 {
		t.Error("the dev Ingress has no host")
	}
}

func testProd(t *testing.T, set, dev *manifest.Set) {
	for _, image := range images(set) {
		if !strings.Contains(image, ":") || strings.HasSuffix(image, ":dev") || strings.HasSuffix(image, ":latest") {
			t.Errorf("image %s, want a pinned release tag", image)
		}
	}
	for _, h := range set.Autoscalers {
		if *h.Spec.MinReplicas < 2 || h.Spec.MaxReplicas != 10 {
			t.Errorf("HorizontalPodAutoscaler/%s scales %d..%d, want at least 2..10", h.Name, *h.Spec.MinReplicas, h.Spec.MaxReplicas)
		}
	}
	for _, d := range set.Deployments {
		if !spreadsOverNodes(d.Spec.Template.Labels, d.Spec.Template.Spec) {
			t.Errorf("Deployment/%s does not spread its pods over nodes", d.Name)
		}
	}
	for _, ing := range set.Ingresses {
		tls := map[string]bool{}
		for _, t := range ing.Spec.TLS {
			if t.SecretName != "" {
				for _, h := range t.Hosts {
					tls[h] = true
				}
			}
		}
		for _, r := range ing.Spec.Rules {
			if r.Host == "" || !tls[r.Host] {
				t.Errorf("Ingress/%s: host %q is not served with TLS from a Secret", ing.Name, r.Host)
			}
		}
	}
	// Prod pods get more than dev's, so the autoscaler's CPU target means the same load.
	devCPU := dev.Deployments[0].Spec.Template.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU]
	for _, d := range set.Deployments {
		cpu := d.Spec.Template.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU]
		if cpu.Cmp(devCPU) <= 0 {
			t.Errorf("Deployment/%s requests %s CPU in prod, no more than dev's %s", d.Name, cpu.String(), devCPU.String())
		}
	}
}

func images(set *manifest.Set) []string {
	var out []string
	for _, d := range set.Deployments {
		for _, c := range d.Spec.Template.Spec.Containers {
			out = append(out, c.Image)
		}
	}
	for _, j := range set.Jobs {
		for _, c := range j.Spec.Template.Spec.Containers {
			out = append(out, c.Image)
		}
	}
	return out
}

func ingressHosts(set *manifest.Set) []string {
	var out []string
	for _, ing := range set.Ingresses {
		for _, r := range ing.Spec.Rules {
			if r.Host != "" {
				out = append(out, r.Host)
			}
		}
	}
	return out
}

// spreadsOverNodes: a hostname topology spread constraint or a pod anti-affinity whose
// selector matches the pod's own labels.
func spreadsOverNodes(podLabels map[string]string, spec corev1.PodSpec) bool {
	matches := func(sel *metav1.LabelSelector) bool {
		s, err := metav1.LabelSelectorAsSelector(sel)
		return err == nil && sel != nil && s.Matches(labels.Set(podLabels))
	}
	for _, c := range spec.TopologySpreadConstraints {
		if c.TopologyKey == "kubernetes.io/hostname" && matches(c.LabelSelector) {
			return true
		}
	}
	if a := spec.Affinity; a != nil && a.PodAntiAffinity != nil {
		for _, term := range a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution {
			if term.TopologyKey == "kubernetes.io/hostname" && matches(term.LabelSelector) {
				return true
			}
		}
		for _, w := range a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution {
			if w.PodAffinityTerm.TopologyKey == "kubernetes.io/hostname" && matches(w.PodAffinityTerm.LabelSelector) {
				return true
			}
		}
	}
	return false
}
