//! Sync I/O figures for benches/sync.sh (not a criterion bench: the script compares these
//! with `sha256sum` and `cp` + `sync` in the same run).
//!
//! `sync_io hash FILE` prints the seconds to SHA-256 the file;
//! `sync_io digest FILE` prints the seconds for the engine's hash pass (SHA-256 and MD5 of
//! the file in one read);
//! `sync_io scan FILE` prints the seconds for the secrets content rules over the whole file
//! (what the engine does to a text file before it is queued; `benches/secrets.sh`);
//! `sync_io upload FILE DIR SHA256` uploads it into a LocalRemote at DIR and prints the
//! seconds for the upload (copy while hashing, fsync, rename) and for the verify that
//! follows (a `stat` and the remembered checksum on a local filesystem);
//! `sync_io engine FILE DIR SHA256` runs the real engine (daemon mode, L3 continuous into a
//! local remote at DIR/remote, settle 1 s) on a workspace at DIR/ws, puts FILE there as a
//! checkpoint (hard link renamed into place: "written", page cache as warm as for the
//! tools it is compared with), and prints the seconds from then until the engine reports
//! it queued (hashed) and confirmed, each with the 1 s settle taken off.

use std::path::Path;
use std::time::{Duration, Instant};

use opsconsole::sync::hash::{digest_prefix, sha256_file};
use opsconsole::sync::local::{LocalOptions, LocalRemote};
use opsconsole::sync::remote::{Remote, ResumePoint, TransferCtx, UploadRequest};
use opsconsole::sync::sums::SumCache;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["hash", file] => {
            let t = Instant::now();
            let sha = sha256_file(Path::new(file)).expect("hash");
            println!("hash_seconds {:.3} {sha}", t.elapsed().as_secs_f64());
        }
        ["digest", file] => {
            let len = std::fs::metadata(file).expect("meta").len();
            let t = Instant::now();
            let d = digest_prefix(Path::new(file), len, true).expect("digest");
            println!("digest_seconds {:.3} {} {}", t.elapsed().as_secs_f64(), d.sha256, d.md5.unwrap_or_default());
        }
        ["scan", file] => {
            let t = Instant::now();
            let found = opsconsole::secrets::check_whole_file(Path::new(file));
            println!("scan_seconds {:.3} {}", t.elapsed().as_secs_f64(), found.map_or("clean".into(), |f| f.why));
        }
        ["upload", file, dir, sha] => {
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
            rt.block_on(async {
                // With a checksum cache, as `build_remotes` makes every local remote.
                let remote = LocalRemote::with_options(
                    "bench",
                    *dir,
                    LocalOptions {
                        sums: Some(SumCache::new(Path::new(dir).join("sums.sqlite"))),
                        ..Default::default()
                    },
                );
                // A remote folder must carry its identity marker (what `remote check --init` writes).
                assert!(remote.init_blocking().iter().all(|s| s.ok), "remote set up");
                let size = std::fs::metadata(file).expect("meta").len();
                let ctx = TransferCtx::default();
                let t = Instant::now();
                let req = UploadRequest {
                    key: "bench.bin",
                    source: Path::new(file),
                    size,
                    sha256: sha,
                    md5: None,
                    resume: ResumePoint { offset: 0, session: None },
                };
                remote.upload(req, &ctx).await.expect("upload");
                let up = t.elapsed().as_secs_f64();
                let t = Instant::now();
                let obj = remote.stat("bench.bin").await.expect("stat").expect("stored");
                assert_eq!(obj.sha256.as_deref(), Some(*sha));
                println!("upload_seconds {up:.3} verify_seconds {:.3}", t.elapsed().as_secs_f64());
            });
        }
        ["engine", file, dir, sha] => engine(Path::new(file), Path::new(dir), sha),
        _ => {
            eprintln!(
                "usage: sync_io hash FILE | sync_io digest FILE | sync_io scan FILE | sync_io upload FILE DIR SHA256 \
                 | sync_io engine FILE DIR SHA256"
            );
            std::process::exit(2);
        }
    }
}

/// Written → confirmed through the real engine, settle excluded.
fn engine(file: &Path, dir: &Path, sha: &str) {
    use opsconsole::sync::config::{RemoteConfig, RemotesConfig, SyncConfig};
    use opsconsole::sync::engine::{Mode, RemoteEnv, SyncEvent, build_remotes_in, start};
    const SETTLE_S: u64 = 1;
    let ws = dir.join("ws");
    let root = dir.join("remote");
    std::fs::create_dir_all(ws.join("checkpoints")).expect("workspace");
    std::fs::create_dir_all(&root).expect("remote folder");
    let mut sync = SyncConfig { settle_seconds: SETTLE_S, ..SyncConfig::default() };
    sync.l2.enabled = false;
    sync.l3.remote = "bench".into();
    sync.l3.interval_minutes = 0;
    let mut remotes = RemotesConfig::new();
    remotes.insert("bench".into(), RemoteConfig::Local { path: root.clone(), same_disk: true });
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let built = build_remotes_in(&remotes, &RemoteEnv::new(&ws));
        let steps = built["bench"].init().await;
        assert!(steps.iter().all(|s| s.ok), "remote set up: {steps:?}");
        let mut h = start(&ws, &sync, built, Mode::Daemon).expect("engine starts");
        // Let the engine's first pass (verify what the ledger holds: nothing) end.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        while h.events.try_recv().is_ok() {}
        let rel = "checkpoints/step_1000.safetensors";
        let tmp = ws.join("checkpoints/step_1000.safetensors.tmp");
        std::fs::hard_link(file, &tmp).expect("link");
        std::fs::rename(&tmp, ws.join(rel)).expect("rename into place");
        let t0 = Instant::now();
        let settle = SETTLE_S as f64;
        let mut queued = None;
        let confirmed = loop {
            let ev = tokio::time::timeout(Duration::from_secs(600), h.events.recv())
                .await
                .expect("confirmed within 10 minutes")
                .expect("engine running");
            if std::env::var_os("SYNC_IO_TRACE").is_some() {
                eprintln!("{:8.3} {ev:?}", t0.elapsed().as_secs_f64() - settle);
            }
            match ev {
                SyncEvent::Queued { path, .. } if path == rel => queued = Some(t0.elapsed().as_secs_f64() - settle),
                SyncEvent::Confirmed { path, already_there, .. } if path == rel => {
                    assert!(!already_there);
                    break t0.elapsed().as_secs_f64() - settle;
                }
                SyncEvent::Failed { path, reason, .. } if path == rel => panic!("upload failed: {reason}"),
                _ => {}
            }
        };
        h.shutdown().await.expect("engine stops");
        let stored = sha256_file(&root.join(rel)).expect("stored copy");
        assert_eq!(stored, sha, "the stored copy holds the checkpoint");
        println!("hashed_seconds {:.3} confirmed_seconds {confirmed:.3}", queued.unwrap_or(f64::NAN));
    });
}
