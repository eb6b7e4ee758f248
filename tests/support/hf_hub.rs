//! A Hugging Face Hub stand-in on 127.0.0.1, for tests: the parts of the Hub an uploader
//! and a downloader meet, answering as the Hub does.
//!
//! - Repos: `POST /api/repos/create` (a new repo gets an initial commit with the Hub's
//!   default `.gitattributes`), `GET /api/models/{repo}` and `/revision/{rev}`,
//!   `GET /api/whoami-v2`.
//! - Upload: `POST /api/models/{repo}/preupload/{rev}` (lfs for `.gitattributes` LFS
//!   patterns, files of 10 MiB and more, and binary samples), `POST /{repo}.git/info/lfs/
//!   objects/batch` answering `basic` or `multipart` as a test asks (objects already
//!   stored come back without actions), signed PUTs to a *storage origin* (another port,
//!   like S3: `Content-Length` required, an `Authorization` header refused), part PUTs
//!   answered with ETags, a completion call that checks every part's ETag and the whole
//!   object's size and SHA-256, and the verify call.
//! - `POST /api/models/{repo}/commit/{rev}` (NDJSON: header, `lfsFile`, `file`,
//!   `deletedFile`, `deletedFolder`): refuses an `lfsFile` whose object was never stored,
//!   inline content over 10 MiB, and a stale `parentCommit` (412).
//! - `GET /api/models/{repo}/tree/{rev}/{path}` (paged with `Link: <...>; rel="next"`),
//!   `POST /api/models/{repo}/paths-info/{rev}`; LFS files carry `lfs.oid` (SHA-256).
//! - `GET|HEAD /{repo}/resolve/{rev}/{path}`: small files served with `Range`; LFS files
//!   redirected (302, `X-Linked-Etag`, `X-Linked-Size`) to the storage origin, which
//!   serves `Range` and refuses any request that still carries `Authorization`.
//! - Errors as the Hub sends them (`X-Error-Code` RepoNotFound / RevisionNotFound /
//!   EntryNotFound, `X-Error-Message`, JSON `error`): 401 bad token, 403 read-only token,
//!   404, 409 repo exists, 412 parent moved, 429 with `Retry-After` and `RateLimit`.
//! - On command: a status for matching requests (n times or always), a connection cut after
//!   n body bytes (request or response), a rate-limit window; counters of requests, bytes,
//!   objects, objects sent again, commits, and tokens seen where they must not be.
//!
//! Fidelity: checked against the official Python client `huggingface_hub` 2.4.0
//! (`HF_HUB_DISABLE_XET=1`; create_repo, upload_file, upload_folder, hf_hub_download,
//! list_repo_tree, get_paths_info, model_info, whoami, and its errors) by
//! `tests/hf_fidelity.rs` running `tests/support/hf_fidelity.py`.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response};
use sha2::{Digest, Sha256};

type Body = BoxBody<Bytes, io::Error>;
type Resp = Response<Body>;

/// The Hub's default `.gitattributes` LFS patterns for a new model repo.
pub const DEFAULT_LFS_PATTERNS: &[&str] = &[
    "*.7z",
    "*.arrow",
    "*.bin",
    "*.bz2",
    "*.ckpt",
    "*.ftz",
    "*.gz",
    "*.h5",
    "*.joblib",
    "*.lfs.*",
    "*.mlmodel",
    "*.model",
    "*.msgpack",
    "*.npy",
    "*.npz",
    "*.onnx",
    "*.ot",
    "*.parquet",
    "*.pb",
    "*.pickle",
    "*.pkl",
    "*.pt",
    "*.pth",
    "*.rar",
    "*.safetensors",
    "saved_model/**/*",
    "*.tar.*",
    "*.tar",
    "*.tflite",
    "*.tgz",
    "*.wasm",
    "*.xz",
    "*.zip",
    "*.zst",
    "*tfevents*",
];

/// The Hub refuses inline (base64) files over this in a commit.
pub const INLINE_MAX: usize = 10 * 1024 * 1024;

/// How the LFS batch answers uploads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transfer {
    Basic,
    Multipart {
        chunk_size: u64,
    },
    /// `multipart` for objects above `above` bytes, `basic` below (as the Hub does).
    Auto {
        above: u64,
        chunk_size: u64,
    },
}

/// What a fault does to a matching request.
#[derive(Debug, Clone)]
pub enum FaultAction {
    /// Answer this status (with these headers and this `error` message).
    Status { status: u16, headers: Vec<(String, String)>, message: String },
    /// Read this many bytes of the request body, then drop the connection.
    CutRequestAfter(u64),
    /// Answer normally, but drop the connection after this many bytes of the body.
    CutResponseAfter(u64),
}

/// A fault for requests whose method (if given) and path-and-query contain the pattern.
#[derive(Debug, Clone)]
pub struct Fault {
    pub method: Option<Method>,
    pub path_contains: String,
    /// How many matching requests it hits (`u32::MAX`: all).
    pub times: u32,
    pub action: FaultAction,
}

impl Fault {
    pub fn status(method: Option<Method>, path_contains: &str, times: u32, status: u16, message: &str) -> Self {
        Self {
            method,
            path_contains: path_contains.into(),
            times,
            action: FaultAction::Status { status, headers: Vec::new(), message: message.into() },
        }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        if let FaultAction::Status { headers, .. } = &mut self.action {
            headers.push((name.into(), value.into()));
        }
        self
    }

    pub fn cut_request(method: Option<Method>, path_contains: &str, times: u32, after: u64) -> Self {
        Self { method, path_contains: path_contains.into(), times, action: FaultAction::CutRequestAfter(after) }
    }

    pub fn cut_response(method: Option<Method>, path_contains: &str, times: u32, after: u64) -> Self {
        Self { method, path_contains: path_contains.into(), times, action: FaultAction::CutResponseAfter(after) }
    }
}

/// What the stand-in has seen.
#[derive(Debug, Clone, Default)]
pub struct Counters {
    pub requests: u64,
    /// Upload body bytes received on the storage origin (PUTs).
    pub bytes_received: u64,
    /// Body bytes of objects already stored, received again.
    pub bytes_resent: u64,
    /// Objects stored (each counted once).
    pub objects_stored: u64,
    /// Download body bytes served (resolve and storage).
    pub bytes_served: u64,
    /// Commits made (the initial commit of a new repo not counted).
    pub commits: u64,
    pub batch_calls: u64,
    pub basic_puts: u64,
    pub part_puts: u64,
    pub completions: u64,
    /// Requests to the storage origin that carried an `Authorization` header.
    pub storage_auth_seen: u64,
    /// Requests answered 429 inside a rate-limit window.
    pub rate_limited: u64,
    /// Range requests served (206).
    pub range_requests: u64,
    /// Requests to routes the stand-in does not know (method path).
    pub unknown_routes: Vec<String>,
    /// Downloads from the storage origin: (object id, Range header sent).
    pub storage_gets: Vec<(String, Option<String>)>,
}

/// A file in a commit's tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Lfs { oid: String, size: u64 },
    Regular { content: Vec<u8> },
}

impl Entry {
    fn size(&self) -> u64 {
        match self {
            Entry::Lfs { size, .. } => *size,
            Entry::Regular { content } => content.len() as u64,
        }
    }

    /// The git blob id (SHA-1 in git; a stand-in hash here, 40 hex).
    fn blob(&self, path: &str) -> String {
        let mut h = Sha256::new();
        match self {
            Entry::Lfs { oid, size } => h.update(format!("lfs {oid} {size} {path}")),
            Entry::Regular { content } => h.update(content),
        }
        hex(&h.finalize())[..40].to_string()
    }
}

