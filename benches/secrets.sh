#!/usr/bin/env bash
# The secrets content rules over a whole text file (what the sync engine does to an L2 file
# before queueing it), beside `grep -E` looking for two of the same patterns and beside the
# SHA-256 the engine computes anyway, same file, page cache warm.
# Usage: benches/secrets.sh [SIZE_MIB]   (default 200 MiB: sync.l2.max_file_mb)
set -euo pipefail
size_mib=${1:-200}
base=$(mktemp -d /tmp/opsconsole-secrets-bench.XXXXXX)
trap 'rm -rf "$base"' EXIT
cargo bench --bench sync_io --no-run >/dev/null 2>&1
bin=$(ls -t target/release/deps/sync_io-* | grep -v '\.d$' | head -1)
f="$base/train.log"
# A Hugging Face Trainer style log: metrics dicts and progress bars, no secret.
line="{'loss': 2.3102, 'grad_norm': 0.8143, 'learning_rate': 0.0002999, 'epoch': 1.42}"
bar=" 52%|#####2    | 12480/24000 [1:02:11<57:24,  3.34it/s]"
{ yes "$line
$bar" || true; } | head -c $((size_mib * 1024 * 1024)) > "$f"
cat "$f" > /dev/null
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs; file ${size_mib} MiB"
tm() { /usr/bin/time -f "%e %U %S" -o "$base/time" "$@" > "$base/out" || true; tail -1 "$base/time" | awk '{printf "%s wall %.2f cpu", $1, $2 + $3}'; }
for _ in 1 2; do
  echo "grep -E (2 patterns): $(tm grep -caE 'hf_[A-Za-z0-9]{30,}|-----BEGIN [A-Z ]*PRIVATE KEY' "$f")"
  echo "opsconsole scan (all rules): $(tm "$bin" scan "$f") -> $(cut -d' ' -f3- "$base/out")"
  echo "opsconsole sha256 (done anyway): $(tm "$bin" hash "$f")"
done
