//! The Prometheus exporter, checked by Prometheus's own tools: `promtool check metrics` (an
//! independent parser and linter) on `status --openmetrics` of a workspace with every
//! collector live; the real `prometheus` server scraping `opsconsole exporter` and
//! answering queries that must equal `status --json`; `promtool check rules` and
//! `promtool test rules` on the shipped alert rules.
//!
//! The tests that run Prometheus's tools are `#[ignore = "needs promtool …"]` /
//! `#[ignore = "needs prometheus …"]` (Debian package `prometheus`, 2.42 here), and the
//! console's `#[ignore = "needs tmux"]`: `cargo test -- --include-ignored` runs them (as
//! `.ci/run` does, after installing the package) and they fail, saying so, when the tool is
//! missing. The values themselves are checked without them.

#[path = "support/nvml.rs"]
mod nvml_support;
#[path = "support/tmux.rs"]
mod tmux;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nvml_support::{GIB, L4_TOTAL, StubNvml, gpu_line, proc_line};

const BIN: &str = env!("CARGO_BIN_EXE_opsconsole");

/// A Prometheus tool, or a failure that says how to get it.
fn tool(name: &str) -> PathBuf {
    let found = std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|d| d.join(name)).find(|p| p.is_file()));
    found.unwrap_or_else(|| panic!("`{name}` is not installed: install the Debian package `prometheus` (.ci/run does)"))
}

/// A child killed (and reaped) on drop.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A process that holds the GPU in the stand-in: `sleep`, started in the workspace.
fn sleeper(cwd: &Path) -> Reaped {
    let child = Command::new("sleep").arg("600").current_dir(cwd).spawn().expect("spawn sleep");
    let cmdline = format!("/proc/{}/cmdline", child.id());
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read(&cmdline).map(|b| b.is_empty()).unwrap_or(true) {
        assert!(Instant::now() < deadline, "sleep never started");
        std::thread::sleep(Duration::from_millis(5));
    }
    Reaped(child)
}

/// The demo workspace with every collector live: the NVML stand-in with an L4 and a job on
/// it (tier fit), a training log with steps, losses and a CUDA OOM, two checkpoints stored
/// on both levels by `sync --once`, the disks.
struct Live {
    _dir: tempfile::TempDir,
    root: PathBuf,
    stub: StubNvml,
    _job: Reaped,
}

const LAST_STEP: u64 = 120;
/// The log's label: it lies under experiments/v01/.
const EXP: &str = ",experiment=\"v01\"";

