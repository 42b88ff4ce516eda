#!/usr/bin/env bash
# `make demo`: the lessons end to end on private labs: load xdp_pass, send
# traffic, read the counters, swap in xdp_drop, watch the drops; the parser
# dropping every other ping; one lab's traffic redirected into another; a
# capture sampled from XDP and read by tcpdump; generated traffic; ping6
# answered over AF_XDP; tear down.
set -euo pipefail
cd "$(dirname "$0")/.."

XDPCTL=${XDPCTL:-target/$(rustc -vV | sed -n 's/^host: //p')/release/xdpctl}
# A private state dir: the demo never touches your own environments.
TESTENV_STATEDIR=$(mktemp -d)
export XDPCTL TESTENV_STATEDIR
NAME=xdpdemo$$
NAME2=xdpdemo2$$
T=(testenv/testenv.sh --name "$NAME")
T2=(testenv/testenv.sh --name "$NAME2")

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

cleanup() {
	step "Tear down (program, pins, interfaces, namespace)"
	"${T[@]}" teardown || true
	"${T2[@]}" teardown >/dev/null 2>&1 || true
	rm -rf "$TESTENV_STATEDIR"
}
trap cleanup EXIT

step "Set up a lab: $NAME (outside) <-> veth0 in netns $NAME"
"${T[@]}" setup --legacy-ip

step "The programs xdpctl ships"
"$XDPCTL" list

step "Load xdp_pass on $NAME"
"$XDPCTL" load --dev "$NAME" --progname xdp_pass
"$XDPCTL" status --dev "$NAME"

step "Ping from inside the namespace while a separate process reads the pinned counters"
# Rates need two samples, both while the pings flow: totals now, rates a second later.
"${T[@]}" ping -c 20 -i 0.1 >/dev/null &
sleep 0.3
"$XDPCTL" stats --dev "$NAME" --interval 1 --count 2
wait

step "Swap in xdp_drop atomically (--force), keeping the counters (--reuse-maps)"
"$XDPCTL" load --dev "$NAME" --progname xdp_drop --force --reuse-maps

step "Ping again: every request is dropped before the stack sees it"
"${T[@]}" ping -c 5 -i 0.1 -W 1 | grep 'packet loss' || true
"$XDPCTL" stats --dev "$NAME" --interval 0.5 --count 1

step "Unload"
"$XDPCTL" unload --dev "$NAME"

step "packet01: xdp_parser drops echo requests with an even sequence number"
"$XDPCTL" load --dev "$NAME" --progname xdp_parser
"${T[@]}" ping -c 6 -i 0.1 -W 1 | grep 'packet loss' || true
"$XDPCTL" stats --dev "$NAME" --interval 0.5 --count 1

step "packet03: a second lab, and $NAME's traffic redirected into it"
"${T2[@]}" setup >/dev/null
"$XDPCTL" load --dev "$NAME" --progname xdp_redirect_map --force
"${T[@]}" redirect "$NAME" "$NAME2"
"${T2[@]}" exec timeout 5 tcpdump -nei veth0 -c 3 icmp6 and 'ip6[40] == 128' 2>/dev/null &
sleep 1
"${T[@]}" ping -c 3 -i 0.2 -W 1 >/dev/null 2>&1 || true
wait
"$XDPCTL" stats --dev "$NAME" --interval 0.5 --count 1
"$XDPCTL" unload --dev "$NAME"

step "tracing04: sample what $NAME receives into a pcap, read it back with tcpdump"
capture=$TESTENV_STATEDIR/demo.pcap
"$XDPCTL" sample --dev "$NAME" -w "$capture" --count 5 &
sampler=$!
for _ in $(seq 50); do
	grep -q xdp_sample <<<"$("$XDPCTL" status --dev "$NAME")" && break
	sleep 0.1
done
"${T[@]}" ping -c 5 -i 0.2 -W 1 >/dev/null 2>&1 || true
wait "$sampler"
tcpdump -r "$capture" -n 2>/dev/null

step "trafficgen: two seconds of UDP frames from inside the lab, dropped and counted by xdp_drop on $NAME"
"$XDPCTL" load --dev "$NAME" --progname xdp_drop
# stats samples while the frames flow (after they stop the rates are 0);
# trafficgen prints its start and its total only (--interval past its end).
"${T[@]}" exec "$XDPCTL" trafficgen --dev veth0 --duration 2 --rate 200000 --interval 5 &
sleep 0.5
"$XDPCTL" stats --dev "$NAME" --interval 1 --count 2
wait
"$XDPCTL" unload --dev "$NAME"

step "advanced03: an AF_XDP socket takes $NAME's frames; xdpctl answers ping6 in user space"
"$XDPCTL" afxdp --dev "$NAME" --poll --interval 1 --count 2 &
afxdp=$!
for _ in $(seq 50); do
	grep -q xdp_sock <<<"$("$XDPCTL" status --dev "$NAME")" && break
	sleep 0.1
done
addr6=$(ip -6 -o addr show dev "$NAME" scope global | awk '{print $4}' | cut -d/ -f1)
"${T[@]}" exec ping -6 -c 5 -i 0.2 -W 1 "$addr6" | grep 'packet loss' || true
wait "$afxdp"
