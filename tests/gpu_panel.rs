//! The GPU panel through `update` (no terminal) and whole-screen snapshots: no GPU, one
//! L4 that fits, one L4 over its budget, eight GPUs, the details popup and the SIGTERM
//! confirmation.

mod support;

use std::path::PathBuf;
use std::process::Command;

use opsconsole::app::{AppState, Effect, Msg, Overlay, Panel, update};
use opsconsole::gpu::{GpuDevice, GpuProcess, GpuSample, NvmlStatus, Verdict};
use ratatui::crossterm::event::KeyCode;
use support::fixtures::{self as fx, NOW, code, key};

const MIB: u64 = 1024 * 1024;
const GIB: u64 = 1024 * MIB;
const L4_TOTAL: u64 = 23034 * MIB;
const A100_TOTAL: u64 = 81920 * MIB;
const OTHER_UID: u32 = 4242;

fn gib_f(x: f64) -> u64 {
    (x * GIB as f64) as u64
}

fn proc_(state: &AppState, pid: u32, gpu: u32, used: u64, cmd: &str, cwd: &str, own: bool) -> GpuProcess {
    GpuProcess {
        pid,
        gpu_index: gpu,
        used_bytes: Some(used),
        command: Some(cmd.into()),
        user: Some(if own { "me".into() } else { "alice".into() }),
        uid: Some(if own { state.gpu.my_uid } else { OTHER_UID }),
        start_time_unix_s: Some(NOW - 3600 - pid as u64),
        start_ticks: Some(100_000 + pid as u64),
        cwd: Some(PathBuf::from(cwd)),
        sm_util_pct: None,
    }
}

fn device(
    index: u32,
    name: &str,
    total: u64,
    used: u64,
    util: u32,
    power: Option<u32>,
    procs: Vec<GpuProcess>,
) -> GpuDevice {
    GpuDevice {
        index,
        name: name.into(),
        uuid: None,
        memory_used_bytes: Some(used),
        memory_total_bytes: Some(total),
        utilization_pct: Some(util),
        memory_utilization_pct: Some(util / 2),
        temperature_c: Some(40 + util / 3),
        power_draw_mw: power,
        power_limit_mw: power.map(|_| 72_000),
        processes: procs,
        processes_error: None,
        error: None,
    }
}

fn sample(t: u64, gpus: Vec<GpuDevice>) -> Msg {
    Msg::Gpu(GpuSample {
        taken_at_unix_ms: t * 1000,
        nvml: NvmlStatus::Ok { driver_version: "550.54.15".into() },
        gpus,
    })
}

/// An L4 running the workspace's trainer whose VRAM climbs to `peak` GiB over 60 samples
/// (a minute of history), and an unrelated notebook of another user.
fn l4_run(state: &mut AppState, peak: f64) {
    for i in 0..60u64 {
        let job = gib_f(peak * (0.5 + 0.5 * i as f64 / 59.0));
        let procs = vec![
            proc_(state, 4121, 0, job, "python experiments/v68/train.py --bf16 --batch 16", "/home/me/rsm", true),
            proc_(state, 5230, 0, gib_f(0.4), "/usr/bin/python3 -m jupyter lab", "/home/alice", false),
        ];
        let used = job + gib_f(0.4) + 300 * MIB;
        let util = 60 + (i % 40) as u32;
        let msg = sample(NOW - 60 + i, vec![device(0, "NVIDIA L4", L4_TOTAL, used, util, Some(72_000), procs)]);
        update(state, msg);
    }
}

fn eight_gpus(state: &mut AppState) {
    let mut gpus = Vec::new();
    for i in 0..8u32 {
        let procs = vec![proc_(
            state,
            7000 + i,
            i,
            gib_f(61.5),
            &format!("torchrun --nproc_per_node 8 train.py --local_rank {i}"),
            "/home/me/rsm",
            true,
        )];
        gpus.push(device(i, "NVIDIA A100-SXM4-80GB", A100_TOTAL, gib_f(62.0), 90 + i, None, procs));
    }
    update(state, sample(NOW, gpus));
}

