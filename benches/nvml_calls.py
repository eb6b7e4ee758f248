#!/usr/bin/env python3
"""What each NVML call the GPU collector makes costs on this machine's real driver.

CPU time (user + system) and wall time per call, 300 calls each, through pynvml
(nvidia-ml-py), then the process's memory before and after nvmlInit and after the
calls. Run on a GPU machine, best with a job on the GPU (so the process calls have a
process to report): python3 benches/nvml_calls.py. Figures: docs/performance.md, "With a
real driver". Checked with nvidia-ml-py as shipped beside PyTorch 2.11 (driver 580).
"""
import os
import re
import time

import pynvml as n


def memory(label):
    st = open("/proc/self/status").read()
    kib = lambda k: int(re.search(k + r":\s+(\d+)", st).group(1))
    libs = sorted({m.split("/")[-1] for m in re.findall(r"(/\S*lib(?:cuda|nvidia)\S*)", open("/proc/self/maps").read())})
    print(f"{label:24s} RSS {kib('VmRSS') / 1024:6.1f} MiB (anonymous {kib('RssAnon') / 1024:5.1f}, "
          f"file {kib('RssFile') / 1024:5.1f}), threads {len(os.listdir('/proc/self/task'))} {' '.join(libs)}")


memory("before nvmlInit")
n.nvmlInit()
memory("after nvmlInit")
h = n.nvmlDeviceGetHandleByIndex(0)
calls = {
    "DeviceGetCount": lambda: n.nvmlDeviceGetCount(),
    "DeviceGetHandleByIndex": lambda: n.nvmlDeviceGetHandleByIndex(0),
    "DeviceGetName": lambda: n.nvmlDeviceGetName(h),
    "DeviceGetUUID": lambda: n.nvmlDeviceGetUUID(h),
    "DeviceGetMemoryInfo_v2": lambda: n.nvmlDeviceGetMemoryInfo(h, version=n.nvmlMemory_v2),
    "DeviceGetUtilizationRates": lambda: n.nvmlDeviceGetUtilizationRates(h),
    "DeviceGetComputeRunningProcesses_v3": lambda: n.nvmlDeviceGetComputeRunningProcesses_v3(h),
    "DeviceGetProcessUtilization": lambda: n.nvmlDeviceGetProcessUtilization(h, 0),
    "DeviceGetTemperature": lambda: n.nvmlDeviceGetTemperature(h, n.NVML_TEMPERATURE_GPU),
    "DeviceGetPowerUsage": lambda: n.nvmlDeviceGetPowerUsage(h),
    "DeviceGetEnforcedPowerLimit": lambda: n.nvmlDeviceGetEnforcedPowerLimit(h),
}
N = 300
print(f"{n.nvmlDeviceGetName(h)}, driver {n.nvmlSystemGetDriverVersion()}, "
      f"{len(n.nvmlDeviceGetComputeRunningProcesses_v3(h))} compute process(es)")
for name, call in calls.items():
    try:
        call()
    except n.NVMLError as e:  # NOT_FOUND: no process sample yet; NOT_SUPPORTED on some GPUs
        print(f"{name:38s} {e}")
        continue
    w0, c0 = time.perf_counter(), time.process_time()
    for _ in range(N):
        call()
    w1, c1 = time.perf_counter(), time.process_time()
    print(f"{name:38s} cpu {1e6 * (c1 - c0) / N:8.1f} us   wall {1e6 * (w1 - w0) / N:8.1f} us")
memory("after the calls")
