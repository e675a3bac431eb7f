# imgbake — see README.md.
GO       ?= go
BIN      := bin/imgbake
AGENT    := appliance/agentbin/imgbake-agent
GOFILES  := $(shell find . -name '*.go' -not -path './.git/*')
TEST_TIMEOUT ?= 50m
FUZZTIME ?= 30s

# Where `make install` puts things (DESTDIR is prepended to each).
PREFIX      ?= /usr/local
BINDIR      ?= $(PREFIX)/bin
MANDIR      ?= $(PREFIX)/share/man
DATADIR     ?= $(PREFIX)/share/imgbake
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR  ?= $(PREFIX)/share/zsh/site-functions

# The version and commit the binary reports, from git (scripts/version.sh
# makes a Debian-valid version of git describe). Evaluated once.
VERSION ?= $(shell bash scripts/version.sh)
VERSION := $(VERSION)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null)$(shell git diff --quiet HEAD 2>/dev/null || echo -dirty)
COMMIT  := $(COMMIT)
# The commit's time dates the man pages and the package (reproducible builds).
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || date +%s)
export SOURCE_DATE_EPOCH
LDFLAGS := -X github.com/imgbake/imgbake/bake.Version=$(VERSION) -X github.com/imgbake/imgbake/bake.Commit=$(COMMIT)

# The installed binary: stripped, position-independent and with immediate
# binding (read-only relocations after start), as Debian's hardening wants.
RELEASE_BIN := bin/release/imgbake
MANPAGES    := bin/man/imgbake.1 bin/man/imgbake-recipe.5
COMPLETIONS := bin/completion/imgbake.bash bin/completion/_imgbake
DEB_WORK    ?= bin/deb
DEB_OUT     ?= bin

.PHONY: all build agent deps test unit vmtest demo bench fuzz vet fmt clean images docs install uninstall deb

all: build

$(AGENT): $(GOFILES) go.mod go.sum
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o $(AGENT) ./cmd/imgbake-agent

agent: $(AGENT)

# Rewritten only when the version or commit changes, so that a new commit
# relinks the binaries even when no Go file changed.
bin/.buildinfo: FORCE
	@mkdir -p bin
	@echo '$(VERSION) $(COMMIT)' | cmp -s - $@ || echo '$(VERSION) $(COMMIT)' > $@

$(BIN): $(AGENT) $(GOFILES) go.mod go.sum bin/.buildinfo
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/imgbake

$(RELEASE_BIN): $(AGENT) $(GOFILES) go.mod go.sum bin/.buildinfo
	$(GO) build -trimpath -buildmode=pie -ldflags '-s -w -linkmode=external -extldflags=-Wl,-z,relro,-z,now $(LDFLAGS)' -o $(RELEASE_BIN) ./cmd/imgbake

build: $(BIN)

# Man pages and completion scripts, generated from the command definitions
# and the step registry by the binary itself.
$(MANPAGES) &: $(BIN)
	$(BIN) gen-man bin/man

bin/completion/imgbake.bash: $(BIN)
	@mkdir -p bin/completion
	$(BIN) completion bash > $@.tmp && mv $@.tmp $@

bin/completion/_imgbake: $(BIN)
	@mkdir -p bin/completion
	$(BIN) completion zsh > $@.tmp && mv $@.tmp $@

docs: $(MANPAGES) $(COMPLETIONS)

