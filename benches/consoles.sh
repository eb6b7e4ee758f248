#!/usr/bin/env bash
# Several consoles beside one `opsconsole demo` run, with htop, each console's exact CPU
# time read from a cgroup of its own: builds (or configs) compared in the same run, where
# run-to-run noise (10-15% for the same build here) cannot decide between them. Where a
# console starts in the run moves its figure too (two of one build read 0.123 and 0.104%
# in one run): give each build several places, alternating (A B A B).
# Usage: benches/consoles.sh SECS BIN [BIN...]   (each BIN a console beside the run;
#        the demo runs the first). Needs tmux and htop. 160x48.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=$1
shift
bins=()
for b in "$@"; do bins+=("$(realpath "$b")"); done
command -v htop >/dev/null || { echo "htop is not installed (apt-get install htop)"; exit 1; }
tmp=$(mktemp -d)
sock=opsconsole-consoles-$$
. benches/procstat.sh
cleanup() { cpu_unwatch 2>/dev/null || true; tmux -L "$sock" kill-server 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
. benches/demo_run.sh
demo_run "$sock" "${bins[0]}" "$tmp" 160 48
for i in "${!bins[@]}"; do
  tmux -L "$sock" new-session -d -s "c$i" -x 160 -y 48 "XDG_STATE_HOME=$tmp/s$i exec ${bins[$i]} -w $tmp/demo"
done
tmux -L "$sock" new-session -d -s htop -x 160 -y 48 "exec htop"
sleep 5
pids=()
for i in "${!bins[@]}"; do pids+=("$(tmux -L "$sock" display -p -t "=c$i:" '#{pane_pid}')"); done
pids+=("$(tmux -L "$sock" display -p -t "=htop:" '#{pane_pid}')")
for p in "${pids[@]}"; do cpu_watch "$p"; done
before=()
for p in "${pids[@]}"; do before+=("$(cpu_ns "$p")"); done
sleep "$secs"
echo "CPU measured as $(cpu_how), ${secs}s, load average $(cut -d' ' -f1-3 /proc/loadavg)"
for i in "${!pids[@]}"; do
  name=htop
  [ "$i" -lt "${#bins[@]}" ] && name="console $i: ${bins[$i]}"
  awk -v d=$(( $(cpu_ns "${pids[$i]}") - before[i] )) -v s="$secs" -v n="$name" 'BEGIN {printf "%-60s %.4f%% of one core\n", n, d / 1e9 / s * 100}'
done
