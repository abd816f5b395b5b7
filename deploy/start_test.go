package deploy_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"io"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"puente.dev/pkg/config"
	"puente.dev/pkg/pgtest"
	"puente.dev/pkg/secretbox"
	"puente.dev/pkg/telemetry"
	"puente.dev/services/puente/suite"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestEveryDeploymentStartsWithItsManifest loads each Deployment's environment, exactly as the
// manifests give it (values, the ConfigMap, the Secret's keys), into the binary's configuration
// and starts the service it serves: a variable the code needs and the manifests forget fails
// here, not in a cluster. The Secret's values are made here, as `puente keygen` makes them, and
// migrations run at start in place of the migration Jobs.
func TestEveryDeploymentStartsWithItsManifest(t *testing.T) {
	for _, overlay := range overlays {
		set := build(t, overlay)
		secrets := secretValues(t)
		configMaps := map[string]map[string]string{}
		for _, cm := range set.ConfigMaps {
			configMaps[cm.Name] = cm.Data
		}
		for _, d := range set.Deployments {
			t.Run(overlay+"/"+d.Name, func(t *testing.T) {
				c := d.Spec.Template.Spec.Containers[0]
				env := containerEnv(t, c, configMaps, secrets)
				env["PUENTE_GRPC_ADDR"], env["PUENTE_HTTP_ADDR"], env["PUENTE_METRICS_ADDR"], env["PUENTE_MIGRATE_ON_START"] = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", "true"
				var cfg suite.Config
				if err := config.Load(&cfg, func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
					t.Fatalf("the manifest's configuration does not load: %v", err)
				}
				services := servedServices(t, c.Args)
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				s, err := suite.Start(ctx, cfg, services, telemetry.NewLogger(io.Discard, 0, false))
				if err != nil {
					t.Fatalf("%v does not start with its manifest's configuration: %v", services, err)
				}
				s.Shutdown(ctx)
			})
		}
	}
}

// secretValues are the puente-secrets keys an operator must create, with fresh values, and a
// database of their own.
func secretValues(t *testing.T) map[string]string {
	t.Helper()
	key := make([]byte, 32)
	rand.Read(key)
	return map[string]string{
		"DATABASE_URL":           pgtest.NewDatabase(t),
		"PUENTE_HASH_KEY":        base64.StdEncoding.EncodeToString(key),
		"PUENTE_ENCRYPTION_KEYS": secretbox.NewKeySpec("k1"),
		"PUENTE_ADMIN_TOKEN":     "padm_" + base64.RawURLEncoding.EncodeToString(key),
		"PUENTE_SERVICE_TOKEN":   "psvc_" + base64.RawURLEncoding.EncodeToString(key[:24]) + "x",
	}
}

// containerEnv is what the container sees: the ConfigMaps of envFrom, then env, whose secret
// references must name a key the operator creates (or be optional).
func containerEnv(t *testing.T, c corev1.Container, configMaps map[string]map[string]string, secrets map[string]string) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, from := range c.EnvFrom {
		if from.ConfigMapRef != nil {
			for k, v := range configMaps[from.ConfigMapRef.Name] {
				env[k] = v
			}
		}
	}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		case e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			if v, ok := secrets[ref.Key]; ok {
				env[e.Name] = v
			} else if ref.Optional == nil || !*ref.Optional {
				t.Errorf("%s needs secret key %s, which the README does not tell operators to create", e.Name, ref.Key)
			}
		}
	}
	return env
}

func servedServices(t *testing.T, args []string) []string {
	t.Helper()
	for _, a := range args {
		if list, ok := strings.CutPrefix(a, "-service="); ok {
			return strings.Split(list, ",")
		}
	}
	t.Fatalf("args %v name no -service", args)
	return nil
}
