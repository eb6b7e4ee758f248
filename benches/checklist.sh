#!/usr/bin/env bash
# What one pre-shutdown check costs: `opsconsole shutdown-check --json` (a live gather, as on
# opening the screen, on ctrl-r and before a shutdown) on a workspace with a git repository
# and 2 x 20 stored checkpoints and logs, beside `git status` alone (one of the things it
# runs) in the same run. Usage: benches/checklist.sh [runs]   (default 20)
# Prints a Markdown table for docs/performance.md.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-20}
cargo build --release --locked -q
bin=$PWD/target/release/opsconsole
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ws=$tmp/ws
mkdir -p "$ws/checkpoints" "$ws/experiments/v01/logs" "$tmp/remotes"
cat > "$ws/opsconsole.toml" <<TOML
[gpu]
enabled = false
[disk]
warn_pct = 99.0
critical_pct = 99.5
[sync]
settle_seconds = 1
[sync.l2]
remote = "r2"
[sync.l3]
remote = "r3"
[remotes.r2]
kind = "local"
path = "$tmp/remotes/r2"
same_disk = true
[remotes.r3]
kind = "local"
path = "$tmp/remotes/r3"
same_disk = true
TOML
for i in $(seq 1 20); do
  head -c $((50 * 1024 * 1024)) /dev/urandom > "$ws/checkpoints/v01_step_$((i * 100)).pt"
  touch -d "$((30 - i)) minutes ago" "$ws/checkpoints/v01_step_$((i * 100)).pt"
  seq 1 20000 | sed "s/^/step $i loss /" > "$ws/experiments/v01/logs/run$i.log"
  touch -d "$((30 - i)) minutes ago" "$ws/experiments/v01/logs/run$i.log"
done
printf 'torch\n' > "$ws/requirements.txt"; touch -d "2 hours ago" "$ws/requirements.txt"
printf 'torch==2.3.0\n' > "$ws/frozen_requirements.txt"
printf 'checkpoints/\n*.log\n.opsconsole/\n' > "$ws/.gitignore"
for i in $(seq 1 300); do printf 'x = %d\n' "$i" > "$ws/mod$i.py"; done
echo "## v01" > "$ws/journal.md"
git init -q --bare -b main "$tmp/up.git"
git -C "$ws" init -q -b main
git -C "$ws" -c user.name=b -c user.email=b@b add -A
git -C "$ws" -c user.name=b -c user.email=b@b commit -qm v01
git -C "$ws" remote add origin "$tmp/up.git"
git -C "$ws" push -q -u origin main
export XDG_STATE_HOME=$tmp/state
"$bin" -w "$ws" remote check --init >/dev/null
"$bin" -w "$ws" sync --once 2>/dev/null
"$bin" -w "$ws" shutdown-check >/dev/null || { "$bin" -w "$ws" shutdown-check; exit 1; }

measure() { # label, command...
  local label=$1; shift
  "$@" >/dev/null 2>&1 || true # warm the page cache
  local t0 t1 c0 c1
  t0=$(date +%s%N)
  c0=$(awk '{print $14+$15+$16+$17}' /proc/$$/stat)
  for _ in $(seq "$runs"); do "$@" >/dev/null 2>&1 || true; done
  t1=$(date +%s%N)
  c1=$(awk '{print $14+$15+$16+$17}' /proc/$$/stat)
  local hz; hz=$(getconf CLK_TCK)
  printf '| %s | %d | %.1f | %.1f |\n' "$label" "$runs" \
    "$(echo "($t1 - $t0) / $runs / 1000000" | bc -l)" \
    "$(echo "($c1 - $c0) * 1000 / $hz / $runs" | bc -l)"
}
echo "| command | runs | wall ms per run | CPU ms per run (children) |"
echo "|---|---|---|---|"
measure "git status --porcelain=v2 --branch" git -C "$ws" status --porcelain=v2 --branch
measure "opsconsole shutdown-check --json" "$bin" -w "$ws" shutdown-check --json
