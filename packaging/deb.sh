#!/bin/sh
# Builds baton's .deb: the release binaries (baton, batond, baton-guard,
# baton-notify), statically
# linked with the C library (scripts/build-static), then the manual page and
# shell completions generated from it, then `cargo deb` with the metadata in
# Cargo.toml (it finds the binaries under the host's target directory).
# Extra arguments go to cargo deb (e.g. --output DIR).
set -eu
cd "$(dirname "$0")/.."
command -v cargo-deb >/dev/null 2>&1 || cargo install cargo-deb --locked
bin=$(scripts/build-static --bin baton --bin batond --bin baton-guard --bin baton-notify)
host=$(basename "$(dirname "$bin")")   # $bin is <target dir>/<host triple>/release
mkdir -p target/package
rm -rf target/package/man
"$bin/baton" man --dir target/package/man
"$bin/baton" completions bash > target/package/baton.bash
"$bin/baton" completions zsh > target/package/_baton
"$bin/baton" completions fish > target/package/baton.fish
cargo deb --no-build --target "$host" "$@"
