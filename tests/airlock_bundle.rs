//! `bundle` against real git repositories made by the tests: refusals for modified, staged
//! and untracked files (and no commit at all), identical bytes for the same commit, a
//! manifest whose hashes match the files, every kind of secret caught and named while
//! look-alikes pass, an interrupted bundle that leaves nothing under the final name (a
//! cancelled build, and the real binary killed with SIGKILL mid-write), and the bundle
//! queued on L2 and stored there by `sync --once`.

#[path = "support/airlock.rs"]
mod airlock;

use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use airlock::{config, fake, git, opsconsole, repo, write};
use opsconsole::airlock::bundle::{self, BundleOptions, Outcome, ProblemKind, Upload};
use opsconsole::airlock::git::Change;
use opsconsole::secrets::SecretKind;

fn build(ws: &Path, cfg: &opsconsole::config::Config, upload: bool) -> Outcome {
    bundle::build(ws, cfg, &BundleOptions { experiment: None, upload }, &mut |_| {}, &AtomicBool::new(false))
        .expect("no I/O failure")
}

fn built(o: Outcome) -> Box<bundle::Built> {
    match o {
        Outcome::Built(b) => b,
        Outcome::Refused(r) => panic!("refused: {r:?}"),
    }
}

fn refused(o: Outcome) -> bundle::Refusal {
    match o {
        Outcome::Refused(r) => r,
        Outcome::Built(b) => panic!("built {}", b.path),
    }
}

