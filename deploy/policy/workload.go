package policy

import (
	"fmt"
	"regexp"

	corev1 "k8s.io/api/core/v1"

	"puente.dev/deploy/manifest"
)

// Probes: every container of a Deployment has a readiness and a liveness probe, and a
// container serving gRPC (a port named grpc) checks liveness or readiness with grpc.health.v1,
// which turns NOT_SERVING when a drain starts.
func Probes(s *manifest.Set) []Violation {
	var out []Violation
	for _, w := range workloads(s) {
		if !w.deployment {
			continue
		}
		for _, c := range containers(w.spec) {
			if !hasHandler(c.ReadinessProbe) {
				out = append(out, Violation{w.object, "probes", fmt.Sprintf("container %s has no readiness probe", c.Name)})
			}
			if !hasHandler(c.LivenessProbe) {
				out = append(out, Violation{w.object, "probes", fmt.Sprintf("container %s has no liveness probe", c.Name)})
			}
			if servesGRPC(c) && !grpcProbe(c.ReadinessProbe) && !grpcProbe(c.LivenessProbe) {
				out = append(out, Violation{w.object, "probes", fmt.Sprintf("container %s serves gRPC but no probe uses grpc.health.v1", c.Name)})
			}
		}
	}
	return out
}

func hasHandler(p *corev1.Probe) bool {
	return p != nil && (p.Exec != nil || p.HTTPGet != nil || p.TCPSocket != nil || p.GRPC != nil)
}

func grpcProbe(p *corev1.Probe) bool { return p != nil && p.GRPC != nil }

func servesGRPC(c corev1.Container) bool {
	for _, p := range c.Ports {
		if p.Name == "grpc" {
			return true
		}
	}
	return false
}

// Resources: every container of every workload requests and limits CPU and memory, with
// requests no larger than limits (the API server would refuse the object otherwise).
func Resources(s *manifest.Set) []Violation {
	var out []Violation
	for _, w := range workloads(s) {
		for _, c := range containers(w.spec) {
			for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
				req, hasReq := c.Resources.Requests[r]
				lim, hasLim := c.Resources.Limits[r]
				if !hasReq {
					out = append(out, Violation{w.object, "resources", fmt.Sprintf("container %s has no %s request", c.Name, r)})
				}
				if !hasLim {
					out = append(out, Violation{w.object, "resources", fmt.Sprintf("container %s has no %s limit", c.Name, r)})
				}
				if hasReq && hasLim && req.Cmp(lim) > 0 {
					out = append(out, Violation{w.object, "resources", fmt.Sprintf("container %s requests more %s (%s) than its limit (%s)", c.Name, r, req.String(), lim.String())})
				}
			}
		}
	}
	return out
}

// SecurityContext: every pod and container runs as a fixed non-root UID, with a read-only
// root filesystem, no privilege escalation, no capabilities and the runtime's default seccomp
// profile, and mounts no service-account token. Container settings win over the pod's, as in
// Kubernetes, so each rule is checked on the effective value.
func SecurityContext(s *manifest.Set) []Violation {
	var out []Violation
	for _, w := range workloads(s) {
		pod := w.spec.SecurityContext
		if pod == nil {
			pod = &corev1.PodSecurityContext{}
		}
		if pod.RunAsNonRoot == nil || !*pod.RunAsNonRoot {
			out = append(out, Violation{w.object, "security-context", "pod securityContext.runAsNonRoot is not true"})
		}
		if pod.SeccompProfile == nil || pod.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			out = append(out, Violation{w.object, "security-context", "pod securityContext.seccompProfile is not RuntimeDefault"})
		}
		if w.spec.AutomountServiceAccountToken == nil || *w.spec.AutomountServiceAccountToken {
			out = append(out, Violation{w.object, "security-context", "pod does not set automountServiceAccountToken: false"})
		}
		for _, c := range containers(w.spec) {
			sc := c.SecurityContext
			if sc == nil {
				sc = &corev1.SecurityContext{}
			}
			fail := func(detail string) {
				out = append(out, Violation{w.object, "security-context", fmt.Sprintf("container %s: %s", c.Name, detail)})
			}
			nonRoot := pod.RunAsNonRoot
			if sc.RunAsNonRoot != nil {
				nonRoot = sc.RunAsNonRoot
			}
			if nonRoot == nil || !*nonRoot {
				fail("runAsNonRoot is not true")
			}
			uid := pod.RunAsUser
			if sc.RunAsUser != nil {
				uid = sc.RunAsUser
			}
			if uid == nil || *uid == 0 {
				fail("runAsUser is not a fixed non-root UID")
			}
			if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
				fail("readOnlyRootFilesystem is not true")
			}
			if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
				fail("allowPrivilegeEscalation is not false")
			}
			if sc.Privileged != nil && *sc.Privileged {
				fail("is privileged")
			}
			if sc.Capabilities == nil || !dropsAll(sc.Capabilities) {
				fail("capabilities.drop does not include ALL")
			} else if len(sc.Capabilities.Add) > 0 {
				fail(fmt.Sprintf("adds capabilities %v", sc.Capabilities.Add))
			}
			seccomp := pod.SeccompProfile
			if sc.SeccompProfile != nil {
				seccomp = sc.SeccompProfile
			}
			if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
				fail("seccompProfile is not RuntimeDefault")
			}
		}
	}
	return out
}

