#!/usr/bin/env bash
# `make install` with DESTDIR and PREFIX: exactly the expected files, with
# sane modes, each where its tool looks for it, and nothing outside DESTDIR;
# systemd-analyze verify accepts every unit of dist/.
# Needs `make build` first (make test runs it).
set -euo pipefail
cd "$(dirname "$0")/.."

XDPCTL=${XDPCTL:-target/$(rustc -vV | sed -n 's/^host: //p')/release/xdpctl}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

root=$TMP/root
# A PREFIX nobody has: had anything gone outside DESTDIR, it would show.
stray=/xdpctl-install-test-$$
make -s install DESTDIR="$root" PREFIX=/usr >/dev/null
make -s install DESTDIR="$TMP/stray" PREFIX="$stray" >/dev/null
[ ! -e "$stray" ] || fail "make install wrote outside DESTDIR: $stray"
[ -x "$TMP/stray$stray/bin/xdpctl" ] || fail "PREFIX=$stray: no binary under DESTDIR"

# The expected list, with modes: what `xdpctl manpages` writes, the units in
# dist/, the example config if dist/ has one.
mkdir "$TMP/man"
"$XDPCTL" -q manpages "$TMP/man"
{
	echo "-rwxr-xr-x ./usr/bin/xdpctl"
	for page in "$TMP"/man/*.1; do
		echo "-rw-r--r-- ./usr/share/man/man1/${page##*/}"
	done
	echo "-rw-r--r-- ./usr/share/bash-completion/completions/xdpctl"
	echo "-rw-r--r-- ./usr/share/zsh/site-functions/_xdpctl"
	echo "-rw-r--r-- ./usr/share/fish/vendor_completions.d/xdpctl.fish"
	for unit in dist/*.service; do
		if [ -e "$unit" ]; then echo "-rw-r--r-- ./usr/lib/systemd/system/${unit##*/}"; fi
	done
	if [ -f dist/xdpctl.toml ]; then echo "-rw-r--r-- ./usr/share/doc/xdpctl/xdpctl.toml"; fi
} | sort >"$TMP/expected"
(cd "$root" && find . ! -type d -printf '%M %p\n' | sort) >"$TMP/installed"
diff -u "$TMP/expected" "$TMP/installed" || fail "installed files differ from the expected list"
# Directories: world-readable, writable by their owner only.
bad=$(cd "$root" && find . -mindepth 1 -type d ! -perm 0755 -printf '%M %p\n')
[ -z "$bad" ] || fail "directories not 0755: $bad"
grep -q 'xdp_drop' "$root/usr/share/bash-completion/completions/xdpctl" ||
	fail "the bash completion lacks the program names"
cmp -s "$XDPCTL" "$root/usr/bin/xdpctl" || fail "the installed binary is not the built one"
"$root/usr/bin/xdpctl" --version >/dev/null || fail "the installed binary does not run"

# Units: ExecStart runs the installed binary, never the source's path.
for unit in "$root"/usr/lib/systemd/system/*.service; do
	[ -e "$unit" ] || continue
	grep -q '^ExecStart=/usr/bin/xdpctl ' "$unit" || fail "${unit##*/}: ExecStart is not /usr/bin/xdpctl"
	! grep -q '/usr/local' "$unit" || fail "${unit##*/}: still names /usr/local"
done
# systemd-analyze verify on every unit, every warning fatal. No systemd runs
# here: the units are installed under a PREFIX in $TMP (no DESTDIR), so their
# ExecStart names a binary that exists, and MANPATH finds their man pages.
prefix=$TMP/prefix/usr
make -s install PREFIX="$prefix" >/dev/null
units=("$prefix"/lib/systemd/system/*.service)
[ "${#units[@]}" -eq "$(find dist -name '*.service' | wc -l)" ] || fail "not every unit installed"
for unit in "${units[@]}"; do
	grep -q "^ExecStart=$prefix/bin/xdpctl " "$unit" || fail "${unit##*/}: ExecStart not rewritten"
	if ! out=$(MANPATH="$prefix/share/man" systemd-analyze verify "$unit" 2>&1) || [ -n "$out" ]; then
		fail "systemd-analyze verify ${unit##*/}: $out"
	fi
done

echo "make install: ok ($(wc -l <"$TMP/installed") files)"
