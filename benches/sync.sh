#!/usr/bin/env bash
# Sync benchmarks, each beside the standard tool in the same run, same file, same disk:
#   1. SHA-256 of a 2 GiB file: opsconsole's hasher vs `sha256sum` (page cache warm for both).
#   2. The engine's hash pass (SHA-256 and MD5 in one read) vs `sha256sum` then `md5sum`.
#   3. Local-remote upload of the same file vs `cp` + `sync` into the same folder.
# Usage: benches/sync.sh [SIZE_MIB] [DIR]   (default 2048 MiB in a temp folder under /tmp)
set -euo pipefail
size_mib=${1:-2048}
base=${2:-$(mktemp -d /tmp/opsconsole-bench.XXXXXX)}
mkdir -p "$base"
trap 'rm -rf "$base"' EXIT
cargo bench --bench sync_io --no-run >/dev/null 2>&1
bin=$(ls -t target/release/deps/sync_io-* | grep -v '\.d$' | head -1)
f="$base/src.bin"
echo "writing a ${size_mib} MiB file in $base"
head -c $((size_mib * 1024 * 1024)) /dev/urandom > "$f"
sync
cat "$f" > /dev/null   # warm the page cache for both contestants

# /usr/bin/time: wall seconds, then user+system CPU seconds (the box may be shared: CPU
# time is the fairer figure under contention).
tm() { /usr/bin/time -f "%e %U %S" -o "$base/time" "$@" > "$base/out"; awk '{printf "%s %.2f", $1, $2 + $3}' "$base/time"; }
mb=$((size_mib * 1024 * 1024))
rate() { echo "scale=0; $mb / $1 / 1000000" | bc; }
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs"

sum=$(sha256sum "$f" | cut -d' ' -f1)
best() { printf '%s\n' "$@" | sort -n | head -1; }
# Each contestant runs twice, alternating; the best wall time of each counts.
hw=(); hc=(); ow=(); oc=()
for _ in 1 2; do
  read -r w c <<<"$(tm sha256sum "$f")"; hw+=("$w"); hc+=("$c")
  read -r w c <<<"$(tm "$bin" hash "$f")"; ow+=("$w"); oc+=("$c")
  [ "$(awk '{print $3}' "$base/out")" = "$sum" ] || { echo "hash mismatch"; exit 1; }
done
ref_w=$(best "${hw[@]}"); our_w=$(best "${ow[@]}")
echo "hash    sha256sum best wall ${ref_w}s ($(rate "$ref_w") MB/s; runs ${hw[*]}, cpu ${hc[*]}) | opsconsole best wall ${our_w}s ($(rate "$our_w") MB/s; runs ${ow[*]}, cpu ${oc[*]}) | throughput ratio $(echo "scale=2; $ref_w / $our_w" | bc)"

md5=$(md5sum "$f" | cut -d' ' -f1)
rw=(); dw=()
for _ in 1 2; do
  read -r w1 _ <<<"$(tm sha256sum "$f")"; read -r w2 _ <<<"$(tm md5sum "$f")"
  rw+=("$(echo "$w1 + $w2" | bc)")
  read -r w c <<<"$(tm "$bin" digest "$f")"; dw+=("$w")
  [ "$(awk '{print $3 " " $4}' "$base/out")" = "$sum $md5" ] || { echo "digest mismatch"; exit 1; }
done
ref_w=$(best "${rw[@]}"); our_w=$(best "${dw[@]}")
echo "digest  sha256sum+md5sum best wall ${ref_w}s (runs ${rw[*]}) | opsconsole sha256+md5 one read best wall ${our_w}s ($(rate "$our_w") MB/s; runs ${dw[*]}) | ratio $(echo "scale=2; $ref_w / $our_w" | bc)"

mkdir -p "$base/cp" "$base/remote"
cw=(); uw=(); vw=()
for _ in 1 2; do
  rm -rf "$base/cp/x" "$base/remote"; mkdir -p "$base/remote"; sync; cat "$f" > /dev/null
  read -r w c <<<"$(tm sh -c "cp '$f' '$base/cp/x' && sync")"; cw+=("$w")
  rm -rf "$base/cp/x"; sync; cat "$f" > /dev/null
  tm "$bin" upload "$f" "$base/remote" "$sum" >/dev/null
  uw+=("$(awk '{print $2}' "$base/out")"); vw+=("$(awk '{print $4}' "$base/out")")
done
cp_w=$(best "${cw[@]}"); up_w=$(best "${uw[@]}"); ver_w=$(best "${vw[@]}")
echo "upload  cp+sync best wall ${cp_w}s ($(rate "$cp_w") MB/s; runs ${cw[*]}) | opsconsole upload (copy, fsync, rename) best ${up_w}s ($(rate "$up_w") MB/s; runs ${uw[*]}) | throughput ratio $(echo "scale=2; $cp_w / $up_w" | bc) | then verify (read back + sha256) best ${ver_w}s (runs ${vw[*]})"