/// A fixture state whose user is uid 1000 "me", whoever runs the tests.
fn state() -> AppState {
    let mut s = fx::state();
    s.gpu.my_uid = 1000;
    s
}

fn both(name: &str, state: &AppState) {
    insta::assert_snapshot!(format!("{name}_80x24"), fx::render(state, 80, 24).backend());
    insta::assert_snapshot!(format!("{name}_160x48"), fx::render(state, 160, 48).backend());
}

#[test]
fn no_gpu_says_why_and_the_console_runs() {
    let mut s = state();
    update(&mut s, fx::typical_disks());
    update(
        &mut s,
        Msg::Gpu(GpuSample::unavailable(
            NOW * 1000,
            NvmlStatus::LibraryMissing {
                library: "libnvidia-ml.so.1".into(),
                detail: "libnvidia-ml.so.1: cannot open shared object file: No such file or directory".into(),
            },
        )),
    );
    both("gpu_none", &s);
    let text = fx::screen_text(&s, 80, 24);
    assert!(text.contains("No NVIDIA library"), "{text}");
    assert!(text.contains("no GPU"), "header says so:\n{text}");
    assert!(text.contains("/data"), "the disk panel still shows:\n{text}");
}

#[test]
fn one_l4_that_fits() {
    let mut s = state();
    update(&mut s, fx::typical_disks());
    l4_run(&mut s, 12.0);
    let fit = s.gpu.fit.clone().expect("fit");
    assert_eq!(fit.tier, "tier1");
    assert_eq!(fit.verdict, Verdict::Fits);
    assert_eq!(fit.pids, vec![4121], "only the workspace's process is the job");
    assert_eq!(fit.peak_bytes, gib_f(12.0));
    both("gpu_l4_fits", &s);
    let text = fx::screen_text(&s, 160, 48);
    assert!(text.contains("tier1 L4 home base (budget 20.0 GiB)"), "{text}");
    assert!(text.contains("fits"), "{text}");
}

#[test]
fn one_l4_over_its_budget_says_move_to_tier2() {
    let mut s = state();
    update(&mut s, fx::typical_disks());
    l4_run(&mut s, 21.0);
    let fit = s.gpu.fit.clone().expect("fit");
    assert_eq!(fit.verdict, Verdict::Exceeds);
    both("gpu_l4_exceeds", &s);
    let text = fx::screen_text(&s, 160, 48);
    assert!(text.contains("exceeds"), "{text}");
    assert!(text.contains("move this job to tier2 (A100 cluster) with an airlock bundle"), "{text}");
}

#[test]
fn memory_the_process_list_hides_is_judged_by_the_device() {
    let mut s = state();
    update(&mut s, fx::typical_disks());
    // In a container: 21 GiB used on the L4, one visible 512 MiB process.
    let procs = vec![proc_(&s, 4121, 0, 512 * MIB, "python train.py", "/home/me/rsm", true)];
    update(&mut s, sample(NOW, vec![device(0, "NVIDIA L4", L4_TOTAL, gib_f(21.0), 97, Some(72_000), procs)]));
    let fit = s.gpu.fit.clone().expect("fit");
    assert_eq!(fit.scope, opsconsole::gpu::tier::JobScope::Device);
    assert_eq!(fit.verdict, Verdict::Exceeds);
    both("gpu_l4_device_scope", &s);
    let text = fx::screen_text(&s, 160, 48);
    assert!(text.contains("tier1 fit (device): now 21.0"), "{text}");
    assert!(text.contains("NVML lists 0.5 of 21.0 GiB used (processes hidden here): whole GPU judged"), "{text}");
}

#[test]
fn eight_gpus_in_a_small_terminal() {
    let mut s = state();
    update(&mut s, fx::typical_disks());
    eight_gpus(&mut s);
    both("gpu_eight", &s);
    let text = fx::screen_text(&s, 80, 24);
    assert!(text.contains("more GPUs"), "hidden GPUs are counted:\n{text}");
    assert!(text.contains("tier2"), "{text}");
    // The selection stays in view when moved past the last visible process.
    for _ in 0..7 {
        update(&mut s, key('j'));
    }
    assert_eq!(s.gpu.selected, Some((7, 7007)));
    let text = fx::screen_text(&s, 80, 24);
    assert!(text.contains("7007"), "{text}");
}

