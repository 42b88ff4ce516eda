#!/usr/bin/env bash
# `make demo`: the basic lessons end to end on a private lab: load xdp_pass,
# send traffic, read the counters, swap in xdp_drop, watch the drops, tear down.
set -euo pipefail
cd "$(dirname "$0")/.."

XDPCTL=${XDPCTL:-target/release/xdpctl}
# A private state dir: the demo never touches your own environments.
TESTENV_STATEDIR=$(mktemp -d)
export XDPCTL TESTENV_STATEDIR
NAME=xdpdemo$$
T=(testenv/testenv.sh --name "$NAME")

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

cleanup() {
	step "Tear down (program, pins, interfaces, namespace)"
	"${T[@]}" teardown || true
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
"${T[@]}" ping -c 10 -i 0.1 >/dev/null &
"$XDPCTL" stats --dev "$NAME" --interval 1 --count 1
wait

step "Swap in xdp_drop atomically (--force), keeping the counters (--reuse-maps)"
"$XDPCTL" load --dev "$NAME" --progname xdp_drop --force --reuse-maps

step "Ping again: every request is dropped before the stack sees it"
"${T[@]}" ping -c 5 -i 0.1 -W 1 | grep 'packet loss' || true
"$XDPCTL" stats --dev "$NAME" --interval 0.5 --count 1

step "Unload"
"$XDPCTL" unload --dev "$NAME"
