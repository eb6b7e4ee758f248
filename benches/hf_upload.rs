//! Hub upload figures for benches/hf_upload.sh (not a criterion bench: the script compares
//! them with `curl -T` of the same file to the same stand-in, in the same run).
//!
//! `hf_upload serve basic|multipart CHUNK_MIB` starts the Hub stand-in of the tests
//! (objects are thrown away once checked, so one file can be sent again and again), prints
//! `ENDPOINT <url>` and serves until stdin closes.
//! `hf_upload signed-url ENDPOINT FILE SHA256` prints a signed PUT URL for the file (the LFS
//! batch answer), for curl.
//! `hf_upload parts ENDPOINT FILE SHA256` prints the part URLs and the completion URL of a
//! multipart answer, for curl.
//! `hf_upload upload ENDPOINT FILE SHA256` uploads the file through the Hub remote (preupload,
//! batch, PUT or parts + completion, verify) and prints the seconds it took.

#[path = "../tests/support/hf_hub.rs"]
mod hf_hub;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use opsconsole::sync::hf::token::Env;
use opsconsole::sync::hf::{HfRemote, HfSettings};
use opsconsole::sync::remote::{Remote, ResumePoint, TransferCtx, UploadRequest};

const REPO: &str = "tester/bench";

struct BenchEnv;

impl Env for BenchEnv {
    fn var(&self, name: &str) -> Option<String> {
        (name == "HF_TOKEN").then(|| hf_hub::WRITE_TOKEN.to_string())
    }
    fn home(&self) -> Option<PathBuf> {
        None
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["serve", mode, chunk_mib] => {
            let hub = hf_hub::HubStandIn::start();
            let chunk = chunk_mib.parse::<u64>().expect("chunk MiB") << 20;
            hub.set_transfer(match *mode {
                "multipart" => hf_hub::Transfer::Multipart { chunk_size: chunk },
                _ => hf_hub::Transfer::Basic,
            });
            hub.set_discard_objects(true);
            hub.create_repo(REPO, true);
            println!("ENDPOINT {}", hub.endpoint());
            // Serve until the script closes our stdin.
            let mut sink = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut sink);
            let c = hub.counters();
            eprintln!("stand-in received {} bytes in {} requests", c.bytes_received, c.requests);
        }
        ["parts", endpoint, file, sha] => {
            // A multipart batch answer for the file: `PART n URL` lines, then `COMPLETE URL`.
            let size = std::fs::metadata(file).expect("meta").len();
            let body = serde_json::json!({
                "operation": "upload", "transfers": ["basic", "multipart"], "hash_algo": "sha256",
                "objects": [{ "oid": sha, "size": size }],
            });
            let v: serde_json::Value = rt.block_on(async {
                reqwest::Client::new()
                    .post(format!("{endpoint}/{REPO}.git/info/lfs/objects/batch"))
                    .bearer_auth(hf_hub::WRITE_TOKEN)
                    .header("content-type", "application/vnd.git-lfs+json")
                    .body(body.to_string())
                    .send()
                    .await
                    .expect("batch")
                    .json()
                    .await
                    .expect("json")
            });
            let up = &v["objects"][0]["actions"]["upload"];
            let mut parts: Vec<(u64, String)> = up["header"]
                .as_object()
                .expect("multipart header")
                .iter()
                .filter_map(|(k, u)| Some((k.parse::<u64>().ok()?, u.as_str()?.to_string())))
                .collect();
            parts.sort();
            for (n, url) in parts {
                println!("PART {n} {url}");
            }
            println!("COMPLETE {}", up["href"].as_str().expect("href"));
        }
        ["signed-url", endpoint, file, sha] => {
            let size = std::fs::metadata(file).expect("meta").len();
            let body = serde_json::json!({
                "operation": "upload", "transfers": ["basic"], "hash_algo": "sha256",
                "objects": [{ "oid": sha, "size": size }],
            });
            let href = rt.block_on(async {
                let v: serde_json::Value = reqwest::Client::new()
                    .post(format!("{endpoint}/{REPO}.git/info/lfs/objects/batch"))
                    .bearer_auth(hf_hub::WRITE_TOKEN)
                    .header("content-type", "application/vnd.git-lfs+json")
                    .body(body.to_string())
                    .send()
                    .await
                    .expect("batch")
                    .json()
                    .await
                    .expect("json");
                v["objects"][0]["actions"]["upload"]["href"].as_str().expect("href").to_string()
            });
            println!("{href}");
        }
        ["upload", endpoint, file, sha] => {
            let size = std::fs::metadata(file).expect("meta").len();
            let settings = HfSettings {
                repo_id: REPO.into(),
                private: true,
                allow_public: false,
                revision: "main".into(),
                path_prefix: String::new(),
                endpoint: Some(endpoint.to_string()),
            };
            let remote = HfRemote::with_env("bench", settings, Arc::new(BenchEnv));
            rt.block_on(async {
                let ctx = TransferCtx::default();
                let req = UploadRequest {
                    key: "bench.bin",
                    source: Path::new(file),
                    size,
                    sha256: sha,
                    md5: None,
                    resume: ResumePoint { offset: 0, session: None },
                };
                let t = Instant::now();
                remote.upload(req, &ctx).await.expect("upload");
                println!("upload_seconds {:.3}", t.elapsed().as_secs_f64());
            });
        }
        _ => {
            eprintln!(
                "usage: hf_upload serve basic|multipart CHUNK_MIB | hf_upload signed-url ENDPOINT FILE SHA256 | \
                 hf_upload upload ENDPOINT FILE SHA256"
            );
            std::process::exit(2);
        }
    }
}
