#!/usr/bin/env bash
# Log tailer benchmarks, each beside the standard tool on the same file in the same run.
# Big files go to a temp folder that is removed at the end. About 2-3 minutes.
#
#   benches/logtail.sh                 # all three
#   FOLLOW_SECS=10 benches/logtail.sh  # shorter follow run
set -euo pipefail
cd "$(dirname "$0")/.."

FOLLOW_SECS=${FOLLOW_SECS:-30}
FOLLOW_RATE=${FOLLOW_RATE:-100000}
RUNS=${RUNS:-5}

BIN=$(cargo bench --bench logtail --no-run 2>&1 | sed -n 's/.*Executable .*(\(.*\)).*/\1/p' | tail -1)
[ -x "$BIN" ] || { echo "could not build the bench driver"; exit 1; }
cargo build --release --bin opsconsole 2>/dev/null
CONSOLE=target/release/opsconsole
TMP=${BENCH_TMP:-}; [ -n "$TMP" ] && mkdir -p "$TMP" || TMP=$(mktemp -d "${TMPDIR:-/tmp}/opsconsole-logtail-bench.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
[ -n "${KEEP_TMP:-}" ] && trap - EXIT

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# Output goes to a file, not /dev/null: GNU grep stops at the first match when it
# sees /dev/null.
secs() { local s e; s=$(date +%s.%N); "$@" >"$TMP/out"; e=$(date +%s.%N); echo "$e - $s" | bc -l; }

echo "machine: $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), load $(cut -d' ' -f1-3 /proc/loadavg)"

echo "== last screen of a 2 GiB log (50 lines; warm page cache) =="
mkdir -p "$TMP/ws/experiments/v1/logs"
BIG="$TMP/ws/experiments/v1/logs/train.log"
"$BIN" gen-plain "$BIG" 2048
ls -l "$BIG" | awk '{print "file bytes", $5}'
for _ in $(seq "$RUNS"); do secs "$BIN" last-screen "$BIG" 50; done | median | awk '{printf "opsconsole last-screen (process start to exit): %.1f ms\n", $1*1000}'
for _ in $(seq "$RUNS"); do "$BIN" last-screen "$BIG" 50 | awk '{print $4}'; done | median | awk '{printf "opsconsole read_last_lines in-process:         %.3f ms\n", $1}'
for _ in $(seq "$RUNS"); do secs tail -n 50 "$BIG"; done | median | awk '{printf "tail -n 50 (process start to exit):            %.1f ms\n", $1*1000}'
# The console itself on a 160x48 pseudo-terminal, from start to its first full frame
# (which must show the log's values and chart), beside tail on the same terminal.
frame() { TERM=xterm XDG_STATE_HOME="$TMP/state" script -qec "stty cols 160 rows 48; $CONSOLE -w $TMP/ws --exit-after-first-frame" /dev/null; }
frame | grep -aq "loss vs step" || { echo "the first frame does not show the log"; exit 1; }
for _ in $(seq "$RUNS"); do secs frame; done | median | awk '{printf "opsconsole console, start to first frame:      %.1f ms\n", $1*1000}'
ptytail() { script -qec "stty cols 160 rows 48; tail -n 50 $BIG" /dev/null; }
for _ in $(seq "$RUNS"); do secs ptytail; done | median | awk '{printf "tail -n 50 on the same pseudo-terminal:        %.1f ms\n", $1*1000}'
rm -rf "$TMP/ws"

echo "== metric backfill of a 1 GiB Hugging Face Trainer log =="
"$BIN" gen-hf "$TMP/hf.log" 1024
for _ in 1 2 3; do "$BIN" backfill "$TMP/hf.log"; done | tee "$TMP/bf.txt"
awk '{print $12}' "$TMP/bf.txt" | median | awk '{printf "opsconsole backfill: %.0f MB/s (median of 3)\n", $1}'
size=$(stat -c %s "$TMP/hf.log")
for _ in 1 2 3; do secs grep -c loss "$TMP/hf.log"; done | median | awk -v b="$size" '{printf "grep -c loss:        %.0f MB/s (median of 3)\n", b/1e6/$1}'
rm -f "$TMP/hf.log"

echo "== a 10 MB line (cap 4096 bytes) =="
{ echo before; head -c 10485760 /dev/zero | tr '\0' 'x'; echo; echo after; } > "$TMP/long.log"
"$BIN" long-line "$TMP/long.log"
rm -f "$TMP/long.log"

echo "== follow a writer appending $FOLLOW_RATE lines/s for $FOLLOW_SECS s =="
: > "$TMP/follow.log"
"$BIN" follow-reader "$TMP/follow.log" $((FOLLOW_RATE * FOLLOW_SECS)) $((FOLLOW_SECS + 30)) > "$TMP/reader.txt" &
reader=$!
sleep 1
"$BIN" follow-writer "$TMP/follow.log" "$FOLLOW_RATE" "$FOLLOW_SECS"
wait "$reader"
cat "$TMP/reader.txt"

echo "== the whole console (tmux 160x48) following the same writer for $FOLLOW_SECS s =="
mkdir -p "$TMP/fws/experiments/v1/logs"
FLOG="$TMP/fws/experiments/v1/logs/train.log"
: > "$FLOG"
SOCK="opsconsole-bench-$$"
tmux -L "$SOCK" new-session -d -s b -x 160 -y 48 \
  "TERM=xterm XDG_STATE_HOME=$TMP/state sh -c 'echo \$\$ > $TMP/console.pid; exec $CONSOLE -w $TMP/fws'"
trap 'tmux -L "$SOCK" kill-server 2>/dev/null; rm -rf "$TMP"' EXIT
for _ in $(seq 100); do [ -s "$TMP/console.pid" ] && break; sleep 0.05; done
cpid=$(cat "$TMP/console.pid")
sleep 1
ticks() { awk '{print $14 + $15}' "/proc/$cpid/stat"; }
t0=$(ticks); s0=$(date +%s.%N)
"$BIN" follow-writer "$FLOG" "$FOLLOW_RATE" "$FOLLOW_SECS"
t1=$(ticks); s1=$(date +%s.%N)
last="seq $((FOLLOW_RATE * FOLLOW_SECS - 1)) "
# Display lag of the last line: from the writer's end until tmux shows it (polled every
# 20 ms, so an upper bound).
shown=never
for _ in $(seq 200); do
  if tmux -L "$SOCK" capture-pane -p -t b | grep -q "$last"; then
    shown="$(echo "($(date +%s.%N) - $s1) * 1000" | bc -l | xargs printf '%.0f')ms"
    break
  fi
  sleep 0.02
done
rss=$(awk '/VmHWM/ {print $2}' "/proc/$cpid/status")
kill -TERM "$cpid"
hz=$(getconf CLK_TCK)
echo "console cpu_percent $(echo "($t1 - $t0) / $hz / ($s1 - $s0) * 100" | bc -l | xargs printf '%.1f') peak_rss_mib $(echo "$rss / 1024" | bc) last_line_on_screen_after $shown"