#[test]
fn selection_follows_the_process_across_samples() {
    let mut s = state();
    l4_run(&mut s, 12.0);
    assert_eq!(s.focus, Panel::Gpu);
    assert_eq!(s.gpu.selected_process().map(|p| p.pid), Some(4121));
    update(&mut s, key('j'));
    assert_eq!(s.gpu.selected_process().map(|p| p.pid), Some(5230));
    update(&mut s, key('j'));
    assert_eq!(s.gpu.selected_process().map(|p| p.pid), Some(5230), "stops at the last");
    // A new sample lists the processes the other way round: the selection stays on 5230.
    let procs = vec![
        proc_(&s, 5230, 0, GIB, "jupyter", "/home/alice", false),
        proc_(&s, 4121, 0, GIB, "python train.py", "/home/me/rsm", true),
    ];
    update(&mut s, sample(NOW + 1, vec![device(0, "NVIDIA L4", L4_TOTAL, 2 * GIB, 50, None, procs)]));
    assert_eq!(s.gpu.selected_process().map(|p| p.pid), Some(5230));
    // It ends: the selection falls back to the first process.
    let procs = vec![proc_(&s, 4121, 0, GIB, "python train.py", "/home/me/rsm", true)];
    update(&mut s, sample(NOW + 2, vec![device(0, "NVIDIA L4", L4_TOTAL, GIB, 50, None, procs)]));
    assert_eq!(s.gpu.selected, None);
    assert_eq!(s.gpu.selected_process().map(|p| p.pid), Some(4121));
    // Other panels keep their own keys.
    update(&mut s, code(KeyCode::Tab));
    update(&mut s, key('j'));
    assert_eq!(s.gpu.selected_process().map(|p| p.pid), Some(4121));
}

#[test]
fn enter_shows_details_and_esc_closes() {
    let mut s = state();
    update(&mut s, fx::typical_disks());
    l4_run(&mut s, 12.0);
    update(&mut s, code(KeyCode::Enter));
    assert_eq!(s.overlay, Overlay::GpuDetails { gpu: 0, pid: 4121 });
    both("gpu_details", &s);
    let text = fx::screen_text(&s, 160, 48);
    assert!(text.contains("python experiments/v68/train.py --bf16 --batch 16"), "full command:\n{text}");
    assert!(text.contains("2026-11-28 09:51:19 UTC · 2h08m ago"), "start time:\n{text}");
    // The peak's span is on the clock `started … ago` uses: the readings kept cover the
    // last minute of a process started two hours ago.
    assert!(text.contains("peak 12.0 GiB over the last 1m00s"), "VRAM history:\n{text}");
    update(&mut s, code(KeyCode::Esc));
    assert_eq!(s.overlay, Overlay::None);
    update(&mut s, code(KeyCode::Enter));
    update(&mut s, code(KeyCode::Enter));
    assert_eq!(s.overlay, Overlay::None, "enter again closes");
}

#[test]
fn k_asks_first_and_n_keeps_the_process() {
    let mut s = state();
    update(&mut s, fx::typical_disks());
    l4_run(&mut s, 21.0);
    assert!(update(&mut s, key('K')).is_empty(), "nothing is sent before confirmation");
    assert!(matches!(s.overlay, Overlay::ConfirmKill { pid: 4121, .. }), "{:?}", s.overlay);
    both("gpu_confirm_kill", &s);
    assert!(update(&mut s, key('n')).is_empty());
    assert_eq!(s.overlay, Overlay::None);
    update(&mut s, key('K'));
    assert!(update(&mut s, code(KeyCode::Esc)).is_empty());
    assert_eq!(s.overlay, Overlay::None);
}

#[test]
fn k_refuses_another_users_process_without_asking() {
    let mut s = state();
    l4_run(&mut s, 12.0);
    update(&mut s, key('j')); // alice's notebook
    assert!(update(&mut s, key('K')).is_empty());
    assert_eq!(s.overlay, Overlay::None);
    let notice = s.status_line().map(|l| l.text.clone()).expect("the refusal is answered");
    assert!(notice.contains("belongs to alice"), "{notice}");
}

