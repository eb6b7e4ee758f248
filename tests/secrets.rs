//! Secrets never leave the machine: every file name from issue 9 and every content rule
//! under an innocent name, through the real binary (`sync --once`, `status --json`) with
//! the default routing and with a wide include; look-alikes still go; and a row queued by
//! an older version is stopped by the engine's last gate before upload.
//!
//! Every key and token here is assembled at run time and obviously fake.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Obviously fake key material: `prefix` then `n` characters of `Fake0`.
fn fake(prefix: &str, n: usize) -> String {
    let body: String = "Fake0".chars().cycle().take(n).collect();
    format!("{prefix}{body}")
}

fn write(path: &Path, data: &[u8]) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, data).expect("write");
}

/// The names issue 9 lists, with harmless contents: the name alone withholds them.
const NAMES: [&str; 21] = [
    "my-project-3f2a1b9c0d.json",
    "gcp-key.json",
    "sa.json",
    "kaggle.json",
    ".kaggle/kaggle.json",
    "secrets.json",
    "api_keys.json",
    ".aws/credentials",
    ".docker/config.json",
    ".npmrc",
    ".pypirc",
    "hf_token",
    "token.txt",
    "prod.env",
    "certs/client.pfx",
    "certs/client.p12",
    "android/release.jks",
    ".secrets/colab.json",
    ".env",
    "keys/id_rsa",
    "service-account.json",
];

/// Innocent names (each routed to a level by the default config) holding a secret.
fn content_cases() -> Vec<(&'static str, String)> {
    vec![
        (
            "config.json",
            format!(
                "{{\"type\": \"service_account\", \"project_id\": \"demo\", \"private_key\": \"{}\", \
                 \"client_email\": \"x@demo.iam.gserviceaccount.com\"}}",
                fake("", 64)
            ),
        ),
        ("run/eval.json", format!("{{\"username\": \"someone\", \"key\": \"{}\"}}", fake("", 32))),
        ("logs/train.log", format!("step 1 loss 2.3\nlogging in with HF_TOKEN={}\nstep 2\n", fake("hf_", 34))),
        (
            "journal.md",
            format!("note\n-----BEGIN OPENSSH PRIVATE KEY-----\n{}\n-----END OPENSSH PRIVATE KEY-----\n", fake("", 70)),
        ),
        ("frozen_requirements.txt", format!("torch==2.3\n//registry.npmjs.org/:_authToken={}\n", fake("npm_", 36))),
        ("metrics/registry.json", format!("{{\"auths\": {{\"ghcr.io\": {{\"auth\": \"{}\"}}}}}}", fake("", 24))),
        ("metrics/oauth.json", format!("{{\"access\": \"{}\"}}", fake("ya29.", 60))),
        (
            "metrics/cloud.json",
            format!("{{\"id\": \"{}\", \"secret\": \"{}\"}}", fake("AKIA", 16).to_uppercase(), fake("", 40)),
        ),
        (
            "logs/upload.log",
            "[distutils]\nindex-servers = pypi\n[pypi]\nusername = me\npassword = fake-password\n".into(),
        ),
        // A token printed far into a long log (beyond the first 64 KiB).
        (
            "logs/long.log",
            format!("{}export HF_TOKEN={}\nstep 9 loss 1.0\n", "step 1 loss 2.3\n".repeat(20_000), fake("hf_", 34)),
        ),
        // An API key assigned in a config of an innocent name.
        ("metrics/client.json", format!("{{\"openai\": {{\"api_key\": \"{}\"}}}}", fake("sk-", 48))),
        // A weights-routed file: HF's training_args.bin pickles `hub_token`.
        ("out/training_args.bin", format!("\u{80}\u{4}pickle hub_token {} end", fake("hf_", 40))),
    ]
}

/// Look-alikes that must still be stored (under the wide include).
const LOOK_ALIKES: [(&str, &str); 5] = [
    ("hf_utils.py", "from huggingface_hub import hf_hub_download\n"),
    ("keys/id_rsa.pub", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFake me@host\n"),
    ("docs/vault-notes.json", "{\"private_key\": null, \"note\": \"kept in the vault\"}"),
    ("tokenizer.json", "{\"version\": \"1.0\"}"),
    ("metrics/eval.json", "{\"eval_loss\": 1.9}"),
];

fn files_under(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            if e.file_type().expect("type").is_dir() {
                stack.push(e.path());
            } else if e.file_name() != opsconsole::sync::marker::MARKER_FILE {
                // The remote's identity marker is the remote's own file, not a stored one.
                out.push(e.path().strip_prefix(root).expect("prefix").to_string_lossy().replace('\\', "/"));
            }
        }
    }
    out.sort();
    out
}