impl Live {
    fn new(extra_config: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().canonicalize().expect("canonical").join("ws");
        std::fs::create_dir_all(&root).expect("mkdir");
        opsconsole::demo::create_workspace(&root).expect("demo workspace");
        let stub = StubNvml::build();
        let job = sleeper(&root);
        let mut f = String::from("init 0\ndriver 550.54.15\n");
        f += &gpu_line("NVIDIA L4", L4_TOTAL, 14 * GIB, "util=97 memutil=61 temp=71 power=72500 limit=72000");
        f += &proc_line(0, job.0.id(), 13 * GIB);
        stub.write(&f);
        let cfg_path = root.join("opsconsole.toml");
        let cfg = std::fs::read_to_string(&cfg_path).expect("config");
        let lib = toml_str(&stub.lib);
        let cfg = cfg
            .replacen("[gpu]\n", &format!("[gpu]\nlib_path = {lib}\n"), 1)
            .replacen("bandwidth_limit_kib_s = 2048\n", "bandwidth_limit_kib_s = 0\n", 1)
            .replacen("sample_ms = 10000\n", "sample_ms = 1000\n", 1)
            + extra_config;
        std::fs::write(&cfg_path, cfg).expect("write config");

        let logs = root.join("experiments/v01/logs");
        let mut log = String::from("***** Running training *****\n  Total optimization steps = 1000\n");
        for step in (50..=LAST_STEP).step_by(50) {
            log += &opsconsole::demo::tqdm_bar(step, 1000, step / 20, 20.0);
            log += &format!("\n{{'loss': 2.{step:04}, 'grad_norm': 0.8, 'learning_rate': 4.5e-05, 'epoch': 0.1}}\n");
        }
        log += "{'eval_loss': 1.9876, 'eval_runtime': 12.31, 'epoch': 0.1}\n";
        log += &opsconsole::demo::tqdm_bar(LAST_STEP, 1000, 6, 20.0);
        log += "\ntorch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB\n";
        std::fs::write(logs.join("train.log"), log).expect("log");
        for step in [50, 100] {
            std::fs::write(root.join(format!("checkpoints/v01_step_{step}.pt")), vec![7u8; 4096]).expect("ckpt");
        }
        // Settled long ago: the sync engine stores them at once.
        let out = Command::new("touch")
            .args(["-d", "10 minutes ago"])
            .arg(root.join("checkpoints/v01_step_50.pt"))
            .arg(root.join("checkpoints/v01_step_100.pt"))
            .output()
            .expect("touch");
        assert!(out.status.success());
        let live = Live { _dir: dir, root, stub, _job: job };
        let out = live.cmd().args(["sync", "--once"]).output().expect("sync --once");
        assert!(
            out.status.code().is_some(),
            "sync --once: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        live
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--workspace").arg(&self.root).env("NVML_STUB_FIXTURE", &self.stub.fixture);
        c
    }

    fn run(&self, args: &[&str]) -> String {
        let out = self.cmd().args(args).output().expect("run opsconsole");
        assert!(out.status.success(), "opsconsole {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).expect("utf-8")
    }

    fn status_json(&self) -> serde_json::Value {
        serde_json::from_str(&self.run(&["status", "--json"])).expect("json")
    }
}

fn toml_str(p: &Path) -> String {
    format!("\"{}\"", p.display().to_string().replace('\\', "\\\\").replace('"', "\\\""))
}

/// `promtool check metrics` on `text`: its verdict and what it said.
fn promtool_check_metrics(text: &str) -> (bool, String) {
    let mut child = Command::new(tool("promtool"))
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool");
    child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("write");
    let out = child.wait_with_output().expect("promtool output");
    let said = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), said)
}

/// The value of the one sample `line_start` (name and labels, as printed) begins.
fn sample(text: &str, line_start: &str) -> f64 {
    let line = text
        .lines()
        .find(|l| l.starts_with(line_start))
        .unwrap_or_else(|| panic!("no sample {line_start} in:\n{text}"));
    line.rsplit(' ').next().and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("no value: {line}"))
}

#[test]
#[ignore = "needs promtool (Debian package prometheus)"]
fn promtool_checks_the_exposition_of_a_live_workspace() {
    let live = Live::new("");
    let om = live.run(&["status", "--openmetrics"]);
    let (ok, said) = promtool_check_metrics(&om);
    assert!(ok, "promtool check metrics failed:\n{said}\n{om}");
    assert!(om.contains("opsconsole_gpu_memory_used_bytes{") && om.contains("opsconsole_log_step{"), "{om}");
    let prom = live.root.join("opsconsole.prom");
    live.run(&["status", "--textfile", prom.to_str().unwrap()]);
    let (ok, said) = promtool_check_metrics(&std::fs::read_to_string(&prom).unwrap());
    assert!(ok, "promtool check metrics on the textfile failed:\n{said}");

    // With the DCGM names: DCGM's own label names are camelCase, which promtool's linter
    // flags; the text parses and nothing else is flagged.
    let cfg_path = live.root.join("opsconsole.toml");
    let cfg = std::fs::read_to_string(&cfg_path).unwrap().replacen("dcgm_names = false", "dcgm_names = true", 1);
    std::fs::write(&cfg_path, cfg).unwrap();
    let (_, said) = promtool_check_metrics(&live.run(&["status", "--openmetrics"]));
    assert!(said.contains("camelCase"), "{said}");
    assert!(!said.contains("error while linting") && !said.contains("parsing error"), "{said}");
    assert!(
        said.lines().all(|l| l.is_empty() || l.contains("camelCase")),
        "only DCGM's camelCase labels may be flagged:\n{said}"
    );
}

