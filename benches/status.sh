#!/usr/bin/env bash
# `opsconsole status --json` on a workspace whose log is about 2.15 GB of real Hugging Face
# Trainer lines (tqdm bar states and metric dicts, written by `logtail gen-hf`; no sparse
# file), timed with hyperfine beside the metric backfill rate and `wc -l` on the same file:
#   first call:    no kept state (`.opsconsole/logscan` removed before each run): a full read;
#                  this is also what every call cost before the state was kept;
#   repeated call: the state kept by the previous call, nothing appended;
#   after append:  1000 lines (~100 KB) appended before each run;
#   log --json:    the log's part alone, repeated.
# The log is deleted at the end. Usage: benches/status.sh [MIB] [RUNS]  (default 2050, 20)
set -euo pipefail
cd "$(dirname "$0")/.."
mib=${1:-2050}
runs=${2:-20}
command -v hyperfine >/dev/null || { echo "hyperfine is not installed (apt-get install hyperfine)"; exit 1; }
BIN=$(cargo bench --bench logtail --no-run 2>&1 | sed -n 's/.*Executable .*(\(.*\)).*/\1/p' | tail -1)
[ -x "$BIN" ] || { echo "could not build the bench driver"; exit 1; }
cargo build --release --bin opsconsole 2>/dev/null
CONSOLE=$PWD/target/release/opsconsole
TMP=$(mktemp -d "${TMPDIR:-/tmp}/opsconsole-status-bench.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
WS=$TMP/ws
LOG=$WS/experiments/v1/logs/train.log
mkdir -p "$(dirname "$LOG")"
export XDG_STATE_HOME=$TMP/state XDG_CONFIG_HOME=/nonexistent-xdg
echo "machine: $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), $(stat -f -c %T "$TMP"); $(hyperfine --version)"
"$BIN" gen-hf "$LOG" "$mib"
size=$(stat -c %s "$LOG")
echo "log: $size bytes, $(wc -l < "$LOG") lines"
cat "$LOG" > /dev/null
status() { "$CONSOLE" -w "$WS" status --json; }
# The answers of a repeated call are those of a full read (but the age of the last line,
# which moves with the clock between the two calls).
rm -rf "$WS/.opsconsole/logscan"
status | jq -S '{log, metrics} | walk(if type == "object" then del(.seconds_since_last_line) else . end)' > "$TMP/full.json"
status | jq -S '{log, metrics} | walk(if type == "object" then del(.seconds_since_last_line) else . end)' > "$TMP/cached.json"
cmp -s "$TMP/full.json" "$TMP/cached.json" || { echo "a repeated call answers differently"; diff "$TMP/full.json" "$TMP/cached.json"; exit 1; }
echo "error_count $(jq .log.error_count "$TMP/full.json"), step $(jq .metrics.step "$TMP/full.json"), eval_loss $(jq .metrics.eval_loss "$TMP/full.json")"

hf() { hyperfine -N --style basic --export-json "$TMP/$1.json" "${@:2}" >/dev/null 2>&1 || hyperfine -N --style basic "${@:2}"; jq -r '.results[0] | "\(.mean*1000) \(.median*1000) \(.min*1000) \(.max*1000)"' "$TMP/$1.json"; }
show() { awk -v what="$1" '{printf "%-44s mean %8.1f ms  median %8.1f ms  min %8.1f  max %8.1f\n", what, $1, $2, $3, $4}'; }
hf first --runs 3 --prepare "rm -rf $WS/.opsconsole/logscan" "$CONSOLE -w $WS status --json" | show "status --json, first call (full read)"
status > /dev/null
hf repeat --warmup 2 --runs "$runs" "$CONSOLE -w $WS status --json" | show "status --json, repeated"
"$BIN" gen-plain "$TMP/more.log" 1
hf append --runs "$runs" --prepare "sh -c 'head -n 1000 $TMP/more.log >> $LOG'" "$CONSOLE -w $WS status --json" | show "status --json, 1000 lines appended each time"
hf logjson --warmup 2 --runs "$runs" "$CONSOLE -w $WS log --json" | show "log --json, repeated"
hf wc --runs 3 "wc -l $LOG" | show "wc -l (same log)"
"$BIN" backfill "$LOG" | awk '{printf "metric backfill in-process: %s\n", $0}'
