# Puente. `make help` lists the targets.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

# Every module of go.work, as package patterns.
PKGS = $(shell go list -m -f '{{.Path}}/...')
GO_TEST_FLAGS ?= -race -count=1 -timeout=10m

.PHONY: help
help: ## Show the targets.
	@grep -E '^[a-zA-Z/_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

.PHONY: run
run: ## Run every service and the gateway (local Postgres unless DATABASE_URL is set).
	go run puente.dev/services/puente dev

.PHONY: build
build: ## Build the puente binary into .bin/.
	go build -o .bin/puente puente.dev/services/puente

.PHONY: test
test: test/go lint check-generate ## Tests on a real ephemeral Postgres, then lint and generated-code drift.

.PHONY: test/go
test/go: browser/deps ## Go tests of every module, sharing one ephemeral Postgres cluster (the widget's in Chromium too).
	go run puente.dev/pkg/cmd/withpostgres -- go test $(GO_TEST_FLAGS) $(PKGS)

.PHONY: browser/deps
browser/deps: ## Install the widget's browser-test packages (playwright-core, axe-core) from package-lock.json.
	npm ci --prefix services/puente/suite/browser --no-audit --no-fund --loglevel=error

.PHONY: deploy/render
deploy/render: ## Print an overlay's Kubernetes manifests (OVERLAY=dev|prod); make test checks them (deploy/).
	tools/tool kustomize build deploy/overlays/$(or $(OVERLAY),dev)

IMAGE ?= puente:dev
GOARCH_IMAGE ?= amd64

.PHONY: image
image: ## Build the container image without Docker into .bin/puente-image.tar (IMAGE=name:tag; docker/podman load, crane push).
	CGO_ENABLED=0 GOOS=linux GOARCH=$(GOARCH_IMAGE) go build -trimpath -ldflags='-s -w' -o .bin/puente-linux-$(GOARCH_IMAGE) puente.dev/services/puente
	go run puente.dev/deploy/image -binary .bin/puente-linux-$(GOARCH_IMAGE) -arch $(GOARCH_IMAGE) -tag $(IMAGE) -out .bin/puente-image.tar

.PHONY: bench
bench: ## Benchmarks beside their baselines, with the ratios (token issue, REST vs gRPC, tracing cost, one vs two processes per service).
	go run puente.dev/pkg/cmd/withpostgres -- go test -run='^$$' -bench=. -benchmem -count=1 -timeout=30m puente.dev/services/puente/suite puente.dev/services/puente/tracing puente.dev/services/puente/scaleout | tools/benchratio

.PHONY: lint
lint: ## go vet, staticcheck, gofmt, buf lint/format/breaking.
	go vet $(PKGS)
	tools/tool staticcheck $(PKGS)
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^gen/')); if [ -n "$$out" ]; then echo "not gofmt-ed: $$out"; exit 1; fi
	tools/generate deps
	tools/tool buf lint
	tools/tool buf format --diff --exit-code proto
	tools/breaking

.PHONY: generate
generate: ## Build proto/ into gen/ (offline; tools pinned in tools/go.mod).
	tools/generate

.PHONY: check-generate
check-generate: generate ## Fail when generated code differs from what is committed.
	@if [ -n "$$(git status --porcelain -- gen)" ]; then git status --porcelain -- gen; git diff --stat -- gen; echo "gen/ is stale: run make generate and commit"; exit 1; fi

.PHONY: tidy
tidy: ## go mod tidy every module of go.work (tools/go.mod is pinned by hand: see tools/README.md).
	for d in $$(go list -m -f '{{.Dir}}'); do (cd $$d && go mod tidy); done

.PHONY: db/reset
db/reset: ## Delete make run's local data (Postgres, dev secrets, sandbox client).
	rm -rf .data
	@for d in /var/tmp/puente-dev-*; do [ -e "$$d" ] && echo "also see $$d (a checkout unreachable by the postgres user keeps its data there)"; done; true
