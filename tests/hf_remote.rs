//! The Hub remote through its real client code against the Hub stand-in on 127.0.0.1:
//! 200 MB round trips through `basic` and `multipart` read back by the download path (with
//! a `Range` resume into `.part`), staged objects never sent twice, commits never made
//! twice, conflicts retried on a fresh parent, errors classified in words, the newest
//! checkpoint found by step, and `remote check`.

#[path = "support/hf_hub.rs"]
mod hf_hub;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hf_hub::{Fault, HubStandIn, READ_TOKEN, Transfer, WRITE_TOKEN};
use hyper::Method;
use opsconsole::sync::hash;
use opsconsole::sync::hf::token::Env;
use opsconsole::sync::hf::{HfRemote, HfSettings};
use opsconsole::sync::remote::{ErrorKind, Remote, ResumePoint, StagedFile, TransferCtx, UploadRequest};

struct FakeEnv(HashMap<String, String>);

impl Env for FakeEnv {
    fn var(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }
    fn home(&self) -> Option<PathBuf> {
        self.0.get("HOME").map(PathBuf::from)
    }
}

fn settings(hub: &HubStandIn, repo: &str) -> HfSettings {
    HfSettings {
        repo_id: repo.into(),
        private: true,
        allow_public: false,
        revision: "main".into(),
        path_prefix: String::new(),
        endpoint: Some(hub.endpoint()),
    }
}

fn remote_with(s: HfSettings, token: Option<&str>, home: &Path) -> HfRemote {
    let mut vars = HashMap::new();
    if let Some(t) = token {
        vars.insert("HF_TOKEN".to_string(), t.to_string());
    }
    vars.insert("HOME".to_string(), home.display().to_string());
    HfRemote::with_env("hf", s, Arc::new(FakeEnv(vars)))
}

fn remote(hub: &HubStandIn, repo: &str, home: &Path) -> HfRemote {
    remote_with(settings(hub, repo), Some(WRITE_TOKEN), home)
}

/// A file of `len` pseudo-random bytes (1 MiB blocks, each marked with its index).
fn write_pattern(path: &Path, len: usize, seed: u64) -> String {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut block = vec![0u8; 1 << 20];
    rng.fill(&mut block);
    let mut f = std::fs::File::create(path).expect("create");
    let mut left = len;
    let mut i = 0u32;
    use std::io::Write;
    while left > 0 {
        let n = left.min(block.len());
        block[..4].copy_from_slice(&i.to_le_bytes());
        i += 1;
        f.write_all(&block[..n]).expect("write");
        left -= n;
    }
    drop(f);
    hash::sha256_file(path).expect("hash")
}

fn request<'a>(key: &'a str, src: &'a Path, size: u64, sha: &'a str) -> UploadRequest<'a> {
    UploadRequest { key, source: src, size, sha256: sha, md5: None, resume: ResumePoint { offset: 0, session: None } }
}

fn staged(key: &str, src: &Path, sha: &str) -> StagedFile {
    StagedFile {
        key: key.into(),
        source: src.to_path_buf(),
        size: std::fs::metadata(src).expect("meta").len(),
        sha256: sha.into(),
    }
}

const MB: usize = 1 << 20;

