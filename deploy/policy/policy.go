// Package policy holds the rules Puente's rendered manifests must follow, as plain functions
// over decoded objects. Each returns the violations it finds; none means the rule holds.
package policy

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"

	"puente.dev/deploy/manifest"
)

// Violation is one broken rule on one object.
type Violation struct {
	Object string // Kind/name, e.g. Deployment/puente-consent
	Rule   string // the rule's name, e.g. "probes"
	Detail string
}

func (v Violation) String() string { return fmt.Sprintf("%s: %s: %s", v.Object, v.Rule, v.Detail) }

// Check is one rule over a whole rendering.
type Check func(*manifest.Set) []Violation

// workload is a pod template of a Deployment or a Job, the objects that run containers.
type workload struct {
	object     string
	podLabels  map[string]string
	spec       *corev1.PodSpec
	deployment bool
}

func workloads(s *manifest.Set) []workload {
	var out []workload
	for _, d := range s.Deployments {
		out = append(out, workload{"Deployment/" + d.Name, d.Spec.Template.Labels, &d.Spec.Template.Spec, true})
	}
	for _, j := range s.Jobs {
		out = append(out, workload{"Job/" + j.Name, j.Spec.Template.Labels, &j.Spec.Template.Spec, false})
	}
	return out
}

// containers lists init and main containers alike: an init container runs with the same
// privileges and on the same node budget.
func containers(spec *corev1.PodSpec) []corev1.Container {
	return append(append([]corev1.Container(nil), spec.InitContainers...), spec.Containers...)
}
