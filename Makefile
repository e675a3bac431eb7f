# imgbake — see README.md.
GO       ?= go
BIN      := bin/imgbake
AGENT    := appliance/agentbin/imgbake-agent
GOFILES  := $(shell find . -name '*.go' -not -path './.git/*')
TEST_TIMEOUT ?= 50m
FUZZTIME ?= 30s

.PHONY: all build agent deps test unit vmtest demo bench fuzz vet fmt clean images

all: build

$(AGENT): $(GOFILES) go.mod go.sum
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o $(AGENT) ./cmd/imgbake-agent

agent: $(AGENT)

$(BIN): $(AGENT) $(GOFILES) go.mod go.sum
	$(GO) build -trimpath -o $(BIN) ./cmd/imgbake

build: $(BIN)

deps:
	bash scripts/install-deps.sh

images: deps
	bash testimages/build.sh

vet: $(AGENT)
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)
	$(GO) vet ./...

# Unit tests and the VM integration tests (real appliance under TCG).
test: $(AGENT) vet
	IMGBAKE_VM_TESTS=1 $(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...

# Fast tests only: no VM, no test images.
unit: $(AGENT)
	$(GO) test -count=1 ./...

demo: deps build
	bash scripts/demo.sh

# Side-by-side benchmarks against libguestfs (issue 6; see BENCHMARKS.md). Installs
# libguestfs-tools if missing. BENCH_QUICK=1 for one short pass; BENCH_FLAGS passes
# driver flags, e.g. BENCH_FLAGS='-w 1,2 -reps 5'. Results: bench/results/*.json.
bench:
	bash scripts/install-deps.sh --bench
	$(MAKE) build
	bash testimages/build.sh debian-gpt.qcow2 debian-python.raw
	$(GO) run ./scripts/bench -imgbake $(BIN) $(BENCH_FLAGS)

fuzz: $(AGENT)
	$(GO) test ./steps -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME)
	$(GO) test ./appliance/proto -run '^$$' -fuzz FuzzReadFrame -fuzztime $(FUZZTIME)
	$(GO) test ./fsops -run '^$$' -fuzz FuzzExtractTar -fuzztime $(FUZZTIME)
	$(GO) test ./appliance/passwd -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME)
	$(GO) test ./appliance/fstab -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME)
	$(GO) test ./appliance/distro -run '^$$' -fuzz FuzzParseRelease -fuzztime $(FUZZTIME)
	$(GO) test ./appliance/agent -run '^$$' -fuzz FuzzOrderFstab -fuzztime $(FUZZTIME)
	$(GO) test ./internal/vercmp -run '^$$' -fuzz FuzzCompare -fuzztime $(FUZZTIME)
	$(GO) test ./fsops -run '^$$' -fuzz FuzzPackageDatabases -fuzztime $(FUZZTIME)

clean:
	rm -rf bin $(AGENT)