/// `K`, `y`, then what the event loop does with the effect: the real SIGTERM to a real
/// process of ours, and the answer folded back.
#[test]
fn k_then_y_sends_sigterm_to_the_chosen_process() {
    use std::os::unix::process::ExitStatusExt;
    let mut child = Command::new("sleep").arg("300").spawn().expect("spawn");
    let pid = child.id();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let ticks: u64 = stat[stat.rfind(')').expect(")") + 1..]
        .split_whitespace()
        .nth(19)
        .and_then(|t| t.parse().ok())
        .expect("start ticks");
    let mut s = fx::state();
    let mut p = proc_(&s, pid, 0, gib_f(3.0), "sleep 300", "/home/me/rsm", true);
    p.start_ticks = Some(ticks);
    update(&mut s, sample(NOW, vec![device(0, "NVIDIA L4", L4_TOTAL, gib_f(3.0), 10, None, vec![p])]));
    update(&mut s, key('K'));
    let effects = update(&mut s, key('y'));
    assert_eq!(effects, vec![Effect::TerminateProcess { pid, start_ticks: Some(ticks) }]);
    assert_eq!(s.overlay, Overlay::None);
    // What tui.rs does with the effect.
    let result = opsconsole::gpu::terminate(pid, Some(ticks)).map_err(|e| e.to_string());
    let effects = update(&mut s, Msg::ProcessTerminated { pid, result });
    assert_eq!(effects, vec![Effect::RefreshNow]);
    assert_eq!(s.status_line().map(|l| l.text.as_str()), Some(format!("sent SIGTERM to process {pid}").as_str()));
    assert_eq!(child.wait().expect("wait").signal(), Some(rustix::process::Signal::TERM.as_raw()));
}

#[test]
fn an_old_sample_is_marked_stale() {
    let mut s = state();
    l4_run(&mut s, 12.0);
    let text = fx::screen_text(&s, 80, 24);
    assert!(text.contains("GPU · 1 · by VRAM ━"), "fresh:\n{text}");
    update(&mut s, Msg::Tick(fx::at(NOW + 45)));
    let text = fx::screen_text(&s, 80, 24);
    assert!(text.contains("GPU · 1 · by VRAM · stale 46s"), "{text}");
}

/// Issue 15 item 5: a long path no longer hides the program. Each row starts with the
/// program and its script (`python train.py`), the folders come after, dim, cut from
/// their start, and are the first thing left out.
#[test]
fn process_names_show_program_and_script_first() {
    let mut s = state();
    update(&mut s, fx::typical_disks());
    let procs = vec![
        proc_(&s, 9376, 0, gib_f(16.4), "/home/me/proj/target/release/opsconsole", "/home/me/proj", true),
        proc_(
            &s,
            4121,
            0,
            gib_f(3.2),
            "/home/me/proj/.venv/bin/python train.py --lr 3e-4 --batch 16",
            "/home/me/proj",
            true,
        ),
        proc_(
            &s,
            5230,
            0,
            gib_f(0.4),
            "'/home/alice/My Projects/.venv/bin/python3' -u /home/alice/My\\ Projects/scripts/eval.py",
            "/home/alice",
            false,
        ),
    ];
    update(&mut s, sample(NOW, vec![device(0, "NVIDIA L4", L4_TOTAL, gib_f(20.3), 88, Some(72_000), procs)]));
    insta::assert_snapshot!("gpu_process_names_80x24", fx::render(&s, 80, 24).backend());
    insta::assert_snapshot!("gpu_process_names_110x32", fx::render(&s, 110, 32).backend());
    insta::assert_snapshot!("gpu_process_names_160x48", fx::render(&s, 160, 48).backend());
    for (w, h) in [(80, 24), (110, 32), (160, 48)] {
        let text = fx::screen_text(&s, w, h);
        let row = |pid: &str| {
            text.lines().find(|l| l.contains(pid)).unwrap_or_else(|| panic!("{pid} at {w}x{h}:\n{text}")).to_string()
        };
        assert!(row("9376").contains(" 9376 opsconsole"), "{w}x{h}: {}", row("9376"));
        assert!(row("4121").contains(" 4121 python train.py --lr"), "{w}x{h}: {}", row("4121"));
        assert!(row("5230").contains(" 5230 python3 -u eval.py"), "{w}x{h}: {}", row("5230"));
        assert!(row("9376").contains("16.4 GiB"), "{w}x{h}: {}", row("9376"));
    }
    // With room, the folders follow the name.
    let text = fx::screen_text(&s, 160, 48);
    assert!(text.contains("opsconsole  /home/me/proj/target/release/"), "{text}");
    assert!(text.contains("train.py --lr 3e-4 --batch 16  …ome/me/proj/.venv/bin/"), "cut from its start:\n{text}");
    assert!(text.contains("python3 -u eval.py  /home/alice/My Projects/scripts/"), "the script's folder:\n{text}");
    // The details popup keeps the whole command line, and K names the program and script.
    let first = s.gpu.selected_process().map(|p| p.pid).expect("a selection");
    assert_eq!(first, 9376);
    update(&mut s, key('j'));
    update(&mut s, code(KeyCode::Enter));
    assert_eq!(s.overlay, Overlay::GpuDetails { gpu: 0, pid: 4121 });
    let text = fx::screen_text(&s, 110, 32);
    assert!(text.contains("/home/me/proj/.venv/bin/python train.py --lr 3e-4 --batch 16"), "{text}");
    update(&mut s, code(KeyCode::Esc));
    update(&mut s, key('K'));
    assert!(
        matches!(&s.overlay, Overlay::ConfirmKill { pid: 4121, name, .. } if name == "python train.py"),
        "{:?}",
        s.overlay
    );
}