#[test]
fn openmetrics_of_a_live_workspace_matches_status_json() {
    let live = Live::new("");
    let om = live.run(&["status", "--openmetrics"]);
    assert!(om.ends_with("# EOF\n"), "OpenMetrics ends with # EOF");
    let j = live.status_json();
    let host = j["host"]["hostname"].as_str().expect("hostname").to_string();
    let h = |rest: &str| format!("{{host=\"{host}\"{rest}}}");

    // Every collector is there, with what status --json says.
    assert_eq!(sample(&om, &format!("opsconsole_nvml_up{}", h(""))), 1.0);
    let gpu = h(",gpu=\"0\",model=\"NVIDIA L4\"");
    assert_eq!(sample(&om, &format!("opsconsole_gpu_memory_used_bytes{gpu}")), (14 * GIB) as f64);
    assert_eq!(sample(&om, &format!("opsconsole_gpu_memory_total_bytes{gpu}")), L4_TOTAL as f64);
    assert_eq!(sample(&om, &format!("opsconsole_gpu_utilization_ratio{gpu}")), 0.97);
    assert_eq!(sample(&om, &format!("opsconsole_gpu_temperature_celsius{gpu}")), 71.0);
    assert_eq!(sample(&om, &format!("opsconsole_gpu_power_watts{gpu}")), 72.5);
    let tier = j["tier_fit"]["tier"].as_str().expect("tier fit");
    assert_eq!(
        sample(&om, &format!("opsconsole_tier_peak_bytes{}", h(&format!(",tier=\"{tier}\"")))),
        j["tier_fit"]["peak_bytes"].as_f64().unwrap()
    );
    let verdict = j["tier_fit"]["verdict"].as_str().unwrap();
    assert_eq!(
        sample(&om, &format!("opsconsole_tier_verdict{}", h(&format!(",tier=\"{tier}\",verdict=\"{verdict}\"")))),
        1.0
    );
    let mount = j["disks"][0]["mount"].as_str().unwrap();
    assert_eq!(
        sample(&om, &format!("opsconsole_filesystem_size_bytes{}", h(&format!(",mount=\"{mount}\"")))),
        j["disks"][0]["total_bytes"].as_f64().unwrap()
    );
    let level = j["disks"][0]["level"].as_str().unwrap();
    assert_eq!(
        sample(&om, &format!("opsconsole_filesystem_level{}", h(&format!(",mount=\"{mount}\",level=\"{level}\"")))),
        1.0
    );
    assert_eq!(sample(&om, &format!("opsconsole_log_step{}", h(EXP))), LAST_STEP as f64);
    assert_eq!(j["log"]["metrics"]["step"], LAST_STEP);
    assert_eq!(sample(&om, &format!("opsconsole_log_total_steps{}", h(EXP))), 1000.0);
    assert_eq!(sample(&om, &format!("opsconsole_log_eval_loss{}", h(EXP))), 1.9876);
    assert_eq!(sample(&om, &format!("opsconsole_log_learning_rate{}", h(EXP))), 4.5e-05);
    assert_eq!(sample(&om, &format!("opsconsole_log_errors{}", h(",experiment=\"v01\",kind=\"cuda_oom\""))), 1.0);
    assert_eq!(sample(&om, &format!("opsconsole_log_errors{}", h(",experiment=\"v01\",kind=\"nan_loss\""))), 0.0);
    assert_eq!(sample(&om, &format!("opsconsole_log_stalled{}", h(EXP))), 0.0);
    let root = h(",root=\"checkpoints\"");
    assert_eq!(sample(&om, &format!("opsconsole_checkpoints{root}")), 2.0);
    assert_eq!(sample(&om, &format!("opsconsole_checkpoints_size_bytes{root}")), 8192.0);
    assert_eq!(sample(&om, &format!("opsconsole_checkpoint_newest_step{root}")), 100.0);
    let l3 = j["sync"]["levels"].as_array().unwrap().iter().find(|l| l["level"] == "L3").expect("L3").clone();
    let l3_labels = h(",level=\"L3\",remote=\"hf\"");
    assert_eq!(
        sample(&om, &format!("opsconsole_upload_last_success_timestamp_seconds{l3_labels}")),
        l3["last_success_unix"].as_f64().expect("L3 stored the checkpoints")
    );
    assert_eq!(sample(&om, &format!("opsconsole_upload_pending_files{l3_labels}")), 0.0);
    assert_eq!(sample(&om, &format!("opsconsole_checkpoint_newest_unconfirmed_seconds{l3_labels}")), 0.0);
    assert_eq!(sample(&om, &format!("opsconsole_idle{}", h(""))), 0.0, "a job holds the GPU: busy");
    assert!(om.contains("opsconsole_build_info{"), "{om}");

    // No path, log line or file content is a label or a value.
    for secret in [live.root.display().to_string(), "OutOfMemoryError".to_string(), "Tried to allocate".into()] {
        assert!(!om.contains(&secret), "{secret} leaked into the metrics");
    }
    // The DCGM names are off by default.
    assert!(!om.contains("DCGM_FI_DEV"), "{om}");
}