/// One commit as the stand-in recorded it.
#[derive(Debug, Clone)]
pub struct Commit {
    pub oid: String,
    pub parent: Option<String>,
    pub summary: String,
    pub description: String,
    /// Paths added or changed by this commit.
    pub added: Vec<String>,
    pub deleted: Vec<String>,
    pub tree: BTreeMap<String, Entry>,
}

#[derive(Debug, Clone)]
struct Repo {
    id: String,
    private: bool,
    commits: Vec<Commit>,
    branches: HashMap<String, String>,
}

impl Repo {
    fn commit(&self, rev: &str) -> Option<&Commit> {
        let oid = self.branches.get(rev).map(String::as_str).unwrap_or(rev);
        self.commits.iter().find(|c| c.oid == oid)
    }
}

#[derive(Debug, Clone)]
struct Object {
    size: u64,
    file: PathBuf,
}

#[derive(Debug, Clone)]
struct Multipart {
    oid: String,
    size: u64,
    chunk: u64,
    parts: BTreeMap<u32, (String, PathBuf)>,
}

struct State {
    base: String,
    storage: String,
    dir: PathBuf,
    /// token -> (user, role "write" | "read").
    tokens: HashMap<String, (String, String)>,
    /// user -> orgs.
    orgs: HashMap<String, Vec<String>>,
    repos: HashMap<String, Repo>,
    objects: HashMap<String, Object>,
    /// Signed upload URLs handed out: signature -> (oid, size).
    signed: HashMap<String, (String, u64)>,
    multipart: HashMap<String, Multipart>,
    transfer: Transfer,
    /// Throw stored objects away at once (benchmarks upload the same file again and again);
    /// the verify call still knows them.
    discard_objects: bool,
    discarded: HashMap<String, u64>,
    /// Commits touching a path containing the pattern are answered with this status.
    commit_refusals: Vec<(String, u16)>,
    /// Answer "regular" to every preupload (a repo whose .gitattributes tracks nothing).
    preupload_regular: bool,
    page_size: usize,
    faults: Vec<Fault>,
    rate_limit_until: Option<Instant>,
    counters: Counters,
    seq: u64,
}

impl State {
    fn next_id(&mut self) -> String {
        self.seq += 1;
        hex(&Sha256::digest(format!("standin-{}-{:?}", self.seq, Instant::now())))[..40].to_string()
    }

    /// The (user, role) of a bearer token; `Err` for a token the Hub does not know.
    fn user_of(&self, auth: Option<&str>) -> Result<Option<(String, String)>, ()> {
        match auth {
            None => Ok(None),
            Some(h) => {
                let t = h.strip_prefix("Bearer ").unwrap_or(h).trim();
                self.tokens.get(t).cloned().map(Some).ok_or(())
            }
        }
    }

    fn may_see(&self, user: &Option<(String, String)>, repo: &Repo) -> bool {
        if !repo.private {
            return true;
        }
        let Some((name, _)) = user else { return false };
        let ns = repo.id.split('/').next().unwrap_or_default();
        ns == name || self.orgs.get(name).is_some_and(|o| o.iter().any(|x| x == ns))
    }
}

/// The stand-in. Dropping it stops the server.
pub struct HubStandIn {
    pub addr: SocketAddr,
    pub storage_addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Option<tokio::sync::watch::Sender<bool>>,
    _dir: tempfile::TempDir,
}

impl Drop for HubStandIn {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(true);
        }
    }
}

/// A write token of user `tester` (member of org `team`) and a read-only one.
pub const WRITE_TOKEN: &str = "hf_standinWriteTokenXXXXXXXXXXXXXXXX";
pub const READ_TOKEN: &str = "hf_standinReadTokenYYYYYYYYYYYYYYYYY";

impl HubStandIn {
    /// Start on 127.0.0.1 (two ports: the Hub, and the storage/CDN origin), in its own
    /// thread and runtime, with the tokens above.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("stand-in dir");
        let hub = std::net::TcpListener::bind("127.0.0.1:0").expect("bind hub");
        let storage = std::net::TcpListener::bind("127.0.0.1:0").expect("bind storage");
        hub.set_nonblocking(true).expect("nonblocking");
        storage.set_nonblocking(true).expect("nonblocking");
        let addr = hub.local_addr().expect("addr");
        let storage_addr = storage.local_addr().expect("addr");
        let mut tokens = HashMap::new();
        tokens.insert(WRITE_TOKEN.to_string(), ("tester".to_string(), "write".to_string()));
        tokens.insert(READ_TOKEN.to_string(), ("tester".to_string(), "read".to_string()));
        let mut orgs = HashMap::new();
        orgs.insert("tester".to_string(), vec!["team".to_string()]);
        let state = Arc::new(Mutex::new(State {
            base: format!("http://{addr}"),
            storage: format!("http://{storage_addr}"),
            dir: dir.path().to_path_buf(),
            tokens,
            orgs,
            repos: HashMap::new(),
            objects: HashMap::new(),
            signed: HashMap::new(),
            multipart: HashMap::new(),
            transfer: Transfer::Basic,
            preupload_regular: false,
            discard_objects: false,
            discarded: HashMap::new(),
            commit_refusals: Vec::new(),
            page_size: 7,
            faults: Vec::new(),
            rate_limit_until: None,
            counters: Counters::default(),
            seq: 0,
        }));
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let st = state.clone();
        std::thread::Builder::new()
            .name("hub-standin".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("stand-in runtime");
                rt.block_on(async move {
                    let hub = tokio::net::TcpListener::from_std(hub).expect("listener");
                    let storage = tokio::net::TcpListener::from_std(storage).expect("listener");
                    let a = tokio::spawn(serve(hub, st.clone(), false, stop_rx.clone()));
                    let b = tokio::spawn(serve(storage, st, true, stop_rx));
                    let _ = tokio::join!(a, b);
                });
                rt.shutdown_timeout(Duration::from_millis(100));
            })
            .expect("stand-in thread");
        Self { addr, storage_addr, state, stop: Some(stop_tx), _dir: dir }
    }

    /// `http://127.0.0.1:PORT`
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn set_transfer(&self, t: Transfer) {
        self.lock().transfer = t;
    }

    /// Throw every object away once received and checked (for benchmarks: the same file
    /// can be uploaded again and again, and the disk does not fill).
    pub fn set_discard_objects(&self, on: bool) {
        self.lock().discard_objects = on;
    }

    /// Refuse (with `status`) every commit that touches a path containing `pattern`.
    pub fn refuse_commits_touching(&self, pattern: &str, status: u16) {
        self.lock().commit_refusals.push((pattern.into(), status));
    }

    /// Make every preupload answer "regular" (as for a repo that tracks nothing with LFS).
    pub fn set_preupload_regular(&self, on: bool) {
        self.lock().preupload_regular = on;
    }

    pub fn set_page_size(&self, n: usize) {
        self.lock().page_size = n.max(1);
    }

    pub fn add_fault(&self, f: Fault) {
        self.lock().faults.push(f);
    }

    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    /// Answer every Hub request with 429 (Retry-After) for this long.
    pub fn rate_limit_for(&self, d: Duration) {
        self.lock().rate_limit_until = Some(Instant::now() + d);
    }

    pub fn counters(&self) -> Counters {
        self.lock().counters.clone()
    }

    /// Create a repo directly (as if made on the website).
    pub fn create_repo(&self, id: &str, private: bool) {
        let mut st = self.lock();
        create_repo_in(&mut st, id, private);
    }

    pub fn set_private(&self, id: &str, private: bool) {
        if let Some(r) = self.lock().repos.get_mut(id) {
            r.private = private;
        }
    }

    pub fn repo_exists(&self, id: &str) -> bool {
        self.lock().repos.contains_key(id)
    }

    pub fn repo_private(&self, id: &str) -> Option<bool> {
        self.lock().repos.get(id).map(|r| r.private)
    }

    /// Commits on a branch, oldest first (the initial commit included).
    pub fn commits(&self, id: &str, branch: &str) -> Vec<Commit> {
        let st = self.lock();
        let Some(repo) = st.repos.get(id) else { return Vec::new() };
        let mut out = Vec::new();
        let mut at = repo.branches.get(branch).cloned();
        while let Some(oid) = at {
            let Some(c) = repo.commits.iter().find(|c| c.oid == oid) else { break };
            at = c.parent.clone();
            out.push(c.clone());
        }
        out.reverse();
        out
    }

    /// The bytes of a file at the head of a branch.
    pub fn file(&self, id: &str, branch: &str, path: &str) -> Option<Vec<u8>> {
        let st = self.lock();
        let entry = st.repos.get(id)?.commit(branch)?.tree.get(path)?.clone();
        match entry {
            Entry::Regular { content } => Some(content),
            Entry::Lfs { oid, .. } => std::fs::read(&st.objects.get(&oid)?.file).ok(),
        }
    }

    /// The tree at the head of a branch.
    pub fn tree(&self, id: &str, branch: &str) -> BTreeMap<String, Entry> {
        let st = self.lock();
        st.repos.get(id).and_then(|r| r.commit(branch)).map(|c| c.tree.clone()).unwrap_or_default()
    }

    /// Whether the LFS storage holds an object.
    pub fn has_object(&self, oid: &str) -> bool {
        self.lock().objects.contains_key(oid)
    }

    /// Remove a stored object (storage cleaned behind the client's back).
    pub fn forget_object(&self, oid: &str) {
        self.lock().objects.remove(oid);
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn create_repo_in(st: &mut State, id: &str, private: bool) -> String {
    let mut attrs = String::new();
    for p in DEFAULT_LFS_PATTERNS {
        attrs.push_str(&format!("{p} filter=lfs diff=lfs merge=lfs -text\n"));
    }
    let oid = st.next_id();
    let mut tree = BTreeMap::new();
    tree.insert(".gitattributes".to_string(), Entry::Regular { content: attrs.into_bytes() });
    let commit = Commit {
        oid: oid.clone(),
        parent: None,
        summary: "initial commit".into(),
        description: String::new(),
        added: vec![".gitattributes".into()],
        deleted: Vec::new(),
        tree,
    };
    let mut branches = HashMap::new();
    branches.insert("main".to_string(), oid);
    st.repos.insert(id.to_string(), Repo { id: id.to_string(), private, commits: vec![commit], branches });
    format!("{}/{id}", st.base)
}

async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<Mutex<State>>,
    storage: bool,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => return,
        };
        let Ok((stream, _)) = accepted else { continue };
        let st = state.clone();
        tokio::spawn(async move {
            let io = hyper_util::rt::TokioIo::new(stream);
            let svc = hyper::service::service_fn(move |req| {
                let st = st.clone();
                async move { handle(st, req, storage).await }
            });
            let _ = hyper::server::conn::http1::Builder::new().keep_alive(true).serve_connection(io, svc).await;
        });
    }
}

fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|never: Infallible| match never {}).boxed()
}

fn json(status: u16, v: serde_json::Value) -> Resp {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("x-request-id", "standin")
        .body(full(serde_json::to_vec(&v).unwrap_or_default()))
        .expect("response")
}

fn error(status: u16, code: Option<&str>, message: &str, extra: &[(&str, &str)]) -> Resp {
    let mut b = Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("x-request-id", "standin")
        .header("x-error-message", message);
    if let Some(c) = code {
        b = b.header("x-error-code", c);
    }
    for (k, v) in extra {
        b = b.header(*k, *v);
    }
    b.body(full(serde_json::to_vec(&serde_json::json!({ "error": message })).unwrap_or_default())).expect("response")
}

fn repo_missing() -> Resp {
    error(404, Some("RepoNotFound"), "Repository not found", &[])
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn query_param(q: &str, name: &str) -> Option<String> {
    q.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == name).then(|| percent_decode(&v.replace('+', " ")))
    })
}

/// Read the whole body (small API bodies).
async fn read_all(body: Incoming) -> Result<Vec<u8>, io::Error> {
    let collected = body.collect().await.map_err(io::Error::other)?;
    Ok(collected.to_bytes().to_vec())
}

async fn handle(state: Arc<Mutex<State>>, req: Request<Incoming>, storage: bool) -> Result<Resp, io::Error> {
    let method = req.method().clone();
    let pq = req.uri().path_and_query().map(|p| p.as_str().to_string()).unwrap_or_default();
    let auth = req.headers().get("authorization").and_then(|v| v.to_str().ok()).map(str::to_string);
    // Faults and the rate-limit window come first, as a proxy in front of the Hub would.
    let fault = {
        let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
        st.counters.requests += 1;
        if storage && auth.is_some() {
            st.counters.storage_auth_seen += 1;
        }
        if storage && method == Method::PUT {
            if pq.starts_with("/lfs/part/") {
                st.counters.part_puts += 1;
            } else if pq.starts_with("/lfs/upload/") {
                st.counters.basic_puts += 1;
            }
        }
        if !storage && let Some(until) = st.rate_limit_until {
            let now = Instant::now();
            if now < until {
                st.counters.rate_limited += 1;
                let secs = (until - now).as_secs_f64().ceil().max(1.0) as u64;
                let s = secs.to_string();
                let rl = format!("\"api\";r=0;t={secs}");
                return Ok(error(
                    429,
                    None,
                    "You have exceeded our hourly quotas for action: api. Retry later.",
                    &[
                        ("retry-after", &s),
                        ("ratelimit", &rl),
                        ("ratelimit-policy", "\"fixed window\";\"api\";q=500;w=300"),
                    ],
                ));
            }
        }
        let mut hit = None;
        for f in st.faults.iter_mut() {
            if f.times > 0 && f.method.as_ref().is_none_or(|m| *m == method) && pq.contains(&f.path_contains) {
                if f.times != u32::MAX {
                    f.times -= 1;
                }
                hit = Some(f.action.clone());
                break;
            }
        }
        hit
    };
    let mut cut_response = None;
    match fault {
        Some(FaultAction::Status { status, headers, message }) => {
            let h: Vec<(&str, &str)> = headers.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
            return Ok(error(status, None, &message, &h));
        }
        Some(FaultAction::CutRequestAfter(n)) => {
            let mut body = req.into_body();
            let mut seen = 0u64;
            while seen < n.max(1) {
                match body.frame().await {
                    Some(Ok(f)) => {
                        if let Some(d) = f.data_ref() {
                            seen += d.len() as u64;
                            let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
                            st.counters.bytes_received += d.len() as u64;
                        }
                    }
                    _ => break,
                }
            }
            return Err(io::Error::new(io::ErrorKind::ConnectionAborted, "stand-in cut the connection"));
        }
        Some(FaultAction::CutResponseAfter(n)) => cut_response = Some(n),
        None => {}
    }
    let resp = if storage { storage_route(&state, req, &pq).await? } else { hub_route(&state, req, &pq, auth).await? };
    Ok(match cut_response {
        Some(n) => {
            let (parts, body) = resp.into_parts();
            Response::from_parts(parts, cut_after(body, n))
        }
        None => resp,
    })
}