func dropsAll(c *corev1.Capabilities) bool {
	for _, d := range c.Drop {
		if d == "ALL" {
			return true
		}
	}
	return false
}

// ServiceAccounts: every workload names its own ServiceAccount (not "default"), one that is
// in the rendering and does not automount its token.
func ServiceAccounts(s *manifest.Set) []Violation {
	accounts := map[string]*corev1.ServiceAccount{}
	for _, sa := range s.ServiceAccounts {
		accounts[sa.Name] = sa
	}
	var out []Violation
	for _, w := range workloads(s) {
		name := w.spec.ServiceAccountName
		sa, ok := accounts[name]
		switch {
		case name == "" || name == "default":
			out = append(out, Violation{w.object, "service-account", "runs as the namespace's default ServiceAccount"})
		case !ok:
			out = append(out, Violation{w.object, "service-account", fmt.Sprintf("ServiceAccount %s is not in the manifests", name)})
		case sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken:
			out = append(out, Violation{"ServiceAccount/" + name, "service-account", "does not set automountServiceAccountToken: false"})
		}
	}
	return out
}

// secretName matches environment variable names that hold secrets: a last word KEY, KEYS,
// TOKEN, SECRET or PASSWORD, or DATABASE_URL (which carries the password). It goes by the last
// word, since PUENTE_AUTHTOKEN_ADDR, PUENTE_TOKEN_ISSUER or PUENTE_SIGNING_KEY_LEAD are not
// secrets.
var secretName = regexp.MustCompile(`(^|_)(KEYS?|TOKEN|SECRET|PASSWORD|DATABASE_URL)$`)

// NoSecretValues: no Secret object carries data (the operator creates puente-secrets), no
// container sets a secret-looking variable from a literal value, and no ConfigMap (read with
// envFrom) holds a secret-looking key. Secrets come only from secretKeyRef.
func NoSecretValues(s *manifest.Set) []Violation {
	var out []Violation
	for _, sec := range s.Secrets {
		if len(sec.Data) > 0 || len(sec.StringData) > 0 {
			out = append(out, Violation{"Secret/" + sec.Name, "no-secret-values", "carries data or stringData: the operator creates secrets, the manifests only reference them"})
		}
	}
	for _, cm := range s.ConfigMaps {
		for key := range cm.Data {
			if secretName.MatchString(key) {
				out = append(out, Violation{"ConfigMap/" + cm.Name, "no-secret-values", fmt.Sprintf("key %s looks like a secret: use a secretKeyRef", key)})
			}
		}
	}
	for _, w := range workloads(s) {
		for _, c := range containers(w.spec) {
			for _, e := range c.Env {
				if !secretName.MatchString(e.Name) {
					continue
				}
				if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
					out = append(out, Violation{w.object, "no-secret-values", fmt.Sprintf("container %s sets %s without a secretKeyRef", c.Name, e.Name)})
				}
			}
		}
	}
	return out
}
