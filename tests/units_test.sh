#!/usr/bin/env bash
# Each unit of dist/ started as systemd would start it, without systemd as
# PID 1: its ExecStart line (binary path swapped for the build's), under its
# CapabilityBoundingSet and NoNewPrivileges (setpriv), in a private mount
# namespace where /etc/xdpctl holds this test's config, inside a lab network
# namespace of our own. Then what a user would check: the program attached,
# a second start changing nothing, the watcher attaching a new interface,
# reloading on SIGHUP and stopping cleanly on SIGTERM, the exporter answering.
set -euo pipefail
cd "$(dirname "$0")/.."

XDPCTL=$(realpath "${XDPCTL:-target/$(rustc -vV | sed -n 's/^host: //p')/release/xdpctl}")
NS=xut$$
TMP=$(mktemp -d)
ETC=$TMP/etc
mkdir -m 0755 "$ETC"
made_etc=
pids=()

cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	for dev in "${NS}a" "${NS}w1"; do
		nsenter --net="/run/netns/$NS" "$XDPCTL" -q unload --dev "$dev" 2>/dev/null || true
	done
	ip netns del "$NS" 2>/dev/null || true
	[ -z "$made_etc" ] || rmdir /etc/xdpctl 2>/dev/null || true
	rm -rf "$TMP"
}
trap cleanup EXIT

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

# The bind mount needs a mount point; an existing /etc/xdpctl is only
# covered, in the private namespace, never written.
if [ ! -e /etc/xdpctl ]; then
	mkdir /etc/xdpctl
	made_etc=1
fi

ip netns add "$NS"
ip -n "$NS" link set lo up
ip -n "$NS" link add "${NS}a" type veth peer name "${NS}b"
ip -n "$NS" link set "${NS}a" up
ip -n "$NS" link set "${NS}b" up

# unit KEY: the value of KEY= in the unit's [Service] section.
unit_value() {
	sed -n "s/^$2=//p" "dist/$1" | head -1
}

# The unit's command line with this build's binary.
exec_line() {
	unit_value "$1" ExecStart | sed "s|^/usr/local/bin/xdpctl|$XDPCTL|"
}

