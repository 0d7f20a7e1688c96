#!/bin/sh
# Builds the Debian package target/debian/contact-verifier_VERSION-1_ARCH.deb
# (docs/packaging.md):
#
#   debian/build-deb.sh [cargo-deb options, e.g. --fast or -o DIR]
#
# 1. generates the man pages, shell completions and packaged systemd units
#    into target/packaging/ with contact-verifier-docs (release build),
# 2. runs `cargo deb`, which builds the release binary and packs it with them.
# Needs cargo-deb (cargo install --locked cargo-deb) and gzip.
set -eu
cd "$(dirname "$0")/.."

if ! cargo deb --version >/dev/null 2>&1; then
    echo "build-deb.sh: cargo-deb is missing; install it with: cargo install --locked cargo-deb" >&2
    exit 2
fi
cargo run --release --locked --quiet --bin contact-verifier-docs -- package target/packaging >/dev/null
exec cargo deb --locked "$@"
