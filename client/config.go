package client

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"

	"puente.dev/pkg/config"
)

// DefaultTimeout is the deadline a unary call gets when its context has none.
const DefaultTimeout = 10 * time.Second

// Config says where Puente is and how to authenticate to it.
type Config struct {
	// Target is the gRPC address of every service, e.g. dns:///puente.internal:9090.
	Target string
	// Per-service targets override Target; in Kubernetes each is a headless Service such as
	// dns:///puente-consent.puente.svc.cluster.local:9090, so that round-robin sees every pod.
	Authtoken, Consent, Connection, Extraction, Sync, Webhook string

	// ClientID (cli_…) and ClientSecret (psk_…) are exchanged for access tokens with the
	// OAuth 2.0 client-credentials grant.
	ClientID     string
	ClientSecret string

	// TLS, when set, secures every connection. Insecure allows plaintext (and bearer tokens over
	// it); one of the two must be set, so plaintext is never an accident.
	TLS      *tls.Config
	Insecure bool

	// Timeout is the deadline of a unary call whose context has none, and of a token fetch.
	// Zero means DefaultTimeout. Server streams (WatchConnection) get none.
	Timeout time.Duration

	// Now is the clock token expiry is judged by; nil means time.Now. Tests set it.
	Now func() time.Time
	// DialOptions are appended to the client's own (interceptors, stats handlers, resolvers).
	DialOptions []grpc.DialOption
}

// envConfig is the environment's view of Config (see FromEnv).
type envConfig struct {
	Target     string        `env:"PUENTE_CLIENT_TARGET"`
	Authtoken  string        `env:"PUENTE_CLIENT_AUTHTOKEN_TARGET"`
	Consent    string        `env:"PUENTE_CLIENT_CONSENT_TARGET"`
	Connection string        `env:"PUENTE_CLIENT_CONNECTION_TARGET"`
	Extraction string        `env:"PUENTE_CLIENT_EXTRACTION_TARGET"`
	Sync       string        `env:"PUENTE_CLIENT_SYNC_TARGET"`
	Webhook    string        `env:"PUENTE_CLIENT_WEBHOOK_TARGET"`
	ID         string        `env:"PUENTE_CLIENT_ID"`
	Secret     string        `env:"PUENTE_CLIENT_SECRET"`
	TLS        bool          `env:"PUENTE_CLIENT_TLS"`
	CAFile     string        `env:"PUENTE_CLIENT_TLS_CA_FILE"`
	CertFile   string        `env:"PUENTE_CLIENT_TLS_CERT_FILE"`
	KeyFile    string        `env:"PUENTE_CLIENT_TLS_KEY_FILE"`
	ServerName string        `env:"PUENTE_CLIENT_TLS_SERVER_NAME"`
	Insecure   bool          `env:"PUENTE_CLIENT_INSECURE"`
	Timeout    time.Duration `env:"PUENTE_CLIENT_TIMEOUT"`
}

// FromEnv reads a Config from PUENTE_CLIENT_* environment variables:
//
//	PUENTE_CLIENT_TARGET                 gRPC address of every service
//	PUENTE_CLIENT_<SERVICE>_TARGET       per-service override (AUTHTOKEN, CONSENT, CONNECTION,
//	                                     EXTRACTION, SYNC, WEBHOOK)
//	PUENTE_CLIENT_ID, PUENTE_CLIENT_SECRET
//	PUENTE_CLIENT_TLS=true               TLS with the system's roots; implied by the next four
//	PUENTE_CLIENT_TLS_CA_FILE            PEM roots to trust instead of the system's
//	PUENTE_CLIENT_TLS_CERT_FILE, PUENTE_CLIENT_TLS_KEY_FILE   a client certificate (mTLS)
//	PUENTE_CLIENT_TLS_SERVER_NAME        the name to verify the server's certificate against
//	PUENTE_CLIENT_INSECURE=true          plaintext (local development only)
//	PUENTE_CLIENT_TIMEOUT                default unary deadline, e.g. 10s
func FromEnv() (Config, error) { return configFromLookup(os.LookupEnv) }