/// Issue 15: the host's CPU, RAM and swap under the GPUs (nvitop, btop), red when RAM is
/// nearly gone (a dataloader out of host RAM gets the trainer `Killed`).
#[test]
fn host_cpu_ram_and_swap_under_the_gpus() {
    let mut s = state();
    update(&mut s, fx::typical_disks());
    l4_run(&mut s, 12.0);
    update(
        &mut s,
        Msg::Host(opsconsole::host::HostSample {
            taken_at_unix_ms: NOW * 1000,
            cpu_pct: Some(34.4),
            cpus: 16,
            memory_total_bytes: 64 * GIB,
            memory_available_bytes: 4 * GIB,
            swap_total_bytes: 8 * GIB,
            swap_used_bytes: 2 * GIB,
        }),
    );
    insta::assert_snapshot!("gpu_host_80x24", fx::render(&s, 80, 24).backend());
    insta::assert_snapshot!("gpu_host_110x32", fx::render(&s, 110, 32).backend());
    insta::assert_snapshot!("gpu_host_160x48", fx::render(&s, 160, 48).backend());
    let text = fx::screen_text(&s, 160, 48);
    assert!(text.contains("host cpu 34% · ram 60.0/64.0 GiB 94% · swap 2.0/8.0 GiB"), "{text}");
    let text = fx::screen_text(&s, 80, 24);
    assert!(text.contains("cpu 34% ram 60/64G swap 2.0/8G"), "{text}");
    assert!(text.contains("4121"), "the job still shows:\n{text}");
    // Red: critical.
    let buf = fx::render(&s, 160, 48);
    let b = buf.backend().buffer();
    let cell = (0..48u16)
        .flat_map(|y| (0..160u16).map(move |x| (x, y)))
        .find(|&(x, y)| {
            b[(x, y)].symbol() == "h"
                && b[(x + 1, y)].symbol() == "o"
                && b[(x + 4, y)].symbol() == " "
                && b[(x + 5, y)].symbol() == "c"
        })
        .expect("the host line");
    assert_eq!(b[cell].fg, ratatui::style::Color::Red);
}

