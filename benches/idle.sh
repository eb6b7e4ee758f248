#!/usr/bin/env bash
# Idle cost of the console beside a run, side by side with btop, and time from exec to the
# first full frame. Usage: benches/idle.sh [seconds]   (default 60)
# Needs tmux and btop. Prints a Markdown table for docs/performance.md.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
cargo build --release --locked -q
bin=$PWD/target/release/opsconsole
command -v btop >/dev/null || { echo "btop is not installed (apt-get install btop)"; exit 1; }
tmp=$(mktemp -d)
sock=opsconsole-bench-$$
cleanup() { tmux -L "$sock" kill-server 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
hz=$(getconf CLK_TCK)

# Both programs in terminals of the same size, side by side in time.
tmux -L "$sock" new-session -d -s con -x 160 -y 48 "XDG_STATE_HOME=$tmp/state $bin demo --dir $tmp/demo"
tmux -L "$sock" new-session -d -s top -x 160 -y 48 "btop"
sleep 5
con=$(pgrep -f -x "$bin demo --dir $tmp/demo" | head -1)
top=$(tmux -L "$sock" display -p -t top '#{pane_pid}')
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
c0=$(ticks "$con"); t0=$(ticks "$top")
sleep "$secs"
c1=$(ticks "$con"); t1=$(ticks "$top")
hwm() { awk '/VmHWM/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }
cpu() { awk -v d="$1" -v hz="$hz" -v s="$secs" 'BEGIN {printf "%.2f", d / hz / s * 100}'; }
echo "| program | CPU (% of one core) over ${secs}s | peak RSS (MiB) |"
echo "|---|---|---|"
echo "| opsconsole demo (console process; refresh 1 s) | $(cpu $((c1 - c0))) | $(hwm "$con") |"
echo "| btop 1.x (default 2 s refresh) | $(cpu $((t1 - t0))) | $(hwm "$top") |"
tmux -L "$sock" send-keys -t con q

# Exec to first full frame: the hidden --exit-after-first-frame leaves right after the
# first frame (with the first disk sample) is flushed; the time includes the restore.
mkdir -p "$tmp/ws"
tmux -L "$sock" new-session -d -s ff -x 160 -y 48 "bash --norc --noprofile"
tmux -L "$sock" send-keys -t ff "cd $tmp/ws; for i in \$(seq 20); do s=\$(date +%s%N); XDG_STATE_HOME=$tmp/state $bin --exit-after-first-frame; e=\$(date +%s%N); echo \$(( (e - s) / 1000 )) >> $tmp/ff.txt; done; echo DONE > $tmp/ff.done" Enter
for _ in $(seq 600); do [ -f "$tmp/ff.done" ] && break; sleep 0.1; done
sort -n "$tmp/ff.txt" | awk '{a[NR]=$1} END {printf "\nexec to first full frame, 20 runs: median %.1f ms, max %.1f ms\n", a[int((NR+1)/2)]/1000, a[NR]/1000}'