# The layout is documented in the README ("Installing") and checked by
# TestMakeInstallLayout.
install: $(RELEASE_BIN) docs
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 \
		$(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(ZSHCOMPDIR) $(DESTDIR)$(DATADIR)
	install -m 0755 $(RELEASE_BIN) $(DESTDIR)$(BINDIR)/imgbake
	install -m 0644 bin/man/imgbake.1 $(DESTDIR)$(MANDIR)/man1/imgbake.1
	install -m 0644 bin/man/imgbake-recipe.5 $(DESTDIR)$(MANDIR)/man5/imgbake-recipe.5
	install -m 0644 bin/completion/imgbake.bash $(DESTDIR)$(BASHCOMPDIR)/imgbake
	install -m 0644 bin/completion/_imgbake $(DESTDIR)$(ZSHCOMPDIR)/_imgbake
	rm -rf $(DESTDIR)$(DATADIR)/ansible_collections
	find ansible_collections -name __pycache__ -prune -o -type f ! -name '*.pyc' -print | \
		while read -r f; do install -D -m 0644 "$$f" "$(DESTDIR)$(DATADIR)/$$f" || exit 1; done

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/imgbake $(DESTDIR)$(MANDIR)/man1/imgbake.1 $(DESTDIR)$(MANDIR)/man5/imgbake-recipe.5 \
		$(DESTDIR)$(BASHCOMPDIR)/imgbake $(DESTDIR)$(ZSHCOMPDIR)/_imgbake
	rm -rf $(DESTDIR)$(DATADIR)/ansible_collections
	-rmdir $(DESTDIR)$(DATADIR)

# $(DEB_OUT)/imgbake_VERSION_amd64.deb: the install tree under /usr, packaged
# by nfpm (packaging/nfpm.yaml; scripts/build-deb.sh prepares the tree).
deb: $(RELEASE_BIN) docs
	rm -rf $(DEB_WORK)
	$(MAKE) install VERSION='$(VERSION)' COMMIT='$(COMMIT)' DESTDIR=$(abspath $(DEB_WORK))/stage \
		PREFIX=/usr ZSHCOMPDIR=/usr/share/zsh/vendor-completions
	bash scripts/build-deb.sh $(DEB_WORK) '$(VERSION)' '$(COMMIT)' $(DEB_OUT)

FORCE:

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
	bash testimages/build.sh debian-gpt.qcow2 debian-python.raw debian-boot.qcow2
	$(GO) run ./scripts/bench -imgbake $(BIN) $(BENCH_FLAGS)

fuzz: $(AGENT)
	$(GO) test ./steps -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME)
	$(GO) test ./appliance/proto -run '^$$' -fuzz FuzzReadFrame -fuzztime $(FUZZTIME)
	$(GO) test ./fsops -run '^$$' -fuzz FuzzExtractTar -fuzztime $(FUZZTIME)
	$(GO) test ./fsops -run '^$$' -fuzz FuzzSetPacmanRepo -fuzztime $(FUZZTIME)
	$(GO) test ./appliance/passwd -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME)
	$(GO) test ./appliance/fstab -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME)
	$(GO) test ./appliance/distro -run '^$$' -fuzz FuzzParseRelease -fuzztime $(FUZZTIME)
	$(GO) test ./appliance/agent -run '^$$' -fuzz FuzzOrderFstab -fuzztime $(FUZZTIME)
	# Its inputs are disk heads of tens of KiB: minimizing each new one at length stalls the run.
	$(GO) test ./appliance/agent -run '^$$' -fuzz FuzzGrowPartitionTable -fuzztime $(FUZZTIME) -fuzzminimizetime 5s
	$(GO) test ./appliance/agent -run '^$$' -fuzz FuzzBtrfsSearch -fuzztime $(FUZZTIME)
	$(GO) test ./appliance/agent -run '^$$' -fuzz FuzzMDSuper -fuzztime $(FUZZTIME)
	$(GO) test ./appliance/luks -run '^$$' -fuzz FuzzRead -fuzztime $(FUZZTIME)
	$(GO) test ./appliance/luks -run '^$$' -fuzz FuzzSparse -fuzztime $(FUZZTIME)
	$(GO) test ./internal/vercmp -run '^$$' -fuzz FuzzCompare -fuzztime $(FUZZTIME)
	$(GO) test ./fsops -run '^$$' -fuzz FuzzPackageDatabases -fuzztime $(FUZZTIME)

clean:
	rm -rf bin $(AGENT)