/// `started 3m01s ago` and the peak's span agree: readings that go back to the start say
/// `since it started`, whatever the sampling interval did (it said `peak over 3m29s`,
/// counting samples times the configured interval).
#[test]
fn details_peak_and_start_use_one_clock() {
    let mut s = state();
    update(&mut s, fx::typical_disks());
    // Samples every 7 s (a busy collector; the configured interval is shorter).
    for i in 0..26u64 {
        let mut p = proc_(&s, 4121, 0, gib_f(2.0 + i as f64 / 10.0), "python train.py", "/home/me/rsm", true);
        p.start_time_unix_s = Some(NOW - 181);
        update(
            &mut s,
            sample(NOW - 180 + i * 7, vec![device(0, "NVIDIA L4", L4_TOTAL, gib_f(5.0), 50, None, vec![p])]),
        );
    }
    update(&mut s, code(KeyCode::Enter));
    let text = fx::screen_text(&s, 160, 48);
    assert!(text.contains("· 3m01s ago"), "{text}");
    assert!(text.contains("peak 4.5 GiB since it started"), "{text}");
    assert!(!text.contains("over"), "{text}");
}

/// At 60x18 the GPU panel has two rows: the only GPU is shown, not `… 1 more GPUs`.
#[test]
fn the_only_gpu_shows_on_a_tiny_terminal() {
    let mut s = state();
    update(&mut s, fx::typical_disks());
    l4_run(&mut s, 12.0);
    let text = fx::screen_text(&s, 60, 18);
    assert!(text.contains("┃0 L4 "), "{text}");
    assert!(!text.contains("more GPU"), "{text}");
    insta::assert_snapshot!("gpu_one_60x18", fx::render(&s, 60, 18).backend());
}

/// `O` cycles the process order (VRAM, age, pid), the title says which, and the
/// selection stays on the process it was on. Per-process SM utilization shows where NVML
/// gave it, and nothing (not 0%) where it did not.
#[test]
fn o_sorts_processes_and_sm_utilization_shows_where_given() {
    let mut s = state();
    update(&mut s, fx::typical_disks());
    let mk = |s: &AppState, pid: u32, gib: f64, ticks: u64, cmd: &str, sm: Option<u32>| {
        let mut p = proc_(s, pid, 0, gib_f(gib), cmd, "/home/me/rsm", true);
        p.start_ticks = Some(ticks);
        p.sm_util_pct = sm;
        p
    };
    let procs = vec![
        mk(&s, 300, 2.0, 500, "python eval.py", Some(3)),
        mk(&s, 100, 16.0, 900, "python train.py", Some(57)),
        mk(&s, 200, 0.5, 100, "jupyter lab", None),
    ];
    update(&mut s, sample(NOW, vec![device(0, "NVIDIA L4", L4_TOTAL, gib_f(19.0), 60, None, procs)]));
    let order = |s: &AppState| s.gpu.processes().map(|p| p.pid).collect::<Vec<_>>();
    assert_eq!(order(&s), vec![100, 300, 200], "VRAM first by default");
    both("gpu_sort_vram", &s);
    let text = fx::screen_text(&s, 160, 48);
    assert!(text.contains("GPU · 1 · by VRAM"), "{text}");
    assert!(text.contains(" 57% 16.0 GiB") && text.contains("  3% 2.0 GiB"), "{text}");
    assert!(!text.contains("% 0.5 GiB"), "no figure where NVML gave none:\n{text}");
    // Select the eval process, then sort: the selection follows it.
    update(&mut s, key('j'));
    assert_eq!(s.gpu.selected_process().map(|p| p.pid), Some(300));
    update(&mut s, key('O'));
    assert_eq!(order(&s), vec![200, 300, 100], "oldest first");
    assert_eq!(s.gpu.selected_process().map(|p| p.pid), Some(300));
    assert!(fx::screen_text(&s, 80, 24).contains("GPU · 1 · by age"));
    assert_eq!(s.status_line().map(|l| l.text.as_str()), Some("GPU processes sorted by age"));
    update(&mut s, key('O'));
    assert_eq!(order(&s), vec![100, 200, 300], "by pid");
    update(&mut s, key('O'));
    assert_eq!(order(&s), vec![100, 300, 200], "and back to VRAM");
    // Elsewhere the key says where it works.
    update(&mut s, key('3'));
    update(&mut s, key('O'));
    assert_eq!(order(&s), vec![100, 300, 200]);
    assert!(s.status_line().is_some_and(|l| l.error && l.text.contains("focus the GPU panel (1)")));
}