#[test]
fn uncommitted_changes_are_refused_with_every_file_named() {
    let dir = tempfile::tempdir().expect("tmp");
    let ws = dir.path().join("ws");
    repo(&ws, "v7_small");
    let cfg = config(&ws, "");
    // Modified, staged, untracked: each refused, and named.
    write(&ws, "experiments/v7_small/train.py", b"print('changed')\n");
    write(&ws, "requirements.txt", b"torch==2.4.0\n");
    git(&ws, &["add", "requirements.txt"]);
    write(&ws, "experiments/v7_small/notes.txt", b"scratch\n");
    // Outside the bundled paths, a change does not matter.
    write(&ws, "README.md", b"docs\n");
    let r = refused(build(&ws, &cfg, false));
    let got: Vec<(String, ProblemKind)> =
        r.problems.iter().map(|p| (p.path.clone().unwrap_or_default(), p.kind)).collect();
    assert_eq!(
        got,
        vec![
            ("experiments/v7_small/notes.txt".into(), ProblemKind::Uncommitted(Change::Untracked)),
            ("experiments/v7_small/train.py".into(), ProblemKind::Uncommitted(Change::Modified)),
            ("requirements.txt".into(), ProblemKind::Uncommitted(Change::Staged)),
        ]
    );
    assert!(r.headline().contains("3 files with uncommitted changes"), "{}", r.headline());
    assert!(!ws.join("bundles").exists(), "nothing written");

    // The binary says the same, in words and in JSON, and exits 1.
    let out = opsconsole(&ws, &["bundle"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    for (path, words) in [
        ("experiments/v7_small/train.py", "modified, not committed"),
        ("requirements.txt", "staged, not committed"),
        ("experiments/v7_small/notes.txt", "untracked (not in git)"),
    ] {
        assert!(text.lines().any(|l| l.contains(path) && l.contains(words)), "{path}: {text}");
    }
    let out = opsconsole(&ws, &["bundle", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["outcome"], "refused");
    assert_eq!(v["problems"].as_array().map(Vec::len), Some(3));
    assert_eq!(v["problems"][0]["kind"]["type"], "uncommitted");
}

#[test]
fn a_branch_without_a_commit_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let ws = dir.path().join("ws");
    std::fs::create_dir_all(&ws).expect("mkdir");
    git(&ws, &["init", "-q", "-b", "main"]);
    write(&ws, "experiments/v1/train.py", b"x\n");
    let cfg = config(&ws, "");
    let r = refused(build(&ws, &cfg, false));
    assert!(r.problems[0].why.contains("HEAD is not a commit"), "{r:?}");
    let outside = dir.path().join("plain");
    std::fs::create_dir_all(outside.join("experiments/v1")).expect("mkdir");
    let cfg = config(&outside, "");
    let r = refused(build(&outside, &cfg, false));
    assert!(r.problems[0].why.contains("not in a git repository"), "{r:?}");
}

#[test]
fn the_same_commit_gives_the_same_bytes_and_the_manifest_matches_the_files() {
    let dir = tempfile::tempdir().expect("tmp");
    let ws = dir.path().join("ws");
    repo(&ws, "v68_lane");
    write(&ws, "experiments/v68_lane/models/run.sh", b"#!/bin/sh\necho hi\n");
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(ws.join("experiments/v68_lane/models/run.sh"))
        .status()
        .expect("chmod");
    // Not committed, ignored: never in a bundle.
    write(&ws, "experiments/v68_lane/models/__pycache__/attn.cpython-311.pyc", b"junk");
    write(&ws, "frozen_requirements.txt", b"torch==2.3.0\nnumpy==1.26.4\n");
    write(&ws, "configs/v68_lane.yaml", b"lr: 0.0003\n");
    git(&ws, &["add", "-A"]);
    git(&ws, &["commit", "-q", "-m", "more"]);
    let cfg = config(&ws, "[bundle]\nextra_paths = [\"configs/{experiment}.yaml\"]\n");
    let first = built(build(&ws, &cfg, false));
    let short = git(&ws, &["rev-parse", "--short", "HEAD"]);
    assert_eq!(first.path, format!("bundles/bundle-v68_lane-{short}.zip"));
    let bytes1 = std::fs::read(ws.join(&first.path)).expect("read");
    std::thread::sleep(Duration::from_millis(1100));
    let second = built(build(&ws, &cfg, false));
    let bytes2 = std::fs::read(ws.join(&second.path)).expect("read");
    assert_eq!(bytes1, bytes2, "same commit, same bytes");
    assert_ne!(first.created, second.created, "the build time lives in the sidecar only");
    let sidecar: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ws.join(&second.sidecar)).expect("sidecar")).expect("json");
    assert_eq!(sidecar["created"], second.created.as_str());
    assert_eq!(sidecar["bundle"]["sha256"], second.sha256.as_str());

    // The archive: sorted names, the DOS epoch, fixed permissions, and a manifest whose
    // sizes and hashes match both the entries and the files in the work tree.
    let mut z = zip::ZipArchive::new(std::fs::File::open(ws.join(&second.path)).expect("open")).expect("zip");
    let names: Vec<String> =
        (0..z.len()).map(|i| z.by_index(i).expect("entry").name().expect("name").to_string()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    assert_eq!(
        names,
        vec![
            "MANIFEST.json",
            "configs/v68_lane.yaml",
            "experiments/v68_lane/models/__init__.py",
            "experiments/v68_lane/models/attn.py",
            "experiments/v68_lane/models/run.sh",
            "experiments/v68_lane/train.py",
            "frozen_requirements.txt",
            "requirements.txt",
        ]
    );
    let mut manifest_text = String::new();
    z.by_name("MANIFEST.json").expect("manifest").read_to_string(&mut manifest_text).expect("read");
    let m: serde_json::Value = serde_json::from_str(&manifest_text).expect("json");
    assert_eq!(m["commit"], git(&ws, &["rev-parse", "HEAD"]).as_str());
    assert_eq!(m["branch"], "main");
    assert_eq!(m["clean"], true);
    assert!(m.get("created").is_none(), "no build time inside the zip");
    let files = m["files"].as_array().expect("files");
    assert_eq!(files.len(), names.len() - 1);
    for f in files {
        let path = f["path"].as_str().expect("path");
        let mut e = z.by_name(path).expect("entry");
        assert_eq!(e.last_modified().map(|d| (d.year(), d.month(), d.day())), Some((1980, 1, 1)), "{path}");
        let mode = e.unix_mode().expect("mode") & 0o777;
        assert_eq!(mode, if path.ends_with("run.sh") { 0o755 } else { 0o644 }, "{path}");
        let mut content = Vec::new();
        e.read_to_end(&mut content).expect("read");
        use sha2::Digest;
        let sha = opsconsole::sync::hash::hex(&sha2::Sha256::digest(&content));
        assert_eq!(f["sha256"], sha.as_str(), "{path} in the zip");
        assert_eq!(f["size"], content.len() as u64, "{path}");
        assert_eq!(airlock::sha256(&ws.join(path)), sha, "{path} on disk");
    }
}

#[test]
fn each_kind_of_secret_is_caught_and_named_and_look_alikes_pass() {
    let dir = tempfile::tempdir().expect("tmp");
    let ws = dir.path().join("ws");
    repo(&ws, "v3");
    let m = "experiments/v3/models";
    // Look-alikes first: a bundle with only these is built.
    write(&ws, &format!("{m}/hf_utils.py"), b"from huggingface_hub import hf_hub_download\n");
    write(&ws, &format!("{m}/id_rsa.pub"), b"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeFake me@host\n");
    write(&ws, &format!("{m}/tokenizer.json"), b"{\"pad_token\": \"<pad>\"}\n");
    write(
        &ws,
        &format!("{m}/keys_note.json"),
        b"{\"private_key\": null, \"note\": \"set private_key in the vault\"}\n",
    );
    write(&ws, &format!("{m}/public.pem.txt"), b"-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----\n");
    git(&ws, &["add", "-A"]);
    git(&ws, &["commit", "-q", "-m", "look-alikes"]);
    let cfg = config(&ws, "");
    let b = built(build(&ws, &cfg, false));
    assert!(b.manifest.files.iter().any(|f| f.path.ends_with("hf_utils.py")));

    // Each kind of secret, committed by mistake.
    let cases: Vec<(String, Vec<u8>, SecretKind)> = vec![
        (".secrets/colab.json".into(), b"{}".to_vec(), SecretKind::Credentials),
        (".env".into(), b"DEBUG=1\n".to_vec(), SecretKind::EnvFile),
        (
            "ssh_deploy".into(),
            format!("-----BEGIN OPENSSH PRIVATE KEY-----\n{}\n-----END OPENSSH PRIVATE KEY-----\n", fake("b3Bl", 60))
                .into_bytes(),
            SecretKind::PrivateKey,
        ),
        (
            "server_notes.txt".into(),
            format!("-----BEGIN RSA PRIVATE KEY-----\n{}\n", fake("MIIE", 60)).into_bytes(),
            SecretKind::PrivateKey,
        ),
        (
            "settings.json".into(),
            format!(
                "{{\"type\": \"service_account\", \"client_email\": \"a@p.iam.gserviceaccount.com\", \"private_key\": \"{}\"}}",
                fake("MIIE", 40)
            )
            .into_bytes(),
            SecretKind::ServiceAccountKey,
        ),
        ("hub.py".into(), format!("HF = \"{}\"\n", fake("hf_", 34)).into_bytes(), SecretKind::HfToken),
        ("auth.py".into(), format!("TOKEN = '{}'\n", fake("ya29.", 40)).into_bytes(), SecretKind::OAuthToken),
    ];
    for (name, content, _) in &cases {
        write(&ws, &format!("{m}/{name}"), content);
    }
    git(&ws, &["add", "-A", "-f"]);
    git(&ws, &["commit", "-q", "-m", "oops"]);
    let r = refused(build(&ws, &cfg, false));
    for (name, _, kind) in &cases {
        let path = format!("{m}/{name}");
        let p = r.problems.iter().find(|p| p.path.as_deref() == Some(path.as_str()));
        let p = p.unwrap_or_else(|| panic!("{path} not named: {:?}", r.problems));
        assert_eq!(p.kind, ProblemKind::Secret(*kind), "{path}");
        // The reason is words, never the secret.
        assert!(!p.why.contains("X1X1X1"), "{}", p.why);
    }
    assert_eq!(r.problems.len(), cases.len(), "look-alikes pass: {:?}", r.problems);
    let out = opsconsole(&ws, &["bundle"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("hub.py") && text.contains("Hugging Face token"), "{text}");
    assert!(!text.contains("X1X1X1"), "no secret in the output: {text}");
}

#[test]
fn a_cancelled_bundle_leaves_nothing_under_the_final_name() {
    let dir = tempfile::tempdir().expect("tmp");
    let ws = dir.path().join("ws");
    repo(&ws, "v2");
    let mut big = vec![0u8; 8 << 20];
    fastrand::Rng::with_seed(2).fill(&mut big);
    write(&ws, "experiments/v2/models/table.bin.txt", &big);
    git(&ws, &["add", "-A"]);
    git(&ws, &["commit", "-q", "-m", "big"]);
    let cfg = config(&ws, "");
    let cancel = AtomicBool::new(false);
    let r = bundle::build(
        &ws,
        &cfg,
        &BundleOptions::default(),
        &mut |p| {
            if let opsconsole::airlock::Progress::Bytes { what, done, .. } = p
                && what.starts_with("writing")
                && done > 1 << 20
            {
                cancel.store(true, Ordering::Relaxed);
            }
        },
        &cancel,
    );
    assert_eq!(r.expect_err("cancelled"), "cancelled");
    let left: Vec<_> = std::fs::read_dir(ws.join("bundles")).expect("dir").flatten().map(|e| e.file_name()).collect();
    assert!(left.is_empty(), "nothing left: {left:?}");
}

#[test]
fn a_bundle_killed_mid_write_leaves_no_file_under_the_final_name() {
    let dir = tempfile::tempdir().expect("tmp");
    let ws = dir.path().join("ws");
    repo(&ws, "v2");
    // 96 MiB that does not compress: writing it takes a while.
    let mut big = vec![0u8; 96 << 20];
    fastrand::Rng::with_seed(9).fill(&mut big);
    write(&ws, "experiments/v2/models/table.npy.txt", &big);
    drop(big);
    git(&ws, &["add", "-A"]);
    git(&ws, &["commit", "-q", "-m", "big"]);
    config(&ws, "");
    let short = git(&ws, &["rev-parse", "--short", "HEAD"]);
    let final_path = ws.join(format!("bundles/bundle-v2-{short}.zip"));
    let partial = ws.join(format!("bundles/.bundle-v2-{short}.zip.partial"));
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_opsconsole"))
        .arg("--workspace")
        .arg(&ws)
        .args(["bundle", "--no-upload"])
        .env("XDG_STATE_HOME", dir.path().join("state"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if std::fs::metadata(&partial).is_ok_and(|m| m.len() > 1 << 20) {
            break;
        }
        assert!(child.try_wait().expect("wait").is_none(), "the bundle finished before it could be killed");
        assert!(Instant::now() < deadline, "no partial bundle appeared");
        std::thread::sleep(Duration::from_millis(5));
    }
    // `Child::kill` is SIGKILL.
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    assert!(!final_path.exists(), "nothing under the final name after SIGKILL");
    // The next bundle cleans the leftover and completes.
    let out = opsconsole(&ws, &["bundle", "--no-upload"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(final_path.exists());
    assert!(!partial.exists(), "the leftover partial is gone");
}

#[test]
fn a_bundle_is_queued_on_l2_and_stored_there_by_sync_and_no_upload_queues_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let ws = dir.path().join("ws");
    repo(&ws, "v5");
    let remote = dir.path().join("l2");
    airlock::local_remote(&ws, "drive", &remote);
    let toml = format!("[sync.l2]\nremote = \"drive\"\n\n{}", airlock::local_remote_toml("drive", &remote));
    let cfg = config(&ws, &toml);
    // --no-upload: nothing in the ledger.
    let b = built(build(&ws, &cfg, false));
    assert_eq!(b.upload, Upload::NotRequested);
    assert!(b.warnings.iter().any(|w| w.contains("no frozen_requirements.txt")), "{:?}", b.warnings);
    let ledger = opsconsole::sync::ledger::Ledger::open(&ws).expect("ledger");
    assert!(ledger.entry(&b.path, "L2").expect("read").is_none());
    drop(ledger);
    // Frozen requirements older than the requirements: a warning.
    write(&ws, "frozen_requirements.txt", b"torch==2.3.0\n");
    airlock::set_age(&ws.join("frozen_requirements.txt"), Duration::from_secs(3600));
    let b = built(build(&ws, &cfg, true));
    assert!(b.warnings.iter().any(|w| w.contains("older than requirements.txt")), "{:?}", b.warnings);
    assert!(
        matches!(&b.upload, Upload::Queued { level, remote, engine: None, own: false } if level == "L2" && remote == "drive")
    );
    let ledger = opsconsole::sync::ledger::Ledger::open(&ws).expect("ledger");
    let e = ledger.entry(&b.path, "L2").expect("read").expect("queued");
    assert_eq!(e.state, opsconsole::sync::ledger::UploadState::Pending);
    drop(ledger);
    // A sync pass stores exactly those bytes.
    let out = opsconsole(&ws, &["sync", "--once"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(remote.join(&b.path)).expect("stored"), std::fs::read(ws.join(&b.path)).expect("local"));
    let ledger = opsconsole::sync::ledger::Ledger::open(&ws).expect("ledger");
    assert_eq!(
        ledger.entry(&b.path, "L2").expect("read").expect("row").state,
        opsconsole::sync::ledger::UploadState::Confirmed
    );
}

#[test]
fn freeze_writes_the_interpreters_packages_without_url_credentials_and_keeps_the_file_on_failure() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tmp");
    let ws = dir.path().join("ws");
    std::fs::create_dir_all(ws.join("venv/bin")).expect("mkdir");
    // A stand-in interpreter: answers `-m pip freeze` as pip does, or fails when told to.
    let py = ws.join("venv/bin/python");
    let token = fake("ghp_", 36);
    std::fs::write(
        &py,
        format!(
            "#!/bin/sh\n[ \"$1 $2 $3\" = \"-m pip freeze\" ] || exit 9\n[ -e \"$0.fail\" ] && {{ echo 'ERROR: pip is broken' >&2; exit 1; }}\n\
             printf 'numpy==1.26.4\\ntorch==2.3.0\\nmylib @ git+https://me:{token}@github.com/o/r.git@abc\\n'\n"
        ),
    )
    .expect("write");
    std::fs::set_permissions(&py, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    config(&ws, "[freeze]\npython = \"./venv/bin/python\"\n");
    let out = opsconsole(&ws, &["freeze"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let frozen = std::fs::read_to_string(ws.join("frozen_requirements.txt")).expect("written");
    assert_eq!(frozen, "numpy==1.26.4\ntorch==2.3.0\nmylib @ git+https://github.com/o/r.git@abc\n");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("wrote frozen_requirements.txt: 3 packages") && text.contains("took credentials out of 1"),
        "{text}"
    );
    // pip failing: the old file stays as it was, and pip's words are shown.
    std::fs::write(ws.join("venv/bin/python.fail"), "").expect("write");
    let out = opsconsole(&ws, &["freeze"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ERROR: pip is broken"));
    assert_eq!(std::fs::read_to_string(ws.join("frozen_requirements.txt")).expect("kept"), frozen);
    // No such interpreter.
    config(&ws, "[freeze]\npython = \"python-does-not-exist-3.99\"\n");
    let out = opsconsole(&ws, &["freeze", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(v["error"].as_str().unwrap_or("").contains("no Python interpreter"), "{v}");
}
