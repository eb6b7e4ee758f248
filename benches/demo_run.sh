# Sourced by the benches that measure a console beside a run (idle.sh, link-order.sh).
# demo_run SOCK BIN TMP COLS ROWS: `opsconsole demo` (BIN) in tmux session "run" on socket
# SOCK, its workspace in TMP/demo, waited for. The demo rescans checkpoints every 5 s so that
# a newcomer sees them move; consoles started beside the run afterwards read the default,
# 30 s (the demo console has read its config already).
demo_run() {
  local sock=$1 bin=$2 tmp=$3 cols=$4 rows=$5
  tmux -L "$sock" new-session -d -s run -x "$cols" -y "$rows" "XDG_STATE_HOME=$tmp/state $bin demo --dir $tmp/demo"
  for _ in $(seq 100); do [ -f "$tmp/demo/opsconsole.toml" ] && break; sleep 0.1; done
  sleep 2
  sed -i 's/^scan_secs = 5$/scan_secs = 30/' "$tmp/demo/opsconsole.toml"
  grep -q '^scan_secs = 30$' "$tmp/demo/opsconsole.toml" || { echo "could not set scan_secs in the demo config"; exit 1; }
}
