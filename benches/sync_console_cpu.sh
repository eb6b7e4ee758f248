#!/usr/bin/env bash
# CPU of a console (in tmux) showing a daemon's upload queue while the daemon uploads:
# samples utime+stime of the console process over a window while `opsconsole sync
# --daemon` stores a large file. Usage: benches/sync_console_cpu.sh [BIN] [SECONDS]
set -euo pipefail
bin=${1:-target/debug/opsconsole}
window=${2:-20}
base=$(mktemp -d /tmp/opsconsole-cpu.XXXXXX)
session=opsconsole-cpu-$$
cleanup() { tmux kill-session -t "$session" 2>/dev/null || true; [ -n "${daemon:-}" ] && kill "$daemon" 2>/dev/null; rm -rf "$base"; }
trap cleanup EXIT
mkdir -p "$base/ws/checkpoints"
cat > "$base/ws/opsconsole.toml" <<TOML
[sync]
settle_seconds = 1
bandwidth_limit_kib_s = 51200
[sync.l3]
remote = "r3"
interval_minutes = 0
[remotes.r3]
kind = "local"
path = "$base/r3"
TOML
head -c $((2048 * 1024 * 1024)) /dev/zero > "$base/ws/checkpoints/v1_step_100.pt"
"$bin" -w "$base/ws" sync --daemon 2>"$base/daemon.log" &
daemon=$!
# Wait until the daemon is uploading.
for _ in $(seq 100); do grep -q "uploading" "$base/daemon.log" && break; sleep 0.2; done
tmux new-session -d -s "$session" -x 120 -y 40 "$bin -w $base/ws"
sleep 3
pid=$(tmux list-panes -t "$session" -F '#{pane_pid}')
tck=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
a=$(ticks "$pid"); t0=$(date +%s.%N)
sleep "$window"
b=$(ticks "$pid"); t1=$(date +%s.%N)
tmux capture-pane -p -t "$session" | grep -E "Uploads|L3" | head -3
echo "console cpu: $(echo "scale=3; ($b - $a) / $tck / ($t1 - $t0) * 100" | bc)% of one core over ${window}s while the daemon uploaded ($(grep -c . "$base/daemon.log") daemon lines)"
