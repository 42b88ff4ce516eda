#!/usr/bin/env bash
# testenv.sh end to end: setup, traffic through xdp_pass and xdp_drop with the
# counters read back, status, exec, redirect, VLANs, teardown leaving nothing behind.
set -euo pipefail
cd "$(dirname "$0")/.."

XDPCTL=${XDPCTL:-target/$(rustc -vV | sed -n 's/^host: //p')/release/xdpctl}
TESTENV_STATEDIR=$(mktemp -d)
export XDPCTL TESTENV_STATEDIR
NAME=xte$$
T=testenv/testenv.sh

cleanup() {
	"$T" --name "$NAME" teardown >/dev/null 2>&1 || true
	"$T" --name "${NAME}v" teardown >/dev/null 2>&1 || true
	"$T" --name "${NAME}r" teardown >/dev/null 2>&1 || true
	rm -rf "$TESTENV_STATEDIR"
}
trap cleanup EXIT

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

counter() { # action field
	"$T" stats --json --count 1 --interval 0.05 | jq -r ".actions.$1.$2"
}

no_program_left() { # name
	[[ ! -e /sys/fs/bpf/$1 ]] || fail "pins /sys/fs/bpf/$1 left behind"
	if grep -qs "\"ifname\": \"$1\"" /run/xdpctl/*.json; then
		fail "xdpctl's record of $1 left behind"
	fi
}

gone() { # name
	! ip link show dev "$1" >/dev/null 2>&1 || fail "interface $1 left behind"
	! grep -qw "$1" <<<"$(ip netns list)" || fail "netns $1 left behind"
	[[ ! -e $TESTENV_STATEDIR/$1.env ]] || fail "state of $1 left behind"
	no_program_left "$1"
}

"$T" setup --name "$NAME" --legacy-ip
num=$(sed -n 's/^NUM=//p' "$TESTENV_STATEDIR/$NAME.env")
grep -q "fc00:dead:cafe:$num::1/64" <<<"$(ip -6 addr show dev "$NAME")" || fail "outer IPv6 address"
grep -q "10.11.$num.1/24" <<<"$(ip -4 addr show dev "$NAME")" || fail "outer IPv4 address"
grep -q "fc00:dead:cafe:$num::2/64" <<<"$("$T" exec ip -6 addr show dev veth0)" || fail "inner IPv6 address"
grep -q "10.11.$num.2/24" <<<"$("$T" exec -- ip -4 -o addr show dev veth0)" || fail "inner IPv4 address"

# Options after a command that runs another are that command's: -n is not --name.
[[ $("$T" exec echo -n -c 1) == "-c 1" ]] || fail "exec passes -n and -c through"
( sleep 1 && "$T" ping -c 3 -i 0.2 -W 1 >/dev/null 2>&1 ) &
captured=$(timeout 10 "$T" tcpdump -n -c 1 -Q in 'icmp6 and ip6[40] == 128' 2>/dev/null) || fail "tcpdump -n -c 1: $captured"
wait
grep -q "ICMP6, echo request" <<<"$captured" || fail "tcpdump -n -c 1 captured: $captured"

"$T" load --progname xdp_pass
grep -q xdp_pass <<<"$("$T" status)" || fail "status shows the program"
# 3 IPv4 and 3 IPv6 echo requests arrive at the outer interface.
"$T" ping -c 3 -i 0.1 >/dev/null || fail "ping through xdp_pass"
pass=$(counter XDP_PASS packets)
[[ $pass -ge 6 ]] || fail "XDP_PASS counted $pass packets, expected at least 6"

"$T" load --progname xdp_drop --force
if "$T" ping -c 2 -i 0.1 -W 1 >/dev/null 2>&1; then fail "ping must fail through xdp_drop"; fi
drop=$(counter XDP_DROP packets)
[[ $drop -ge 4 ]] || fail "XDP_DROP counted $drop packets, expected at least 4 (IPv4 and IPv6)"

[[ -e /sys/fs/bpf/$NAME/xdp_stats_map ]] || fail "load pinned xdp_stats_map"
"$T" reset
no_program_left "$NAME"
grep -q "10.11\." <<<"$(ip -4 addr show dev "$NAME")" || fail "reset keeps --legacy-ip"

# Teardown removes a loaded program's pins too.
"$T" load --progname xdp_pass
[[ -e /sys/fs/bpf/$NAME/xdp_stats_map ]] || fail "load pinned xdp_stats_map"
"$T" teardown
gone "$NAME"

# redirect ENV1 ENV2: the first lab's pings reach the second lab's inside.
"$T" setup --name "$NAME" >/dev/null
"$T" setup --name "${NAME}r" >/dev/null
"$T" --name "$NAME" load --progname xdp_redirect_map >/dev/null
inner2=$("$T" --name "${NAME}r" exec cat /sys/class/net/veth0/address)
grep -q -- "-> $inner2$" <<<"$("$T" redirect "$NAME" "${NAME}r")" || fail "redirect names the second lab's inner MAC"
if "$T" --name "$NAME" ping -c 3 -i 0.1 -W 1 >/dev/null 2>&1; then fail "pings go to the other lab"; fi
redirected=$("$T" --name "$NAME" stats --json --count 1 --interval 0.05 | jq -r .actions.XDP_REDIRECT.packets)
[[ $redirected -ge 3 ]] || fail "XDP_REDIRECT counted $redirected packets, expected at least 3"
"$T" --name "$NAME" teardown
"$T" --name "${NAME}r" teardown
gone "$NAME"
gone "${NAME}r"

# --vlan: sub-interfaces where the kernel has 802.1Q, else a clean refusal.
if "$T" setup --name "${NAME}v" --vlan 2>"$TESTENV_STATEDIR/err"; then
	ip link show dev "${NAME}v.1" >/dev/null || fail "VLAN 1 outside"
	"$T" --name "${NAME}v" exec ip link show dev veth0.2 >/dev/null || fail "VLAN 2 inside"
	"$T" --name "${NAME}v" teardown
else
	grep -q "CONFIG_VLAN_8021Q" "$TESTENV_STATEDIR/err" || fail "--vlan error: $(cat "$TESTENV_STATEDIR/err")"
fi
gone "${NAME}v"

# As root the alias runs the script itself; as another user through sudo.
grep -q "^alias t='[^ ]*/testenv.sh'$" <<<"$("$T" alias 2>/dev/null)" || fail "alias as root: $("$T" alias)"
fake=$(mktemp -d)
printf '#!/bin/sh\nexec "$@"\n' >"$fake/sudo"
chmod 0755 "$fake" "$fake/sudo"
as_nobody=$(PATH=$fake:$PATH setpriv --reuid=nobody --regid=nogroup --clear-groups "$T" alias 2>/dev/null)
rm -rf "$fake"
grep -q "^alias t='sudo [^ ]*/testenv.sh'$" <<<"$as_nobody" || fail "alias as a user: $as_nobody"
"$T" setup --name "bad.name" 2>/dev/null && fail "a name with '.' must be refused"
gone "bad.name"
# State another user could have written is never acted on, and never run.
evil=$TESTENV_STATEDIR/evil
mkdir -m 0777 "$evil"
if TESTENV_STATEDIR=$evil "$T" setup --name "${NAME}e" 2>"$TESTENV_STATEDIR/err"; then
	TESTENV_STATEDIR=$evil "$T" --name "${NAME}e" teardown >/dev/null 2>&1 || true
	fail "a state directory others can write was used"
fi
grep -q "not root's alone" "$TESTENV_STATEDIR/err" || fail "state dir: $(cat "$TESTENV_STATEDIR/err")"
gone "${NAME}e"
chmod 0700 "$evil"
printf 'NAME=x\nNUM=1\nLEGACY_IP=0\nVLAN=0\n' >"$evil/x.env"
chown nobody "$evil/x.env"
TESTENV_STATEDIR=$evil "$T" --name x status 2>"$TESTENV_STATEDIR/err" && fail "another user's state file was used"
grep -q "not root's alone" "$TESTENV_STATEDIR/err" || fail "state file: $(cat "$TESTENV_STATEDIR/err")"
# shellcheck disable=SC2016 # the $(...) is the planted code, kept literal
printf 'NAME=y\nNUM=1$(touch %s)\nLEGACY_IP=0\nVLAN=0\n' "$evil/ran" >"$evil/y.env"
TESTENV_STATEDIR=$evil "$T" --name y status 2>/dev/null && fail "a damaged state file was used"
[[ ! -e $evil/ran ]] || fail "a state file was run as code"

echo "testenv: all checks passed"
