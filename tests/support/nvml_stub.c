/*
 * A stand-in for libnvidia-ml.so.1, for tests and benchmarks without a GPU.
 *
 * Built by the tests with the system C compiler:
 *     cc -shared -fPIC -O2 -o DIR/libnvidia-ml.so.1 tests/support/nvml_stub.c
 * and opened through nvml-wrapper's real loading path (Nvml::builder().lib_path(..)).
 *
 * Its answers come from a fixture file whose path is in NVML_STUB_FIXTURE, read by
 * nvmlInit_v2 and read again whenever the file changes (size or mtime), so a test can move
 * VRAM between samples. One line per item, '#' starts a comment:
 *
 *     init 0                      return code of nvmlInit_v2 (9 = DRIVER_NOT_LOADED)
 *     driver 550.54.15
 *     gpu total=BYTES used=BYTES util=97 memutil=61 temp=71 power=72000 limit=72000 name=NVIDIA L4
 *     proc gpu=0 pid=1234 used=BYTES sm=57
 *
 * A gpu value of NS answers NVML_ERROR_NOT_SUPPORTED for that field; name= takes the rest
 * of the line. A gpu's procutil=NS makes nvmlDeviceGetProcessUtilization answer
 * NOT_SUPPORTED for it (as on pre-Maxwell or vGPU devices); otherwise a proc's sm= is its
 * SM utilization sample, and a proc without sm= had no non-zero sample (NVML leaves it
 * out). Signatures follow nvml.h as bound by nvml-wrapper-sys 0.10.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>

typedef int nvmlReturn_t;
#define NVML_SUCCESS 0
#define NVML_ERROR_UNINITIALIZED 1
#define NVML_ERROR_INVALID_ARGUMENT 2
#define NVML_ERROR_NOT_SUPPORTED 3
#define NVML_ERROR_NOT_FOUND 6
#define NVML_ERROR_INSUFFICIENT_SIZE 7
#define NVML_ERROR_ARGUMENT_VERSION_MISMATCH 25
#define NVML_ERROR_UNKNOWN 999

#define MAX_GPUS 16
#define MAX_PROCS 256
#define NS (-1LL) /* "not supported" marker in the tables */

typedef struct {
    unsigned int version;
    unsigned long long total;
    unsigned long long reserved;
    unsigned long long free;
    unsigned long long used;
} nvmlMemory_v2_t;

typedef struct {
    unsigned int gpu;
    unsigned int memory;
} nvmlUtilization_t;

typedef struct {
    unsigned int pid;
    unsigned long long usedGpuMemory;
    unsigned int gpuInstanceId;
    unsigned int computeInstanceId;
} nvmlProcessInfo_t;

typedef struct {
    unsigned int pid;
    unsigned long long timeStamp; /* CPU timestamp, microseconds */
    unsigned int smUtil;
    unsigned int memUtil;
    unsigned int encUtil;
    unsigned int decUtil;
} nvmlProcessUtilizationSample_t;

struct stub_gpu {
    int index;
    char name[96];
    long long total, used, util, memutil, temp, power, limit, procutil;
};

struct stub_proc {
    int gpu;
    unsigned int pid;
    unsigned long long used;
    long long sm; /* NS: no sample */
};

typedef struct stub_gpu *nvmlDevice_t;

static struct stub_gpu gpus[MAX_GPUS];
static int gpu_count;
static struct stub_proc procs[MAX_PROCS];
static int proc_count;
static int init_rc;
static char driver[80] = "stub";
static char fixture_path[4096];
static long long fixture_size = -1;
static long long fixture_mtime_ns = -1;
static int initialized;

static long long parse_value(const char *v) {
    if (strncmp(v, "NS", 2) == 0) return NS;
    return strtoll(v, NULL, 10);
}

