#!/usr/bin/env bash
# Checks the systemd units in this directory with `systemd-analyze verify`.
#
#   systemd/verify.sh [BINARY]    BINARY defaults to target/debug/contact-verifier
#   systemd/verify.sh --packaged DIR [BINARY]
#
# The units run /usr/local/bin/contact-verifier, which usually does not exist
# where this runs (CI, a developer machine), so the units are copied to a
# temporary directory and that path is replaced with BINARY (made absolute).
# This works without a running systemd (in a container, for example).
# Fails (exit 1) if systemd-analyze fails or prints anything about our units:
# unknown keys, bad values, missing executables, a timer without its service...
# Messages about other units (system units loaded as dependencies) are shown
# but ignored. Exit 2: bad usage or missing tools.
#
# --packaged DIR checks the Debian package's copies of the units instead:
# target/packaging/systemd (made by `contact-verifier-docs package`) or
# /usr/lib/systemd/system (installed). They run /usr/bin/contact-verifier and
# must be the units of this directory with only that path changed (the
# hardening kept). BINARY defaults to /usr/bin/contact-verifier when it
# exists (no rewriting then), else to target/debug/contact-verifier.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
units=(contact-verifier.service contact-verifier-sweep.service contact-verifier-sweep.timer)
installed_bin=/usr/local/bin/contact-verifier
unit_dir=$here
shown=systemd
default_bin=$repo/target/debug/contact-verifier

if [[ ${1:-} == --packaged ]]; then
    if [[ -z ${2:-} || ! -d $2 ]]; then
        echo "verify.sh: --packaged needs the directory of the packaged units" >&2
        exit 2
    fi
    unit_dir=$(cd "$2" && pwd)
    shown=$unit_dir
    installed_bin=/usr/bin/contact-verifier
    if [[ -x $installed_bin ]]; then default_bin=$installed_bin; fi
    shift 2
    for u in "${units[@]}"; do
        if [[ ! -f $unit_dir/$u ]]; then
            echo "verify.sh: missing unit file $unit_dir/$u" >&2
            exit 1
        fi
        if ! diff -u --label "systemd/$u (ExecStart=$installed_bin)" --label "$unit_dir/$u" \
            <(sed "s|/usr/local/bin/contact-verifier|$installed_bin|g" "$here/$u") "$unit_dir/$u" >&2; then
            echo "verify.sh: $unit_dir/$u is not systemd/$u with ExecStart=$installed_bin; regenerate it (docs/packaging.md)" >&2
            exit 1
        fi
    done
fi

bin=${1:-$default_bin}
case $bin in /*) ;; *) bin=$PWD/$bin ;; esac
if [[ ! -f $bin || ! -x $bin ]]; then
    echo "verify.sh: $bin is not an executable file; build it first (cargo build) or pass its path" >&2
    exit 2
fi
bin=$(cd "$(dirname "$bin")" && pwd -P)/$(basename "$bin")
# The path ends up inside a single-quoted `sh -c` script in ExecStart=.
if [[ $bin =~ [[:space:]\'\"\\%\$] ]]; then
    echo "verify.sh: the binary path must not contain whitespace, quotes, \\, % or \$: $bin" >&2
    exit 2
fi
if ! command -v systemd-analyze >/dev/null; then
    echo "verify.sh: systemd-analyze not found (Debian/Ubuntu: apt-get install systemd)" >&2
    exit 2
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed_bin=$(printf '%s' "$bin" | sed 's/[|&\\]/\\&/g')
for u in "${units[@]}"; do
    if [[ ! -f $unit_dir/$u ]]; then
        echo "verify.sh: missing unit file $unit_dir/$u" >&2
        exit 1
    fi
    sed "s|$installed_bin|$sed_bin|g" "$unit_dir/$u" >"$tmp/$u"
    if [[ $bin != "$installed_bin" ]] && grep -qF "$installed_bin" "$tmp/$u"; then
        echo "verify.sh: could not rewrite $installed_bin in $u" >&2
        exit 1
    fi
done

# --man=no: the units have no man: links, and man may be missing.
# --recursive-errors=no: the exit status covers only our units. In systemd 252
# the exit status is 0 despite parse warnings when this option is not given.
# Output is captured either way, because parse warnings alone do not always
# change the exit status.
status=0
output=$(cd "$tmp" && systemd-analyze verify --man=no --recursive-errors=no \
    "${units[@]/#/$tmp/}" 2>&1) || status=$?

ours=() others=()
if [[ -n $output ]]; then
    while IFS= read -r line; do
        matched=no
        for u in "${units[@]}"; do
            if [[ $line == *"$u"* ]]; then matched=yes; break; fi
        done
        if [[ $matched == yes ]]; then ours+=("$line"); else others+=("$line"); fi
    done <<<"$output"
fi

if ((${#others[@]})); then
    echo "ignored (not about our units):"
    printf '  %s\n' "${others[@]}"
fi
if ((${#ours[@]})); then
    echo "problems in the units:" >&2
    printf '  %s\n' "${ours[@]//$tmp\//$shown/}" >&2
fi
if ((status != 0)) || ((${#ours[@]})); then
    echo "FAIL: systemd-analyze verify exited $status, ${#ours[@]} message(s) about our units" >&2
    exit 1
fi
echo "OK: ${units[*]} in $shown/ verified with $(systemd-analyze --version | head -n1) (ExecStart binary: $bin)"
