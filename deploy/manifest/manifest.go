// Package manifest renders a kustomization in-process and decodes every object it yields
// strictly into its Kubernetes API type, so that a misspelt or misplaced field fails here
// rather than being dropped silently by the API server's pruning or by kubectl.
package manifest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// Set holds the decoded objects of one rendering, by kind.
type Set struct {
	Deployments          []*appsv1.Deployment
	Jobs                 []*batchv1.Job
	Services             []*corev1.Service
	ServiceAccounts      []*corev1.ServiceAccount
	ConfigMaps           []*corev1.ConfigMap
	Secrets              []*corev1.Secret
	PodDisruptionBudgets []*policyv1.PodDisruptionBudget
	Autoscalers          []*autoscalingv2.HorizontalPodAutoscaler
	NetworkPolicies      []*networkingv1.NetworkPolicy
	Ingresses            []*networkingv1.Ingress
}

// Build runs kustomize on the kustomization in dir (on disk) and decodes its output.
func Build(dir string) (*Set, error) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	resources, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	set := &Set{}
	for _, r := range resources.Resources() {
		doc, err := r.AsYAML()
		if err != nil {
			return nil, fmt.Errorf("kustomize build %s: %s: %w", dir, r.CurId(), err)
		}
		if err := set.add(doc); err != nil {
			return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
		}
	}
	return set, nil
}

// Parse decodes a stream of YAML documents separated by ---.
func Parse(stream []byte) (*Set, error) {
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(stream)))
	set := &Set{}
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return set, nil
		}
		if err != nil {
			return nil, fmt.Errorf("split YAML documents: %w", err)
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		if err := set.add(doc); err != nil {
			return nil, err
		}
	}
}

// typeMeta is read first to pick the Go type of a document.
type typeMeta struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name string `json:"name"`
	} `json:"metadata"`
}

func (s *Set) add(doc []byte) error {
	// Strict: duplicate keys are an error rather than last-one-wins.
	js, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return fmt.Errorf("YAML to JSON: %w", err)
	}
	var tm typeMeta
	if err := kjson.UnmarshalCaseSensitivePreserveInts(js, &tm); err != nil {
		return fmt.Errorf("read apiVersion and kind: %w", err)
	}
	name := tm.Kind + "/" + tm.Metadata.Name
	switch tm.APIVersion + " " + tm.Kind {
	case "apps/v1 Deployment":
		return decodeInto(js, name, &s.Deployments)
	case "batch/v1 Job":
		return decodeInto(js, name, &s.Jobs)
	case "v1 Service":
		return decodeInto(js, name, &s.Services)
	case "v1 ServiceAccount":
		return decodeInto(js, name, &s.ServiceAccounts)
	case "v1 ConfigMap":
		return decodeInto(js, name, &s.ConfigMaps)
	case "v1 Secret":
		return decodeInto(js, name, &s.Secrets)
	case "policy/v1 PodDisruptionBudget":
		return decodeInto(js, name, &s.PodDisruptionBudgets)
	case "autoscaling/v2 HorizontalPodAutoscaler":
		return decodeInto(js, name, &s.Autoscalers)
	case "networking.k8s.io/v1 NetworkPolicy":
		return decodeInto(js, name, &s.NetworkPolicies)
	case "networking.k8s.io/v1 Ingress":
		return decodeInto(js, name, &s.Ingresses)
	}
	// An unknown kind could hide anything from the policy checks, so it is refused until a
	// type (and the checks it needs) is added here.
	return fmt.Errorf("%s: no Go type for apiVersion %q kind %q", name, tm.APIVersion, tm.Kind)
}

// decodeInto decodes js strictly (unknown fields, duplicate fields and case-mismatched
// field names are errors, as with kubectl's --validate=strict) and appends it to list.
func decodeInto[T any](js []byte, name string, list *[]*T) error {
	obj := new(T)
	strictErrs, err := kjson.UnmarshalStrict(js, obj, kjson.DisallowUnknownFields)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if len(strictErrs) > 0 {
		return fmt.Errorf("%s: %w", name, errors.Join(strictErrs...))
	}
	*list = append(*list, obj)
	return nil
}