static void load_fixture(void) {
    FILE *f = fopen(fixture_path, "r");
    char line[1024];
    gpu_count = 0;
    proc_count = 0;
    init_rc = 0;
    if (!f) {
        init_rc = NVML_ERROR_UNKNOWN;
        return;
    }
    while (fgets(line, sizeof line, f)) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        if (line[0] == '#' || line[0] == 0) continue;
        if (strncmp(line, "init ", 5) == 0) {
            init_rc = atoi(line + 5);
        } else if (strncmp(line, "driver ", 7) == 0) {
            snprintf(driver, sizeof driver, "%.79s", line + 7);
        } else if (strncmp(line, "gpu ", 4) == 0 && gpu_count < MAX_GPUS) {
            struct stub_gpu *g = &gpus[gpu_count];
            char *name = strstr(line, "name=");
            memset(g, 0, sizeof *g);
            g->index = gpu_count;
            g->total = g->used = g->util = g->memutil = g->temp = g->power = g->limit = NS;
            g->procutil = 1; /* supported unless procutil=NS */
            if (name) {
                snprintf(g->name, sizeof g->name, "%.95s", name + 5);
                *name = 0;
            }
            for (char *tok = strtok(line + 4, " "); tok; tok = strtok(NULL, " ")) {
                char *eq = strchr(tok, '=');
                if (!eq) continue;
                *eq = 0;
                long long v = parse_value(eq + 1);
                if (!strcmp(tok, "total")) g->total = v;
                else if (!strcmp(tok, "used")) g->used = v;
                else if (!strcmp(tok, "util")) g->util = v;
                else if (!strcmp(tok, "memutil")) g->memutil = v;
                else if (!strcmp(tok, "temp")) g->temp = v;
                else if (!strcmp(tok, "power")) g->power = v;
                else if (!strcmp(tok, "limit")) g->limit = v;
                else if (!strcmp(tok, "procutil")) g->procutil = v;
            }
            gpu_count++;
        } else if (strncmp(line, "proc ", 5) == 0 && proc_count < MAX_PROCS) {
            struct stub_proc *p = &procs[proc_count];
            int gpu = -1;
            unsigned int pid = 0;
            unsigned long long used = 0;
            long long sm = NS;
            for (char *tok = strtok(line + 5, " "); tok; tok = strtok(NULL, " ")) {
                if (sscanf(tok, "gpu=%d", &gpu) == 1) continue;
                if (sscanf(tok, "pid=%u", &pid) == 1) continue;
                if (sscanf(tok, "sm=%lld", &sm) == 1) continue;
                sscanf(tok, "used=%llu", &used);
            }
            p->gpu = gpu;
            p->pid = pid;
            p->used = used;
            p->sm = sm;
            proc_count++;
        }
    }
    fclose(f);
}

/* Read the fixture again when it changed since the last read. */
static void refresh(void) {
    struct stat st;
    if (stat(fixture_path, &st) != 0) return;
    long long mtime = (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
    if (mtime == fixture_mtime_ns && (long long)st.st_size == fixture_size) return;
    fixture_mtime_ns = mtime;
    fixture_size = st.st_size;
    load_fixture();
}

static int valid(nvmlDevice_t d) {
    return initialized && d >= &gpus[0] && d < &gpus[gpu_count];
}

nvmlReturn_t nvmlInit_v2(void) {
    const char *path = getenv("NVML_STUB_FIXTURE");
    if (!path) return NVML_ERROR_UNKNOWN;
    snprintf(fixture_path, sizeof fixture_path, "%s", path);
    fixture_size = -1;
    fixture_mtime_ns = -1;
    refresh();
    if (init_rc != NVML_SUCCESS) return init_rc;
    initialized = 1;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlInitWithFlags(unsigned int flags) {
    (void)flags;
    return nvmlInit_v2();
}

nvmlReturn_t nvmlShutdown(void) {
    if (!initialized) return NVML_ERROR_UNINITIALIZED;
    initialized = 0;
    return NVML_SUCCESS;
}

const char *nvmlErrorString(nvmlReturn_t result) {
    switch (result) {
    case NVML_SUCCESS: return "Success";
    case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
    case 9: return "Driver Not Loaded";
    default: return "Unknown Error";
    }
}

nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int length) {
    if (!initialized) return NVML_ERROR_UNINITIALIZED;
    if (!version) return NVML_ERROR_INVALID_ARGUMENT;
    if (strlen(driver) + 1 > length) return NVML_ERROR_INSUFFICIENT_SIZE;
    strcpy(version, driver);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count) {
    if (!initialized) return NVML_ERROR_UNINITIALIZED;
    if (!count) return NVML_ERROR_INVALID_ARGUMENT;
    refresh();
    *count = (unsigned int)gpu_count;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device) {
    if (!initialized) return NVML_ERROR_UNINITIALIZED;
    if (!device || index >= (unsigned int)gpu_count) return NVML_ERROR_INVALID_ARGUMENT;
    *device = &gpus[index];
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned int length) {
    if (!valid(device) || !name) return NVML_ERROR_INVALID_ARGUMENT;
    if (strlen(device->name) + 1 > length) return NVML_ERROR_INSUFFICIENT_SIZE;
    strcpy(name, device->name);
    return NVML_SUCCESS;
}

/* The UUID is made from the index: GPU-00000000-0000-0000-0000-00000000000N. */
nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char *uuid, unsigned int length) {
    char buf[96];
    if (!valid(device) || !uuid) return NVML_ERROR_INVALID_ARGUMENT;
    snprintf(buf, sizeof buf, "GPU-00000000-0000-0000-0000-%012d", device->index);
    if (strlen(buf) + 1 > length) return NVML_ERROR_INSUFFICIENT_SIZE;
    strcpy(uuid, buf);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device, nvmlMemory_v2_t *memory) {
    if (!valid(device) || !memory) return NVML_ERROR_INVALID_ARGUMENT;
    /* NVML_STRUCT_VERSION(Memory, 2): the caller must say which layout it passes. */
    if (memory->version != (unsigned int)(sizeof(nvmlMemory_v2_t) | (2u << 24)))
        return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
    if (device->total == NS || device->used == NS) return NVML_ERROR_NOT_SUPPORTED;
    memory->total = (unsigned long long)device->total;
    memory->used = (unsigned long long)device->used;
    memory->reserved = 0;
    memory->free = memory->total > memory->used ? memory->total - memory->used : 0;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t device, nvmlUtilization_t *u) {
    if (!valid(device) || !u) return NVML_ERROR_INVALID_ARGUMENT;
    if (device->util == NS || device->memutil == NS) return NVML_ERROR_NOT_SUPPORTED;
    u->gpu = (unsigned int)device->util;
    u->memory = (unsigned int)device->memutil;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t device, int sensor, unsigned int *temp) {
    if (!valid(device) || !temp || sensor != 0) return NVML_ERROR_INVALID_ARGUMENT;
    if (device->temp == NS) return NVML_ERROR_NOT_SUPPORTED;
    *temp = (unsigned int)device->temp;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t device, unsigned int *power) {
    if (!valid(device) || !power) return NVML_ERROR_INVALID_ARGUMENT;
    if (device->power == NS) return NVML_ERROR_NOT_SUPPORTED;
    *power = (unsigned int)device->power;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetEnforcedPowerLimit(nvmlDevice_t device, unsigned int *limit) {
    if (!valid(device) || !limit) return NVML_ERROR_INVALID_ARGUMENT;
    if (device->limit == NS) return NVML_ERROR_NOT_SUPPORTED;
    *limit = (unsigned int)device->limit;
    return NVML_SUCCESS;
}

#ifndef STUB_NO_PROCESSES_V3 /* -DSTUB_NO_PROCESSES_V3: an NVML older than driver 510 */
/* Called first with infos == NULL to learn the count (INSUFFICIENT_SIZE), as NVML does. */
nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t device,
                                                     unsigned int *infoCount,
                                                     nvmlProcessInfo_t *infos) {
    unsigned int n = 0, i = 0;
    if (!valid(device) || !infoCount) return NVML_ERROR_INVALID_ARGUMENT;
    for (int k = 0; k < proc_count; k++)
        if (procs[k].gpu == device->index) n++;
    if (n == 0) {
        *infoCount = 0;
        return NVML_SUCCESS;
    }
    if (!infos || *infoCount < n) {
        *infoCount = n;
        return NVML_ERROR_INSUFFICIENT_SIZE;
    }
    for (int k = 0; k < proc_count; k++) {
        if (procs[k].gpu != device->index) continue;
        infos[i].pid = procs[k].pid;
        infos[i].usedGpuMemory = procs[k].used;
        infos[i].gpuInstanceId = 0xFFFFFFFFu;
        infos[i].computeInstanceId = 0xFFFFFFFFu;
        i++;
    }
    *infoCount = n;
    return NVML_SUCCESS;
}
#endif