/// A body that fails (dropping the connection) after `n` bytes.
fn cut_after(body: Body, n: u64) -> Body {
    let stream = futures_util::stream::unfold((body, 0u64, false), move |(mut body, sent, done)| async move {
        if done {
            return None;
        }
        match body.frame().await {
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => {
                    if sent + data.len() as u64 >= n {
                        let keep = (n - sent) as usize;
                        if keep > 0 {
                            return Some((Ok(Frame::data(data.slice(..keep))), (body, n, true)));
                        }
                        return Some((Err(io::Error::new(io::ErrorKind::ConnectionAborted, "cut")), (body, n, true)));
                    }
                    let len = data.len() as u64;
                    Some((Ok(Frame::data(data)), (body, sent + len, false)))
                }
                Err(frame) => Some((Ok(frame), (body, sent, false))),
            },
            Some(Err(e)) => Some((Err(e), (body, sent, true))),
            None => None,
        }
    });
    // After the kept bytes, end with an error so the connection is dropped mid-body.
    let stream = futures_util::StreamExt::chain(
        stream,
        futures_util::stream::once(async { Err(io::Error::new(io::ErrorKind::ConnectionAborted, "cut")) }),
    );
    StreamBody::new(stream).boxed()
}

/// `ns/name` and the rest of an `/api/models/ns/name/...` path.
fn split_repo(rest: &str) -> Option<(String, &str)> {
    let mut it = rest.splitn(3, '/');
    let ns = it.next()?;
    let name = it.next()?;
    if ns.is_empty() || name.is_empty() {
        return None;
    }
    Some((format!("{ns}/{name}"), it.next().unwrap_or("")))
}

async fn hub_route(
    state: &Arc<Mutex<State>>,
    req: Request<Incoming>,
    pq: &str,
    auth: Option<String>,
) -> Result<Resp, io::Error> {
    let method = req.method().clone();
    let (path, query) = pq.split_once('?').unwrap_or((pq, ""));
    let user = {
        let st = state.lock().unwrap_or_else(|p| p.into_inner());
        match st.user_of(auth.as_deref()) {
            Ok(u) => u,
            Err(()) => {
                return Ok(error(
                    401,
                    None,
                    "Invalid credentials in Authorization header",
                    &[("x-error-message", "Invalid credentials in Authorization header")],
                ));
            }
        }
    };
    if method == Method::GET && path == "/api/whoami-v2" {
        let Some((name, role)) = user else {
            return Ok(error(401, None, "Invalid credentials in Authorization header", &[]));
        };
        let orgs = state.lock().unwrap_or_else(|p| p.into_inner()).orgs.get(&name).cloned().unwrap_or_default();
        let orgs: Vec<serde_json::Value> =
            orgs.iter().map(|o| serde_json::json!({ "name": o, "type": "org" })).collect();
        return Ok(json(
            200,
            serde_json::json!({
                "type": "user", "id": "standin-user", "name": name, "fullname": name, "email": null,
                "emailVerified": false, "canPay": false, "isPro": false, "periodEnd": null, "avatarUrl": "",
                "orgs": orgs,
                "auth": { "type": "access_token", "accessToken": { "displayName": "standin", "role": role } },
            }),
        ));
    }
    if method == Method::POST && path == "/api/repos/create" {
        let body = read_all(req.into_body()).await?;
        return Ok(create_repo(state, &user, &body));
    }
    if let Some(rest) = path.strip_prefix("/api/models/") {
        let Some((repo_id, tail)) = split_repo(rest) else { return Ok(unknown(state, &method, path)) };
        let body = read_all(req.into_body()).await?;
        return Ok(api_models(state, &method, &repo_id, tail, query, &user, &body));
    }
    // /{ns}/{name}.git/info/lfs/...
    if let Some((repo_part, lfs_tail)) = path.trim_start_matches('/').split_once(".git/info/lfs/") {
        let repo_id = repo_part.to_string();
        let body = read_all(req.into_body()).await?;
        return Ok(lfs_api(state, &method, &repo_id, lfs_tail, &user, &body));
    }
    // /{ns}/{name}/resolve/{rev}/{path}
    if (method == Method::GET || method == Method::HEAD)
        && let Some((repo_id, tail)) = split_repo(path.trim_start_matches('/'))
        && let Some(rest) = tail.strip_prefix("resolve/")
    {
        let range = req.headers().get("range").and_then(|v| v.to_str().ok()).map(str::to_string);
        return Ok(resolve(state, &method, &repo_id, rest, &user, range.as_deref()).await);
    }
    Ok(unknown(state, &method, path))
}

fn unknown(state: &Arc<Mutex<State>>, method: &Method, path: &str) -> Resp {
    state.lock().unwrap_or_else(|p| p.into_inner()).counters.unknown_routes.push(format!("{method} {path}"));
    error(404, None, &format!("stand-in: no route for {method} {path}"), &[])
}

fn create_repo(state: &Arc<Mutex<State>>, user: &Option<(String, String)>, body: &[u8]) -> Resp {
    let Some((name, role)) = user else { return error(401, None, "You must be logged in", &[]) };
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let repo_name = v["name"].as_str().unwrap_or_default().to_string();
    if repo_name.is_empty() {
        return error(400, None, "name is required", &[]);
    }
    if v.get("type").and_then(|t| t.as_str()).is_some_and(|t| t != "model") {
        return error(400, None, "the stand-in only keeps model repos", &[]);
    }
    let ns = v["organization"].as_str().filter(|s| !s.is_empty()).unwrap_or(name).to_string();
    let private = v["private"].as_bool().unwrap_or(false) || v["visibility"].as_str() == Some("private");
    let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
    let member = &ns == name || st.orgs.get(name).is_some_and(|o| o.contains(&ns));
    if role != "write" || !member {
        return error(
            403,
            None,
            &format!("You don't have the rights to create a model under the namespace \"{ns}\""),
            &[],
        );
    }
    let id = format!("{ns}/{repo_name}");
    if st.repos.contains_key(&id) {
        let url = format!("{}/{id}", st.base);
        return json(409, serde_json::json!({ "error": "You already created this model repo", "url": url }));
    }
    let url = create_repo_in(&mut st, &id, private);
    json(200, serde_json::json!({ "url": url, "name": id, "id": id }))
}

fn model_info(st: &State, repo: &Repo, commit: &Commit) -> serde_json::Value {
    let siblings: Vec<serde_json::Value> = commit.tree.keys().map(|p| serde_json::json!({ "rfilename": p })).collect();
    serde_json::json!({
        "_id": repo.id, "id": repo.id, "modelId": repo.id,
        "author": repo.id.split('/').next().unwrap_or_default(),
        "sha": commit.oid, "lastModified": "2025-01-01T00:00:00.000Z", "createdAt": "2025-01-01T00:00:00.000Z",
        "private": repo.private, "disabled": false, "gated": false, "downloads": 0, "likes": 0,
        "tags": [], "library_name": null, "siblings": siblings,
        "url": format!("{}/{}", st.base, repo.id),
    })
}

/// The file entries (and folder entries) of a tree under `dir`.
fn tree_entries(tree: &BTreeMap<String, Entry>, dir: &str, recursive: bool) -> Vec<serde_json::Value> {
    let prefix = if dir.is_empty() { String::new() } else { format!("{dir}/") };
    let mut dirs = std::collections::BTreeSet::new();
    let mut files = Vec::new();
    for (p, e) in tree {
        let Some(rest) = p.strip_prefix(&prefix) else { continue };
        let parts: Vec<&str> = rest.split('/').collect();
        for i in 1..parts.len() {
            if recursive || i == 1 {
                dirs.insert(format!("{prefix}{}", parts[..i].join("/")));
            }
        }
        if recursive || parts.len() == 1 {
            files.push(file_json(p, e));
        }
    }
    let mut out: Vec<serde_json::Value> = dirs
        .into_iter()
        .map(|d| {
            let oid = hex(&Sha256::digest(d.as_bytes()))[..40].to_string();
            serde_json::json!({ "type": "directory", "oid": oid, "size": 0, "path": d })
        })
        .collect();
    out.extend(files);
    out
}

