#!/bin/sh
# Builds baton's .deb: the release binaries (baton, baton-guard), then the manual page and shell
# completions generated from it, then `cargo deb` with the metadata in
# Cargo.toml. Extra arguments go to cargo deb (e.g. --output DIR).
set -eu
cd "$(dirname "$0")/.."
command -v cargo-deb >/dev/null 2>&1 || cargo install cargo-deb --locked
cargo build --release --bin baton --bin baton-guard
target="${CARGO_TARGET_DIR:-target}"
mkdir -p target/package
rm -rf target/package/man
"$target/release/baton" man --dir target/package/man
"$target/release/baton" completions bash > target/package/baton.bash
"$target/release/baton" completions zsh > target/package/_baton
"$target/release/baton" completions fish > target/package/baton.fish
cargo deb --no-build "$@"
