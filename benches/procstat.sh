# Sourced by the benches that measure running processes (idle.sh, gpu_real.sh).
# ticks PID: the CPU clock ticks (user + system) PID has used; hwm PID: its peak RSS in MiB.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hwm() { awk '/VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }

# Exact CPU time. Clock ticks move in 10 ms steps, and a console idle beside a run uses 8-15
# of them in two minutes, so two builds 20% apart in instructions read the same. Where this
# shell may make cgroups (cgroup v1 `cpuacct`, or cgroup v2), `cpu_watch PID` puts PID in a
# cgroup of its own, and `cpu_ns PID` reads the nanoseconds every thread of it has run
# (threads that ended included, children too). Elsewhere `cpu_ns` is the ticks in ns.
# `cpu_how` says which; `cpu_unwatch` moves the processes back and removes the cgroups.
CPU_CG_ROOT=""
CPU_CG_KIND=""
if [ -w /sys/fs/cgroup/cpuacct ] && [ -f /sys/fs/cgroup/cpuacct/cpuacct.usage ]; then
  CPU_CG_ROOT=/sys/fs/cgroup/cpuacct CPU_CG_KIND=v1
elif [ -f /sys/fs/cgroup/cgroup.controllers ] && [ -w /sys/fs/cgroup ]; then
  CPU_CG_ROOT=/sys/fs/cgroup CPU_CG_KIND=v2
fi
CPU_CG_DIRS=()
cpu_how() {
  if [ -n "$CPU_CG_ROOT" ]; then echo "exact CPU time (cgroup $CPU_CG_KIND)"; else echo "clock ticks of $((1000 / $(getconf CLK_TCK))) ms"; fi
}
cpu_watch() {
  [ -n "$CPU_CG_ROOT" ] || return 0
  local d="$CPU_CG_ROOT/opsconsole-bench-$$-$1"
  [ -d "$d" ] && return 0
  mkdir "$d" && echo "$1" > "$d/cgroup.procs" && CPU_CG_DIRS+=("$d")
}
cpu_ns() {
  local d="$CPU_CG_ROOT/opsconsole-bench-$$-$1"
  if [ -n "$CPU_CG_ROOT" ] && [ -d "$d" ]; then
    if [ "$CPU_CG_KIND" = v1 ]; then cat "$d/cpuacct.usage"; else awk '/^usage_usec/ {print $2 * 1000}' "$d/cpu.stat"; fi
  else
    echo $(( $(ticks "$1") * 1000000000 / $(getconf CLK_TCK) ))
  fi
}
cpu_unwatch() {
  local d p
  for d in "${CPU_CG_DIRS[@]}"; do
    while read -r p; do echo "$p" > "$CPU_CG_ROOT/cgroup.procs" 2>/dev/null || true; done < "$d/cgroup.procs"
    rmdir "$d" 2>/dev/null || true
  done
  CPU_CG_DIRS=()
}