#[test]
fn textfile_and_dcgm_names() {
    let live = Live::new("");
    let cfg_path = live.root.join("opsconsole.toml");
    let cfg = std::fs::read_to_string(&cfg_path).unwrap().replacen("dcgm_names = false", "dcgm_names = true", 1);
    std::fs::write(&cfg_path, cfg).unwrap();
    let prom = live.root.join("opsconsole.prom");
    let out = live.run(&["status", "--textfile", prom.to_str().unwrap()]);
    assert!(out.is_empty(), "--textfile alone prints nothing: {out}");
    let text = std::fs::read_to_string(&prom).expect("textfile written");
    assert!(!text.contains("# EOF"), "the 0.0.4 text format has no # EOF");
    let host = live.status_json()["host"]["hostname"].as_str().unwrap().to_string();
    let dcgm = format!(
        "{{gpu=\"0\",UUID=\"GPU-00000000-0000-0000-0000-000000000000\",modelName=\"NVIDIA L4\",Hostname=\"{host}\"}}"
    );
    assert_eq!(sample(&text, &format!("DCGM_FI_DEV_FB_USED{dcgm}")), 14336.0, "MiB");
    assert_eq!(sample(&text, &format!("DCGM_FI_DEV_FB_FREE{dcgm}")), (23034 - 14336) as f64);
    assert_eq!(sample(&text, &format!("DCGM_FI_DEV_GPU_UTIL{dcgm}")), 97.0);
    assert_eq!(sample(&text, &format!("DCGM_FI_DEV_GPU_TEMP{dcgm}")), 71.0);
    assert_eq!(sample(&text, &format!("DCGM_FI_DEV_POWER_USAGE{dcgm}")), 72.5);
}

// ---------------------------------------------------------------------------------------
// HTTP: the exporter, and the real Prometheus server scraping it.

