#!/usr/bin/env bash
# Per-thread CPU of one console beside `opsconsole demo`: each thread's time on a CPU
# (`/proc/PID/task/TID/schedstat`, nanoseconds, exact) and its voluntary and involuntary
# context switches (`status`), over SECS seconds from 8 s after the console started.
# Threads that start or end inside the window are left out. One build per run; a build
# reads about ±8% from run to run here, so alternate the builds (A B A B).
# Usage: [BIN=path] benches/threads.sh [SECS]   (default: the release build, 60 s). Needs tmux.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
if [ -z "${BIN:-}" ]; then
  cargo build --release --locked -q
  bin=$PWD/target/release/opsconsole
else
  bin=$(realpath "$BIN")
fi
tmp=$(mktemp -d)
sock=opsconsole-threads-$$
trap 'tmux -L "$sock" kill-server 2>/dev/null || true; rm -rf "$tmp"' EXIT
. benches/demo_run.sh
demo_run "$sock" "$bin" "$tmp" 160 48
tmux -L "$sock" new-session -d -s con -x 160 -y 48 "XDG_STATE_HOME=$tmp/state2 exec $bin -w $tmp/demo"
sleep 8
con=$(tmux -L "$sock" display -p -t "=con:" '#{pane_pid}')
snap() {
  for t in /proc/"$con"/task/*; do
    echo "$(basename "$t") $(tr ' ' '_' < "$t/comm") $(cut -d' ' -f1 "$t/schedstat") \
      $(awk '/^voluntary_ctxt/ {print $2}' "$t/status") $(awk '/^nonvoluntary_ctxt/ {print $2}' "$t/status")"
  done
}
snap > "$tmp/a"
sleep "$secs"
snap > "$tmp/b"
join <(sort "$tmp/a") <(sort "$tmp/b") | awk -v s="$secs" '
  { printf "%-8s %-18s %8.1f us/s  %6.2f vol/s %5.2f invol/s\n", $1, $2, ($7-$3)/1000/s, ($8-$4)/s, ($9-$5)/s; tot += $7-$3 }
  END { printf "total %.1f us/s = %.4f%% of one core\n", tot/1000/s, tot/1e9/s*100 }'
