#!/usr/bin/env bash
# Hub upload throughput: opsconsole's Hub remote (preupload, LFS batch, PUT or parts +
# completion, verify) against curl doing the same transfer to the same Hub stand-in
# (tests/support/hf_hub.rs, a separate process on 127.0.0.1), in the same run, with the peak
# RSS of each uploader. basic: one `curl -T` of the file to its signed URL. multipart: the
# file split into the same parts beforehand (not timed), one `curl -T` per part URL, then
# curl POSTs the completion with the ETags. The stand-in receives, hashes and writes every
# byte for both (and joins and re-hashes the parts on completion), then throws the object
# away so the same file can go again.
# Usage: benches/hf_upload.sh [SIZE_MIB] [basic|multipart] [CHUNK_MIB]   (default 1024 basic 16)
set -euo pipefail
size_mib=${1:-1024}
mode=${2:-basic}
chunk=${3:-16}
base=$(mktemp -d /tmp/opsconsole-hfbench.XXXXXX)
server=""
cleanup() {
  exec 3>&- 2>/dev/null || true
  [ -n "$server" ] && kill "$server" 2>/dev/null || true
  rm -rf "$base"
}
trap cleanup EXIT
cargo bench --bench hf_upload --no-run >/dev/null 2>&1
bin=$(ls -t target/release/deps/hf_upload-* | grep -v '\.d$' | head -1)
f="$base/weights.bin"
echo "writing a ${size_mib} MiB file in $base"
head -c $((size_mib * 1024 * 1024)) /dev/urandom > "$f"
sum=$(sha256sum "$f" | cut -d' ' -f1)
cat "$f" > /dev/null   # page cache warm for both contestants

mkfifo "$base/in"
"$bin" serve "$mode" "$chunk" < "$base/in" > "$base/serve.out" 2> "$base/serve.err" &
server=$!
exec 3> "$base/in"
for _ in $(seq 100); do grep -q ENDPOINT "$base/serve.out" 2>/dev/null && break; sleep 0.05; done
endpoint=$(awk '/ENDPOINT/ {print $2}' "$base/serve.out")
echo "stand-in at $endpoint ($mode, ${chunk} MiB parts); load average $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs"

bytes=$((size_mib * 1024 * 1024))
rate() { echo "scale=0; $bytes / $1 / 1000000" | bc; }
best() { printf '%s\n' "$@" | sort -n | head -1; }
cw=(); cr=(); ow=(); orss=()
if [ "$mode" = multipart ]; then
  (cd "$base" && split -b "${chunk}M" -d -a 5 "$f" part.)
fi
# curl doing the multipart protocol: one PUT per part, then the completion with the ETags.
curl_parts() {
  local n=0 parts="" url
  while read -r kind num url; do
    if [ "$kind" = PART ]; then
      local part; part=$(printf '%s/part.%05d' "$base" $((num - 1)))
      etag=$(curl -sS -f -T "$part" "$url" -D - -o /dev/null | tr -d '\r' | awk -F': ' 'tolower($1)=="etag" {print $2}')
      parts="$parts${parts:+,}{\"partNumber\":$num,\"etag\":$(printf '%s' "$etag" | sed 's/"/\\"/g; s/^/"/; s/$/"/')}"
    else
      curl -sS -f -X POST -H 'content-type: application/vnd.git-lfs+json' \
        --data "{\"oid\":\"$sum\",\"parts\":[$parts]}" "$num" -o /dev/null
    fi
  done < "$base/parts"
}
for _ in 1 2 3; do
  if [ "$mode" = multipart ]; then
    "$bin" parts "$endpoint" "$f" "$sum" > "$base/parts"
    /usr/bin/time -f "%e %M" -o "$base/t" bash -c "$(declare -f curl_parts); base='$base' sum='$sum' curl_parts"
  else
    url=$("$bin" signed-url "$endpoint" "$f" "$sum")
    /usr/bin/time -f "%e %M" -o "$base/t" curl -sS -f -T "$f" "$url" -o /dev/null
  fi
  read -r w m < "$base/t"; cw+=("$w"); cr+=("$m")
  /usr/bin/time -f "%e %M" -o "$base/t" "$bin" upload "$endpoint" "$f" "$sum" > "$base/up.out"
  read -r w m < "$base/t"; ow+=("$w"); orss+=("$m")
done
c=$(best "${cw[@]}"); o=$(best "${ow[@]}")
echo "curl ($mode)   best ${c}s ($(rate "$c") MB/s; runs ${cw[*]}); peak RSS KiB ${cr[*]}"
echo "opsconsole   best ${o}s ($(rate "$o") MB/s; runs ${ow[*]}); peak RSS KiB ${orss[*]}"
echo "throughput ratio opsconsole/curl $(echo "scale=2; $c / $o" | bc)"