/* nvmlDeviceGetProcessUtilization: samples of processes with a non-zero utilization since
 * lastSeenTimeStamp (each stub sample is taken "now"). As NVML documents: utilization ==
 * NULL (or a count too small) answers INSUFFICIENT_SIZE with the count needed; no sample
 * answers NOT_FOUND; a device without the feature answers NOT_SUPPORTED. */
nvmlReturn_t nvmlDeviceGetProcessUtilization(nvmlDevice_t device,
                                             nvmlProcessUtilizationSample_t *utilization,
                                             unsigned int *processSamplesCount,
                                             unsigned long long lastSeenTimeStamp) {
    struct timeval tv;
    unsigned long long now;
    unsigned int n = 0, i = 0;
    if (!valid(device) || !processSamplesCount) return NVML_ERROR_INVALID_ARGUMENT;
    refresh();
    if (device->procutil == NS) return NVML_ERROR_NOT_SUPPORTED;
    gettimeofday(&tv, NULL);
    now = (unsigned long long)tv.tv_sec * 1000000ULL + (unsigned long long)tv.tv_usec;
    if (now <= lastSeenTimeStamp) now = lastSeenTimeStamp + 1;
    for (int k = 0; k < proc_count; k++)
        if (procs[k].gpu == device->index && procs[k].sm != NS && procs[k].sm > 0) n++;
    if (n == 0) {
        *processSamplesCount = 0;
        return NVML_ERROR_NOT_FOUND;
    }
    if (!utilization || *processSamplesCount < n) {
        *processSamplesCount = n;
        return NVML_ERROR_INSUFFICIENT_SIZE;
    }
    for (int k = 0; k < proc_count; k++) {
        if (procs[k].gpu != device->index || procs[k].sm == NS || procs[k].sm <= 0) continue;
        utilization[i].pid = procs[k].pid;
        utilization[i].timeStamp = now;
        utilization[i].smUtil = (unsigned int)procs[k].sm;
        utilization[i].memUtil = 0;
        utilization[i].encUtil = 0;
        utilization[i].decUtil = 0;
        i++;
    }
    *processSamplesCount = n;
    return NVML_SUCCESS;
}