fn file_json(p: &str, e: &Entry) -> serde_json::Value {
    let mut v = serde_json::json!({ "type": "file", "oid": e.blob(p), "size": e.size(), "path": p });
    if let Entry::Lfs { oid, size } = e {
        v["lfs"] = serde_json::json!({ "oid": oid, "size": size, "pointerSize": 134 });
    }
    v
}

fn lfs_patterns(tree: &BTreeMap<String, Entry>) -> globset::GlobSet {
    let mut b = globset::GlobSetBuilder::new();
    let text = match tree.get(".gitattributes") {
        Some(Entry::Regular { content }) => String::from_utf8_lossy(content).into_owned(),
        _ => String::new(),
    };
    for line in text.lines() {
        let mut it = line.split_whitespace();
        let Some(pat) = it.next() else { continue };
        if !it.any(|a| a == "filter=lfs") {
            continue;
        }
        let pat = if pat.contains('/') { pat.to_string() } else { format!("**/{pat}") };
        if let Ok(g) = globset::GlobBuilder::new(&pat).literal_separator(true).build() {
            b.add(g);
        }
        if let Ok(g) = globset::GlobBuilder::new(pat.trim_start_matches("**/")).literal_separator(true).build() {
            b.add(g);
        }
    }
    b.build().unwrap_or_else(|_| globset::GlobSet::empty())
}

fn api_models(
    state: &Arc<Mutex<State>>,
    method: &Method,
    repo_id: &str,
    tail: &str,
    query: &str,
    user: &Option<(String, String)>,
    body: &[u8],
) -> Resp {
    let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
    let Some(repo) = st.repos.get(repo_id).cloned() else { return repo_missing() };
    if !st.may_see(user, &repo) {
        return if user.is_none() {
            error(401, Some("RepoNotFound"), "Repository not found", &[])
        } else {
            repo_missing()
        };
    }
    let writer = user.as_ref().is_some_and(|(name, role)| {
        let ns = repo_id.split('/').next().unwrap_or_default();
        role == "write" && (ns == name || st.orgs.get(name).is_some_and(|o| o.iter().any(|x| x == ns)))
    });
    let rev_missing = |rev: &str| error(404, Some("RevisionNotFound"), &format!("Invalid rev id: {rev}"), &[]);
    let (op, rest) = tail.split_once('/').unwrap_or((tail, ""));
    match (method.clone(), op) {
        (Method::GET, "") => {
            let Some(c) = repo.commit("main") else { return rev_missing("main") };
            json(200, model_info(&st, &repo, c))
        }
        (Method::GET, "revision") => {
            let rev = percent_decode(rest);
            match repo.commit(&rev) {
                Some(c) => json(200, model_info(&st, &repo, c)),
                None => rev_missing(&rev),
            }
        }
        (Method::POST, "preupload") => {
            let rev = percent_decode(rest);
            let Some(c) = repo.commit(&rev) else { return rev_missing(&rev) };
            if !writer {
                return error(403, None, "You don't have the rights to push to this repo", &[]);
            }
            let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
            let Some(files) = v["files"].as_array() else { return error(400, None, "files is required", &[]) };
            let patterns = lfs_patterns(&c.tree);
            let mut out = Vec::new();
            for f in files {
                let path = f["path"].as_str().unwrap_or_default();
                let size = f["size"].as_u64().unwrap_or(0);
                let sample = base64::engine::general_purpose::STANDARD
                    .decode(f["sample"].as_str().unwrap_or_default())
                    .unwrap_or_default();
                let lfs = !st.preupload_regular
                    && (patterns.is_match(path) || size >= INLINE_MAX as u64 || sample.contains(&0));
                let oid = c.tree.get(path).map(|e| match e {
                    Entry::Lfs { oid, .. } => oid.clone(),
                    other => other.blob(path),
                });
                out.push(serde_json::json!({
                    "path": path,
                    "uploadMode": if lfs { "lfs" } else { "regular" },
                    "shouldIgnore": false,
                    "oid": oid,
                }));
            }
            json(200, serde_json::json!({ "files": out, "commitOid": c.oid }))
        }
        (Method::GET, "tree") => {
            let (rev, dir) = rest.split_once('/').unwrap_or((rest, ""));
            let rev = percent_decode(rev);
            let dir = percent_decode(dir).trim_matches('/').to_string();
            let Some(c) = repo.commit(&rev) else { return rev_missing(&rev) };
            if !dir.is_empty() && !c.tree.keys().any(|p| p.starts_with(&format!("{dir}/"))) {
                return error(404, Some("EntryNotFound"), &format!("{dir} does not exist on \"{rev}\""), &[]);
            }
            let recursive = matches!(query_param(query, "recursive").as_deref(), Some("true" | "True" | "1"));
            let all = tree_entries(&c.tree, &dir, recursive);
            let cursor: usize = query_param(query, "cursor").and_then(|c| c.parse().ok()).unwrap_or(0);
            let page = st.page_size;
            let end = (cursor + page).min(all.len());
            let items: Vec<serde_json::Value> = all[cursor.min(all.len())..end].to_vec();
            let mut resp = json(200, serde_json::Value::Array(items));
            if end < all.len() {
                let base_q: Vec<&str> =
                    query.split('&').filter(|kv| !kv.starts_with("cursor=") && !kv.is_empty()).collect();
                let mut q = base_q.join("&");
                if !q.is_empty() {
                    q.push('&');
                }
                let link = format!("<{}/api/models/{repo_id}/{tail}?{q}cursor={end}>; rel=\"next\"", st.base);
                resp.headers_mut().insert("link", link.parse().expect("link header"));
            }
            resp
        }
        (Method::POST, "paths-info") => {
            let rev = percent_decode(rest);
            let Some(c) = repo.commit(&rev) else { return rev_missing(&rev) };
            let text = String::from_utf8_lossy(body).into_owned();
            let paths: Vec<String> = if text.trim_start().starts_with('{') {
                serde_json::from_str::<serde_json::Value>(&text)
                    .ok()
                    .and_then(|v| v["paths"].as_array().cloned())
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|p| p.as_str().map(str::to_string))
                    .collect()
            } else {
                text.split('&')
                    .filter_map(|kv| kv.split_once('='))
                    .filter(|(k, _)| *k == "paths" || *k == "paths%5B%5D" || *k == "paths[]")
                    .map(|(_, v)| percent_decode(&v.replace('+', " ")))
                    .collect()
            };
            let mut out = Vec::new();
            for p in paths {
                let p = p.trim_matches('/').to_string();
                if let Some(e) = c.tree.get(&p) {
                    out.push(file_json(&p, e));
                } else if c.tree.keys().any(|k| k.starts_with(&format!("{p}/"))) {
                    let oid = hex(&Sha256::digest(p.as_bytes()))[..40].to_string();
                    out.push(serde_json::json!({ "type": "directory", "oid": oid, "size": 0, "path": p }));
                }
            }
            json(200, serde_json::Value::Array(out))
        }
        (Method::POST, "commit") => {
            let rev = percent_decode(rest);
            if !writer {
                return error(403, None, "You don't have the rights to push to this repo", &[]);
            }
            commit(&mut st, repo_id, &rev, body)
        }
        _ => {
            drop(st);
            unknown(state, method, &format!("/api/models/{repo_id}/{tail}"))
        }
    }
}

