#!/usr/bin/env bash
# `make bench`: every benchmark in one invocation; results to bench/results.md.
set -euo pipefail
cd "$(dirname "$0")/.."

# Where cargo builds: its own CARGO_TARGET_DIR if one is set.
target=${CARGO_TARGET_DIR:-target}
mkdir -p "$target/bench"
clang -O2 -g -target bpf "-I/usr/include/$(gcc -dumpmachine)" \
	-c bench/xdp_ref.bpf.c -o "$target/bench/xdp_ref.o"
export XDPCTL_BENCH_REF=$target/bench/xdp_ref.o
# The AF_XDP reference: the tutorial's user-space side on libxdp, loading
# the same xdp_sock as xdpctl.
clang -O2 -g -target bpf -Iinclude "-I/usr/include/$(gcc -dumpmachine)" \
	-c bpf/af_xdp_kern.bpf.c -o "$target/bench/af_xdp_kern.o"
gcc -O2 -Wall -o "$target/bench/xsk_ref" bench/xsk_ref.c -lxdp -lbpf
export XDPCTL_BENCH_XSK_OBJ=$target/bench/af_xdp_kern.o
export XDPCTL_BENCH_XSK_REF=$target/bench/xsk_ref
export XDPCTL=${XDPCTL:-$target/release/xdpctl}

out=bench/results.md
trap 'rm -f "$out.tmp"' EXIT
{
	echo "# Benchmark results"
	echo
	echo "$(date -u +%Y-%m-%d) · kernel $(uname -r) · $(nproc) CPUs · $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
	echo
	cargo bench --locked -q --bench test_run
	cargo bench --locked -q --bench load_unload
	cargo bench --locked -q --bench sample
	cargo bench --locked -q --bench afxdp
} | tee "$out.tmp"
mv "$out.tmp" "$out"
echo "written to $out"
