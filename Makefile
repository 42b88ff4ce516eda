# xdpctl. On a fresh Debian 12 machine `make demo` and `make test` do all the
# set-up themselves (system packages via apt-get, which needs root).

CARGO ?= cargo
# Where cargo puts the binary: its own CARGO_TARGET_DIR if one is set.
XDPCTL := $(or $(CARGO_TARGET_DIR),target)/release/xdpctl
# Building: clang/llvm for the BPF side, libelf/zlib/pkg-config for libbpf-sys.
# Testing: iproute2/ping/tcpdump for the lab, tshark to read captures back,
# libbpf-dev for objects the tests build, procps (sysctl, kill), jq and bpftool
# for the tests, strace to signal a command at each of its system calls,
# clang-format/shellcheck for lint, libxdp1 for libxdp's dispatcher object and
# xdp-tools for xdp-loader (the tests of how xdpctl meets libxdp; xdp-loader is
# also a peer of the load benchmark), prometheus for promtool and the server that
# scrapes the exporter in its tests.
DEPS := clang llvm libelf-dev zlib1g-dev pkg-config gcc make iproute2 iputils-ping procps \
	tcpdump tshark ethtool jq bpftool libbpf-dev strace clang-format shellcheck \
	libxdp1 xdp-tools prometheus
# Benchmarks only: libxdp's headers for the C reference of the AF_XDP benchmark.
BENCH_DEPS := libxdp-dev

.PHONY: all build deps lint test demo testenv testenv-teardown bench clean

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

build: deps
	$(CARGO) build --release --locked

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
