#!/usr/bin/env bash
# Records which functions a console runs, for the release link layout (build.rs):
# a console beside `opsconsole demo` at 160x48 and one on an empty folder at 80x24, each
# under callgrind for the given seconds (default 120), then every function of the binary
# that ran, by symbol name, into assets/link-order.txt. The linker puts those first and
# together, so the code a console keeps resident is the code it runs (docs/performance.md,
# "Link layout"). Rerun after large changes to what the console does at idle, or after a
# toolchain update (symbol names carry the compiler's crate hashes).
# Needs valgrind, tmux, nm and python3. Usage: benches/link-order.sh [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-120}
for tool in valgrind tmux nm python3; do
  command -v "$tool" >/dev/null || { echo "$tool is not installed"; exit 1; }
done
cargo build --release --locked -q
bin=$PWD/target/release/opsconsole
tmp=$(mktemp -d)
sock=opsconsole-order-$$
cleanup() { tmux -L "$sock" kill-server 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

. benches/demo_run.sh
demo_run "$sock" "$bin" "$tmp" 160 48
mkdir -p "$tmp/empty"
cg="valgrind --tool=callgrind --demangle=no"
tmux -L "$sock" new-session -d -s con -x 160 -y 48 \
  "XDG_STATE_HOME=$tmp/state2 $cg --callgrind-out-file=$tmp/con.out $bin -w $tmp/demo 2>$tmp/con.vg"
tmux -L "$sock" new-session -d -s idle -x 80 -y 24 \
  "XDG_STATE_HOME=$tmp/state3 $cg --callgrind-out-file=$tmp/idle.out $bin -w $tmp/empty 2>$tmp/idle.vg"
sleep "$secs"
tmux -L "$sock" send-keys -t con q
tmux -L "$sock" send-keys -t idle q
for _ in $(seq 300); do [ -s "$tmp/con.out" ] && [ -s "$tmp/idle.out" ] && break; sleep 1; done
[ -s "$tmp/con.out" ] && [ -s "$tmp/idle.out" ] || { echo "callgrind wrote no profile"; cat "$tmp"/*.vg; exit 1; }
tmux -L "$sock" send-keys -t run q

python3 - "$bin" "$tmp/con.out" "$tmp/idle.out" > assets/link-order.txt <<'PY'
import re, subprocess, sys
# Every function name callgrind saw ("fn=(id) name" defines an id, later lines reuse it).
seen = set()
for path in sys.argv[2:]:
    for line in open(path, errors="replace"):
        m = re.match(r"^c?fn=\(\d+\) (.+)$", line.rstrip("\n"))
        if m:
            seen.add(m.group(1))
# Only the binary's own code: its text symbols, with their sizes.
size = {}
nm = subprocess.run(["nm", "-S", "--defined-only", sys.argv[1]], capture_output=True, text=True, check=True)
for line in nm.stdout.splitlines():
    parts = line.split()
    if len(parts) == 4 and parts[2] in "tTwW":
        size[parts[3]] = int(parts[1], 16)
ran = sorted(n for n in seen if n in size)
print("\n".join(ran))
print(f"{len(ran)} functions, {sum(size[n] for n in ran) / 1e6:.2f} MB of {sum(size.values()) / 1e6:.2f} MB of code",
      file=sys.stderr)
PY
echo "wrote assets/link-order.txt ($(wc -l < assets/link-order.txt) symbols); rebuild with cargo build --release"
