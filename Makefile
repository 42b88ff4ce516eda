# xdpctl. On a fresh Debian 12 machine `make demo` and `make test` do all the
# set-up themselves (system packages via apt-get, which needs root).

CARGO ?= cargo
# Where cargo puts the binary: its own CARGO_TARGET_DIR if one is set, under
# the host's tuple (.cargo/config.toml builds for it by name, static-pie).
HOST := $(shell rustc -vV | sed -n 's/^host: //p')
TARGET := $(or $(CARGO_TARGET_DIR),target)/$(HOST)
XDPCTL := $(TARGET)/release/xdpctl
# Man pages and completion scripts, made from the built binary's clap tree.
GEN := $(TARGET)/release/gen
# Building: clang/llvm for the BPF side, libelf/zlib/pkg-config for libbpf-sys.
# Testing: iproute2/ping/tcpdump for the lab, tshark to read captures back,
# libbpf-dev for objects the tests build, procps (sysctl, kill), jq and bpftool
# for the tests, strace to signal a command at each of its system calls,
# clang-format/shellcheck for lint, libxdp1 for libxdp's dispatcher object and
# xdp-tools for xdp-loader (the tests of how xdpctl meets libxdp; xdp-loader is
# also a peer of the load benchmark); man-db and groff-base to render the man
# pages with warnings on; systemd for systemd-analyze verify of the units;
# prometheus for promtool and the server that scrapes the exporter in its tests;
# tmux to drive `top`'s full-screen view in its test.
DEPS := clang llvm libelf-dev zlib1g-dev pkg-config gcc make iproute2 iputils-ping procps \
	tcpdump tshark ethtool jq bpftool libbpf-dev strace clang-format shellcheck \
	libxdp1 xdp-tools man-db groff-base systemd prometheus tmux
# Benchmarks only: libxdp's headers for the C reference of the AF_XDP benchmark.
BENCH_DEPS := libxdp-dev

# `make install PREFIX=/usr DESTDIR=/tmp/pkg`: the usual GNU variables.
PREFIX ?= /usr/local
DESTDIR ?=
UNITS := $(wildcard dist/*.service)

.PHONY: all build deps lint test demo testenv testenv-teardown bench clean install

all: build

# Install only what is missing, so repeated runs stay fast.
define apt_install
	@missing=$$(for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" -ne 0 ]; then \
			echo "missing packages:" $$missing "- run as root or apt-get install them"; exit 1; \
		fi; \
		echo "installing:" $$missing; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
endef

deps:
	$(call apt_install,$(DEPS))

# The man pages and completions come from the binary (`xdpctl manpages`, a
# hidden subcommand): build.rs cannot see the clap tree of the crate it builds.
build: deps
	$(CARGO) build --release --locked
	rm -rf $(GEN) && mkdir -p $(GEN)/man $(GEN)/completions
	$(XDPCTL) -q manpages $(GEN)/man
	$(XDPCTL) completions bash >$(GEN)/completions/xdpctl
	$(XDPCTL) completions zsh >$(GEN)/completions/_xdpctl
	$(XDPCTL) completions fish >$(GEN)/completions/xdpctl.fish

lint: deps
	$(CARGO) fmt --check
	$(CARGO) clippy --release --all-targets --locked -- -D warnings
	clang-format --dry-run -Werror bpf/*.c include/*.h $(wildcard benches/ref/*.c)
	shellcheck testenv/*.sh tests/*.sh benches/run.sh .ci/run

# Everything CI runs. Needs root: the tests attach programs to their own veths;
# as a normal user, plain `cargo test` runs the tests that need no root.
test: build lint
	$(CARGO) test --release --locked -- --include-ignored
	XDPCTL=$(XDPCTL) tests/testenv_test.sh
	XDPCTL=$(XDPCTL) tests/install_test.sh
	XDPCTL=$(XDPCTL) tests/units_test.sh

# Installs what `make build` made, without building: as root, cargo may be
# missing or make root-owned files in the target dir. The units' ExecStart
# point at the installed binary. The example config goes under doc/; the
# live one in /etc/xdpctl is the admin's and never written here.
install:
	@test -x $(XDPCTL) -a -d $(GEN)/man || { echo "run \`make build\` first"; exit 1; }
	umask 022; \
	d="$(DESTDIR)$(PREFIX)"; \
	install -d "$$d/bin" "$$d/share/man/man1" "$$d/share/bash-completion/completions" \
		"$$d/share/zsh/site-functions" "$$d/share/fish/vendor_completions.d" \
		"$$d/lib/systemd/system" && \
	install -m 0755 $(XDPCTL) "$$d/bin/xdpctl" && \
	install -m 0644 $(GEN)/man/*.1 "$$d/share/man/man1/" && \
	install -m 0644 $(GEN)/completions/xdpctl "$$d/share/bash-completion/completions/xdpctl" && \
	install -m 0644 $(GEN)/completions/_xdpctl "$$d/share/zsh/site-functions/_xdpctl" && \
	install -m 0644 $(GEN)/completions/xdpctl.fish \
		"$$d/share/fish/vendor_completions.d/xdpctl.fish" && \
	for unit in $(UNITS); do \
		dest="$$d/lib/systemd/system/$${unit##*/}"; \
		sed 's|/usr/local/bin/xdpctl|$(PREFIX)/bin/xdpctl|g' "$$unit" >"$$dest" && \
		chmod 0644 "$$dest" || exit 1; \
	done && \
	if [ -f dist/xdpctl.toml ]; then \
		install -d "$$d/share/doc/xdpctl" && \
		install -m 0644 dist/xdpctl.toml "$$d/share/doc/xdpctl/xdpctl.toml"; \
	fi

demo: build
	XDPCTL=$(XDPCTL) testenv/demo.sh

testenv: build
	XDPCTL=$(XDPCTL) testenv/testenv.sh setup --legacy-ip

testenv-teardown:
	XDPCTL=$(XDPCTL) testenv/testenv.sh teardown

# Needs root; writes benches/results.md, benches/results.json and the README summary.
bench: build
	$(call apt_install,$(BENCH_DEPS))
	XDPCTL=$(XDPCTL) benches/run.sh

clean:
	$(CARGO) clean
