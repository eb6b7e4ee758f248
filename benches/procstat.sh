# Sourced by the benches that measure running processes (idle.sh, gpu_real.sh).
# ticks PID: the CPU clock ticks (user + system) PID has used; hwm PID: its peak RSS in MiB.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hwm() { awk '/VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