fn commit(st: &mut State, repo_id: &str, rev: &str, body: &[u8]) -> Resp {
    let text = String::from_utf8_lossy(body);
    let mut header: Option<serde_json::Value> = None;
    let mut ops = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            return error(400, None, &format!("line {} is not JSON", i + 1), &[]);
        };
        match v["key"].as_str() {
            Some("header") => header = Some(v["value"].clone()),
            Some("lfsFile" | "file" | "deletedFile" | "deletedFolder") => ops.push(v),
            other => return error(400, None, &format!("unknown operation {other:?}"), &[]),
        }
    }
    let Some(header) = header else { return error(400, None, "the first line must be the header", &[]) };
    for op in &ops {
        let path = op["value"]["path"].as_str().unwrap_or_default();
        if let Some((_, status)) = st.commit_refusals.iter().find(|(p, _)| path.contains(p.as_str())) {
            return error(*status, None, "Internal Error - We're working hard to fix this as soon as possible!", &[]);
        }
    }
    let summary = header["summary"].as_str().unwrap_or_default().to_string();
    if summary.trim().is_empty() {
        return error(400, None, "a commit needs a summary", &[]);
    }
    let Some(repo) = st.repos.get(repo_id).cloned() else { return repo_missing() };
    let Some(head) = repo.branches.get(rev).cloned() else {
        return error(404, Some("RevisionNotFound"), &format!("Invalid rev id: {rev}"), &[]);
    };
    if let Some(parent) = header["parentCommit"].as_str()
        && parent != head
    {
        return error(412, None, "A commit has happened since. Please refresh and try again.", &[]);
    }
    let mut tree = repo.commit(&head).map(|c| c.tree.clone()).unwrap_or_default();
    let mut added = Vec::new();
    let mut deleted = Vec::new();
    for op in &ops {
        let v = &op["value"];
        let path = v["path"].as_str().unwrap_or_default().trim_matches('/').to_string();
        if path.is_empty() || path.split('/').any(|c| c == ".." || c == ".git") {
            return error(400, None, &format!("invalid path '{path}'"), &[]);
        }
        match op["key"].as_str() {
            Some("lfsFile") => {
                let oid = v["oid"].as_str().unwrap_or_default().to_string();
                let size = v["size"].as_u64();
                match st.objects.get(&oid) {
                    Some(o) if size.is_none_or(|s| s == o.size) => {
                        tree.insert(path.clone(), Entry::Lfs { oid, size: o.size });
                    }
                    _ => {
                        return error(
                            422,
                            None,
                            &format!(
                                "Your push was rejected because an LFS pointer pointed to a file that does not exist. \
                                 Offending file: - {path}"
                            ),
                            &[],
                        );
                    }
                }
                added.push(path);
            }
            Some("file") => {
                let raw = v["content"].as_str().unwrap_or_default();
                let content = if v["encoding"].as_str() == Some("base64") {
                    match base64::engine::general_purpose::STANDARD.decode(raw) {
                        Ok(c) => c,
                        Err(_) => return error(400, None, &format!("{path}: content is not base64"), &[]),
                    }
                } else {
                    raw.as_bytes().to_vec()
                };
                if content.len() > INLINE_MAX {
                    return error(
                        400,
                        None,
                        &format!(
                            "Your push was rejected because it contains files larger than 10 MiB. Please use \
                             https://git-lfs.github.com/ to store large files. Offending file: - {path}"
                        ),
                        &[],
                    );
                }
                tree.insert(path.clone(), Entry::Regular { content });
                added.push(path);
            }
            Some("deletedFile") => {
                if tree.remove(&path).is_none() {
                    return error(
                        404,
                        Some("EntryNotFound"),
                        &format!("A file with this name doesn't exist: {path}"),
                        &[],
                    );
                }
                deleted.push(path);
            }
            _ => {
                let before = tree.len();
                tree.retain(|k, _| !k.starts_with(&format!("{path}/")));
                if tree.len() == before {
                    return error(
                        404,
                        Some("EntryNotFound"),
                        &format!("A folder with this name doesn't exist: {path}"),
                        &[],
                    );
                }
                deleted.push(path);
            }
        }
    }
    let oid = st.next_id();
    let c = Commit {
        oid: oid.clone(),
        parent: Some(head),
        summary,
        description: header["description"].as_str().unwrap_or_default().to_string(),
        added,
        deleted,
        tree,
    };
    let base = st.base.clone();
    let repo = st.repos.get_mut(repo_id).expect("repo");
    repo.commits.push(c);
    repo.branches.insert(rev.to_string(), oid.clone());
    st.counters.commits += 1;
    json(
        200,
        serde_json::json!({
            "success": true, "commitOid": oid, "commitUrl": format!("{base}/{repo_id}/commit/{oid}"), "hookOutput": "",
        }),
    )
}

fn lfs_api(
    state: &Arc<Mutex<State>>,
    method: &Method,
    repo_id: &str,
    tail: &str,
    user: &Option<(String, String)>,
    body: &[u8],
) -> Resp {
    let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
    if *method != Method::POST {
        drop(st);
        return unknown(state, method, tail);
    }
    // The completion URL is signed by its upload id: no token needed (none is sent).
    if let Some(upload_id) = tail.strip_prefix("complete_multipart/") {
        return complete_multipart(&mut st, upload_id, body);
    }
    let Some(repo) = st.repos.get(repo_id).cloned() else { return repo_missing() };
    if !st.may_see(user, &repo) {
        return if user.is_none() {
            error(401, Some("RepoNotFound"), "Repository not found", &[])
        } else {
            repo_missing()
        };
    }
    let writer = user.as_ref().is_some_and(|(_, role)| role == "write");
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    match tail {
        "objects/batch" => {
            st.counters.batch_calls += 1;
            if v["operation"].as_str() != Some("upload") {
                return error(400, None, "only uploads are served by this stand-in", &[]);
            }
            if !writer {
                return error(403, None, "You don't have the rights to push to this repo", &[]);
            }
            let offered: Vec<String> = v["transfers"]
                .as_array()
                .map(|a| a.iter().filter_map(|t| t.as_str().map(str::to_string)).collect())
                .unwrap_or_else(|| vec!["basic".into()]);
            let mut objects = Vec::new();
            let mut chosen = "basic";
            for o in v["objects"].as_array().cloned().unwrap_or_default() {
                let oid = o["oid"].as_str().unwrap_or_default().to_string();
                let Some(size) = o["size"].as_u64() else {
                    return error(422, None, "object size is required", &[]);
                };
                if oid.len() != 64 || !oid.bytes().all(|b| b.is_ascii_hexdigit()) {
                    objects.push(serde_json::json!({ "oid": oid, "size": size, "error": { "code": 422, "message": "invalid oid" } }));
                    continue;
                }
                if st.objects.get(&oid).is_some_and(|ob| ob.size == size) {
                    objects.push(serde_json::json!({ "oid": oid, "size": size, "authenticated": true }));
                    continue;
                }
                let verify =
                    serde_json::json!({ "href": format!("{}/{repo_id}.git/info/lfs/objects/verify", st.base) });
                let multipart = match st.transfer {
                    Transfer::Basic => None,
                    Transfer::Multipart { chunk_size } => Some(chunk_size),
                    Transfer::Auto { above, chunk_size } => (size > above).then_some(chunk_size),
                }
                .filter(|_| offered.iter().any(|t| t == "multipart"));
                let sig = st.next_id();
                if let Some(chunk) = multipart {
                    chosen = "multipart";
                    let upload_id = st.next_id();
                    let n = size.div_ceil(chunk).max(1);
                    let mut header = serde_json::Map::new();
                    header.insert("chunk_size".into(), serde_json::Value::String(chunk.to_string()));
                    for i in 1..=n {
                        header.insert(
                            format!("{i:05}"),
                            serde_json::Value::String(format!(
                                "{}/lfs/part/{upload_id}/{i}?X-Amz-Signature={sig}",
                                st.storage
                            )),
                        );
                    }
                    st.signed.insert(sig.clone(), (oid.clone(), size));
                    st.multipart
                        .insert(upload_id.clone(), Multipart { oid: oid.clone(), size, chunk, parts: BTreeMap::new() });
                    objects.push(serde_json::json!({
                        "oid": oid, "size": size, "authenticated": true,
                        "actions": {
                            "upload": {
                                "href": format!("{}/{repo_id}.git/info/lfs/complete_multipart/{upload_id}", st.base),
                                "header": header,
                            },
                            "verify": verify,
                        },
                    }));
                } else {
                    st.signed.insert(sig.clone(), (oid.clone(), size));
                    objects.push(serde_json::json!({
                        "oid": oid, "size": size, "authenticated": true,
                        "actions": {
                            "upload": {
                                "href": format!("{}/lfs/upload/{oid}?X-Amz-Signature={sig}", st.storage),
                                "expires_at": "2099-01-01T00:00:00Z",
                            },
                            "verify": verify,
                        },
                    }));
                }
            }
            let mut resp =
                json(200, serde_json::json!({ "transfer": chosen, "objects": objects, "hash_algo": "sha256" }));
            resp.headers_mut().insert("content-type", "application/vnd.git-lfs+json".parse().expect("ct"));
            resp
        }
        "objects/verify" => {
            if user.is_none() {
                return error(401, None, "Invalid credentials in Authorization header", &[]);
            }
            let oid = v["oid"].as_str().unwrap_or_default();
            let size = st.objects.get(oid).map(|o| o.size).or_else(|| st.discarded.get(oid).copied());
            match size {
                Some(n) if v["size"].as_u64() == Some(n) => json(200, serde_json::json!({ "success": true })),
                _ => error(404, None, "object not found", &[]),
            }
        }
        _ => {
            drop(st);
            unknown(state, method, tail)
        }
    }
}

