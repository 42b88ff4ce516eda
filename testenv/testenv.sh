#!/usr/bin/env bash
# The XDP tutorial's test lab: a veth pair whose outer end (named after the
# environment) stays in this namespace and whose inner end (veth0) lives in a
# network namespace of the same name. load/unload/stats/redirect call xdpctl.
# The tests' and benches' lab, tests/common/lab.rs, builds the same pair.
set -Eeuo pipefail # -E: the ERR trap of setup also fires inside functions
# State is root's alone, whatever umask the caller had.
umask 077

STATEDIR=${TESTENV_STATEDIR:-/run/xdpctl-testenv}
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
VLAN_IDS=(1 2)
INNER=veth0

usage() {
	cat <<EOF
Usage: $(basename "$0") [options] <command> [args]

Options go before the command (setup, teardown, reset, status and alias also
take them after it); everything after exec, ping, tcpdump, load, unload, stats
and redirect is passed on as it is.

Commands:
  setup                  create an environment
  teardown               remove it: XDP program, pins, interfaces, namespace
  reset                  teardown, then setup again with the same options
  enter                  open a shell inside the namespace
  exec CMD...            run CMD inside the namespace
  ping [ARGS...]         ping the outer address from inside (default -c 3; IPv4
                         first with --legacy-ip)
  tcpdump [ARGS...]      capture on the outer interface
  status                 show the environment and its XDP program
  load [ARGS...]         xdpctl load --dev <env> ARGS
  unload [ARGS...]       xdpctl unload --dev <env> ARGS
  stats [ARGS...]        xdpctl stats --dev <env> ARGS
  redirect ENV1 ENV2     xdpctl redirect --dev ENV1 --redirect-dev ENV2
  alias                  print a shell alias for this script (with sudo unless root)

Options:
  -n, --name NAME        environment name (default: the last one set up;
                         setup picks xdptest, xdptest2, ... when none is given)
  --legacy-ip            also address IPv4 10.11.N.1/24 (outside), .2 (inside)
  --vlan                 also create VLAN sub-interfaces ${VLAN_IDS[*]} on both ends
  -h, --help             this text

Addresses of environment number N: fc00:dead:cafe:N::1/64 outside, ::2 inside;
VLAN V: fc00:dead:V:N::1/64 and ::2 (IPv4 10.(11+V).N.1/24 and .2).
Set XDPCTL to choose the xdpctl binary, TESTENV_STATEDIR to move the state.
EOF
}

die() {
	echo "testenv: error: $*" >&2
	exit 1
}

find_xdpctl() {
	# cargo builds for the host by name (.cargo/config.toml): target/<tuple>/.
	local host
	host=$(rustc -vV 2>/dev/null | sed -n 's/^host: //p')
	if [[ -n ${XDPCTL:-} ]]; then
		echo "$XDPCTL"
	elif [[ -n $host && -x $SCRIPT_DIR/../target/$host/release/xdpctl ]]; then
		echo "$SCRIPT_DIR/../target/$host/release/xdpctl"
	elif [[ -n $host && -x $SCRIPT_DIR/../target/$host/debug/xdpctl ]]; then
		echo "$SCRIPT_DIR/../target/$host/debug/xdpctl"
	elif command -v xdpctl >/dev/null; then
		command -v xdpctl
	else
		die "xdpctl not found: run 'make build' or set XDPCTL"
	fi
}

xdpctl() {
	"$(find_xdpctl)" "$@"
}

need_root() {
	[[ $(id -u) -eq 0 ]] || die "$CMD needs root (try sudo)"
}

