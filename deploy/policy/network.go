package policy

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"puente.dev/deploy/manifest"
)

// GRPCPort is the port every Puente service serves gRPC on.
const GRPCPort = 9090

// HeadlessGRPC: every Service that exposes gRPC (a port named grpc, or 9090) is headless, so
// that clients resolve every pod and balance calls per pod; through a ClusterIP one HTTP/2
// connection would pin all calls to one pod.
func HeadlessGRPC(s *manifest.Set) []Violation {
	var out []Violation
	for _, svc := range s.Services {
		for _, p := range svc.Spec.Ports {
			if p.Name != "grpc" && p.Port != GRPCPort && p.TargetPort != intstr.FromInt32(GRPCPort) {
				continue
			}
			if svc.Spec.ClusterIP != corev1.ClusterIPNone {
				out = append(out, Violation{"Service/" + svc.Name, "headless-grpc", fmt.Sprintf("exposes gRPC on port %d but is not headless (clusterIP: None)", p.Port)})
			}
			break
		}
	}
	return out
}

// CallGraph says who may reach each service.
type CallGraph struct {
	// Label is the pod label whose value names the service (app.kubernetes.io/component).
	Label string
	// Callers lists, for each service, the services whose pods call it over gRPC.
	Callers map[string][]string
	// Public are the services reached from outside the namespace (the gateway, from the
	// ingress controller): they may admit pods of a namespace named by a namespaceSelector.
	Public []string
	// Scrape, when set, is the one other source every service admits: the monitoring
	// namespace, to the metrics port only. No other source may reach the metrics port.
	Scrape *Scrape
}

// Scrape is where Prometheus scrapes the pods from.
type Scrape struct {
	Port     int32  // the metrics port, e.g. 9464
	PortName string // its name on the container, e.g. "metrics"
	Path     string // e.g. /metrics
	// Namespace is the namespaceSelector that names the monitoring namespace, exactly as the
	// policies write it.
	Namespace metav1.LabelSelector
}

// monitoring reports whether peer is the monitoring namespace (any of its pods or some).
func (sc *Scrape) monitoring(peer networkingv1.NetworkPolicyPeer) bool {
	return sc != nil && peer.IPBlock == nil && peer.NamespaceSelector != nil && equality.Semantic.DeepEqual(*peer.NamespaceSelector, sc.Namespace)
}

// admitsMetrics reports whether a rule's ports include the metrics port (no ports: every port).
func (sc *Scrape) admitsMetrics(ports []networkingv1.NetworkPolicyPort) bool {
	if sc == nil {
		return false
	}
	if len(ports) == 0 {
		return true
	}
	for _, p := range ports {
		if sc.isPort(p) {
			return true
		}
	}
	return false
}

func (sc *Scrape) isPort(p networkingv1.NetworkPolicyPort) bool {
	if p.Protocol != nil && *p.Protocol != corev1.ProtocolTCP {
		return false
	}
	switch {
	case p.Port == nil:
		return true
	case p.Port.Type == intstr.String:
		return p.Port.StrVal == sc.PortName
	case p.EndPort != nil:
		return p.Port.IntVal <= sc.Port && sc.Port <= *p.EndPort
	default:
		return p.Port.IntVal == sc.Port
	}
}

// onlyMetrics reports whether a rule's ports are the metrics port and nothing else.
func (sc *Scrape) onlyMetrics(ports []networkingv1.NetworkPolicyPort) bool {
	if len(ports) == 0 {
		return false
	}
	for _, p := range ports {
		if p.Port == nil || p.EndPort != nil || !sc.isPort(p) {
			return false
		}
	}
	return true
}

