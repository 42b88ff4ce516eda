#!/usr/bin/env bash
# `make bench`: every benchmark in one invocation. Each prints its Markdown
# section (gathered in benches/results.md) and writes its rows as JSON; the rows
# become benches/results.json and the summary table between the bench markers
# in README.md.
set -euo pipefail
cd "$(dirname "$0")/.."

# The README's summary: one line per row with a peer that has a goal, or
# none (the no-op program rows stay in results.json and results.md).
# `benches/run.sh --summary` redoes just this from benches/results.json.
summary() {
	jq -r '
		def n: if . >= 100 then round else (. * 100 | round) / 100 end | tostring;
		def two: (. * 100 | round) as $c | "\($c / 100 | floor).\($c % 100 | tostring | if length < 2 then "0" + . else . end)";
		"\(.date) · \(.machine) · \(.commit)",
		"",
		"| benchmark | case | xdpctl | peer, same run | ratio | goal | met |",
		"|---|---|---:|---|---:|---:|---|",
		(.rows[] | select(.peer_name != "no-op program")
		| "| \(.benchmark) | \(.case) | \(.xdpctl | n) \(.unit) | \(.peer_name): \(.peer | n) \(.unit) | \(.ratio | two)× | \(
			if .goal | type == "object" then
				(if .goal.at_most then "≤ \(.goal.at_most)×" else "≥ \(.goal.at_least)×" end)
			else "–" end) | \(
			if .met == true then "yes" elif .met == false then "**no**" else "–" end) |")
	' benches/results.json
}
readme() {
	awk -v table="$(summary)" '
		/<!-- bench-summary:end -->/ { print table; skip = 0 }
		!skip { print }
		/<!-- bench-summary:begin -->/ { skip = 1 }
	' README.md >README.md.tmp
	mv README.md.tmp README.md
}
if [[ ${1:-} == --summary ]]; then
	readme
	exit
fi


# Where cargo builds: its own CARGO_TARGET_DIR if one is set.
target=${CARGO_TARGET_DIR:-target}
mkdir -p "$target/bench"
clang -O2 -g -target bpf "-I/usr/include/$(gcc -dumpmachine)" \
	-c benches/ref/xdp_ref.bpf.c -o "$target/bench/xdp_ref.o"
export XDPCTL_BENCH_REF=$target/bench/xdp_ref.o
# The shipped programs with the stats helper's sampling path (off) and
# without it, compiled alike: the cost of the path while off.
for variant in sampling nosampling; do
	flag=()
	[[ $variant == nosampling ]] && flag=(-DXDP_STATS_NO_SAMPLING)
	clang -O2 -g -target bpf -Iinclude "-I/usr/include/$(gcc -dumpmachine)" "${flag[@]}" \
		-c bpf/xdp_prog_kern.bpf.c -o "$target/bench/xdp_prog_$variant.o"
done
export XDPCTL_BENCH_SAMPLING_OBJ=$target/bench/xdp_prog_sampling.o
export XDPCTL_BENCH_NOSAMPLING_OBJ=$target/bench/xdp_prog_nosampling.o
# The AF_XDP reference: the tutorial's user-space side on libxdp, loading
# the same xdp_sock as xdpctl.
clang -O2 -g -target bpf -Iinclude "-I/usr/include/$(gcc -dumpmachine)" \
	-c bpf/af_xdp_kern.bpf.c -o "$target/bench/af_xdp_kern.o"
gcc -O2 -Wall -o "$target/bench/xsk_ref" benches/ref/xsk_ref.c -lxdp -lbpf
gcc -O2 -Wall -Iinclude -o "$target/bench/stats_ref" benches/ref/stats_ref.c -lbpf
export XDPCTL_BENCH_XSK_OBJ=$target/bench/af_xdp_kern.o
export XDPCTL_BENCH_XSK_REF=$target/bench/xsk_ref
export XDPCTL_BENCH_STATS_REF=$target/bench/stats_ref
export XDPCTL=${XDPCTL:-$target/$(rustc -vV | sed -n 's/^host: //p')/release/xdpctl}
XDPCTL_BENCH_JSON=$(mktemp -d)
export XDPCTL_BENCH_JSON

out=benches/results.md
trap 'rm -rf "$out.tmp" "$XDPCTL_BENCH_JSON" README.md.tmp' EXIT

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
mem=$(awk '/^MemTotal/ {printf "%.0f", $2 / 1048576}' /proc/meminfo)
machine="$cpu, $(nproc) vCPUs, $mem GiB, kernel $(uname -r), Debian $(cat /etc/debian_version)"
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
date=$(date -u +%Y-%m-%d)
{
	echo "# Benchmark results"
	echo
	echo "$date · $machine · $commit"
	echo
	for bench in test_run veth_drop load_unload stats_read sample afxdp scale upgrade; do
		cargo bench --locked -q --bench "$bench"
	done
} | tee "$out.tmp"
mv "$out.tmp" "$out"

# Rows in the order of issue 6's table, then issue 18's, then issue 19's.
order='["prog_run_ns", "veth_drop_mpps", "load_ms", "sample_pps", "afxdp_mpps", "stats_read_us",
	"scale_status_ms", "scale_load_ms", "scale_stats_all_ms", "upgrade_lost", "upgrade_mode_gap_ms"]'
jq -s --arg machine "$machine" --arg date "$date" --arg commit "$commit" --argjson order "$order" \
	'{date: $date, machine: $machine, commit: $commit,
	  rows: (add | sort_by(.benchmark as $b | $order | index($b)))}' \
	"$XDPCTL_BENCH_JSON"/*.json >benches/results.json

readme
echo "written: $out, benches/results.json, and the summary in README.md"
