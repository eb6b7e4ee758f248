#!/usr/bin/env bash
# Time from a checkpoint written to it being confirmed on a local remote, through the real
# engine, beside `rclone copy --checksum` and `cp` + `sync` of the same file, in the same
# run, same disk, source in the page cache for every contestant.
#   engine: `sync_io engine` (benches/sync_io.rs): a daemon engine with L3 continuous into
#           a local remote; the file is hard-linked into the workspace under a .tmp name and
#           renamed into place ("written"); the time runs until the engine's `Confirmed`
#           event (hash pass, copy, fsync, rename, verification, ledger), minus the 1 s
#           settle (the engine looks again the moment the settle period ends; before
#           the ninth session its 250 ms tick noticed it, and that wait was in the figure).
#   rclone: `rclone copy --checksum FILE DIR` (its own hash of the source, the copy, its
#           check of the copy; no fsync) timed by /usr/bin/time.
#   cp:     `cp FILE DIR/ && sync`.
# Contestants alternate, RUNS times each; the best and the median wall time are printed.
# Each starts copying about 2.5 s after the previous copy was deleted: on a VM with free
# page reporting (virtio-balloon), memory freed seconds ago costs the host a fault per page
# when it is touched again, and writing 1 GiB of fresh page cache then takes several times
# longer. The engine's copy starts ~2.5 s after `fresh` (1.5 s start, 1 s settle), so rclone
# and cp wait `IDLE` (2.5 s) after `fresh` too.
# COLD=SECS waits that long after every `fresh`, before each contestant (the engine
# included): long enough (20 s) for the kernel to report the memory just freed to the host,
# so every contestant starts on memory the host must fault in again, the state of a VM in
# its first minutes. With most of the warm memory held elsewhere (a large file in
# /dev/shm), this is where writing 1 GiB through the page cache took 2-3 s instead of 0.8
# (docs/performance.md, "Eleventh session" under "Written → confirmed").
# BEFORE=path/to/an/older/sync_io binary adds that build's engine as a fourth contestant
# (how the figures "before" in docs/performance.md were taken in the same run).
# Usage: benches/sync_confirm.sh [SIZE_MIB] [RUNS] [DIR]   (default 1024 MiB, 3 runs, /tmp)
set -euo pipefail
size_mib=${1:-1024}
runs=${2:-3}
base=${3:-$(mktemp -d /tmp/opsconsole-confirm.XXXXXX)}
mkdir -p "$base"
trap 'rm -rf "$base"' EXIT
command -v rclone >/dev/null || { echo "rclone is not installed (apt-get install rclone)"; exit 1; }
cargo bench --bench sync_io --no-run >/dev/null 2>&1
bin=$(ls -t target/release/deps/sync_io-* | grep -v '\.d$' | head -1)
f="$base/src.bin"
echo "writing a ${size_mib} MiB file in $base ($(stat -f -c %T "$base"))"
head -c $((size_mib * 1024 * 1024)) /dev/urandom > "$f"
sync
sum=$(sha256sum "$f" | cut -d' ' -f1)
echo "$(rclone version 2>/dev/null | head -1); load average $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs"

idle=${IDLE:-2.5}
fresh() { rm -rf "$base/run" && mkdir -p "$base/run" && sync && cat "$f" > /dev/null && sleep "${COLD:-0}"; }
secs() { /usr/bin/time -f "%e" -o "$base/time" "$@" > "$base/out" 2> "$base/err"; cat "$base/time"; }
ew=(); hw=(); rw=(); cw=(); bw=()
for i in $(seq "$runs"); do
  fresh
  "$bin" engine "$f" "$base/run" "$sum" > "$base/out"
  ew+=("$(awk '{print $4}' "$base/out")"); hw+=("$(awk '{print $2}' "$base/out")")
  fresh; sleep "$idle"
  rw+=("$(secs rclone copy --checksum --config /dev/null "$f" "$base/run/rclone")")
  [ "$(sha256sum "$base/run/rclone/src.bin" | cut -d' ' -f1)" = "$sum" ] || { echo "rclone copy differs"; exit 1; }
  fresh; sleep "$idle"
  cw+=("$(secs sh -c "cp '$f' '$base/run/' && sync")")
  if [ -n "${BEFORE:-}" ]; then
    fresh
    "$BEFORE" engine "$f" "$base/run" "$sum" > "$base/out"
    bw+=("$(awk '{print $4}' "$base/out")")
  fi
  echo "run $i: engine ${ew[-1]} s (hashed at ${hw[-1]} s) | rclone ${rw[-1]} s | cp+sync ${cw[-1]} s${BEFORE:+ | engine before ${bw[-1]} s}"
done
best() { printf '%s\n' "$@" | sort -n | head -1; }
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
eb=$(best "${ew[@]}"); rb=$(best "${rw[@]}"); cb=$(best "${cw[@]}")
em=$(median "${ew[@]}"); rm_=$(median "${rw[@]}"); cm=$(median "${cw[@]}")
echo "written->confirmed, ${size_mib} MiB: engine best ${eb} s median ${em} s | rclone copy --checksum best ${rb} s median ${rm_} s | cp+sync best ${cb} s median ${cm} s"
[ -n "${BEFORE:-}" ] && echo "engine before: best $(best "${bw[@]}") s median $(median "${bw[@]}") s"
echo "engine/rclone: best $(echo "scale=2; $eb / $rb" | bc), median $(echo "scale=2; $em / $rm_" | bc) (aim <= 0.6)"