func configFromLookup(lookup func(string) (string, bool)) (Config, error) {
	var e envConfig
	if err := config.Load(&e, lookup); err != nil {
		return Config{}, fmt.Errorf("puente client: %w", err)
	}
	c := Config{
		Target: e.Target, Authtoken: e.Authtoken, Consent: e.Consent, Connection: e.Connection,
		Extraction: e.Extraction, Sync: e.Sync, Webhook: e.Webhook,
		ClientID: e.ID, ClientSecret: e.Secret, Insecure: e.Insecure, Timeout: e.Timeout,
	}
	if !e.TLS && e.CAFile == "" && e.CertFile == "" && e.KeyFile == "" && e.ServerName == "" {
		return c, nil
	}
	if e.Insecure {
		return Config{}, errors.New("puente client: PUENTE_CLIENT_INSECURE is set together with PUENTE_CLIENT_TLS*: choose one")
	}
	t := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: e.ServerName}
	if e.CAFile != "" {
		pem, err := os.ReadFile(e.CAFile)
		if err != nil {
			return Config{}, fmt.Errorf("puente client: reading PUENTE_CLIENT_TLS_CA_FILE: %w", err)
		}
		t.RootCAs = x509.NewCertPool()
		if !t.RootCAs.AppendCertsFromPEM(pem) {
			return Config{}, fmt.Errorf("puente client: PUENTE_CLIENT_TLS_CA_FILE %s holds no PEM certificate", e.CAFile)
		}
	}
	if (e.CertFile == "") != (e.KeyFile == "") {
		return Config{}, errors.New("puente client: PUENTE_CLIENT_TLS_CERT_FILE and PUENTE_CLIENT_TLS_KEY_FILE go together")
	}
	if e.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(e.CertFile, e.KeyFile)
		if err != nil {
			return Config{}, fmt.Errorf("puente client: loading the client certificate: %w", err)
		}
		t.Certificates = []tls.Certificate{cert}
	}
	c.TLS = t
	return c, nil
}

// targets maps each service to its address, and says which services have none.
func (c Config) targets() (map[string]string, error) {
	t := map[string]string{
		"authtoken": c.Authtoken, "consent": c.Consent, "connection": c.Connection,
		"extraction": c.Extraction, "sync": c.Sync, "webhook": c.Webhook,
	}
	var missing []string
	for _, name := range serviceNames {
		if t[name] == "" {
			t[name] = c.Target
		}
		if t[name] == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("puente client: no Target, and no address for %s", strings.Join(missing, ", "))
	}
	return t, nil
}

func (c Config) validate() error {
	switch {
	case c.TLS == nil && !c.Insecure:
		return errors.New("puente client: refusing to dial in plaintext: set TLS, or Insecure for local development")
	case c.TLS != nil && c.Insecure:
		return errors.New("puente client: TLS and Insecure are both set: choose one")
	case c.ClientID == "" || c.ClientSecret == "":
		return errors.New("puente client: ClientID and ClientSecret are required")
	case c.Timeout < 0:
		return fmt.Errorf("puente client: Timeout %s is negative", c.Timeout)
	}
	return nil
}

// String shows the configuration without the secret.
func (c Config) String() string {
	secret := ""
	if c.ClientSecret != "" {
		secret = "[redacted]"
	}
	return fmt.Sprintf("client.Config{Target:%q Authtoken:%q Consent:%q Connection:%q Extraction:%q Sync:%q Webhook:%q ClientID:%q ClientSecret:%s TLS:%t Insecure:%t Timeout:%s}",
		c.Target, c.Authtoken, c.Consent, c.Connection, c.Extraction, c.Sync, c.Webhook,
		c.ClientID, secret, c.TLS != nil, c.Insecure, c.Timeout)
}

// GoString keeps %#v from printing the secret too.
func (c Config) GoString() string { return c.String() }

// LogValue keeps slog from printing the secret.
func (c Config) LogValue() slog.Value { return slog.StringValue(c.String()) }
