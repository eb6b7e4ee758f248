#!/usr/bin/env bash
# Idle CPU of the console with its exporter on ([metrics] listen) and a scrape every 15 s,
# against the same console without the exporter; and `opsconsole exporter` alone under the
# same scrapes. Usage: benches/metrics_idle.sh [seconds]   (default 120)
# Needs tmux and curl. Prints a Markdown table for docs/performance.md.
# OPSCONSOLE_BIN=path uses that binary instead of building the release one.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-120}
if [ -n "${OPSCONSOLE_BIN:-}" ]; then
  bin=$OPSCONSOLE_BIN
else
  cargo build --release --locked -q
  bin=$PWD/target/release/opsconsole
fi
tmp=$(mktemp -d)
sock=opsconsole-metrics-bench-$$
scraper=""
cleanup() {
  [ -n "$scraper" ] && kill "$scraper" 2>/dev/null || true
  tmux -L "$sock" kill-server 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
hz=$(getconf CLK_TCK)

# Two demo workspaces, each left with the log and checkpoints of ~10 s of the simulated
# trainer (then stopped: both consoles see the same still workspace, every collector live
# at its default interval).
for w in a b; do
  tmux -L "$sock" new-session -d -s "mk$w" -x 160 -y 48 "XDG_STATE_HOME=$tmp/state-$w $bin demo --keep --dir $tmp/$w"
  sleep 10
  tmux -L "$sock" send-keys -t "mk$w" q
  for _ in $(seq 100); do tmux -L "$sock" has-session -t "mk$w" 2>/dev/null || break; sleep 0.1; done
done
port=$((20000 + RANDOM % 20000))
eport=$((port + 1))
sed -i "s/^listen = \"\"$/listen = \"127.0.0.1:$port\"/" "$tmp/b/opsconsole.toml"
grep -q "^listen = \"127.0.0.1:$port\"$" "$tmp/b/opsconsole.toml" || { echo "could not set [metrics] listen"; exit 1; }

tmux -L "$sock" new-session -d -s plain -x 160 -y 48 "XDG_STATE_HOME=$tmp/s1 exec $bin -w $tmp/a"
tmux -L "$sock" new-session -d -s served -x 160 -y 48 "XDG_STATE_HOME=$tmp/s2 exec $bin -w $tmp/b"
tmux -L "$sock" new-session -d -s exporter -x 160 -y 48 "XDG_STATE_HOME=$tmp/s3 exec $bin -w $tmp/a exporter --listen 127.0.0.1:$eport"
sleep 5
plain=$(tmux -L "$sock" display -p -t plain '#{pane_pid}')
served=$(tmux -L "$sock" display -p -t served '#{pane_pid}')
exporter=$(tmux -L "$sock" display -p -t exporter '#{pane_pid}')
curl -sf "http://127.0.0.1:$port/metrics" >/dev/null || { echo "the console does not serve /metrics"; exit 1; }
curl -sf "http://127.0.0.1:$eport/metrics" >/dev/null || { echo "the exporter does not serve /metrics"; exit 1; }
# Prometheus's default: a scrape every 15 s (each on a new connection here).
( while true; do
    curl -sf -H 'Accept: application/openmetrics-text; version=1.0.0' "http://127.0.0.1:$port/metrics" >/dev/null
    curl -sf -H 'Accept: application/openmetrics-text; version=1.0.0' "http://127.0.0.1:$eport/metrics" >/dev/null
    sleep 15
  done ) &
scraper=$!
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
p0=$(ticks "$plain"); s0=$(ticks "$served"); e0=$(ticks "$exporter")
sleep "$secs"
p1=$(ticks "$plain"); s1=$(ticks "$served"); e1=$(ticks "$exporter")
hwm() { awk '/VmHWM/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }
cpu() { awk -v d="$1" -v hz="$hz" -v s="$secs" 'BEGIN {printf "%.2f", d / hz / s * 100}'; }
echo "| program (${secs}s, a scrape every 15 s where served) | CPU (% of one core) | peak RSS (MiB) |"
echo "|---|---|---|"
echo "| console, no exporter | $(cpu $((p1 - p0))) | $(hwm "$plain") |"
echo "| console with [metrics] listen, scraped | $(cpu $((s1 - s0))) | $(hwm "$served") |"
echo "| opsconsole exporter (sample_ms 10000), scraped | $(cpu $((e1 - e0))) | $(hwm "$exporter") |"
