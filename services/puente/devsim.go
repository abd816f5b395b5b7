package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	bfsim "puente.dev/services/providersim/boufin"
	gbsim "puente.dev/services/providersim/guiabolso"
	klsim "puente.dev/services/providersim/klavi"
	pwsim "puente.dev/services/providersim/powens"
	sfsim "puente.dev/services/providersim/syncfy"
	"puente.dev/services/puente/suite"
)

// simulatorsPort is where make run serves the provider simulators, one port each from here.
const simulatorsPort = 8091

// startSimulators serves a simulator of each upstream provider on localhost beside the Sandbox
// and points the provider's configuration at it, with credentials made for this run, unless
// the provider is configured already (a real upstream) or PUENTE_DEV_SIMULATORS=false. Their
// webhooks go to Puente's inbound endpoint at publicURL.
func startSimulators(ctx context.Context, cfg *suite.Config, log *slog.Logger) (stop func(), err error) {
	public := strings.TrimSuffix(cfg.Connection.PublicURL, "/")
	var servers []*http.Server
	stop = func() {
		for _, s := range servers {
			s.Close()
		}
	}
	serve := func(name string, port int, h http.Handler) (string, error) {
		lis, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil { // taken (another checkout's make run, a test): any free port will do
			if lis, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
				return "", fmt.Errorf("%s simulator: %w", name, err)
			}
		}
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
		servers = append(servers, srv)
		go func() {
			if err := srv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("simulator stopped", "provider", name, "err", err)
			}
		}()
		url := "http://" + lis.Addr().String()
		log.Info("provider simulator", "provider", name, "url", url)
		return url, nil
	}
	secret := func() string {
		b := make([]byte, 24)
		rand.Read(b)
		return hex.EncodeToString(b)
	}
	defer func() {
		if err != nil {
			stop()
		}
	}()
	if !cfg.Boufin.Enabled() {
		key, clientID := secret(), "puente-dev"
		url, err := serve("boufin", simulatorsPort, bfsim.New(bfsim.Options{APIKey: key, ClientIDs: []string{clientID}}))
		if err != nil {
			return nil, err
		}
		cfg.Boufin.URL, cfg.Boufin.APIKey, cfg.Boufin.ClientID = url+"/api/v1", key, clientID
	}
	if !cfg.Syncfy.Enabled() {
		key := secret()
		url, err := serve("syncfy", simulatorsPort+1, sfsim.New(sfsim.Options{APIKey: key}))
		if err != nil {
			return nil, err
		}
		cfg.Syncfy.URL, cfg.Syncfy.APIKey = url, key
	}
	if !cfg.Guiabolso.Enabled() {
		id, sec, hook := "puente-dev", secret(), secret()
		url, err := serve("guiabolso", simulatorsPort+2, gbsim.New(gbsim.Options{
			ClientID: id, ClientSecret: sec, WebhookURL: public + "/v1/inbound/guiabolso", WebhookSecret: []byte(hook),
		}))
		if err != nil {
			return nil, err
		}
		cfg.Guiabolso.URL, cfg.Guiabolso.ClientID, cfg.Guiabolso.ClientSecret, cfg.Guiabolso.WebhookSecret = url, id, sec, hook
	}
	if !cfg.Powens.Enabled() {
		id, sec, hook := "puente-dev", secret(), secret()
		url, err := serve("powens", simulatorsPort+3, pwsim.New(pwsim.Options{
			ClientID: id, ClientSecret: sec, WebhookURL: public + "/v1/inbound/powens", WebhookSecret: hook,
		}))
		if err != nil {
			return nil, err
		}
		cfg.Powens.URL, cfg.Powens.ClientID, cfg.Powens.ClientSecret, cfg.Powens.WebhookSecret = url+"/2.0", id, sec, hook
	}
	if !cfg.Klavi.Enabled() {
		access, sec := secret(), secret()
		url, err := serve("klavi", simulatorsPort+4, klsim.New(klsim.Options{
			AccessKey: access, SecretKey: sec,
			EventWebhookURL: public + "/v1/inbound/klavi", ProductWebhookURL: public + "/v1/inbound/klavi",
		}))
		if err != nil {
			return nil, err
		}
		cfg.Klavi.URL, cfg.Klavi.AccessKey, cfg.Klavi.SecretKey = url, access, sec
	}
	return stop, nil
}