// NetworkIsolation checks the namespace's ingress rules against the call graph: there is a
// default-deny ingress policy; every Deployment's pods are selected by an ingress policy;
// the pods those policies admit are exactly the service's callers (as far as the rendering's
// pods tell); no rule admits every source, an IP block, or another namespace, except for a
// public service and a namespace named by its selector, and the monitoring namespace (when
// g.Scrape is set) to the metrics port only, which no other source may reach.
func NetworkIsolation(g CallGraph) Check {
	return func(s *manifest.Set) []Violation {
		var out []Violation
		if !hasDefaultDenyIngress(s.NetworkPolicies) {
			out = append(out, Violation{"NetworkPolicy/*", "network-isolation", "no default-deny ingress policy (empty podSelector, Ingress type, no rules)"})
		}
		type pod struct {
			service string
			labels  map[string]string
		}
		var pods []pod
		for _, w := range workloads(s) {
			pods = append(pods, pod{w.podLabels[g.Label], w.podLabels})
		}
		for _, d := range s.Deployments {
			object := "Deployment/" + d.Name
			service := d.Spec.Template.Labels[g.Label]
			callers, known := g.Callers[service]
			if !known {
				out = append(out, Violation{object, "network-isolation", fmt.Sprintf("service %q (label %s) is not in the call graph", service, g.Label)})
				continue
			}
			public := slices.Contains(g.Public, service)
			admitted := map[string]bool{}
			covered := false
			for _, np := range s.NetworkPolicies {
				if !slices.Contains(policyTypes(np), networkingv1.PolicyTypeIngress) {
					continue
				}
				ok, err := selects(&np.Spec.PodSelector, d.Spec.Template.Labels)
				if err != nil {
					out = append(out, Violation{"NetworkPolicy/" + np.Name, "network-isolation", err.Error()})
					continue
				}
				if !ok {
					continue
				}
				covered = true
				for _, rule := range np.Spec.Ingress {
					if len(rule.From) == 0 {
						out = append(out, Violation{object, "network-isolation", fmt.Sprintf("NetworkPolicy %s admits every source", np.Name)})
						continue
					}
					toMetrics := g.Scrape.admitsMetrics(rule.Ports)
					for _, peer := range rule.From {
						if g.Scrape.monitoring(peer) {
							if !g.Scrape.onlyMetrics(rule.Ports) {
								out = append(out, Violation{object, "network-isolation", fmt.Sprintf("NetworkPolicy %s admits the monitoring namespace to ports other than metrics (%d)", np.Name, g.Scrape.Port)})
							}
							continue
						}
						if toMetrics {
							out = append(out, Violation{object, "network-isolation", fmt.Sprintf("NetworkPolicy %s admits %s to the metrics port %d, which only the monitoring namespace may reach", np.Name, describePeer(peer), g.Scrape.Port)})
						}
						switch {
						case peer.IPBlock != nil:
							out = append(out, Violation{object, "network-isolation", fmt.Sprintf("NetworkPolicy %s admits the IP block %s", np.Name, peer.IPBlock.CIDR)})
						case peer.NamespaceSelector != nil:
							if !public {
								out = append(out, Violation{object, "network-isolation", fmt.Sprintf("NetworkPolicy %s admits pods of other namespaces, but %s is not public", np.Name, service)})
							} else if len(peer.NamespaceSelector.MatchLabels) == 0 && len(peer.NamespaceSelector.MatchExpressions) == 0 {
								out = append(out, Violation{object, "network-isolation", fmt.Sprintf("NetworkPolicy %s admits every namespace", np.Name)})
							}
						case peer.PodSelector != nil:
							if len(peer.PodSelector.MatchLabels) == 0 && len(peer.PodSelector.MatchExpressions) == 0 {
								out = append(out, Violation{object, "network-isolation", fmt.Sprintf("NetworkPolicy %s admits every pod of the namespace", np.Name)})
								continue
							}
							for _, p := range pods {
								if ok, _ := selects(peer.PodSelector, p.labels); ok {
									admitted[p.service] = true
								}
							}
						}
					}
				}
			}
			if !covered {
				out = append(out, Violation{object, "network-isolation", "no ingress NetworkPolicy selects its pods"})
				continue
			}
			for _, c := range callers {
				if !admitted[c] {
					out = append(out, Violation{object, "network-isolation", fmt.Sprintf("does not admit its caller %s", c)})
				}
			}
			var extra []string
			for a := range admitted {
				if !slices.Contains(callers, a) {
					extra = append(extra, a)
				}
			}
			slices.Sort(extra)
			if len(extra) > 0 {
				out = append(out, Violation{object, "network-isolation", "admits pods that do not call it: " + strings.Join(extra, ", ")})
			}
		}
		return out
	}
}

