//! Drive upload figures for `benches/drive.sh` (not a criterion bench: the script compares
//! these with `curl -T` of the same file to the same stand-in in the same run, and reads
//! peak RSS with `/usr/bin/time`).
//!
//! `drive_io serve DIR SIZE N` starts the Drive + OAuth stand-in of `tests/support/drive.rs`
//! (a Shared Drive folder, the test key written to DIR/key.json), prints
//! `ENDPOINT FOLDER_ID` and then N resumable-session URIs for a SIZE-byte file (for curl),
//! and serves until its stdin closes.
//!
//! `drive_io upload ENDPOINT KEY FOLDER FILE SHA256 CHUNK_MIB [MD5]` stores FILE through
//! the Drive remote (token, folder lookup, resumable session, chunks, MD5 confirmation,
//! appProperties stamp) and prints `upload_seconds S`. Without MD5 the remote computes MD5
//! and SHA-256 of the bytes it sends (the engine's current path); with it, it only compares.

#[path = "../tests/support/drive.rs"]
// Its unit tests' imports are unused in a bench build.
#[allow(unused_imports)]
mod standin;

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use opsconsole::sync::drive::auth::KeyLookup;
use opsconsole::sync::drive::{DriveRemote, DriveSettings};
use opsconsole::sync::remote::{Remote, TransferCtx, UploadRequest};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["serve", dir, size, n] => serve(Path::new(dir), size.parse().expect("size"), n.parse().expect("n")),
        ["upload", endpoint, key, folder, file, sha, chunk_mib, rest @ ..] => {
            upload(endpoint, key, folder, file, sha, chunk_mib.parse().expect("chunk"), rest.first().copied())
        }
        _ => {
            eprintln!(
                "usage: drive_io serve DIR SIZE N | drive_io upload ENDPOINT KEY FOLDER FILE SHA256 CHUNK_MIB [MD5]"
            );
            std::process::exit(2);
        }
    }
}

fn serve(dir: &Path, size: u64, n: usize) {
    let d = standin::DriveStandIn::start(standin::Options::default());
    let team = d.add_shared_drive("Bench", &[(standin::SA_EMAIL, standin::Role::Writer)]);
    let folder = d.add_folder(&team, "bench");
    d.write_key(&dir.join("key.json"));
    let mut out = std::io::stdout().lock();
    writeln!(out, "{} {folder}", d.endpoint()).expect("stdout");
    for i in 0..n {
        writeln!(out, "{}", d.open_session(&folder, &format!("curl-{i}.bin"), size)).expect("stdout");
    }
    out.flush().expect("flush");
    drop(out);
    // Serve until the script closes our stdin.
    for _ in std::io::stdin().lock().lines() {}
    let c = d.counters();
    eprintln!("stand-in: {} upload bytes received, {} chunks", c.upload_bytes, c.chunks);
}

fn upload(endpoint: &str, key: &str, folder: &str, file: &str, sha: &str, chunk_mib: f64, md5: Option<&str>) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let settings = DriveSettings {
        folder_id: folder.to_string(),
        key: KeyLookup { key_file: Some(PathBuf::from(key)), env: None, home: None, workspace: std::env::temp_dir() },
        scope: "drive.file".into(),
        chunk: opsconsole::sync::drive::remote::chunk_bytes(chunk_mib),
        endpoint: endpoint.to_string(),
        subject: None,
    };
    let remote = DriveRemote::new("bench", settings);
    let size = std::fs::metadata(file).expect("meta").len();
    let name = format!("ours-{}.bin", std::process::id());
    rt.block_on(async {
        // Token and folder lookups first, so the timing is the upload itself.
        remote.stat("warm-up.bin").await.expect("stat");
        let t = Instant::now();
        let rp = remote.resume_point(&name, sha, None).await.expect("session");
        let req = UploadRequest { key: &name, source: Path::new(file), size, sha256: sha, md5, resume: rp };
        remote.upload(req, &TransferCtx::default()).await.expect("upload");
        println!("upload_seconds {:.3}", t.elapsed().as_secs_f64());
    });
}
