#!/usr/bin/env bash
# Idle cost of the console beside a run, side by side with btop and htop, and time from
# exec to the first full frame. Usage: benches/idle.sh [seconds]   (default 60)
# OPSCONSOLE_BIN=path measures that binary instead of building the release one (to put
# two builds in one run: OPSCONSOLE_BIN2=path adds a second console beside the run).
# IDLE_SIZE=80x24 runs every program in terminals of that size instead of 160x48.
# Needs tmux, btop and htop. Prints a Markdown table for docs/performance.md.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
size=${IDLE_SIZE:-160x48}
cols=${size%x*}
rows=${size#*x}
if [ -z "${OPSCONSOLE_BIN:-}" ]; then
  cargo build --release --locked -q
  bin=$PWD/target/release/opsconsole
else
  bin=$(realpath "$OPSCONSOLE_BIN")
fi
bin2=${OPSCONSOLE_BIN2:+$(realpath "$OPSCONSOLE_BIN2")}
command -v btop >/dev/null || { echo "btop is not installed (apt-get install btop)"; exit 1; }
command -v htop >/dev/null || { echo "htop is not installed (apt-get install htop)"; exit 1; }
tmp=$(mktemp -d)
sock=opsconsole-bench-$$
cleanup() { tmux -L "$sock" kill-server 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

# Three programs in terminals of the same size, side by side in time:
# - "run": `opsconsole demo`, i.e. a simulated trainer (its own process, not counted)
#   writing a log and a 3 MB checkpoint every 5 s, and a console that also runs the sync
#   engine, uploading every new file to the demo's two local remotes;
# - "con": a second console on the same workspace, as a user runs it beside a training run
#   whose uploads are done by an engine elsewhere (here the demo console's; a daemon in
#   production): every collector live at its default interval, reading the ledger, no
#   upload work of its own;
# - "idle": a console on an empty folder (no log, no checkpoints, no remote);
# - "con2": with OPSCONSOLE_BIN2, that build as a second console beside the run;
# - "top": btop at its default refresh; "htop": htop at its default refresh.
. benches/demo_run.sh
demo_run "$sock" "$bin" "$tmp" "$cols" "$rows"
tmux -L "$sock" new-session -d -s con -x "$cols" -y "$rows" "XDG_STATE_HOME=$tmp/state2 exec $bin -w $tmp/demo"
mkdir -p "$tmp/empty"
tmux -L "$sock" new-session -d -s idle -x "$cols" -y "$rows" "XDG_STATE_HOME=$tmp/state3 exec $bin -w $tmp/empty"
tmux -L "$sock" new-session -d -s top -x "$cols" -y "$rows" "exec btop"
tmux -L "$sock" new-session -d -s htop -x "$cols" -y "$rows" "exec htop"
if [ -n "$bin2" ]; then
  tmux -L "$sock" new-session -d -s con2 -x "$cols" -y "$rows" "XDG_STATE_HOME=$tmp/state4 exec $bin2 -w $tmp/demo"
  mkdir -p "$tmp/empty2"
  tmux -L "$sock" new-session -d -s idle2 -x "$cols" -y "$rows" "XDG_STATE_HOME=$tmp/state5 exec $bin2 -w $tmp/empty2"
fi
sleep 5
run=$(pgrep -f -x "$bin demo --dir $tmp/demo" | head -1)
con=$(tmux -L "$sock" display -p -t "=con:" '#{pane_pid}')
idle=$(tmux -L "$sock" display -p -t "=idle:" '#{pane_pid}')
top=$(tmux -L "$sock" display -p -t "=top:" '#{pane_pid}')
htop=$(tmux -L "$sock" display -p -t "=htop:" '#{pane_pid}')
con2=$con
idle2=$idle
[ -n "$bin2" ] && con2=$(tmux -L "$sock" display -p -t "=con2:" '#{pane_pid}')
[ -n "$bin2" ] && idle2=$(tmux -L "$sock" display -p -t "=idle2:" '#{pane_pid}')
. benches/procstat.sh
for p in "$run" "$con" "$idle" "$top" "$htop" "$con2" "$idle2"; do cpu_watch "$p"; done
trap 'cpu_unwatch; cleanup' EXIT
r0=$(cpu_ns "$run"); c0=$(cpu_ns "$con"); i0=$(cpu_ns "$idle"); t0=$(cpu_ns "$top"); h0=$(cpu_ns "$htop"); d0=$(cpu_ns "$con2"); e0=$(cpu_ns "$idle2")
sleep "$secs"
r1=$(cpu_ns "$run"); c1=$(cpu_ns "$con"); i1=$(cpu_ns "$idle"); t1=$(cpu_ns "$top"); h1=$(cpu_ns "$htop"); d1=$(cpu_ns "$con2"); e1=$(cpu_ns "$idle2")
cpu() { awk -v d="$1" -v s="$secs" 'BEGIN {printf "%.3f", d / 1e9 / s * 100}'; }
echo "CPU measured as $(cpu_how)"
echo "| program ($size, load average $(cut -d' ' -f1-3 /proc/loadavg)) | CPU (% of one core) over ${secs}s | peak RSS (MiB) |"
echo "|---|---|---|"
echo "| opsconsole beside the run (default intervals, every collector live) | $(cpu $((c1 - c0))) | $(hwm "$con") |"
[ -n "$bin2" ] && echo "| $(basename "$bin2") beside the run (the second build) | $(cpu $((d1 - d0))) | $(hwm "$con2") |"
echo "| opsconsole on an empty folder (nothing to follow; no GPU, no remote) | $(cpu $((i1 - i0))) | $(hwm "$idle") |"
[ -n "$bin2" ] && echo "| $(basename "$bin2") on an empty folder (the second build) | $(cpu $((e1 - e0))) | $(hwm "$idle2") |"
echo "| opsconsole demo (console plus its own sync engine uploading) | $(cpu $((r1 - r0))) | $(hwm "$run") |"
echo "| $(btop --version 2>/dev/null | head -1 || echo btop) (default 2 s refresh) | $(cpu $((t1 - t0))) | $(hwm "$top") |"
echo "| $(htop --version 2>/dev/null | head -1 || echo htop) (default 1.5 s refresh) | $(cpu $((h1 - h0))) | $(hwm "$htop") |"
echo
echo "beside the run against htop: $(awk -v a=$((c1 - c0)) -v b=$((h1 - h0)) 'BEGIN {printf "%.2f", a / b}')x$([ -n "$bin2" ] && awk -v a=$((d1 - d0)) -v b=$((h1 - h0)) 'BEGIN {printf " (the second build %.2fx)", a / b}')"
# What the peak is made of, at the end of the window: anonymous (heap, stacks) against
# file-backed (the binary's code and data, libc) resident memory, from /proc/PID/status.
rss() { awk '/^RssAnon/ {a=$2} /^RssFile/ {f=$2} /^VmRSS/ {r=$2} END {printf "RSS %.1f MiB = anon %.1f + file %.1f", r/1024, a/1024, f/1024}' "/proc/$1/status"; }
echo
echo "beside the run, at the end: $(rss "$con")"
[ -n "$bin2" ] && echo "$(basename "$bin2") beside the run, at the end: $(rss "$con2")"
echo "empty folder, at the end: $(rss "$idle")"
[ -n "$bin2" ] && echo "$(basename "$bin2") on an empty folder, at the end: $(rss "$idle2")"
tmux -L "$sock" send-keys -t con q
tmux -L "$sock" send-keys -t idle q
tmux -L "$sock" send-keys -t run q
[ -n "$bin2" ] && tmux -L "$sock" send-keys -t con2 q && tmux -L "$sock" send-keys -t idle2 q

# Exec to first full frame: the hidden --exit-after-first-frame leaves right after the
# first frame (with the first disk sample) is flushed; the time includes the restore.
mkdir -p "$tmp/ws"
tmux -L "$sock" new-session -d -s ff -x "$cols" -y "$rows" "bash --norc --noprofile"
tmux -L "$sock" send-keys -t ff "cd $tmp/ws; for i in \$(seq 20); do s=\$(date +%s%N); XDG_STATE_HOME=$tmp/state $bin --exit-after-first-frame; e=\$(date +%s%N); echo \$(( (e - s) / 1000 )) >> $tmp/ff.txt; done; echo DONE > $tmp/ff.done" Enter
for _ in $(seq 600); do [ -f "$tmp/ff.done" ] && break; sleep 0.1; done
sort -n "$tmp/ff.txt" | awk '{a[NR]=$1} END {printf "\nexec to first full frame, 20 runs: median %.1f ms, max %.1f ms\n", a[int((NR+1)/2)]/1000, a[NR]/1000}'

# The release link layout (build.rs) works from symbol names; a binary built by another
# toolchain, or after a dependency update, finds fewer of them (benches/link-order.sh
# records them again).
if command -v nm >/dev/null && [ -f assets/link-order.txt ]; then
  have=$(nm "$bin" | awk '{print $NF}' | sort -u | comm -12 - <(sort -u assets/link-order.txt) | wc -l)
  echo "link layout: $have of $(wc -l < assets/link-order.txt) functions of assets/link-order.txt are in $(basename "$bin")"
fi