fn complete_multipart(st: &mut State, upload_id: &str, body: &[u8]) -> Resp {
    st.counters.completions += 1;
    let Some(mp) = st.multipart.get(upload_id).cloned() else {
        return error(404, None, "no such multipart upload (expired or completed)", &[]);
    };
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    if v["oid"].as_str() != Some(mp.oid.as_str()) {
        return error(400, None, "oid does not match the upload", &[]);
    }
    if st.objects.contains_key(&mp.oid) {
        return json(200, serde_json::json!({ "success": true }));
    }
    let parts = v["parts"].as_array().cloned().unwrap_or_default();
    let n = mp.size.div_ceil(mp.chunk).max(1) as usize;
    if parts.len() != n {
        return error(400, None, &format!("{} parts listed, {n} expected", parts.len()), &[]);
    }
    let dest = st.dir.join(format!("obj-{}", mp.oid));
    let Ok(mut out) = std::fs::File::create(&dest) else { return error(500, None, "storage full", &[]) };
    let mut h = Sha256::new();
    let mut total = 0u64;
    for (i, p) in parts.iter().enumerate() {
        let num = p["partNumber"].as_u64().unwrap_or(0) as u32;
        let etag = p["etag"].as_str().unwrap_or_default();
        if num as usize != i + 1 {
            return error(400, None, "parts must be listed in order", &[]);
        }
        let Some((want, file)) = mp.parts.get(&num) else {
            return error(400, None, &format!("part {num} was never uploaded"), &[]);
        };
        if want != etag {
            return error(400, None, &format!("part {num}: etag {etag} does not match"), &[]);
        }
        let Ok(data) = std::fs::read(file) else { return error(500, None, "part lost", &[]) };
        if (i + 1 < n && data.len() as u64 != mp.chunk) || data.is_empty() {
            return error(400, None, &format!("part {num} has {} bytes", data.len()), &[]);
        }
        h.update(&data);
        total += data.len() as u64;
        use std::io::Write;
        if out.write_all(&data).is_err() {
            return error(500, None, "storage full", &[]);
        }
    }
    if total != mp.size || hex(&h.finalize()) != mp.oid {
        let _ = std::fs::remove_file(&dest);
        return error(400, None, "the parts do not add up to the object's size and sha256", &[]);
    }
    for (_, f) in mp.parts.values() {
        let _ = std::fs::remove_file(f);
    }
    st.multipart.remove(upload_id);
    if st.discard_objects {
        let _ = std::fs::remove_file(&dest);
        st.discarded.insert(mp.oid.clone(), mp.size);
        return json(200, serde_json::json!({ "success": true }));
    }
    st.objects.insert(mp.oid.clone(), Object { size: mp.size, file: dest });
    st.counters.objects_stored += 1;
    json(200, serde_json::json!({ "success": true }))
}

/// Parse `bytes=N-` / `bytes=N-M` for an object of `size`: (start, end inclusive).
fn parse_range(h: &str, size: u64) -> Option<(u64, u64)> {
    let spec = h.trim().strip_prefix("bytes=")?;
    let (a, b) = spec.split_once('-')?;
    let start: u64 = a.trim().parse().ok()?;
    let end = if b.trim().is_empty() {
        size.saturating_sub(1)
    } else {
        b.trim().parse::<u64>().ok()?.min(size.saturating_sub(1))
    };
    (start <= end && start < size).then_some((start, end))
}

/// Serve `len` bytes from a file or a buffer, honouring `Range`.
async fn serve_bytes(
    state: &Arc<Mutex<State>>,
    method: &Method,
    source: Result<PathBuf, Vec<u8>>,
    size: u64,
    range: Option<&str>,
    headers: Vec<(String, String)>,
) -> Resp {
    let mut b = Response::builder().header("accept-ranges", "bytes").header("x-request-id", "standin");
    for (k, v) in &headers {
        b = b.header(k.as_str(), v.as_str());
    }
    let (status, start, end) = match range {
        Some(r) => match parse_range(r, size) {
            Some((s, e)) => (206, s, e),
            None => {
                return b
                    .status(416)
                    .header("content-range", format!("bytes */{size}"))
                    .body(full(Bytes::new()))
                    .expect("response");
            }
        },
        None => (200, 0, size.saturating_sub(1)),
    };
    let len = if size == 0 { 0 } else { end - start + 1 };
    b = b.status(status).header("content-length", len.to_string()).header("content-type", "application/octet-stream");
    if status == 206 {
        b = b.header("content-range", format!("bytes {start}-{end}/{size}"));
        state.lock().unwrap_or_else(|p| p.into_inner()).counters.range_requests += 1;
    }
    if *method == Method::HEAD {
        return b.body(full(Bytes::new())).expect("response");
    }
    let body = match source {
        Err(buf) => {
            state.lock().unwrap_or_else(|p| p.into_inner()).counters.bytes_served += len;
            full(Bytes::from(buf[start as usize..(start + len) as usize].to_vec()))
        }
        Ok(path) => {
            let st = state.clone();
            let stream = futures_util::stream::unfold(
                (None::<tokio::fs::File>, start, len, path),
                move |(file, pos, left, path)| {
                    let st = st.clone();
                    async move {
                        use tokio::io::{AsyncReadExt, AsyncSeekExt};
                        if left == 0 {
                            return None;
                        }
                        let mut f = match file {
                            Some(f) => f,
                            None => {
                                let mut f = match tokio::fs::File::open(&path).await {
                                    Ok(f) => f,
                                    Err(e) => return Some((Err(e), (None, pos, 0, path))),
                                };
                                if let Err(e) = f.seek(io::SeekFrom::Start(pos)).await {
                                    return Some((Err(e), (None, pos, 0, path)));
                                }
                                f
                            }
                        };
                        let mut buf = vec![0u8; (left as usize).min(256 * 1024)];
                        match f.read(&mut buf).await {
                            Ok(0) => None,
                            Ok(n) => {
                                buf.truncate(n);
                                st.lock().unwrap_or_else(|p| p.into_inner()).counters.bytes_served += n as u64;
                                Some((
                                    Ok(Frame::data(Bytes::from(buf))),
                                    (Some(f), pos + n as u64, left - n as u64, path),
                                ))
                            }
                            Err(e) => Some((Err(e), (None, pos, 0, path))),
                        }
                    }
                },
            );
            StreamBody::new(stream).boxed()
        }
    };
    b.body(body).expect("response")
}