/// `GET path` on `addr` over HTTP/1.0: (status line, headers, body).
fn http_get(addr: SocketAddr, path: &str, accept: Option<&str>) -> (String, String, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    let accept = accept.map(|a| format!("Accept: {a}\r\n")).unwrap_or_default();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n{accept}\r\n").expect("request");
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("response");
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let (status, headers) = head.split_once("\r\n").unwrap_or((head, ""));
    (status.to_string(), headers.to_lowercase(), body.to_string())
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Starts `opsconsole ARGS`, which prints the address it serves on its first line.
fn start_exporter(mut cmd: Command) -> (Reaped, SocketAddr) {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start exporter");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("first line");
    let child = Reaped(child);
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    (child, addr)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// One instant query's single value.
fn query(prom: SocketAddr, q: &str) -> Option<f64> {
    let (status, _, body) = http_get(prom, &format!("/api/v1/query?query={}", urlencode(q)), None);
    assert!(status.contains("200"), "{q}: {status} {body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("query json");
    let result = v["data"]["result"].as_array()?;
    assert!(result.len() <= 1, "{q}: more than one series: {body}");
    result.first().and_then(|r| r["value"][1].as_str()).and_then(|s| s.parse().ok())
}

#[test]
#[ignore = "needs prometheus and promtool (Debian package prometheus)"]
fn prometheus_scrapes_the_exporter_and_agrees_with_status_json() {
    let live = Live::new("");
    let mut cmd = live.cmd();
    cmd.args(["exporter", "--listen", "127.0.0.1:0"]);
    let (_exporter, addr) = start_exporter(cmd);

    // Content negotiation, as scrapers ask.
    let (status, headers, body) = http_get(addr, "/metrics", None);
    assert!(status.contains("200"), "{status}");
    assert!(headers.contains("content-type: application/openmetrics-text; version=1.0.0"), "{headers}");
    assert!(body.ends_with("# EOF\n"));
    let (_, headers, text) = http_get(addr, "/metrics", Some("text/plain"));
    assert!(headers.contains("content-type: text/plain; version=0.0.4"), "{headers}");
    assert!(!text.contains("# EOF"));
    let (ok, said) = promtool_check_metrics(&text);
    assert!(ok, "{said}");
    let (status, _, _) = http_get(addr, "/other", None);
    assert!(status.contains("404"), "{status}");

    // The real server, scraping every second into a storage folder of its own.
    let store = tempfile::tempdir().expect("storage");
    let config = store.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: opsconsole\n    \
             static_configs:\n      - targets: ['{addr}']\n"
        ),
    )
    .expect("prometheus.yml");
    let prom: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let _prometheus = Reaped(
        Command::new(tool("prometheus"))
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", store.path().join("data").display()))
            .arg(format!("--web.listen-address={prom}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus"),
    );
    // Two scrapes of the target (a generous bound: a loaded 2-core machine).
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let ready = TcpStream::connect_timeout(&prom, Duration::from_secs(1)).is_ok()
            && query(prom, "count_over_time(up{job=\"opsconsole\"}[5m])").is_some_and(|n| n >= 2.0);
        if ready {
            break;
        }
        assert!(Instant::now() < deadline, "prometheus did not scrape the exporter twice in 90 s");
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(query(prom, "up{job=\"opsconsole\"}"), Some(1.0));

    let j = live.status_json();
    let last_step = j["log"]["metrics"]["step"].as_f64().expect("step");
    assert_eq!(query(prom, "opsconsole_log_step"), Some(last_step));
    let d = &j["disks"][0];
    let mount = d["mount"].as_str().unwrap();
    assert_eq!(
        query(prom, &format!("opsconsole_filesystem_size_bytes{{mount=\"{mount}\"}}")),
        d["total_bytes"].as_f64()
    );
    // The disk is shared with other work: used space moves between two samples, so the
    // fill ratio is compared to a tenth of a percent.
    let fill = query(prom, &format!("opsconsole_filesystem_fill_ratio{{mount=\"{mount}\"}}")).expect("fill ratio");
    let want = d["fill_pct"].as_f64().unwrap() / 100.0;
    assert!((fill - want).abs() < 0.001, "fill ratio {fill} vs status --json {want}");
    assert_eq!(query(prom, "opsconsole_gpu_memory_used_bytes{gpu=\"0\"}"), j["gpus"][0]["memory_used_bytes"].as_f64());
    assert_eq!(query(prom, "opsconsole_checkpoints{root=\"checkpoints\"}"), Some(2.0));
    assert_eq!(query(prom, "opsconsole_log_errors{kind=\"cuda_oom\"}"), Some(1.0));
}

#[test]
fn bad_listen_values_and_a_port_in_use_are_clear_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("opsconsole.toml"), "").unwrap();
    let run = |listen: &str| {
        Command::new(BIN)
            .arg("--workspace")
            .arg(dir.path())
            .args(["exporter", "--listen", listen])
            .output()
            .expect("run")
    };
    let out = run("9464");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not an ADDRESS:PORT"), "{out:?}");
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let out = run(&held.local_addr().unwrap().to_string());
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("the port is in use"), "{out:?}");

    // Beyond loopback: served, with a warning that nothing guards it.
    let mut cmd = Command::new(BIN);
    cmd.arg("--workspace").arg(dir.path()).args(["exporter", "--listen", "0.0.0.0:0"]);
    let (mut child, addr) = start_exporter(cmd);
    let port = addr.port();
    let (status, _, _) = http_get(format!("127.0.0.1:{port}").parse().unwrap(), "/metrics", None);
    assert!(status.contains("200"), "{status}");
    let _ = child.0.kill();
    let mut err = String::new();
    child.0.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(err.contains("without authentication"), "{err}");

    // The console and the daemon refuse a bad [metrics] listen like any bad config key.
    std::fs::write(dir.path().join("opsconsole.toml"), "[metrics]\nlisten = \"nowhere\"\n").unwrap();
    let out = Command::new(BIN).arg("--workspace").arg(dir.path()).arg("config").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("metrics.listen") && err.contains("opsconsole.toml:2"), "{err}");
}

