package policy_test

import (
	"os"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"puente.dev/deploy/manifest"
	"puente.dev/deploy/policy"
)

// shopScrape is where the fixture's metrics are scraped from: the monitoring namespace.
var shopScrape = policy.Scrape{
	Port: 9464, PortName: "metrics", Path: "/metrics",
	Namespace: metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "monitoring"}},
}

// shopGraph is the fixture's call graph: api is public and calls store.
var shopGraph = policy.CallGraph{
	Label:   "app.kubernetes.io/component",
	Callers: map[string][]string{"api": {}, "store": {"api"}},
	Public:  []string{"api"},
	Scrape:  &shopScrape,
}

// shop parses testdata/shop.yaml, a compliant two-service application.
func shop(t *testing.T) *manifest.Set {
	t.Helper()
	b, err := os.ReadFile("testdata/shop.yaml")
	if err != nil {
		t.Fatal(err)
	}
	set, err := manifest.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return set
}

func deployment(set *manifest.Set, name string) *appsv1.Deployment {
	for _, d := range set.Deployments {
		if d.Name == name {
			return d
		}
	}
	panic("no Deployment " + name)
}

func container(set *manifest.Set, name string) *corev1.Container {
	return &deployment(set, name).Spec.Template.Spec.Containers[0]
}

func netpol(set *manifest.Set, name string) *networkingv1.NetworkPolicy {
	for _, np := range set.NetworkPolicies {
		if np.Name == name {
			return np
		}
	}
	panic("no NetworkPolicy " + name)
}

func ptr[T any](v T) *T { return &v }