fn contains_bytes(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

struct Run {
    _dir: tempfile::TempDir,
    ws: PathBuf,
    r2: PathBuf,
    r3: PathBuf,
    stderr: String,
    status: serde_json::Value,
}

fn run(wide: bool) -> Run {
    let dir = tempfile::tempdir().expect("tempdir");
    let ws = dir.path().join("ws");
    let (r2, r3) = (dir.path().join("r2"), dir.path().join("r3"));
    for name in NAMES {
        write(&ws.join(name), b"{\"harmless\": true}\n");
    }
    for (name, text) in content_cases() {
        write(&ws.join(name), text.as_bytes());
    }
    for (name, text) in LOOK_ALIKES {
        write(&ws.join(name), text.as_bytes());
    }
    let include = if wide { "include = [\"**/*\"]\n" } else { "" };
    write(
        &ws.join("opsconsole.toml"),
        format!(
            "[sync]\nsettle_seconds = 1\n\n[sync.l2]\nremote = \"r2\"\n{include}\n[sync.l3]\nremote = \"r3\"\n\n\
             [remotes.r2]\nkind = \"local\"\npath = \"{}\"\nsame_disk = true\n\n\
             [remotes.r3]\nkind = \"local\"\npath = \"{}\"\nsame_disk = true\n",
            r2.display(),
            r3.display()
        )
        .as_bytes(),
    );
    let bin = env!("CARGO_BIN_EXE_opsconsole");
    let init = Command::new(bin)
        .arg("-w")
        .arg(&ws)
        .args(["remote", "check", "--init"])
        .env("XDG_STATE_HOME", dir.path().join("state"))
        .output()
        .expect("remote check --init");
    assert!(init.status.success(), "{}", String::from_utf8_lossy(&init.stdout));
    let once = Command::new(bin)
        .arg("-w")
        .arg(&ws)
        .args(["sync", "--once"])
        .env("XDG_STATE_HOME", dir.path().join("state"))
        .output()
        .expect("sync --once");
    let stderr = String::from_utf8_lossy(&once.stderr).into_owned();
    assert!(once.status.success(), "{stderr}");
    let out = Command::new(bin)
        .arg("-w")
        .arg(&ws)
        .args(["status", "--json"])
        .env("XDG_STATE_HOME", dir.path().join("state"))
        .output()
        .expect("status");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let status = serde_json::from_slice(&out.stdout).expect("json");
    Run { _dir: dir, ws, r2, r3, stderr, status }
}

/// Nothing stored anywhere holds a byte of any secret, and neither does the ledger.
fn assert_no_secret_left(run: &Run) {
    let mut places: Vec<PathBuf> = Vec::new();
    for root in [&run.r2, &run.r3] {
        places.extend(files_under(root).into_iter().map(|f| root.join(f)));
    }
    for f in files_under(&run.ws.join(".opsconsole")) {
        places.push(run.ws.join(".opsconsole").join(f));
    }
    let needles: Vec<String> = content_cases()
        .iter()
        .map(|(_, t)| t.clone())
        .flat_map(|t| {
            ["hf_Fake", "ya29.Fake", "npm_Fake", "OPENSSH PRIVATE", "fake-password", "AKIAFAKE", "sk-Fake"]
                .into_iter()
                .filter(move |n| t.contains(n))
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .collect();
    for p in places {
        let bytes = std::fs::read(&p).expect("read");
        for n in &needles {
            assert!(!contains_bytes(&bytes, n.as_bytes()), "{} holds {n}", p.display());
        }
    }
    for n in &needles {
        assert!(!run.stderr.contains(n.as_str()), "the CLI printed {n}");
    }
}

#[test]
fn with_the_default_config_no_secret_reaches_any_level() {
    let run = run(false);
    // Only the clean files the default routing takes.
    assert_eq!(files_under(&run.r2), vec!["docs/vault-notes.json", "metrics/eval.json", "tokenizer.json"]);
    assert!(files_under(&run.r3).is_empty(), "{:?}", files_under(&run.r3));
    assert_no_secret_left(&run);
    // Withheld: the default-routed names (the `*.json` ones) and every content case.
    let sync = &run.status["sync"];
    let routed_names = [
        "my-project-3f2a1b9c0d.json",
        "gcp-key.json",
        "sa.json",
        "kaggle.json",
        ".kaggle/kaggle.json",
        "secrets.json",
        "api_keys.json",
        ".docker/config.json",
        ".secrets/colab.json",
        "service-account.json",
    ];
    let expected = routed_names.len() + content_cases().len();
    assert_eq!(sync["withheld_files"], expected as u64, "{sync:#}");
    // status lists the first 20 by path; the ledger holds them all.
    let listed: Vec<&str> =
        sync["withheld"].as_array().expect("list").iter().filter_map(|w| w["path"].as_str()).collect();
    assert_eq!(listed.len(), expected.min(20));
    let (n, all) = opsconsole::sync::ledger::Ledger::open(&run.ws).expect("ledger").withheld(usize::MAX).expect("list");
    assert_eq!(n as usize, expected);
    let all: Vec<&str> = all.iter().map(|w| w.path.as_str()).collect();
    for name in routed_names.iter().copied().chain(content_cases().iter().map(|(n, _)| *n)) {
        assert!(all.contains(&name), "{name} not withheld: {all:?}");
    }
    assert!(listed.iter().all(|l| all.contains(l)));
    let sa =
        sync["withheld"].as_array().expect("list").iter().find(|w| w["path"] == "config.json").expect("config.json");
    assert_eq!(sa["kind"], "service_account_key");
    assert!(sa["why"].as_str().is_some_and(|w| w.contains("service-account key")), "{sa}");
    assert!(run.stderr.contains(&format!("{expected} files withheld as secrets")), "{}", run.stderr);
}

#[test]
fn with_a_wide_include_no_secret_reaches_any_level_and_look_alikes_still_go() {
    let run = run(true);
    let stored = files_under(&run.r2);
    for name in NAMES.iter().copied().chain(content_cases().iter().map(|(n, _)| *n)) {
        assert!(!stored.iter().any(|s| s == name), "{name} reached L2: {stored:?}");
    }
    for (name, _) in LOOK_ALIKES {
        assert!(stored.iter().any(|s| s == name), "look-alike {name} was not stored: {stored:?}");
    }
    assert_no_secret_left(&run);
    let expected = NAMES.len() + content_cases().len();
    assert_eq!(run.status["sync"]["withheld_files"], expected as u64, "{:#}", run.status["sync"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_queued_before_the_file_held_a_secret_is_stopped_at_the_last_gate() {
    use opsconsole::sync::ledger::{Ledger, mtime_ns};
    let dir = tempfile::tempdir().expect("tempdir");
    let ws = dir.path().join("ws");
    let notes = ws.join("metrics/notes.json");
    write(&notes, format!("{{\"token\": \"{}\"}}", fake("hf_", 34)).as_bytes());
    // An older version queued it (no content rules then): the ledger holds a pending row
    // for exactly the file on disk, so the engine does not hash it again.
    let meta = std::fs::metadata(&notes).expect("meta");
    {
        let mut l = Ledger::open(&ws).expect("ledger");
        let sha = opsconsole::sync::hash::sha256_file(&notes).expect("hash");
        l.track("metrics/notes.json", meta.len(), mtime_ns(&meta), &sha, None, &[("L2", "r2")], 1).expect("track");
    }
    let mut c = opsconsole::sync::SyncConfig { settle_seconds: 1, ..Default::default() };
    c.l2.remote = "r2".into();
    let mut remotes = opsconsole::sync::RemotesConfig::new();
    // The test folder shares the workspace's disk: allowed, and said, by same_disk.
    remotes.insert("r2".into(), opsconsole::sync::RemoteConfig::Local { path: dir.path().join("r2"), same_disk: true });
    for r in opsconsole::sync::engine::build_remotes(&remotes, &ws).values() {
        assert!(r.init().await.iter().all(|s| s.ok), "remote set up");
    }
    let summary = opsconsole::sync::run_once(&ws, &c, &remotes).await.expect("run");
    assert_eq!(summary.uploaded, 0, "{summary:?}");
    assert_eq!(summary.withheld.len(), 1, "{summary:?}");
    assert!(files_under(&dir.path().join("r2")).is_empty());
    let l = Ledger::open(&ws).expect("ledger");
    assert!(l.entry("metrics/notes.json", "L2").expect("row").is_none(), "the queued row was dropped");
    let (n, list) = l.withheld(10).expect("withheld");
    assert_eq!(n, 1);
    assert_eq!(list[0].kind, "hf_token");
}