// policyTypes applies the API's default: Ingress always, Egress when there are egress rules.
func policyTypes(np *networkingv1.NetworkPolicy) []networkingv1.PolicyType {
	if len(np.Spec.PolicyTypes) > 0 {
		return np.Spec.PolicyTypes
	}
	types := []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
	if len(np.Spec.Egress) > 0 {
		types = append(types, networkingv1.PolicyTypeEgress)
	}
	return types
}

func hasDefaultDenyIngress(policies []*networkingv1.NetworkPolicy) bool {
	for _, np := range policies {
		sel := np.Spec.PodSelector
		if len(sel.MatchLabels) == 0 && len(sel.MatchExpressions) == 0 &&
			slices.Contains(policyTypes(np), networkingv1.PolicyTypeIngress) && len(np.Spec.Ingress) == 0 {
			return true
		}
	}
	return false
}

func describePeer(peer networkingv1.NetworkPolicyPeer) string {
	switch {
	case peer.IPBlock != nil:
		return "the IP block " + peer.IPBlock.CIDR
	case peer.NamespaceSelector != nil:
		return "the namespaces " + metav1.FormatLabelSelector(peer.NamespaceSelector)
	case peer.PodSelector != nil:
		return "the pods " + metav1.FormatLabelSelector(peer.PodSelector)
	}
	return "every source"
}

// Scraped: every Deployment's pods expose the metrics port under its name, carry the
// prometheus.io annotations that Prometheus' kubernetes-pods job keeps pods by, and are
// reachable on that port from the monitoring namespace through some ingress policy.
func Scraped(sc Scrape) Check {
	return func(s *manifest.Set) []Violation {
		var out []Violation
		for _, d := range s.Deployments {
			object := "Deployment/" + d.Name
			exposed := false
			for _, c := range containers(&d.Spec.Template.Spec) {
				for _, p := range c.Ports {
					if p.Name == sc.PortName && p.ContainerPort == sc.Port {
						exposed = true
					}
				}
			}
			if !exposed {
				out = append(out, Violation{object, "metrics-scrape", fmt.Sprintf("no container exposes port %d named %s", sc.Port, sc.PortName)})
			}
			want := map[string]string{"prometheus.io/scrape": "true", "prometheus.io/port": fmt.Sprint(sc.Port), "prometheus.io/path": sc.Path}
			for _, k := range slices.Sorted(maps.Keys(want)) {
				if got := d.Spec.Template.Annotations[k]; got != want[k] {
					out = append(out, Violation{object, "metrics-scrape", fmt.Sprintf("pod annotation %s is %q, want %q", k, got, want[k])})
				}
			}
			if !monitoringAdmitted(s.NetworkPolicies, &sc, d.Spec.Template.Labels) {
				out = append(out, Violation{object, "metrics-scrape", fmt.Sprintf("no ingress NetworkPolicy admits the monitoring namespace (%s) to port %d", metav1.FormatLabelSelector(&sc.Namespace), sc.Port)})
			}
		}
		return out
	}
}

func monitoringAdmitted(policies []*networkingv1.NetworkPolicy, sc *Scrape, podLabels map[string]string) bool {
	for _, np := range policies {
		if !slices.Contains(policyTypes(np), networkingv1.PolicyTypeIngress) {
			continue
		}
		if ok, err := selects(&np.Spec.PodSelector, podLabels); err != nil || !ok {
			continue
		}
		for _, rule := range np.Spec.Ingress {
			if !sc.admitsMetrics(rule.Ports) {
				continue
			}
			for _, peer := range rule.From {
				if sc.monitoring(peer) {
					return true
				}
			}
		}
	}
	return false
}
