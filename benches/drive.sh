#!/usr/bin/env bash
# Drive upload benchmark, against `curl -T` of the same file to the same stand-in
# (tests/support/drive.rs, run by benches/drive_io.rs on 127.0.0.1) in the same run:
#   1. Throughput: opsconsole's Drive remote (resumable session, 8 MiB chunks, MD5 confirmed
#      by the server's md5Checksum, appProperties stamped) vs curl -T (the whole file in
#      one PUT into a resumable session). Ours twice: computing MD5 + SHA-256 of the bytes
#      it sends (what the engine does while UploadRequest.md5 is None) and with the MD5
#      given by the hash pass.
#   2. Peak RSS (/usr/bin/time %M) of the upload process: 8 MiB chunks for the file and for
#      a quarter of it (equal when memory follows the chunk, not the file), and 64 MiB chunks.
# Usage: benches/drive.sh [SIZE_MIB] [DIR]   (default 1024 MiB in a temp folder under /tmp)
set -euo pipefail
size_mib=${1:-1024}
base=${2:-$(mktemp -d /tmp/opsconsole-drive-bench.XXXXXX)}
mkdir -p "$base"
cleanup() { exec 3>&- 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$base"; }
trap cleanup EXIT
cargo bench --bench drive_io --no-run >/dev/null 2>&1
bin=$(ls -t target/release/deps/drive_io-* | grep -v '\.d$' | head -1)
f="$base/src.bin"
echo "writing a ${size_mib} MiB file in $base"
head -c $((size_mib * 1024 * 1024)) /dev/urandom > "$f"
size=$(stat -c %s "$f")
sha=$(sha256sum "$f" | cut -d' ' -f1)
md5=$(md5sum "$f" | cut -d' ' -f1)
sync
cat "$f" > /dev/null   # page cache warm for every contestant

runs=2
mkfifo "$base/ctl"
"$bin" serve "$base" "$size" "$runs" < "$base/ctl" > "$base/serve.out" 2> "$base/serve.err" &
exec 3> "$base/ctl"    # the stand-in serves while this stays open
for _ in $(seq 1 100); do
  [ "$(wc -l < "$base/serve.out")" -ge $((runs + 1)) ] && break
  sleep 0.1
done
read -r endpoint folder < <(head -1 "$base/serve.out")
mapfile -t sessions < <(tail -n +2 "$base/serve.out")
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs; stand-in at $endpoint"

mb=$size
rate() { echo "scale=0; $mb / $1 / 1000000" | bc; }
best() { printf '%s\n' "$@" | sort -n | head -1; }
# wall seconds and peak RSS (KiB) of a command, its stdout kept in $base/out
tm() { /usr/bin/time -f "%e %M" -o "$base/time" "$@" > "$base/out"; cat "$base/time"; }

cw=(); crss=(); hw=(); hrss=(); gw=()
for i in $(seq 0 $((runs - 1))); do
  read -r w r <<<"$(tm curl -sS -o /dev/null -w '%{http_code}' -T "$f" "${sessions[$i]}")"
  [ "$(cat "$base/out")" = 200 ] || { echo "curl: HTTP $(cat "$base/out")"; exit 1; }
  cw+=("$w"); crss+=("$r")
  read -r w r <<<"$(tm "$bin" upload "$endpoint" "$base/key.json" "$folder" "$f" "$sha" 8)"
  hw+=("$(awk '{print $2}' "$base/out")"); hrss+=("$r")
  read -r w r <<<"$(tm "$bin" upload "$endpoint" "$base/key.json" "$folder" "$f" "$sha" 8 "$md5")"
  gw+=("$(awk '{print $2}' "$base/out")")
done
c=$(best "${cw[@]}"); h=$(best "${hw[@]}"); g=$(best "${gw[@]}")
echo "curl -T            best ${c}s ($(rate "$c") MB/s; runs ${cw[*]}; peak RSS ${crss[*]} KiB)"
echo "opsconsole, hashing best ${h}s ($(rate "$h") MB/s; runs ${hw[*]}; peak RSS ${hrss[*]} KiB) | ratio $(echo "scale=2; $c / $h" | bc)"
echo "opsconsole, MD5 given best ${g}s ($(rate "$g") MB/s; runs ${gw[*]}) | ratio $(echo "scale=2; $c / $g" | bc)"
read -r w r64 <<<"$(tm "$bin" upload "$endpoint" "$base/key.json" "$folder" "$f" "$sha" 64 "$md5")"
# The same chunk size, a quarter of the file: the same peak when memory follows the chunk.
q="$base/quarter.bin"
head -c $((size / 4)) "$f" > "$q"
qsha=$(sha256sum "$q" | cut -d' ' -f1)
read -r w rq <<<"$(tm "$bin" upload "$endpoint" "$base/key.json" "$folder" "$q" "$qsha" 8)"
echo "peak RSS, 8 MiB chunks (hashing): $((size_mib / 4)) MiB file $rq KiB, ${size_mib} MiB file ${hrss[*]} KiB; 64 MiB chunks (MD5 given), ${size_mib} MiB file: $r64 KiB"
