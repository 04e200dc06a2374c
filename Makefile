# Albatros: see README.md. `make demo` runs the whole stack on loopback; `make test` runs
# vet, the unit tests and the integration tests against real Nomad, Consul and Gitea.

GO       ?= go
TOOLS    := nomad consul gitea versitygw
# Integration tests start real servers; a cold Gitea build alone takes minutes, hence the
# generous timeout (the tests themselves take a small part of it).
TEST_TIMEOUT ?= 25m

.PHONY: all build image tools test vet demo bench clean

all: build

## build: the bot at bin/albatros-bot
build:
	$(GO) build -o bin/albatros-bot ./cmd/albatros-bot

## image: bin/albatros-image.tar, an OCI image (docker load, podman load) of the static bot,
## built without a container engine; the same commit gives the same digest
EPOCH   ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null)
VERSION ?= $(shell git describe --tags --always 2>/dev/null || echo dev)
image:
	CGO_ENABLED=0 $(GO) build -trimpath -buildvcs=false -o bin/albatros-bot-static ./cmd/albatros-bot
	$(GO) run ./tools/image -bin bin/albatros-bot-static -o bin/albatros-image.tar -epoch $(EPOCH) -commit "$(COMMIT)" -version "$(VERSION)"

## tools: pinned Nomad, Consul and Gitea built from their Go modules, cached outside the
## clone (~/.cache/albatros/tools) and linked into bin/
tools:
	@for t in $(TOOLS); do tools/build.sh $$t || exit 1; done

## vet: go vet over the whole module, and the tree gofmt-clean and go.mod tidy
vet:
	$(GO) vet ./...
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt -l: not formatted:"; echo "$$out"; exit 1; fi
	@$(GO) mod tidy -diff || { echo "go.mod is not tidy: run go mod tidy"; exit 1; }

## test: vet, unit and integration tests (builds the tools first when they are missing)
test: tools vet
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...

## demo: Nomad, Consul, Gitea and the bot on loopback, with a demo repository; Ctrl-C stops all
demo: tools build
	$(GO) build -o bin/albatros-demo ./cmd/albatros-demo
	bin/albatros-demo

## bench: the benchmarks on the real stack reported in docs/BENCHMARKS.md
bench: tools
	$(GO) run ./bench/latency -n 50
	$(GO) run ./bench/dispatch -n 300 -children 0,1000,5000
	$(GO) run ./bench/ingest -d 5s -rounds 3
	$(GO) run ./bench/logrelay -mib 50 -n 5
	$(GO) run ./bench/rate -n 300 -rounds 5
	$(GO) run ./bench/startup -n 10
	$(GO) run ./bench/viewers -viewers 1000 -rounds 3
	$(GO) run ./bench/escape -mib 16 -viewers 6 -rounds 3 -secrets
	$(GO) run ./bench/queue -n 20000 -rounds 3
	$(GO) run ./bench/archive -mib 50 -builds 10000 -rounds 3

clean:
	rm -rf bin