// breakages each break one rule on one object of the fixture.
var breakages = []struct {
	name   string
	check  policy.Check
	break_ func(*manifest.Set)
	object string
	rule   string
}{
	{"no readiness probe", policy.Probes, func(s *manifest.Set) { container(s, "store").ReadinessProbe = nil },
		"Deployment/store", "probes"},
	{"no liveness probe", policy.Probes, func(s *manifest.Set) { container(s, "api").LivenessProbe = &corev1.Probe{} },
		"Deployment/api", "probes"},
	{"gRPC server probed over TCP only", policy.Probes, func(s *manifest.Set) {
		c := container(s, "store")
		tcp := corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{}}
		c.ReadinessProbe.ProbeHandler, c.LivenessProbe.ProbeHandler = tcp, tcp
	}, "Deployment/store", "probes"},
	{"no memory limit", policy.Resources, func(s *manifest.Set) { delete(container(s, "store").Resources.Limits, corev1.ResourceMemory) },
		"Deployment/store", "resources"},
	{"no CPU request on the Job", policy.Resources, func(s *manifest.Set) {
		delete(s.Jobs[0].Spec.Template.Spec.Containers[0].Resources.Requests, corev1.ResourceCPU)
	}, "Job/migrate-store", "resources"},
	{"request above limit", policy.Resources, func(s *manifest.Set) {
		container(s, "api").Resources.Requests[corev1.ResourceCPU] = resource.MustParse("2")
	}, "Deployment/api", "resources"},
	{"writable root filesystem", policy.SecurityContext, func(s *manifest.Set) {
		container(s, "api").SecurityContext.ReadOnlyRootFilesystem = ptr(false)
	}, "Deployment/api", "security-context"},
	{"privilege escalation unset", policy.SecurityContext, func(s *manifest.Set) {
		container(s, "store").SecurityContext.AllowPrivilegeEscalation = nil
	}, "Deployment/store", "security-context"},
	{"capabilities kept", policy.SecurityContext, func(s *manifest.Set) {
		container(s, "store").SecurityContext.Capabilities.Drop = []corev1.Capability{"NET_RAW"}
	}, "Deployment/store", "security-context"},
	{"container runs as root", policy.SecurityContext, func(s *manifest.Set) {
		container(s, "store").SecurityContext.RunAsUser = ptr(int64(0))
	}, "Deployment/store", "security-context"},
	{"container overrides runAsNonRoot", policy.SecurityContext, func(s *manifest.Set) {
		s.Jobs[0].Spec.Template.Spec.Containers[0].SecurityContext.RunAsNonRoot = ptr(false)
	}, "Job/migrate-store", "security-context"},
	{"no seccomp profile", policy.SecurityContext, func(s *manifest.Set) {
		deployment(s, "api").Spec.Template.Spec.SecurityContext.SeccompProfile = nil
	}, "Deployment/api", "security-context"},
	{"service-account token mounted", policy.SecurityContext, func(s *manifest.Set) {
		deployment(s, "api").Spec.Template.Spec.AutomountServiceAccountToken = nil
	}, "Deployment/api", "security-context"},
	{"default service account", policy.ServiceAccounts, func(s *manifest.Set) {
		deployment(s, "api").Spec.Template.Spec.ServiceAccountName = ""
	}, "Deployment/api", "service-account"},
	{"missing service account", policy.ServiceAccounts, func(s *manifest.Set) {
		deployment(s, "api").Spec.Template.Spec.ServiceAccountName = "apii"
	}, "Deployment/api", "service-account"},
	{"service account mounts its token", policy.ServiceAccounts, func(s *manifest.Set) {
		s.ServiceAccounts[0].AutomountServiceAccountToken = nil
	}, "ServiceAccount/api", "service-account"},
	{"PDB selects other pods", policy.DisruptionBudgets, func(s *manifest.Set) {
		s.PodDisruptionBudgets[1].Spec.Selector.MatchLabels["app.kubernetes.io/component"] = "api"
	}, "Deployment/store", "disruption-budget"},
	{"PDB without a bound", policy.DisruptionBudgets, func(s *manifest.Set) { s.PodDisruptionBudgets[0].Spec.MaxUnavailable = nil },
		"PodDisruptionBudget/api", "disruption-budget"},
	{"HPA targets a typo", policy.Autoscalers, func(s *manifest.Set) { s.Autoscalers[1].Spec.ScaleTargetRef.Name = "stor" },
		"Deployment/store", "autoscaler"},
	{"HPA min above max", policy.Autoscalers, func(s *manifest.Set) { s.Autoscalers[0].Spec.MinReplicas = ptr(int32(5)) },
		"HorizontalPodAutoscaler/api", "autoscaler"},
	{"secret as a literal value", policy.NoSecretValues, func(s *manifest.Set) {
		c := container(s, "api")
		c.Env = append(c.Env, corev1.EnvVar{Name: "DATABASE_URL", Value: "postgres://u:p@db/shop"})
	}, "Deployment/api", "no-secret-values"},
	{"secret-looking key in a ConfigMap", policy.NoSecretValues, func(s *manifest.Set) { s.ConfigMaps[0].Data["SHOP_HASH_KEY"] = "c2VjcmV0" },
		"ConfigMap/shop-config", "no-secret-values"},
	{"Secret object with data", policy.NoSecretValues, func(s *manifest.Set) {
		s.Secrets = append(s.Secrets, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "shop-secrets"}, StringData: map[string]string{"SHOP_API_TOKEN": "x"}})
	}, "Secret/shop-secrets", "no-secret-values"},
	{"gRPC Service with a cluster IP", policy.HeadlessGRPC, func(s *manifest.Set) { s.Services[1].Spec.ClusterIP = "" },
		"Service/store", "headless-grpc"},
	{"caller not admitted", policy.NetworkIsolation(shopGraph), func(s *manifest.Set) {
		netpol(s, "store-ingress").Spec.Ingress[0].From[0].PodSelector.MatchLabels["app.kubernetes.io/component"] = "migrate"
	}, "Deployment/store", "network-isolation"},
	{"a non-caller admitted", policy.NetworkIsolation(shopGraph), func(s *manifest.Set) {
		sel := netpol(s, "store-ingress").Spec.Ingress[0].From[0].PodSelector
		delete(sel.MatchLabels, "app.kubernetes.io/component")
	}, "Deployment/store", "network-isolation"},
	{"every source admitted", policy.NetworkIsolation(shopGraph), func(s *manifest.Set) {
		np := netpol(s, "store-ingress")
		np.Spec.Ingress = append(np.Spec.Ingress, networkingv1.NetworkPolicyIngressRule{})
	}, "Deployment/store", "network-isolation"},
	{"other namespaces admitted to a private service", policy.NetworkIsolation(shopGraph), func(s *manifest.Set) {
		netpol(s, "store-ingress").Spec.Ingress[0].From[0].NamespaceSelector = &metav1.LabelSelector{}
	}, "Deployment/store", "network-isolation"},
	{"no policy selects the pods", policy.NetworkIsolation(shopGraph), func(s *manifest.Set) {
		netpol(s, "store-ingress").Spec.PodSelector.MatchLabels["app.kubernetes.io/component"] = "stor"
	}, "Deployment/store", "network-isolation"},
	{"no default deny", policy.NetworkIsolation(shopGraph), func(s *manifest.Set) {
		netpol(s, "default-deny").Spec.PodSelector = metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/component": "api"}}
	}, "NetworkPolicy/*", "network-isolation"},
	{"metrics port open to the ingress controller", policy.NetworkIsolation(shopGraph), func(s *manifest.Set) {
		np := netpol(s, "api-ingress")
		np.Spec.Ingress[0].Ports = append(np.Spec.Ingress[0].Ports, networkingv1.NetworkPolicyPort{Port: ptr(intstr.FromInt32(9464))})
	}, "Deployment/api", "network-isolation"},
	{"metrics port open to callers (a rule without ports)", policy.NetworkIsolation(shopGraph), func(s *manifest.Set) {
		netpol(s, "store-ingress").Spec.Ingress[0].Ports = nil
	}, "Deployment/store", "network-isolation"},
	{"metrics port open to callers by name", policy.NetworkIsolation(shopGraph), func(s *manifest.Set) {
		np := netpol(s, "store-ingress")
		np.Spec.Ingress[0].Ports = append(np.Spec.Ingress[0].Ports, networkingv1.NetworkPolicyPort{Port: ptr(intstr.FromString("metrics"))})
	}, "Deployment/store", "network-isolation"},
	{"monitoring namespace admitted to every port", policy.NetworkIsolation(shopGraph), func(s *manifest.Set) {
		netpol(s, "metrics-ingress").Spec.Ingress[0].Ports = nil
	}, "Deployment/store", "network-isolation"},
	{"monitoring namespace admitted to the gRPC port", policy.NetworkIsolation(shopGraph), func(s *manifest.Set) {
		np := netpol(s, "metrics-ingress")
		np.Spec.Ingress[0].Ports = append(np.Spec.Ingress[0].Ports, networkingv1.NetworkPolicyPort{Port: ptr(intstr.FromInt32(9090))})
	}, "Deployment/api", "network-isolation"},
	{"metrics port not exposed", policy.Scraped(shopScrape), func(s *manifest.Set) {
		c := container(s, "store")
		c.Ports = c.Ports[:1]
	}, "Deployment/store", "metrics-scrape"},
	{"no scrape annotation", policy.Scraped(shopScrape), func(s *manifest.Set) {
		delete(deployment(s, "api").Spec.Template.Annotations, "prometheus.io/scrape")
	}, "Deployment/api", "metrics-scrape"},
	{"scrape annotation names another port", policy.Scraped(shopScrape), func(s *manifest.Set) {
		deployment(s, "api").Spec.Template.Annotations["prometheus.io/port"] = "9090"
	}, "Deployment/api", "metrics-scrape"},
	{"monitoring namespace not admitted", policy.Scraped(shopScrape), func(s *manifest.Set) {
		netpol(s, "metrics-ingress").Spec.Ingress[0].From[0].NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] = "monitor"
	}, "Deployment/store", "metrics-scrape"},
}

func TestChecksPassOnCompliantFixture(t *testing.T) {
	checked := map[string]bool{}
	for _, b := range breakages {
		if checked[b.rule] {
			continue
		}
		checked[b.rule] = true
		for _, v := range b.check(shop(t)) {
			t.Errorf("%s on the compliant fixture: %s", b.rule, v)
		}
	}
}

func TestChecksFailOnBrokenObject(t *testing.T) {
	for _, b := range breakages {
		t.Run(b.name, func(t *testing.T) {
			set := shop(t)
			b.break_(set)
			violations := b.check(set)
			for _, v := range violations {
				if v.Object == b.object && v.Rule == b.rule {
					t.Logf("reported: %s", v)
					return
				}
			}
			t.Errorf("no %s violation on %s; got %v", b.rule, b.object, violations)
		})
	}
}
