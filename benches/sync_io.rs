//! Sync I/O figures for benches/sync.sh (not a criterion bench: the script compares these
//! with `sha256sum` and `cp` + `sync` in the same run).
//!
//! `sync_io hash FILE` prints the seconds to SHA-256 the file;
//! `sync_io digest FILE` prints the seconds for the engine's hash pass (SHA-256 and MD5 of
//! the file in one read);
//! `sync_io scan FILE` prints the seconds for the secrets content rules over the whole file
//! (what the engine does to a text file before it is queued; `benches/secrets.sh`);
//! `sync_io upload FILE DIR` uploads it into a LocalRemote at DIR and prints the seconds
//! for the upload (copy, fsync, rename) and for the verify (read back and hash).

use std::path::Path;
use std::time::Instant;

use opsconsole::sync::hash::{digest_prefix, sha256_file};
use opsconsole::sync::local::LocalRemote;
use opsconsole::sync::remote::{Remote, ResumePoint, TransferCtx, UploadRequest};

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
            let d = digest_prefix(Path::new(file), len).expect("digest");
            println!("digest_seconds {:.3} {} {}", t.elapsed().as_secs_f64(), d.sha256, d.md5);
        }
        ["scan", file] => {
            let t = Instant::now();
            let found = opsconsole::secrets::check_whole_file(Path::new(file));
            println!("scan_seconds {:.3} {}", t.elapsed().as_secs_f64(), found.map_or("clean".into(), |f| f.why));
        }
        ["upload", file, dir, sha] => {
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
            rt.block_on(async {
                let remote = LocalRemote::new("bench", *dir);
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
        _ => {
            eprintln!(
                "usage: sync_io hash FILE | sync_io digest FILE | sync_io scan FILE | sync_io upload FILE DIR SHA256"
            );
            std::process::exit(2);
        }
    }
}