async fn resolve(
    state: &Arc<Mutex<State>>,
    method: &Method,
    repo_id: &str,
    rest: &str,
    user: &Option<(String, String)>,
    range: Option<&str>,
) -> Resp {
    let (rev, path) = rest.split_once('/').unwrap_or((rest, ""));
    let rev = percent_decode(rev);
    let path = percent_decode(path);
    let (entry, commit_oid, storage, sig) = {
        let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
        let Some(repo) = st.repos.get(repo_id).cloned() else { return repo_missing() };
        if !st.may_see(user, &repo) {
            return if user.is_none() {
                error(401, Some("RepoNotFound"), "Repository not found", &[])
            } else {
                repo_missing()
            };
        }
        let Some(c) = repo.commit(&rev) else {
            return error(404, Some("RevisionNotFound"), &format!("Invalid rev id: {rev}"), &[]);
        };
        let Some(e) = c.tree.get(&path).cloned() else {
            return error(404, Some("EntryNotFound"), &format!("{path} does not exist on \"{rev}\""), &[]);
        };
        let sig = st.next_id();
        (e, c.oid.clone(), st.storage.clone(), sig)
    };
    let blob = entry.blob(&path);
    match entry {
        Entry::Lfs { oid, size } => {
            state.lock().unwrap_or_else(|p| p.into_inner()).signed.insert(sig.clone(), (oid.clone(), size));
            Response::builder()
                .status(302)
                .header("location", format!("{storage}/lfs/object/{oid}?X-Amz-Signature={sig}"))
                .header("x-repo-commit", commit_oid)
                .header("x-linked-etag", format!("\"{oid}\""))
                .header("x-linked-size", size.to_string())
                .header("etag", format!("\"{blob}\""))
                .header("x-request-id", "standin")
                .header("content-length", "0")
                .body(full(Bytes::new()))
                .expect("response")
        }
        Entry::Regular { content } => {
            let size = content.len() as u64;
            let headers = vec![("x-repo-commit".to_string(), commit_oid), ("etag".to_string(), format!("\"{blob}\""))];
            serve_bytes(state, method, Err(content), size, range, headers).await
        }
    }
}

async fn storage_route(state: &Arc<Mutex<State>>, req: Request<Incoming>, pq: &str) -> Result<Resp, io::Error> {
    let method = req.method().clone();
    let (path, query) = pq.split_once('?').unwrap_or((pq, ""));
    let has_auth = req.headers().contains_key("authorization");
    if has_auth {
        // As S3 does when a signed URL also carries a token.
        return Ok(error(400, None, "Only one auth mechanism allowed; a signed URL must not carry Authorization", &[]));
    }
    let sig = query_param(query, "X-Amz-Signature").unwrap_or_default();
    let signed = state.lock().unwrap_or_else(|p| p.into_inner()).signed.get(&sig).cloned();
    let Some((signed_oid, signed_size)) = signed else {
        return Ok(error(403, None, "SignatureDoesNotMatch", &[]));
    };
    if (method == Method::GET || method == Method::HEAD)
        && let Some(oid) = path.strip_prefix("/lfs/object/")
    {
        let obj = state.lock().unwrap_or_else(|p| p.into_inner()).objects.get(oid).cloned();
        let Some(obj) = obj.filter(|_| oid == signed_oid) else { return Ok(error(404, None, "NoSuchKey", &[])) };
        let range = req.headers().get("range").and_then(|v| v.to_str().ok()).map(str::to_string);
        if method == Method::GET {
            state
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .counters
                .storage_gets
                .push((oid.to_string(), range.clone()));
        }
        let headers = vec![("etag".to_string(), format!("\"{oid}\""))];
        return Ok(serve_bytes(state, &method, Ok(obj.file), obj.size, range.as_deref(), headers).await);
    }
    if method != Method::PUT {
        return Ok(unknown(state, &method, path));
    }
    let Some(len) =
        req.headers().get("content-length").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok())
    else {
        return Ok(error(411, None, "MissingContentLength", &[]));
    };
    // Basic: the whole object. Part: one part of a multipart upload.
    let (oid, part) = if let Some(oid) = path.strip_prefix("/lfs/upload/") {
        if oid != signed_oid || len != signed_size {
            return Ok(error(400, None, "the upload does not match its signed object and size", &[]));
        }
        (oid.to_string(), None)
    } else if let Some(rest) = path.strip_prefix("/lfs/part/") {
        let (upload_id, n) = rest.split_once('/').unwrap_or((rest, "0"));
        let n: u32 = n.parse().unwrap_or(0);
        let mp = state.lock().unwrap_or_else(|p| p.into_inner()).multipart.get(upload_id).cloned();
        let Some(mp) = mp else { return Ok(error(404, None, "NoSuchUpload", &[])) };
        let count = mp.size.div_ceil(mp.chunk).max(1);
        let want = if u64::from(n) == count { mp.size - mp.chunk * (count - 1) } else { mp.chunk };
        if n == 0 || u64::from(n) > count || len != want {
            return Ok(error(400, None, &format!("part {n}: {len} bytes where {want} were expected"), &[]));
        }
        (mp.oid.clone(), Some((upload_id.to_string(), n)))
    } else {
        return Ok(unknown(state, &method, path));
    };
    let already = state.lock().unwrap_or_else(|p| p.into_inner()).objects.contains_key(&oid);
    let dir = state.lock().unwrap_or_else(|p| p.into_inner()).dir.clone();
    let tmp = dir.join(format!("in-{}", state.lock().unwrap_or_else(|p| p.into_inner()).next_id()));
    let mut file = tokio::fs::File::create(&tmp).await?;
    let mut h = Sha256::new();
    let mut got = 0u64;
    let mut body = req.into_body();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(io::Error::other)?;
        if let Some(d) = frame.data_ref() {
            use tokio::io::AsyncWriteExt;
            file.write_all(d).await?;
            h.update(d);
            got += d.len() as u64;
            let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
            st.counters.bytes_received += d.len() as u64;
            if already {
                st.counters.bytes_resent += d.len() as u64;
            }
        }
    }
    drop(file);
    if got != len {
        let _ = std::fs::remove_file(&tmp);
        return Ok(error(400, None, "IncompleteBody", &[]));
    }
    let digest = hex(&h.finalize());
    let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
    match part {
        None => {
            if digest != oid {
                let _ = std::fs::remove_file(&tmp);
                return Ok(error(400, None, "XAmzContentSHA256Mismatch", &[]));
            }
            if st.discard_objects {
                let _ = std::fs::remove_file(&tmp);
                st.discarded.insert(oid.clone(), len);
            } else if !st.objects.contains_key(&oid) {
                let dest = st.dir.join(format!("obj-{oid}"));
                std::fs::rename(&tmp, &dest)?;
                st.objects.insert(oid.clone(), Object { size: len, file: dest });
                st.counters.objects_stored += 1;
            } else {
                let _ = std::fs::remove_file(&tmp);
            }
            Ok(Response::builder()
                .status(200)
                .header("etag", format!("\"{}\"", &digest[..32]))
                .body(full(Bytes::new()))
                .expect("response"))
        }
        Some((upload_id, n)) => {
            let etag = format!("\"{}\"", &digest[..32]);
            if let Some(mp) = st.multipart.get_mut(&upload_id)
                && let Some((_, old)) = mp.parts.insert(n, (etag.clone(), tmp))
            {
                let _ = std::fs::remove_file(old);
            }
            Ok(Response::builder().status(200).header("etag", etag).body(full(Bytes::new())).expect("response"))
        }
    }
}
