#!/usr/bin/env bash
# The console against a real NVIDIA driver (needs a GPU machine, tmux, python3 with
# pynvml, and a job on the GPU for the process figures): status --json beside nvidia-smi,
# what each NVML call costs (benches/nvml_calls.py), then four consoles side by side at
# 160x48 for SECS seconds (default 120): GPU off, process utilization never / every 5 s
# (the default) / every 1 s, each one's CPU from /proc/PID/stat and its peak RSS.
# OPSCONSOLE_BIN: the binary (default target/release/opsconsole). Figures: docs/performance.md,
# "With a real driver". Usage: benches/gpu_real.sh [secs]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-120}
bin=${OPSCONSOLE_BIN:-$PWD/target/release/opsconsole}
for tool in nvidia-smi tmux python3; do command -v "$tool" >/dev/null || { echo "$tool is not installed"; exit 1; }; done
[ -x "$bin" ] || { echo "no binary at $bin: cargo build --release --locked, or set OPSCONSOLE_BIN"; exit 1; }
tmp=$(mktemp -d)
sock=opsconsole-gpu-$$
cleanup() { tmux -L "$sock" kill-server 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

echo "== nvidia-smi and status --json, read one after the other"
nvidia-smi --query-gpu=index,name,memory.used,memory.total,utilization.gpu --format=csv,noheader
nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader
mkdir -p "$tmp/ws" && (cd "$tmp/ws" && "$bin" init >/dev/null)
cat > "$tmp/show.py" <<'PY'
import json, sys
d = json.load(sys.stdin)
print("nvml:", d["nvml"]["message"])
for g in d["gpus"]:
    mib = lambda b: "n/a" if b is None else f"{b / 2**20:.0f} MiB"
    print(f"{g['index']}, {g['name']}, {mib(g['memory_used_bytes'])}, {mib(g['memory_total_bytes'])}, {g['utilization_pct']} %")
    for p in g["processes"]:
        print(f"   pid {p['pid']}, {mib(p['used_bytes'])}, SM {p['sm_util_pct']} %, {p['command']}")
PY
"$bin" -w "$tmp/ws" status --json | python3 "$tmp/show.py"

echo "== each NVML call"
python3 benches/nvml_calls.py || echo "(benches/nvml_calls.py needs pynvml: pip install nvidia-ml-py)"

echo "== four consoles beside what runs on the GPU, ${secs}s"
kinds="off never every5 every1"
for k in $kinds; do
  mkdir -p "$tmp/$k" && (cd "$tmp/$k" && "$bin" init >/dev/null)
  case $k in
    off) sed -i '/^\[gpu\]$/,/^enabled/ s/^enabled = true$/enabled = false/' "$tmp/$k/opsconsole.toml" ;;
    never) sed -i 's/^process_util_ms = 5000$/process_util_ms = 0/' "$tmp/$k/opsconsole.toml" ;;
    every1) sed -i 's/^process_util_ms = 5000$/process_util_ms = 1000/' "$tmp/$k/opsconsole.toml" ;;
  esac
  tmux -L "$sock" new-session -d -s "$k" -x 160 -y 48 "XDG_STATE_HOME=$tmp/state-$k $bin -w $tmp/$k; sleep 600"
done
grep -q '^process_util_ms = 0$' "$tmp/never/opsconsole.toml" && grep -A2 '^\[gpu\]$' "$tmp/off/opsconsole.toml" | grep -q '^enabled = false$' \
  || { echo "could not set the consoles' configs"; exit 1; }
sleep 6
declare -A pid t0
. benches/procstat.sh
for k in $kinds; do
  pid[$k]=$(pgrep -P "$(tmux -L "$sock" display -p -t "$k" '#{pane_pid}')" | head -1)
  t0[$k]=$(ticks "${pid[$k]}")
done
start=$(date +%s.%N)
sleep "$secs"
end=$(date +%s.%N)
hz=$(getconf CLK_TCK)
echo "| console (load average $(cut -d' ' -f1-3 /proc/loadavg)) | CPU (% of one core) over ${secs}s | peak RSS (MiB) |"
echo "|---|---|---|"
for k in $kinds; do
  p=${pid[$k]}
  cpu=$(awk -v a="${t0[$k]}" -v b="$(ticks "$p")" -v hz="$hz" -v s="$start" -v e="$end" 'BEGIN {printf "%.3f", 100 * (b - a) / hz / (e - s)}')
  echo "| $k | $cpu | $(hwm "$p") |"
done