#[test]
fn the_sync_daemon_serves_metrics_beside_its_uploads() {
    let live = Live::new("");
    let mut cmd = live.cmd();
    cmd.args(["sync", "--daemon", "--metrics-listen", "127.0.0.1:0"]);
    let mut child = Reaped(cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("daemon"));
    let mut line = String::new();
    let mut stderr = BufReader::new(child.0.stderr.take().unwrap());
    stderr.read_line(&mut line).expect("stderr");
    // Keep reading what the daemon says: a closed pipe would make its next line fail
    // (EPIPE) and end it before it answers.
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    let addr: SocketAddr = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    let (status, _, body) = http_get(addr, "/metrics", None);
    assert!(status.contains("200"), "{status}");
    assert!(body.contains("opsconsole_upload_pending_files{"), "{body}");
    assert!(body.contains("opsconsole_log_step{"), "{body}");
}

#[test]
#[ignore = "needs tmux"]
fn the_console_serves_the_figures_its_panels_hold() {
    tmux::Tmux::require();
    let live = Live::new("");
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let cfg_path = live.root.join("opsconsole.toml");
    let cfg = std::fs::read_to_string(&cfg_path).unwrap().replacen("listen = \"\"", &format!("listen = \"{addr}\""), 1);
    std::fs::write(&cfg_path, cfg).unwrap();
    let cmd = format!(
        "env NVML_STUB_FIXTURE='{}' '{BIN}' --workspace '{}'",
        live.stub.fixture.display(),
        live.root.display()
    );
    let t = tmux::Tmux::new("metrics-console", 120, 40, &cmd);
    t.wait_for("the console", |s| s.contains("Uploads"));
    // The console hands over its figures once its collectors reported (about 2 s).
    let deadline = Instant::now() + Duration::from_secs(60);
    let body = loop {
        if let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
            drop(s.set_read_timeout(Some(Duration::from_secs(10))));
            let _ = write!(s, "GET /metrics HTTP/1.0\r\n\r\n");
            let mut raw = String::new();
            let _ = s.read_to_string(&mut raw);
            if raw.contains("opsconsole_gpu_memory_used_bytes{") && raw.contains("opsconsole_checkpoints{") {
                break raw;
            }
        }
        assert!(Instant::now() < deadline, "the console served no full sample in 60 s:\n{}", t.capture());
        std::thread::sleep(Duration::from_millis(250));
    };
    let gpu = body.lines().find(|l| l.starts_with("opsconsole_gpu_memory_used_bytes{")).unwrap();
    assert!(gpu.ends_with(&format!(" {}.0", 14 * GIB)), "{gpu}");
    let step = body.lines().find(|l| l.starts_with("opsconsole_log_step{")).expect("log step");
    assert!(step.ends_with(&format!(" {LAST_STEP}.0")), "{step}");
    let ckpts = body.lines().find(|l| l.starts_with("opsconsole_checkpoints{")).unwrap();
    assert!(ckpts.ends_with(" 2.0"), "{ckpts}");
    // Fed by the console's own collectors: no sampler ran for the exporter.
    assert!(!body.contains("opsconsole_sample_duration_seconds"), "{body}");
}

// ---------------------------------------------------------------------------------------
// The shipped alert rules.

#[test]
#[ignore = "needs promtool (Debian package prometheus)"]
fn alert_rules_pass_promtool_check_and_their_unit_tests() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(tool("promtool"))
        .args(["check", "rules"])
        .arg(repo.join("assets/prometheus/opsconsole-alerts.yml"))
        .output()
        .expect("promtool");
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let out = Command::new(tool("promtool"))
        .args(["test", "rules"])
        .arg(repo.join("tests/prometheus/opsconsole-alerts.test.yml"))
        .output()
        .expect("promtool");
    let said = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("SUCCESS"), "{said}");
}
