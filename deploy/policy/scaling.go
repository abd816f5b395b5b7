package policy

import (
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"puente.dev/deploy/manifest"
)

// DisruptionBudgets: exactly one PodDisruptionBudget selects each Deployment's pods (the
// eviction API refuses to evict a pod under two), and it bounds disruption with minAvailable
// or maxUnavailable.
func DisruptionBudgets(s *manifest.Set) []Violation {
	var out []Violation
	for _, d := range s.Deployments {
		object := "Deployment/" + d.Name
		var names []string
		for _, pdb := range s.PodDisruptionBudgets {
			ok, err := selects(pdb.Spec.Selector, d.Spec.Template.Labels)
			if err != nil {
				out = append(out, Violation{"PodDisruptionBudget/" + pdb.Name, "disruption-budget", err.Error()})
				continue
			}
			if !ok {
				continue
			}
			names = append(names, pdb.Name)
			if pdb.Spec.MinAvailable == nil && pdb.Spec.MaxUnavailable == nil {
				out = append(out, Violation{"PodDisruptionBudget/" + pdb.Name, "disruption-budget", "sets neither minAvailable nor maxUnavailable"})
			}
		}
		switch len(names) {
		case 0:
			out = append(out, Violation{object, "disruption-budget", "no PodDisruptionBudget selects its pods"})
		case 1:
		default:
			out = append(out, Violation{object, "disruption-budget", "its pods are selected by several PodDisruptionBudgets: " + strings.Join(names, ", ")})
		}
	}
	return out
}

// selects reports whether a label selector matches labels. A nil or empty selector matches
// nothing here: a PodDisruptionBudget or policy meant for one service must say which.
func selects(sel *metav1.LabelSelector, podLabels map[string]string) (bool, error) {
	if sel == nil || (len(sel.MatchLabels) == 0 && len(sel.MatchExpressions) == 0) {
		return false, nil
	}
	selector, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return false, fmt.Errorf("invalid selector: %w", err)
	}
	return selector.Matches(labels.Set(podLabels)), nil
}

// Autoscalers: exactly one HorizontalPodAutoscaler targets each Deployment, scales on CPU,
// and has 1 ≤ minReplicas ≤ maxReplicas. An autoscaler that targets no Deployment of the
// rendering is a violation too (a renamed Deployment would otherwise lose its scaling quietly).
func Autoscalers(s *manifest.Set) []Violation {
	var out []Violation
	deployments := map[string]bool{}
	for _, d := range s.Deployments {
		deployments[d.Name] = true
	}
	targets := map[string][]string{}
	for _, h := range s.Autoscalers {
		object := "HorizontalPodAutoscaler/" + h.Name
		ref := h.Spec.ScaleTargetRef
		if ref.Kind != "Deployment" || ref.APIVersion != "apps/v1" || !deployments[ref.Name] {
			out = append(out, Violation{object, "autoscaler", fmt.Sprintf("targets %s %s/%s, not a Deployment of the manifests", ref.APIVersion, ref.Kind, ref.Name)})
			continue
		}
		targets[ref.Name] = append(targets[ref.Name], h.Name)
		if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas < 1 {
			out = append(out, Violation{object, "autoscaler", "minReplicas is not set to at least 1"})
		} else if *h.Spec.MinReplicas > h.Spec.MaxReplicas {
			out = append(out, Violation{object, "autoscaler", fmt.Sprintf("minReplicas %d exceeds maxReplicas %d", *h.Spec.MinReplicas, h.Spec.MaxReplicas)})
		}
		cpu := false
		for _, m := range h.Spec.Metrics {
			if m.Resource != nil && m.Resource.Name == "cpu" {
				cpu = true
			}
		}
		if !cpu {
			out = append(out, Violation{object, "autoscaler", "has no CPU resource metric"})
		}
	}
	for _, d := range s.Deployments {
		switch n := len(targets[d.Name]); {
		case n == 0:
			out = append(out, Violation{"Deployment/" + d.Name, "autoscaler", "no HorizontalPodAutoscaler targets it"})
		case n > 1:
			out = append(out, Violation{"Deployment/" + d.Name, "autoscaler", "targeted by several HorizontalPodAutoscalers: " + strings.Join(targets[d.Name], ", ")})
		}
	}
	return out
}