valid_name() {
	local max=15
	[[ $VLAN -eq 1 ]] && max=13 # room for the ".V" of VLAN sub-interfaces
	[[ $1 =~ ^[A-Za-z0-9_-]+$ && ${#1} -le $max ]] ||
		die "--name '$1': use 1-$max letters, digits, '-' or '_' (it names an interface)"
}

state_file() {
	echo "$STATEDIR/$1.env"
}

# The state directory, made 0700 if missing. Root acts on what it holds, so
# one that is a symlink, or that another user owns or can write, is refused.
state_dir() {
	if [[ ! -e $STATEDIR ]]; then
		mkdir -p -- "$(dirname -- "$STATEDIR")"
		mkdir -m 0700 -- "$STATEDIR"
	fi
	[[ -d $STATEDIR && ! -L $STATEDIR ]] || die "$STATEDIR is not a directory (a symlink?); remove it"
	trusted "$STATEDIR" || die "$STATEDIR is not root's alone; remove it (rm -r $STATEDIR)"
}

# Whether $1 is owned by this user and writable by no one else.
trusted() {
	local owner mode
	read -r owner mode < <(stat -c '%u %a' -- "$1")
	[[ $owner -eq $(id -u) && $((8#$mode & 8#022)) -eq 0 ]]
}

# The value of KEY=... in state file $1 (never sourced: it is data).
state_value() {
	sed -n "s/^$2=//p" -- "$1" | head -n 1
}

# Load NAME, NUM, LEGACY_IP and VLAN of the environment to act on.
load_state() {
	state_dir
	if [[ -z $NAME ]]; then
		[[ -f $STATEDIR/current ]] || die "no environment set up; run 'setup' first (or give --name)"
		NAME=$(<"$STATEDIR/current")
		valid_name "$NAME"
	fi
	local file
	file=$(state_file "$NAME")
	[[ -f $file && ! -L $file ]] || die "no environment '$NAME'; run 'setup --name $NAME' first"
	trusted "$file" || die "$file is not root's alone; remove it"
	NUM=$(state_value "$file" NUM)
	LEGACY_IP=$(state_value "$file" LEGACY_IP)
	VLAN=$(state_value "$file" VLAN)
	[[ $NUM =~ ^[0-9]+$ && $LEGACY_IP =~ ^[01]$ && $VLAN =~ ^[01]$ ]] ||
		die "$file is damaged; remove it and the environment by hand"
}

# The lowest environment number neither recorded nor addressed on this host.
free_number() {
	local n used addrs
	used=$(cat "$STATEDIR"/*.env 2>/dev/null | sed -n 's/^NUM=//p' || true)
	addrs=$(ip -6 -o addr show)
	for n in $(seq 1 254); do
		grep -qx "$n" <<<"$used" && continue
		grep -q "fc00:dead:cafe:$n::1/" <<<"$addrs" && continue
		echo "$n"
		return
	done
	die "all 254 environment numbers are in use; tear some down"
}

default_name() {
	local name=xdptest i=2
	while [[ -f $(state_file "$name") ]] || ip link show dev "$name" >/dev/null 2>&1; do
		name=xdptest$i
		i=$((i + 1))
	done
	echo "$name"
}

ip6_out() { echo "fc00:dead:cafe:$NUM::1"; }
ip6_in() { echo "fc00:dead:cafe:$NUM::2"; }
ip4_out() { echo "10.11.$NUM.1"; }
ip4_in() { echo "10.11.$NUM.2"; }

# Remove whatever exists of environment $NAME; never fails.
destroy() {
	local vid dev
	for dev in "$NAME" "${VLAN_IDS[@]/#/$NAME.}"; do
		if ip link show dev "$dev" >/dev/null 2>&1; then
			xdpctl --quiet unload --force --dev "$dev" >/dev/null 2>&1 || true
		fi
	done
	for vid in "${VLAN_IDS[@]}"; do
		rm -rf "/sys/fs/bpf/$NAME:$vid"
	done
	rm -rf "/sys/fs/bpf/$NAME"
	ip link del dev "$NAME" 2>/dev/null || true
	ip netns del "$NAME" 2>/dev/null || true
	rm -f "$(state_file "$NAME")"
}

# Undo a failed setup: only what this run made.
MADE_NS=0
MADE_LINK=0
undo_setup() {
	if [[ $MADE_LINK -eq 1 ]]; then ip link del dev "$NAME" 2>/dev/null || true; fi
	if [[ $MADE_NS -eq 1 ]]; then ip netns del "$NAME" 2>/dev/null || true; fi
}

cmd_setup() {
	need_root
	[[ -n $NAME ]] || NAME=$(default_name)
	valid_name "$NAME"
	[[ ! -f $(state_file "$NAME") ]] || die "environment '$NAME' exists; use 'reset' or 'teardown'"
	ip link show dev "$NAME" >/dev/null 2>&1 && die "an interface named '$NAME' exists; pick another --name"
	grep -qw -- "$NAME" <<<"$(ip netns list)" && die "a network namespace '$NAME' exists; pick another --name"
	state_dir
	NUM=$(free_number)

	# From here on, a failure removes what this run made (and nothing else:
	# another setup may have raced us to the same name).
	trap 'undo_setup; exit 1' ERR
	ip netns add "$NAME"
	MADE_NS=1
	ip link add dev "$NAME" type veth peer name "$INNER" netns "$NAME"
	MADE_LINK=1
	ip -n "$NAME" link set dev lo up
	ip link set dev "$NAME" up
	ip -n "$NAME" link set dev "$INNER" up
	ip addr add "$(ip6_out)/64" dev "$NAME" nodad
	ip -n "$NAME" addr add "$(ip6_in)/64" dev "$INNER" nodad
	ip -n "$NAME" -6 route add default via "$(ip6_out)"
	if [[ $LEGACY_IP -eq 1 ]]; then
		ip addr add "$(ip4_out)/24" dev "$NAME"
		ip -n "$NAME" addr add "$(ip4_in)/24" dev "$INNER"
		ip -n "$NAME" route add default via "$(ip4_out)"
	fi
	if [[ $VLAN -eq 1 ]]; then
		setup_vlans
	fi
	trap - ERR

	printf 'NAME=%s\nNUM=%s\nLEGACY_IP=%s\nVLAN=%s\n' "$NAME" "$NUM" "$LEGACY_IP" "$VLAN" \
		>"$(state_file "$NAME")"
	echo "$NAME" >"$STATEDIR/current"
	echo "Setup environment '$NAME' (number $NUM):"
	local v4_out="" v4_in=""
	if [[ $LEGACY_IP -eq 1 ]]; then
		v4_out=" $(ip4_out)/24"
		v4_in=" $(ip4_in)/24"
	fi
	echo "  outside: $NAME $(ip6_out)/64$v4_out"
	echo "  inside:  $INNER in netns $NAME $(ip6_in)/64$v4_in"
	[[ $VLAN -eq 1 ]] && echo "  VLANs:   ${VLAN_IDS[*]} ($NAME.V / $INNER.V)"
	return 0
}

setup_vlans() {
	local vid
	if ! ip link add link "$NAME" name "$NAME.${VLAN_IDS[0]}" type vlan id "${VLAN_IDS[0]}" 2>/dev/null; then
		echo "testenv: error: --vlan: this kernel cannot create VLAN interfaces (no CONFIG_VLAN_8021Q)" >&2
		return 1
	fi
	for vid in "${VLAN_IDS[@]}"; do
		[[ $vid == "${VLAN_IDS[0]}" ]] || ip link add link "$NAME" name "$NAME.$vid" type vlan id "$vid"
		ip -n "$NAME" link add link "$INNER" name "$INNER.$vid" type vlan id "$vid"
		ip link set dev "$NAME.$vid" up
		ip -n "$NAME" link set dev "$INNER.$vid" up
		ip addr add "fc00:dead:$vid:$NUM::1/64" dev "$NAME.$vid" nodad
		ip -n "$NAME" addr add "fc00:dead:$vid:$NUM::2/64" dev "$INNER.$vid" nodad
		if [[ $LEGACY_IP -eq 1 ]]; then
			ip addr add "10.$((11 + vid)).$NUM.1/24" dev "$NAME.$vid"
			ip -n "$NAME" addr add "10.$((11 + vid)).$NUM.2/24" dev "$INNER.$vid"
		fi
	done
}

cmd_teardown() {
	need_root
	load_state
	destroy
	if [[ -f $STATEDIR/current && $(<"$STATEDIR/current") == "$NAME" ]]; then
		rm -f "$STATEDIR/current"
	fi
	echo "Removed environment '$NAME'"
}

cmd_reset() {
	need_root
	load_state
	destroy
	cmd_setup
}

cmd_status() {
	load_state
	echo "Environment '$NAME' (number $NUM)"
	ip -br addr show dev "$NAME"
	ip -n "$NAME" -br addr show
	xdpctl status --dev "$NAME"
}

# From inside to outside, so the echo requests arrive at the outer
# interface's XDP program.
cmd_ping() {
	load_state
	[[ $# -gt 0 ]] || set -- -c 3
	local rc=0
	if [[ $LEGACY_IP -eq 1 ]]; then
		# A dropped IPv4 ping must not hide the IPv6 one.
		ip netns exec "$NAME" ping "$@" "$(ip4_out)" || rc=$?
	fi
	ip netns exec "$NAME" ping "$@" "$(ip6_out)" || rc=$?
	return "$rc"
}

# As root the alias runs the script itself; otherwise through sudo, which
# minimal machines lack: then it says so.
cmd_alias() {
	local path prefix=""
	path=$(printf %q "$SCRIPT_DIR/$(basename "$0")")
	if [[ $(id -u) -ne 0 ]]; then
		if command -v sudo >/dev/null; then
			prefix="sudo "
		else
			echo "# no sudo here: use the alias as root" >&2
		fi
	fi
	echo "alias t='$prefix$path'"
	echo "# use it with: eval \"\$($path alias)\"" >&2
}

NAME=""
LEGACY_IP=0
VLAN=0
CMD=""
ARGS=()
while [[ $# -gt 0 ]]; do
	case $1 in
	-n | --name)
		[[ $# -ge 2 ]] || die "--name needs a value"
		NAME=$2
		shift 2
		;;
	--legacy-ip)
		LEGACY_IP=1
		shift
		;;
	--vlan)
		VLAN=1
		shift
		;;
	-h | --help)
		usage
		exit 0
		;;
	--)
		shift
		ARGS+=("$@")
		break
		;;
	*)
		if [[ -n $CMD ]]; then
			ARGS+=("$1")
			shift
			continue
		fi
		CMD=$1
		shift
		# What follows a command that runs another is that command's, options
		# included (`tcpdump -n -c 1`); a leading `--` is dropped.
		case $CMD in
		exec | ping | tcpdump | load | unload | stats | redirect)
			[[ ${1:-} == -- ]] && shift
			ARGS+=("$@")
			break
			;;
		esac
		;;
	esac
done

case $CMD in
setup) cmd_setup ;;
teardown) cmd_teardown ;;
reset) cmd_reset ;;
enter)
	load_state
	ip netns exec "$NAME" env PS1="[$NAME] \\w # " bash --norc
	;;
exec)
	load_state
	[[ ${#ARGS[@]} -gt 0 ]] || die "exec needs a command"
	ip netns exec "$NAME" "${ARGS[@]}"
	;;
ping) cmd_ping "${ARGS[@]}" ;;
tcpdump)
	load_state
	tcpdump -nei "$NAME" "${ARGS[@]}"
	;;
status) cmd_status ;;
load | unload | stats)
	load_state
	xdpctl "$CMD" --dev "$NAME" "${ARGS[@]}"
	;;
redirect)
	[[ ${#ARGS[@]} -ge 2 ]] || die "redirect needs two environments: redirect ENV1 ENV2"
	# A veth passes on redirected frames only if its peer runs NAPI: turn
	# GRO on at the far end of ENV2 (inside the lab, so nothing else changes).
	ip netns exec "${ARGS[1]}" ethtool -K veth0 gro on >/dev/null ||
		die "cannot turn GRO on in ${ARGS[1]}; is it a testenv environment?"
	xdpctl redirect --dev "${ARGS[0]}" --redirect-dev "${ARGS[1]}" "${ARGS[@]:2}"
	;;
alias) cmd_alias ;;
"")
	usage >&2
	exit 1
	;;
*) die "unknown command '$CMD'; see --help" ;;
esac
