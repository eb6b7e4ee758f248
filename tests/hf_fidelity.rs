//! Fidelity of the Hub stand-in (`tests/support/hf_hub.rs`): the official Python client,
//! `huggingface_hub` with `HF_HUB_DISABLE_XET=1`, drives it through
//! `tests/support/hf_fidelity.py` (create_repo, upload_file, upload_folder, hf_hub_download,
//! list_repo_tree, get_paths_info, model_info, whoami, create_commit, delete_file, and the
//! errors it raises), with faults on: a 429 with Retry-After on a preupload, a 503 from the
//! storage on an upload, and a download cut mid-way (resumed with Range). Agreed with huggingface_hub 2.4.0.
//!
//! Run: `pip install huggingface_hub` (a venv is fine), then
//! `HF_FIDELITY_PYTHON=/path/to/python cargo test --test hf_fidelity -- --ignored`
//! (`python3` on PATH when HF_FIDELITY_PYTHON is not set).

#[path = "support/hf_hub.rs"]
mod hf_hub;

use std::process::Command;

use hf_hub::{Fault, HubStandIn, READ_TOKEN, Transfer, WRITE_TOKEN};
use hyper::Method;

#[test]
#[ignore = "fidelity check: needs python3 with huggingface_hub (pip)"]
fn the_official_python_client_agrees_with_the_stand_in() {
    let hub = HubStandIn::start();
    // Files over 6 MiB go multipart (5 MiB parts), smaller ones basic; pages of 7 entries.
    hub.set_transfer(Transfer::Auto { above: 6 << 20, chunk_size: 5 << 20 });
    hub.add_fault(
        Fault::status(Some(Method::POST), "/preupload/", 1, 429, "slow down").with_header("retry-after", "1"),
    );
    hub.add_fault(Fault::status(Some(Method::PUT), "/lfs/upload/", 1, 503, "Service Unavailable"));
    // Every object download is cut after 11 MiB: only the 12 MiB file is long enough, and
    // the client (which writes in 10 MiB pieces) resumes it with Range.
    hub.add_fault(Fault::cut_response(Some(Method::GET), "/lfs/object/", u32::MAX, 11 << 20));
    let home = tempfile::tempdir().expect("tmp");
    let python = std::env::var("HF_FIDELITY_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/hf_fidelity.py");
    let out = Command::new(&python)
        .arg(script)
        .env("HF_ENDPOINT", hub.endpoint())
        .env("HF_TOKEN", WRITE_TOKEN)
        .env("FIDELITY_READ_TOKEN", READ_TOKEN)
        .env("HF_HUB_DISABLE_XET", "1")
        .env("HF_HUB_DISABLE_TELEMETRY", "1")
        .env("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        .env("HF_HOME", home.path())
        .env("NO_PROXY", "127.0.0.1")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}\n{stderr}");
    assert!(out.status.success() && stdout.contains("FIDELITY OK"), "the Python client disagreed");
    let c = hub.counters();
    assert!(c.unknown_routes.is_empty(), "the client called routes the stand-in lacks: {:?}", c.unknown_routes);
    assert_eq!(c.storage_auth_seen, 0, "the client never sends its token to the storage origin");
    assert!(c.basic_puts >= 2 && c.part_puts >= 3 && c.completions >= 1, "{c:?}");
    assert!(c.range_requests >= 1, "the cut download was resumed with Range: {c:?}");
    assert!(c.storage_gets.iter().any(|(_, r)| r.as_deref() == Some("bytes=10485760-")), "{:?}", c.storage_gets);
    // create_repo's initial commit aside: 3 upload_file + 1 upload_folder + 1 delete_file.
    assert_eq!(c.commits, 5, "{c:?}");
    let folder = hub.commits("tester/fidelity", "main").into_iter().find(|c| c.summary == "checkpoint-100");
    assert_eq!(folder.map(|c| c.added.len()), Some(5), "upload_folder is one commit of 5 files");
}
