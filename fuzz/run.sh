#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 600) with the nightly
# toolchain, growing the committed corpora; prints each target's last stats.
# Usage: fuzz/run.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-600}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(heartbeat peer_frame api_request config ocf_metadata)
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
mkdir -p logs
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  cargo +nightly fuzz run -O "$t" "corpus/$t" -- -max_total_time="$secs" -rss_limit_mb=2048 -print_final_stats=1 \
    >"logs/$t.log" 2>&1 || { echo "$t: FOUND A CRASH, see fuzz/logs/$t.log and fuzz/artifacts/$t"; exit 1; }
  echo "$t: $(grep -E '^stat::number_of_executed_units' "logs/$t.log" | awk '{print $2}') executions in ${secs} s," \
       "corpus $(ls "corpus/$t" | wc -l) inputs"
done