# CapabilityBoundingSet=CAP_A CAP_B -> setpriv's -all,+a,+b
bounding_set() {
	local caps out=-all
	caps=$(unit_value "$1" CapabilityBoundingSet)
	[ -n "$caps" ] || fail "$1: no CapabilityBoundingSet"
	for c in $caps; do
		c=${c#CAP_}
		out+=",+${c,,}"
	done
	echo "$out"
}

# UNIT_CMD: unit $1's ExecStart as systemd would start it. Every step
# execs the next, so started in the background its pid is xdpctl's own
# (systemd's $MAINPID).
unit_cmd() {
	local unit=$1 nnp=() line
	[ "$(unit_value "$unit" NoNewPrivileges)" = yes ] && nnp=(--no-new-privs)
	read -r -a line <<<"$(exec_line "$unit")" # split into words, as systemd does
	# shellcheck disable=SC2016 # $1 is the inner sh's
	UNIT_CMD=(nsenter --net="/run/netns/$NS" unshare -m --propagation private
		sh -c 'mount --bind "$1" /etc/xdpctl && shift && exec "$@"' sh "$ETC"
		setpriv --bounding-set "$(bounding_set "$unit")" "${nnp[@]}" -- "${line[@]}")
}

prog_on() {
	ip -n "$NS" -j link show dev "$1" | jq -r '.[0].xdp.prog.name // empty'
}

write_config() {
	printf '%s\n' "$@" >"$ETC/xdpctl.toml.new"
	chmod 0644 "$ETC/xdpctl.toml.new"
	mv "$ETC/xdpctl.toml.new" "$ETC/xdpctl.toml"
}

# The example config parses and plans (its interfaces are absent here).
nsenter --net="/run/netns/$NS" "$XDPCTL" -q apply --diff -f dist/xdpctl.toml >/dev/null ||
	fail "dist/xdpctl.toml does not plan cleanly"

# xdpctl.service: a oneshot apply.
write_config '[[attach]]' "dev = \"${NS}a\"" 'program = "xdp_drop"' 'mode = "skb"'
unit_cmd xdpctl.service
"${UNIT_CMD[@]}" >"$TMP/out" 2>&1 || fail "xdpctl.service: $(cat "$TMP/out")"
[ "$(prog_on "${NS}a")" = xdp_drop ] || fail "xdpctl.service: xdp_drop not attached"
id=$(ip -n "$NS" -j link show dev "${NS}a" | jq '.[0].xdp.prog.id')
"${UNIT_CMD[@]}" >"$TMP/out" 2>&1 || fail "xdpctl.service again: $(cat "$TMP/out")"
grep -q "nothing to do" "$TMP/out" || fail "second start: $(cat "$TMP/out")"
[ "$(ip -n "$NS" -j link show dev "${NS}a" | jq '.[0].xdp.prog.id')" = "$id" ] ||
	fail "second start replaced the program"
echo "ok: xdpctl.service attaches, and a second start changes nothing"

# xdpctl-watch.service: new interfaces, ExecReload (SIGHUP), stop (SIGTERM).
write_config '[[attach]]' "dev = \"${NS}w*\"" 'program = "xdp_pass"' 'mode = "skb"'
unit_cmd xdpctl-watch.service
"${UNIT_CMD[@]}" >"$TMP/watch" 2>&1 &
watch=$!
pids+=("$watch")
sleep 0.5
ip -n "$NS" link add "${NS}w1" type veth peer name "${NS}x1"
for _ in $(seq 20); do
	[ "$(prog_on "${NS}w1")" = xdp_pass ] && break
	sleep 0.1
done
[ "$(prog_on "${NS}w1")" = xdp_pass ] || fail "watch: ${NS}w1 not attached within 2 s: $(cat "$TMP/watch")"
# ExecReload is `kill -HUP $MAINPID`: the watcher stays up.
reload=$(unit_value xdpctl-watch.service ExecReload)
# shellcheck disable=SC2016 # systemd's $MAINPID, literally
[ "$reload" = '/bin/kill -HUP $MAINPID' ] || fail "ExecReload changed: $reload"
# A reread says so even when nothing changes: the output grows.
said=$(wc -c <"$TMP/watch")
kill -HUP "$watch" || fail "no watcher to reload"
for _ in $(seq 20); do
	[ "$(wc -c <"$TMP/watch")" -gt "$said" ] && break
	sleep 0.1
done
kill -0 "$watch" 2>/dev/null || fail "watch died on SIGHUP: $(cat "$TMP/watch")"
[ "$(wc -c <"$TMP/watch")" -gt "$said" ] || fail "SIGHUP did not reread the file: $(cat "$TMP/watch")"
[ "$(readlink "/proc/$watch/exe")" = "$XDPCTL" ] || fail "the watcher's pid is not xdpctl's"
kill -TERM "$watch" || fail "no watcher to stop"
rc=0
wait "$watch" || rc=$?
[ "$rc" -eq 0 ] || fail "watch exit $rc on SIGTERM: $(cat "$TMP/watch")"
[ "$(prog_on "${NS}w1")" = xdp_pass ] || fail "stopping the watcher detached ${NS}w1"
echo "ok: xdpctl-watch.service attaches new interfaces, reloads, stops with exit 0"

# xdpctl-exporter.service: the metrics of the interface the oneshot loaded.
unit_cmd xdpctl-exporter.service
"${UNIT_CMD[@]}" >"$TMP/exporter" 2>&1 &
pids+=("$!")
listen=$(exec_line xdpctl-exporter.service | sed -n 's/.*--listen \([^ ]*\).*/\1/p')
[ -n "$listen" ] || fail "xdpctl-exporter.service: no --listen in ExecStart"
metrics=
for _ in $(seq 30); do
	# shellcheck disable=SC2016 # $1 is the inner bash's
	metrics=$(nsenter --net="/run/netns/$NS" bash -c \
		'exec 3<>"/dev/tcp/${1%:*}/${1##*:}" && printf "GET /metrics HTTP/1.0\r\n\r\n" >&3 && cat <&3' \
		sh "$listen" 2>/dev/null) && break
	sleep 0.1
done
grep -q "^xdpctl_xdp_program_info{dev=\"${NS}a\".*program=\"xdp_drop\"" <<<"$metrics" ||
	fail "exporter: no info metric for ${NS}a: $(cat "$TMP/exporter") $metrics"
grep -q "^xdpctl_xdp_packets_total{dev=\"${NS}a\"" <<<"$metrics" ||
	fail "exporter: no packet counters for ${NS}a"
echo "ok: xdpctl-exporter.service serves the metrics of the loaded interface"