/// Upload, commit, then read back through the download path: a `.part` left from an
/// earlier try is resumed with `Range`, and the connection is cut once mid-way.
async fn round_trip(transfer: Transfer, expect_parts: Option<u64>) {
    let hub = HubStandIn::start();
    hub.set_transfer(transfer);
    let dir = tempfile::tempdir().expect("tmp");
    let key = "checkpoints/v68_step_12000.pt";
    let src = dir.path().join("ws").join(key);
    let size = 200 * MB;
    let sha = write_pattern(&src, size, 7);
    let r = remote(&hub, "tester/rsm-weights", dir.path());
    let ctx = TransferCtx::default();

    r.upload(request(key, &src, size as u64, &sha), &ctx).await.expect("upload");
    assert_eq!(ctx.bytes_done.load(std::sync::atomic::Ordering::Relaxed), size as u64, "progress reached the end");
    assert!(hub.repo_exists("tester/rsm-weights"), "a missing repo is created");
    assert_eq!(hub.repo_private("tester/rsm-weights"), Some(true), "created private");
    // Staged, not visible yet.
    assert_eq!(r.stat(key).await.expect("stat"), None, "nothing is listed before the commit");
    let listed = r.commit(key, &[staged(key, &src, &sha)], &ctx).await.expect("commit");
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].size, listed[0].sha256.as_deref()), (size as u64, Some(sha.as_str())));

    let c = hub.counters();
    assert_eq!(c.commits, 1, "one commit");
    assert_eq!(c.bytes_received, size as u64, "every byte sent exactly once");
    assert_eq!(c.objects_stored, 1);
    match expect_parts {
        Some(n) => assert_eq!((c.part_puts, c.completions, c.basic_puts), (n, 1, 0)),
        None => assert_eq!((c.part_puts, c.basic_puts), (0, 1)),
    }
    let commits = hub.commits("tester/rsm-weights", "main");
    let last = commits.last().expect("commit");
    assert!(last.summary.contains("v68_step_12000.pt (step 12000) from "), "{}", last.summary);
    assert_eq!(last.added, vec![key.to_string()]);
    assert!(matches!(hub.tree("tester/rsm-weights", "main").get(key), Some(hf_hub::Entry::Lfs { .. })));

    // Download: 50 MB already in `.part` from an earlier try, and one cut at 30 MB more.
    let dest = dir.path().join("back").join("v68_step_12000.pt");
    std::fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir");
    let original = std::fs::read(&src).expect("read");
    std::fs::write(dir.path().join("back/v68_step_12000.pt.part"), &original[..50 * MB]).expect("part");
    drop(original);
    hub.add_fault(Fault::cut_response(Some(Method::GET), "/lfs/object/", 1, 30 * MB as u64));
    let got = r.download(key, &dest, &ctx).await.expect("download");
    assert_eq!(got, size as u64);
    assert_eq!(hash::sha256_file(&dest).expect("hash"), sha, "byte-identical");
    assert!(!dir.path().join("back/v68_step_12000.pt.part").exists(), "the .part file was renamed into place");
    let c = hub.counters();
    assert!(c.range_requests >= 2, "resumed with Range twice (the .part, then the cut): {}", c.range_requests);
    assert!(
        c.bytes_served <= (size - 50 * MB) as u64 + 2 * MB as u64,
        "only the missing bytes were fetched: {} served",
        c.bytes_served
    );
    assert_eq!(c.storage_auth_seen, 0, "the token never went to the storage origin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200_mb_checkpoint_round_trips_through_basic() {
    round_trip(Transfer::Basic, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200_mb_checkpoint_round_trips_through_multipart() {
    // 16 MiB parts: 13 part URLs, the last one short.
    round_trip(Transfer::Multipart { chunk_size: 16 * MB as u64 }, Some(13)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_part_is_sent_again_alone_and_a_stored_object_never_again() {
    let hub = HubStandIn::start();
    hub.set_transfer(Transfer::Multipart { chunk_size: 4 * MB as u64 });
    let dir = tempfile::tempdir().expect("tmp");
    let key = "checkpoints/a_step_5.pt";
    let src = dir.path().join(key);
    let size = 18 * MB;
    let sha = write_pattern(&src, size, 3);
    // The third part's connection is cut after 1 MiB.
    hub.add_fault(Fault::cut_request(Some(Method::PUT), "/3?", 1, MB as u64));
    let r = remote(&hub, "tester/w", dir.path());
    let ctx = TransferCtx::default();
    r.upload(request(key, &src, size as u64, &sha), &ctx).await.expect("upload survives a cut part");
    let c = hub.counters();
    assert_eq!(c.part_puts, 6, "5 parts, one of them twice");
    assert!(
        c.bytes_received <= (size + 4 * MB) as u64,
        "at most one part re-sent: {} of {size} received",
        c.bytes_received
    );

    // A restarted engine stages it again: the batch says the Hub has it; nothing is sent.
    let again = remote(&hub, "tester/w", dir.path());
    again.upload(request(key, &src, size as u64, &sha), &TransferCtx::default()).await.expect("stage again");
    let c2 = hub.counters();
    assert_eq!(c2.bytes_received, c.bytes_received, "no byte of a stored object is sent again");
    assert_eq!(c2.bytes_resent, 0);
    assert_eq!(c2.batch_calls, c.batch_calls + 1);

    // Committed once; asking again finds it in the tree and makes no second commit.
    let files = [staged(key, &src, &sha)];
    again.commit(key, &files, &TransferCtx::default()).await.expect("commit");
    again.commit(key, &files, &TransferCtx::default()).await.expect("commit again");
    assert_eq!(hub.counters().commits, 1, "the tree already lists it: no duplicate commit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_commit_answer_is_found_in_the_tree_and_a_moved_parent_is_retried() {
    let hub = HubStandIn::start();
    hub.create_repo("tester/w", true);
    let dir = tempfile::tempdir().expect("tmp");
    let r = remote(&hub, "tester/w", dir.path());
    let ctx = TransferCtx::default();
    let mk = |name: &str, seed| {
        let key = format!("out/{name}/model.safetensors");
        let src = dir.path().join(&key);
        let sha = write_pattern(&src, MB + 17, seed);
        (key, src, sha)
    };

    // The commit lands, but its answer is cut: the next try finds it and commits nothing.
    let (k1, s1, h1) = mk("checkpoint-100", 1);
    r.upload(request(&k1, &s1, (MB + 17) as u64, &h1), &ctx).await.expect("stage");
    hub.add_fault(Fault::cut_response(Some(Method::POST), "/commit/", 1, 0));
    let err = r.commit("out/checkpoint-100", &[staged(&k1, &s1, &h1)], &ctx).await.expect_err("answer lost");
    assert_eq!(err.kind, ErrorKind::Transient, "{err}");
    assert_eq!(hub.counters().commits, 1, "the Hub did commit");
    let listed = r.commit("out/checkpoint-100", &[staged(&k1, &s1, &h1)], &ctx).await.expect("retry");
    assert_eq!(listed[0].sha256.as_deref(), Some(h1.as_str()));
    assert_eq!(hub.counters().commits, 1, "no duplicate commit");

    // The branch moved (412, then a 409): retried on a fresh parent, one commit made.
    let (k2, s2, h2) = mk("checkpoint-200", 2);
    r.upload(request(&k2, &s2, (MB + 17) as u64, &h2), &ctx).await.expect("stage");
    hub.add_fault(Fault::status(
        Some(Method::POST),
        "/commit/",
        1,
        412,
        "A commit has happened since. Please refresh and try again.",
    ));
    hub.add_fault(Fault::status(Some(Method::POST), "/commit/", 1, 409, "Conflict: another commit is in progress"));
    r.commit("out/checkpoint-200", &[staged(&k2, &s2, &h2)], &ctx).await.expect("commit after conflicts");
    assert_eq!(hub.counters().commits, 2);
    let commits = hub.commits("tester/w", "main");
    assert_eq!(commits.len(), 3, "initial + two checkpoints");
    assert!(commits[2].summary.contains("checkpoint-200 (step 200)"), "{}", commits[2].summary);
    assert_eq!(commits[2].parent.as_deref(), Some(commits[1].oid.as_str()));

    // An object the storage lost is found at commit time and sent again, not committed.
    let (k3, s3, h3) = mk("checkpoint-300", 3);
    r.upload(request(&k3, &s3, (MB + 17) as u64, &h3), &ctx).await.expect("stage");
    hub.forget_object(&h3);
    let err = r.commit("out/checkpoint-300", &[staged(&k3, &s3, &h3)], &ctx).await.expect_err("object missing");
    assert_eq!(err.kind, ErrorKind::Transient, "{err}");
    assert!(err.message.contains("uploaded again"), "{err}");
    assert_eq!(hub.counters().commits, 2, "the refused commit made nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_text_goes_inline_and_a_big_file_never_does() {
    let hub = HubStandIn::start();
    hub.create_repo("tester/w", true);
    let dir = tempfile::tempdir().expect("tmp");
    let r = remote(&hub, "tester/w", dir.path());
    let ctx = TransferCtx::default();
    // trainer_state.json is small text: the preupload says "regular", it goes in the commit.
    let key = "out/checkpoint-7/trainer_state.json";
    let src = dir.path().join(key);
    std::fs::create_dir_all(src.parent().expect("p")).expect("mkdir");
    std::fs::write(&src, br#"{"global_step": 7, "log_history": []}"#).expect("write");
    let sha = hash::sha256_file(&src).expect("hash");
    r.upload(request(key, &src, std::fs::metadata(&src).expect("m").len(), &sha), &ctx).await.expect("stage");
    assert_eq!(hub.counters().bytes_received, 0, "nothing goes to LFS storage for it");
    r.commit("out/checkpoint-7", &[staged(key, &src, &sha)], &ctx).await.expect("commit");
    assert!(matches!(hub.tree("tester/w", "main").get(key), Some(hf_hub::Entry::Regular { .. })));
    let obj = r.stat(key).await.expect("stat").expect("listed");
    assert_eq!(obj.sha256.as_deref(), Some(sha.as_str()), "a regular file's SHA-256 is read back");

    // The stand-in refuses inline content over 10 MiB in a commit.
    let big = base64_of(&vec![b'a'; 10 * MB + 1]);
    let body = format!(
        "{{\"key\":\"header\",\"value\":{{\"summary\":\"x\",\"description\":\"\"}}}}\n{{\"key\":\"file\",\"value\":{{\"path\":\"big.txt\",\"content\":\"{big}\",\"encoding\":\"base64\"}}}}\n"
    );
    let resp = reqwest::Client::new()
        .post(format!("{}/api/models/tester/w/commit/main", hub.endpoint()))
        .bearer_auth(WRITE_TOKEN)
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status().as_u16(), 400);
    assert!(resp.text().await.expect("text").contains("larger than 10 MiB"));
    // An lfsFile whose object was never uploaded is refused too.
    let body = "{\"key\":\"header\",\"value\":{\"summary\":\"x\"}}\n{\"key\":\"lfsFile\",\"value\":{\"path\":\"w.pt\",\"algo\":\"sha256\",\"oid\":\"0000000000000000000000000000000000000000000000000000000000000000\",\"size\":5}}\n";
    let resp = reqwest::Client::new()
        .post(format!("{}/api/models/tester/w/commit/main", hub.endpoint()))
        .bearer_auth(WRITE_TOKEN)
        .body(body)
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status().as_u16(), 422);
    assert_eq!(hub.counters().commits, 1);
}

fn base64_of(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_told_in_words_and_classified() {
    let hub = HubStandIn::start();
    hub.create_repo("tester/w", true);
    let dir = tempfile::tempdir().expect("tmp");
    let key = "checkpoints/a_step_1.pt";
    let src = dir.path().join(key);
    let sha = write_pattern(&src, 64 * 1024, 9);
    let up = |r: HfRemote| {
        let (src, sha) = (src.clone(), sha.clone());
        async move { r.upload(request(key, &src, 64 * 1024, &sha), &TransferCtx::default()).await }
    };

    // A token the Hub does not know: permanent, with the fix.
    let e = up(remote_with(settings(&hub, "tester/w"), Some("hf_bogus_token_value"), dir.path())).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth, "{e}");
    assert!(e.reason().contains("401") && e.reason().contains("write access"), "{}", e.reason());
    assert!(!e.reason().contains("hf_bogus_token_value"), "the token is never in an error");

    // A read-only token: permanent, "a read-only token cannot upload", fix: a write token.
    let e = up(remote_with(settings(&hub, "tester/w"), Some(READ_TOKEN), dir.path())).await.unwrap_err();
    assert!(e.is_permanent(), "{e}");
    assert!(e.reason().contains("403") && e.reason().contains("read-only token"), "{}", e.reason());
    assert!(!e.reason().contains(READ_TOKEN));

    // A revision that does not exist: permanent, named.
    let mut s = settings(&hub, "tester/w");
    s.revision = "nope".into();
    let e = up(remote_with(s, Some(WRITE_TOKEN), dir.path())).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound, "{e}");
    assert!(e.reason().contains("revision 'nope' does not exist in Hub repo tester/w"), "{}", e.reason());

    // A repo in a namespace the token may not create in: permanent.
    let e = up(remote(&hub, "someone-else/w", dir.path())).await.unwrap_err();
    assert!(e.is_permanent(), "{e}");
    assert!(!hub.repo_exists("someone-else/w"));

    // A public repo without allow_public: refused before anything is sent.
    hub.create_repo("tester/public", false);
    let before = hub.counters().batch_calls;
    let e = up(remote(&hub, "tester/public", dir.path())).await.unwrap_err();
    assert!(e.is_permanent() && e.reason().contains("is public") && e.reason().contains("allow_public"), "{e}");
    assert_eq!(hub.counters().batch_calls, before);
    let mut s = settings(&hub, "tester/public");
    s.allow_public = true;
    up(remote_with(s, Some(WRITE_TOKEN), dir.path())).await.expect("allowed when allow_public = true");

    // 429 with Retry-After: transient, carrying the wait.
    hub.add_fault(
        Fault::status(Some(Method::POST), "/preupload/", 1, 429, "slow down").with_header("retry-after", "17"),
    );
    let e = up(remote(&hub, "tester/w", dir.path())).await.unwrap_err();
    assert_eq!((e.kind, e.retry_after), (ErrorKind::Transient, Some(Duration::from_secs(17))), "{e}");

    // 5xx and a cut connection: transient.
    hub.add_fault(Fault::status(Some(Method::POST), "/objects/batch", 1, 503, "Service Unavailable"));
    let e = up(remote(&hub, "tester/w", dir.path())).await.unwrap_err();
    assert!(e.kind == ErrorKind::Transient && e.reason().contains("503"), "{e}");
    hub.add_fault(Fault::cut_request(Some(Method::PUT), "/lfs/upload/", 1, 1000));
    let other = dir.path().join("checkpoints/b_step_2.pt");
    let other_sha = write_pattern(&other, 64 * 1024, 10);
    let e = remote(&hub, "tester/w", dir.path())
        .upload(request("checkpoints/b_step_2.pt", &other, 64 * 1024, &other_sha), &TransferCtx::default())
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Transient, "{e}");
    assert!(!e.reason().contains("X-Amz-Signature"), "a signed URL is never in an error: {e}");

    // No token anywhere: every place looked is named.
    let e = up(remote_with(settings(&hub, "tester/w"), None, dir.path())).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth);
    for place in ["HF_TOKEN (not set)", "HUGGING_FACE_HUB_TOKEN (not set)", ".cache/huggingface/token (no such file)"] {
        assert!(e.reason().contains(place), "{place} in {}", e.reason());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_big_file_the_hub_would_inline_fails_loudly() {
    let hub = HubStandIn::start();
    hub.create_repo("tester/w", true);
    // A Hub that answers "regular" for an 11 MiB file (as hf-hub's inline path assumes).
    let dir = tempfile::tempdir().expect("tmp");
    let key = "weights/model.dat";
    let src = dir.path().join(key);
    std::fs::create_dir_all(src.parent().expect("p")).expect("mkdir");
    std::fs::write(&src, vec![b'x'; 11 * MB]).expect("write");
    let sha = hash::sha256_file(&src).expect("hash");
    let r = remote(&hub, "tester/w", dir.path());
    hub.set_preupload_regular(true);
    let e = r.upload(request(key, &src, (11 * MB) as u64, &sha), &TransferCtx::default()).await.unwrap_err();
    assert!(e.is_permanent(), "{e}");
    assert!(e.reason().contains("stored inline") && e.reason().contains("never sent that way"), "{}", e.reason());
    let c = hub.counters();
    assert_eq!((c.bytes_received, c.commits), (0, 0), "nothing was sent, nothing committed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_newest_checkpoint_is_found_by_step_across_pages() {
    let hub = HubStandIn::start();
    hub.create_repo("tester/w", true);
    hub.set_page_size(3);
    let dir = tempfile::tempdir().expect("tmp");
    let mut s = settings(&hub, "tester/w");
    s.path_prefix = "runs/v68".into();
    let r = remote_with(s, Some(WRITE_TOKEN), dir.path());
    let ctx = TransferCtx::default();
    let groups: [(&str, &[&str]); 3] = [
        ("out/checkpoint-900", &["model.safetensors", "optimizer.pt"]),
        ("out/checkpoint-1000", &["model.safetensors", "optimizer.pt", "scheduler.pt"]),
        ("checkpoints/v68_step_950.pt", &[""]),
    ];
    for (seed, (group, names)) in (10..).zip(groups) {
        let mut files = Vec::new();
        for n in names {
            let key = if n.is_empty() { group.to_string() } else { format!("{group}/{n}") };
            let src = dir.path().join(&key);
            let sha = write_pattern(&src, 4096 + seed as usize, seed);
            r.upload(request(&key, &src, 4096 + seed, &sha), &ctx).await.expect("stage");
            files.push(staged(&key, &src, &sha));
        }
        r.commit(group, &files, &ctx).await.expect("commit");
    }
    assert_eq!(hub.counters().commits, 3, "one commit per checkpoint");
    assert!(hub.tree("tester/w", "main").contains_key("runs/v68/out/checkpoint-1000/scheduler.pt"));
    let newest = r.newest_checkpoint("").await.expect("list").expect("found");
    assert_eq!((newest.group.as_str(), newest.step), ("out/checkpoint-1000", 1000));
    let keys: Vec<&str> = newest.files.iter().map(|f| f.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "out/checkpoint-1000/model.safetensors",
            "out/checkpoint-1000/optimizer.pt",
            "out/checkpoint-1000/scheduler.pt"
        ]
    );
    assert!(newest.files.iter().all(|f| f.sha256.is_some()), "LFS oids listed");
    let all = r.list("out/").await.expect("list");
    assert_eq!(all.len(), 5, "listed across pages of 3: {all:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_check_walks_token_repo_and_a_probe() {
    let hub = HubStandIn::start();
    let dir = tempfile::tempdir().expect("tmp");
    let names = |steps: &[opsconsole::sync::remote::CheckStep]| {
        steps.iter().map(|s| (s.name.clone(), s.ok)).collect::<Vec<_>>()
    };

    // Missing repo: token fine, repo "will be created private"; nothing is created by a check.
    let steps = remote(&hub, "tester/new", dir.path()).check().await;
    assert_eq!(names(&steps), [("token".to_string(), true), ("repo".to_string(), true)], "{steps:?}");
    assert!(steps[0].detail.contains("from HF_TOKEN: user tester, write token"), "{steps:?}");
    assert!(steps[1].detail.contains("creates it private"), "{steps:?}");
    assert!(!hub.repo_exists("tester/new"));
    // `--init` for the Hub: create it private now.
    assert!(remote(&hub, "tester/new", dir.path()).ensure_repo().await.expect("init"));
    assert_eq!(hub.repo_private("tester/new"), Some(true));

    // Existing private repo: all steps pass; the probe is committed, read back, deleted.
    let steps = remote(&hub, "tester/new", dir.path()).check().await;
    assert!(steps.iter().all(|s| s.ok), "{steps:?}");
    assert_eq!(steps.last().expect("probe").name, "probe file round-trips");
    assert_eq!(hub.counters().commits, 2, "probe added, then deleted");
    assert!(hub.tree("tester/new", "main").keys().all(|k| !k.contains("opsconsole-probe")), "probe deleted");

    // Read-only token: fails at the token step, with the fix.
    let steps = remote_with(settings(&hub, "tester/new"), Some(READ_TOKEN), dir.path()).check().await;
    assert_eq!(names(&steps), [("token".to_string(), false)]);
    assert!(steps[0].detail.contains("read-only"), "{steps:?}");
    assert!(steps[0].fix.as_deref().is_some_and(|f| f.contains("write access")), "{steps:?}");
    assert!(!format!("{steps:?}").contains(READ_TOKEN));

    // Public repo without allow_public: refused at the repo step.
    hub.set_private("tester/new", false);
    let steps = remote(&hub, "tester/new", dir.path()).check().await;
    assert_eq!(names(&steps), [("token".to_string(), true), ("repo".to_string(), false)]);
    assert!(steps[1].fix.as_deref().is_some_and(|f| f.contains("allow_public")), "{steps:?}");

    // No token: the step names every place looked.
    let steps = remote_with(settings(&hub, "tester/new"), None, dir.path()).check().await;
    assert_eq!(names(&steps), [("token".to_string(), false)]);
    assert!(steps[0].detail.contains("HF_TOKEN (not set)"), "{steps:?}");
}
