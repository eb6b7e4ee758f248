//! A Google Drive v3 + OAuth 2.0 stand-in on 127.0.0.1, started inside tests (and by
//! `benches/drive_io.rs`), checking what Google checks:
//!
//! - **Token endpoint** (`POST /token`, the key file's `token_uri`): the JWT-bearer grant,
//!   the assertion's RS256 signature against the public half of the test key (generated at
//!   start, never written anywhere but the test's own temp folder), `iss`, `aud` (= the
//!   token URI), `scope` (known Drive scopes), `iat`/`exp` (at most an hour, not expired,
//!   not from the future), `sub` only where delegation is allowed. Answers
//!   `{access_token, expires_in, token_type}` or Google's `{error, error_description}`.
//! - **API calls** need `Authorization: Bearer` with a live token of a Drive scope (401
//!   otherwise). Items in a Shared Drive answer 404 "File not found" unless the call says
//!   `supportsAllDrives=true`, and lists leave them out unless they also say
//!   `includeItemsFromAllDrives=true`; a Shared Drive the service account is not a member
//!   of is invisible; a reader may not add children (403). A service account storing a file
//!   in a My Drive folder gets 403 `storageQuotaExceeded` (it has no quota), unless it acts
//!   as a user (`sub`).
//! - **Resumable uploads**: `POST /upload/drive/v3/files?uploadType=resumable` (or `PATCH
//!   .../files/{id}` for a new revision) with JSON metadata answers 200 + `Location`. `PUT`s
//!   to the session carry `Content-Range: bytes S-E/T`; every chunk but the last must be a
//!   multiple of 256 KiB (400 otherwise); a chunk may start before what the server holds
//!   (the overlap is skipped) but not after it (400). Intermediate answers are 308 with
//!   `Range: bytes=0-N`, or 308 without `Range` when nothing is stored; a status query
//!   (`bytes */T` or `bytes */*`, empty body) answers the same, or finishes the upload when
//!   all T bytes are there. The last chunk answers 200 with the file resource (with
//!   `md5Checksum`, `size`, ...) limited to the `fields` asked for when the session began.
//!   A `PUT` without `Content-Range` is the whole file in one request (`curl -T`). Unknown
//!   or expired sessions answer 404 (or 410).
//! - **Lookups** (`GET /drive/v3/files?q=...`): the `q` subset opsconsole and the fidelity
//!   check use (`name = '...'`, `'ID' in parents`, `trashed = false`, `mimeType = / !=`,
//!   joined by `and`, with `\'` and `\\` escapes); anything else is 400 "Invalid Value".
//!   Listings are paged (`pageSize`, `nextPageToken`), newest first. `fields=` is honoured
//!   everywhere (nested `files(id,name)`, `capabilities(canAddChildren)`, `*`), with v3's
//!   defaults (`kind,id,name,mimeType`) when it is absent.
//! - **Downloads** (`GET /drive/v3/files/{id}?alt=media`) honour `Range` (206 + Content-Range,
//!   416 past the end); optionally they redirect to a second origin, as Google does, which
//!   counts any `Authorization` header that follows it there.
//! - **Faults** (one-shot rules, by kind of request): an error status with Google's error
//!   body and reason (403 rate limits, 429 with Retry-After, 500s), a connection cut after N
//!   body bytes (on an upload the server keeps what it received, rounded down to 256 KiB),
//!   expired sessions, revoked tokens.
//! - **Counters**: requests by kind, upload body bytes received (cut ones included), tokens
//!   issued (so tests can grep for them), and every request line.
//!
//! Checked against Google's own client: `tests/support/drive_fidelity.py`, run by
//! `cargo test --test drive -- --ignored fidelity` (needs `pip install
//! google-api-python-client google-auth`). **Agreed with google-api-python-client 2.202.0,
//! google-auth 2.63.0, httplib2 0.32.1 on Python 3.11.7**, faults on: the first chunk cut
//! before 256 KiB (its status query answered 308 without Range), a chunk cut mid-way, a 503
//! opening a session, a 429 with Retry-After on a paged lookup; `fields`, the 404 without
//! `supportsAllDrives`, a new revision, an escaped name lookup, a ranged download and the
//! My Drive quota error as well. What that check taught the stand-in: google-auth signs
//! every JWT for `https://oauth2.googleapis.com/token` whatever the key's `token_uri` says
//! (so that audience is accepted too); a body that stops arriving is given up
//! (`Options::body_idle`), since httplib2 re-sends a broken request with its file body
//! already read.
//!
//! `STANDIN_TRACE=1` prints every request on stderr.
#![allow(dead_code)]
// An error here is an HTTP answer to send back, not a failure to propagate quickly.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use http_body_util::BodyExt;
use hyper::body::{Body, Bytes, Frame, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use md5::{Digest, Md5};

pub const SA_EMAIL: &str = "opsconsole-test@standin-project.iam.gserviceaccount.com";
pub const FOLDER_MIME: &str = "application/vnd.google-apps.folder";
const UNIT: u64 = 256 * 1024;
/// Audiences Google's token endpoint accepts in a JWT-bearer grant.
const GOOGLE_TOKEN_AUDIENCES: [&str; 3] = [
    "https://oauth2.googleapis.com/token",
    "https://www.googleapis.com/oauth2/v4/token",
    "https://accounts.google.com/o/oauth2/token",
];
const SCOPES: [&str; 5] = [
    "https://www.googleapis.com/auth/drive",
    "https://www.googleapis.com/auth/drive.file",
    "https://www.googleapis.com/auth/drive.readonly",
    "https://www.googleapis.com/auth/drive.metadata.readonly",
    "https://www.googleapis.com/auth/drive.appdata",
];

/// Which requests a fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Token,
    /// Opening a resumable session.
    Start,
    /// A session `PUT` carrying bytes.
    Chunk,
    /// A session `PUT` without bytes (a status query).
    Status,
    /// `files.list`.
    List,
    /// `files.get` (metadata).
    Get,
    /// `files.get?alt=media`.
    Download,
    /// Metadata create/update/delete.
    Write,
    /// Any of the above.
    Any,
}

/// What a fault does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Answer this status with Google's error body (`reason`, `message`) and an optional
    /// `Retry-After` in seconds.
    Fail { status: u16, reason: String, message: String, retry_after: Option<u64> },
    /// Read this many body bytes (upload) or send this many (download), then drop the
    /// connection without an answer.
    Cut(u64),
    /// Answer the token endpoint's error for a deleted key.
    BadGrant,
}

/// A one-shot fault: applied to the `skip`+1-th request of kind `op` from now.
#[derive(Debug, Clone)]
pub struct Fault {
    pub op: Op,
    pub skip: u32,
    pub action: Action,
}

impl Fault {
    pub fn new(op: Op, action: Action) -> Self {
        Self { op, skip: 0, action }
    }

    pub fn after(mut self, skip: u32) -> Self {
        self.skip = skip;
        self
    }

    pub fn status(op: Op, status: u16, reason: &str, retry_after: Option<u64>) -> Self {
        let message = match reason {
            "rateLimitExceeded" => "Rate Limit Exceeded",
            "userRateLimitExceeded" => "User Rate Limit Exceeded",
            "backendError" => "Backend Error",
            "internalError" => "Internal Error",
            _ => reason,
        };
        Self::new(op, Action::Fail { status, reason: reason.into(), message: message.into(), retry_after })
    }
}

/// Stand-in settings.
#[derive(Debug, Clone)]
pub struct Options {
    /// Seconds an access token lives.
    pub token_lifetime: u64,
    /// Largest page of a listing (a request may ask for less).
    pub page_size: usize,
    /// Downloads answer 302 to a second origin.
    pub redirect_downloads: bool,
    /// `sub` (domain-wide delegation) is allowed for the service account.
    pub delegation: bool,
    /// Status of an expired session: 404 (Drive's usual) or 410.
    pub expired_status: u16,
    /// An upload body that stops arriving for this long is given up (the connection is
    /// dropped), as a front end would, rather than waited on forever.
    pub body_idle: Duration,
    /// Upload bodies are read at most this fast (bytes a second, per request): a slow
    /// uplink, so that a process killed during an upload is killed mid-chunk.
    pub throttle: Option<u64>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            token_lifetime: 3599,
            page_size: 100,
            redirect_downloads: false,
            delegation: false,
            expired_status: 404,
            body_idle: Duration::from_secs(10),
            throttle: None,
        }
    }
}

/// Roles on a Shared Drive or a shared folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Reader,
    Writer,
}

/// What the stand-in counted.
#[derive(Debug, Clone, Default)]
pub struct Counters {
    pub token_requests: u64,
    pub tokens_refused: u64,
    pub api_requests: u64,
    /// Every upload body byte read, including those of cut requests and overlaps.
    pub upload_bytes: u64,
    pub sessions_started: u64,
    pub chunks: u64,
    pub status_queries: u64,
    pub cuts: u64,
    pub downloads: u64,
    pub download_bytes: u64,
    /// Requests to the download origin that carried an `Authorization` header.
    pub auth_leaks: u64,
    /// Requests refused for a missing, unknown or expired token.
    pub unauthorized: u64,
    /// (method, path?query) of every request, in order.
    pub seen: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
struct Token {
    scopes: Vec<String>,
    sub: Option<String>,
    expires: Instant,
    revoked: bool,
}

#[derive(Debug, Clone)]
struct Item {
    id: String,
    name: String,
    mime: String,
    parents: Vec<String>,
    drive_id: Option<String>,
    /// Owner of a My Drive item.
    owner: Option<String>,
    trashed: bool,
    props: BTreeMap<String, String>,
    size: u64,
    md5: String,
    created: u64,
    modified: u64,
    content: Option<PathBuf>,
    version: u64,
}

#[derive(Debug, Clone)]
struct SharedDrive {
    name: String,
    members: HashMap<String, Role>,
}

#[derive(Debug)]
struct Session {
    update: Option<String>,
    meta: serde_json::Value,
    mime: String,
    total: Option<u64>,
    committed: u64,
    data: PathBuf,
    /// MD5 of bytes `0..committed`, while they were written in order.
    md5: Option<Md5>,
    fields: Option<String>,
    expired: bool,
    done: Option<String>,
    all_drives: bool,
}

struct State {
    opts: Options,
    dir: PathBuf,
    base: String,
    alt_base: String,
    public_key: Vec<u8>,
    key_disabled: bool,
    tokens: HashMap<String, Token>,
    issued: Vec<String>,
    items: BTreeMap<String, Item>,
    drives: HashMap<String, SharedDrive>,
    /// (folder id, email) -> role, for My Drive folders shared with someone.
    shares: HashMap<(String, String), Role>,
    sessions: HashMap<String, Session>,
    faults: Vec<Fault>,
    counters: Counters,
    clock: u64,
    /// Downloads handed to the second origin: ticket -> (file id, content).
    tickets: HashMap<String, PathBuf>,
}

fn rand_id(prefix: &str, n: usize) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut s = prefix.to_string();
    for _ in 0..n {
        s.push(A[fastrand::usize(..A.len())] as char);
    }
    s
}

fn hexs(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn rfc3339(ms: u64) -> String {
    // 2025-01-01T00:00:00Z plus the stand-in's clock.
    let t = UNIX_EPOCH + Duration::from_secs(1_735_689_600) + Duration::from_millis(ms);
    humantime::format_rfc3339_millis(t).to_string()
}

/// The RSA test key: PKCS#8 PEM private half, PKCS#1 DER public half.
pub struct TestKey {
    pub pem: String,
    pub public_der: Vec<u8>,
}

impl TestKey {
    pub fn generate() -> Self {
        use aws_lc_rs::encoding::AsDer;
        use aws_lc_rs::signature::KeyPair as _;
        let kp = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).expect("rsa keygen");
        let der: aws_lc_rs::encoding::Pkcs8V1Der = kp.as_der().expect("pkcs8");
        let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
        let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
        for line in b64.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(line).expect("b64"));
            pem.push('\n');
        }
        pem.push_str("-----END PRIVATE KEY-----\n");
        Self { pem, public_der: kp.public_key().as_ref().to_vec() }
    }
}

/// The running stand-in. Stops when dropped.
pub struct DriveStandIn {
    pub addr: SocketAddr,
    pub alt_addr: SocketAddr,
    state: Arc<Mutex<State>>,
    key: TestKey,
    stop: Option<tokio::sync::watch::Sender<bool>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Drop for DriveStandIn {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(true);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl DriveStandIn {
    pub fn start(opts: Options) -> Self {
        let key = TestKey::generate();
        let dir = tempfile::tempdir().expect("stand-in dir");
        let std_main = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let std_alt = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        std_main.set_nonblocking(true).expect("nonblocking");
        std_alt.set_nonblocking(true).expect("nonblocking");
        let addr = std_main.local_addr().expect("addr");
        let alt_addr = std_alt.local_addr().expect("addr");
        let state = Arc::new(Mutex::new(State {
            opts,
            dir: dir.path().to_path_buf(),
            base: format!("http://{addr}"),
            alt_base: format!("http://{alt_addr}"),
            public_key: key.public_der.clone(),
            key_disabled: false,
            tokens: HashMap::new(),
            issued: Vec::new(),
            items: BTreeMap::new(),
            drives: HashMap::new(),
            shares: HashMap::new(),
            sessions: HashMap::new(),
            faults: Vec::new(),
            counters: Counters::default(),
            clock: 0,
            tickets: HashMap::new(),
        }));
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let st = state.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("stand-in runtime");
            rt.block_on(async move {
                let main = tokio::net::TcpListener::from_std(std_main).expect("listener");
                let alt = tokio::net::TcpListener::from_std(std_alt).expect("listener");
                let a = tokio::spawn(serve(main, st.clone(), false, stop_rx.clone()));
                let b = tokio::spawn(serve(alt, st, true, stop_rx));
                let _ = tokio::join!(a, b);
            });
        });
        Self { addr, alt_addr, state, key, stop: Some(stop_tx), thread: Some(thread), _dir: dir }
    }

    fn st(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The API root, for a remote's `endpoint`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn token_uri(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    /// The service-account key JSON for this stand-in's test key.
    pub fn key_json(&self) -> String {
        serde_json::json!({
            "type": "service_account",
            "project_id": "standin-project",
            "private_key_id": "0123456789abcdef0123456789abcdef01234567",
            "private_key": self.key.pem,
            "client_email": SA_EMAIL,
            "client_id": "100000000000000000001",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": self.token_uri(),
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/opsconsole-test",
            "universe_domain": "googleapis.com",
        })
        .to_string()
    }

    /// Write the key file (mode 0600) at `path`.
    pub fn write_key(&self, path: &Path) {
        use std::os::unix::fs::OpenOptionsExt;
        if let Some(p) = path.parent() {
            std::fs::create_dir_all(p).expect("key dir");
        }
        let mut f =
            OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path).expect("key file");
        f.write_all(self.key_json().as_bytes()).expect("write key");
    }

    /// The private key's PEM body lines (for greps that must not find them).
    pub fn private_key_lines(&self) -> Vec<String> {
        self.key.pem.lines().filter(|l| !l.starts_with("-----")).map(str::to_string).collect()
    }

    /// A Shared Drive with members; its id is also its root folder's id.
    pub fn add_shared_drive(&self, name: &str, members: &[(&str, Role)]) -> String {
        let mut st = self.st();
        let id = rand_id("0A", 17);
        st.drives.insert(
            id.clone(),
            SharedDrive { name: name.into(), members: members.iter().map(|(e, r)| (e.to_string(), *r)).collect() },
        );
        let t = st.tick();
        st.items.insert(
            id.clone(),
            Item {
                id: id.clone(),
                name: name.into(),
                mime: FOLDER_MIME.into(),
                parents: vec![],
                drive_id: Some(id.clone()),
                owner: None,
                trashed: false,
                props: BTreeMap::new(),
                size: 0,
                md5: String::new(),
                created: t,
                modified: t,
                content: None,
                version: 1,
            },
        );
        id
    }

    /// A folder in `parent` (a Shared Drive or folder); returns its id.
    pub fn add_folder(&self, parent: &str, name: &str) -> String {
        let mut st = self.st();
        let p = st.items.get(parent).cloned().expect("parent exists");
        let id = rand_id("1", 32);
        let t = st.tick();
        st.items.insert(
            id.clone(),
            Item {
                id: id.clone(),
                name: name.into(),
                mime: FOLDER_MIME.into(),
                parents: vec![parent.into()],
                drive_id: p.drive_id.clone(),
                owner: p.owner.clone(),
                trashed: false,
                props: BTreeMap::new(),
                size: 0,
                md5: String::new(),
                created: t,
                modified: t,
                content: None,
                version: 1,
            },
        );
        id
    }

    /// A folder in `owner`'s My Drive, shared with the service account (`role`), or not.
    pub fn add_my_drive_folder(&self, owner: &str, name: &str, role: Option<Role>) -> String {
        let mut st = self.st();
        let id = rand_id("1", 32);
        let t = st.tick();
        st.items.insert(
            id.clone(),
            Item {
                id: id.clone(),
                name: name.into(),
                mime: FOLDER_MIME.into(),
                parents: vec![],
                drive_id: None,
                owner: Some(owner.into()),
                trashed: false,
                props: BTreeMap::new(),
                size: 0,
                md5: String::new(),
                created: t,
                modified: t,
                content: None,
                version: 1,
            },
        );
        if let Some(r) = role {
            st.shares.insert((id.clone(), SA_EMAIL.into()), r);
        }
        id
    }

    /// A file with content in `parent`, as if another client stored it.
    pub fn add_file(&self, parent: &str, name: &str, content: &[u8], props: &[(&str, &str)]) -> String {
        let mut st = self.st();
        let p = st.items.get(parent).cloned().expect("parent exists");
        let id = rand_id("1", 32);
        let path = st.dir.join(format!("{id}.v1"));
        std::fs::write(&path, content).expect("content");
        let t = st.tick();
        st.items.insert(
            id.clone(),
            Item {
                id: id.clone(),
                name: name.into(),
                mime: "application/octet-stream".into(),
                parents: vec![parent.into()],
                drive_id: p.drive_id.clone(),
                owner: p.owner.clone(),
                trashed: false,
                props: props.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
                size: content.len() as u64,
                md5: hexs(&Md5::digest(content)),
                created: t,
                modified: t,
                content: Some(path),
                version: 1,
            },
        );
        id
    }

    /// Replace a file's bytes behind the client's back (a new revision from elsewhere;
    /// `appProperties` stay as they were, as on Drive).
    pub fn overwrite(&self, id: &str, content: &[u8]) {
        let mut st = self.st();
        let t = st.tick();
        let path = st.dir.join(format!("{id}.x{t}"));
        std::fs::write(&path, content).expect("content");
        let it = st.items.get_mut(id).expect("item");
        it.content = Some(path);
        it.size = content.len() as u64;
        it.md5 = hexs(&Md5::digest(content));
        it.modified = t;
        it.version += 1;
    }

    pub fn push_fault(&self, f: Fault) {
        self.st().faults.push(f);
    }

    pub fn faults_left(&self) -> usize {
        self.st().faults.len()
    }

    pub fn counters(&self) -> Counters {
        self.st().counters.clone()
    }

    /// Every access token handed out so far.
    pub fn issued_tokens(&self) -> Vec<String> {
        self.st().issued.clone()
    }

    /// Every live token is refused from now on (401), as after a revocation.
    pub fn revoke_tokens(&self) {
        for t in self.st().tokens.values_mut() {
            t.revoked = true;
        }
    }

    /// The key is deleted in the Cloud console: token requests fail with invalid_grant.
    pub fn disable_key(&self, disabled: bool) {
        self.st().key_disabled = disabled;
    }

    /// Every open session expires.
    pub fn expire_sessions(&self) {
        for s in self.st().sessions.values_mut() {
            if s.done.is_none() {
                s.expired = true;
            }
        }
    }

    /// Session ids in the order they began, with their bytes held.
    pub fn sessions(&self) -> Vec<(String, u64, bool)> {
        let st = self.st();
        let mut v: Vec<_> = st.sessions.iter().map(|(k, s)| (k.clone(), s.committed, s.done.is_some())).collect();
        v.sort();
        v
    }

    /// Files (not folders, not trashed) by path from `root`: path -> (id, size, md5, props).
    pub fn files_under(&self, root: &str) -> BTreeMap<String, (String, u64, String, BTreeMap<String, String>)> {
        let st = self.st();
        let mut out = BTreeMap::new();
        let mut stack = vec![(root.to_string(), String::new())];
        while let Some((id, at)) = stack.pop() {
            for it in st.items.values().filter(|i| i.parents.contains(&id) && !i.trashed) {
                let p = format!("{at}{}", it.name);
                if it.mime == FOLDER_MIME {
                    stack.push((it.id.clone(), format!("{p}/")));
                } else {
                    out.insert(p, (it.id.clone(), it.size, it.md5.clone(), it.props.clone()));
                }
            }
        }
        out
    }

    /// Folders (not trashed) named `name` in `parent`.
    pub fn folders_named(&self, parent: &str, name: &str) -> usize {
        let st = self.st();
        st.items
            .values()
            .filter(|i| i.parents.iter().any(|p| p == parent) && i.name == name && i.mime == FOLDER_MIME && !i.trashed)
            .count()
    }

    /// Items in the trash.
    pub fn trashed(&self) -> Vec<String> {
        self.st().items.values().filter(|i| i.trashed).map(|i| i.name.clone()).collect()
    }

    /// The stored bytes of a file.
    pub fn content(&self, id: &str) -> Vec<u8> {
        let p = self.st().items.get(id).and_then(|i| i.content.clone()).expect("content");
        std::fs::read(p).expect("read content")
    }

    /// A session for `size` bytes under `parent`, opened directly (for `curl -T` in the
    /// benchmark). Returns its URI.
    pub fn open_session(&self, parent: &str, name: &str, size: u64) -> String {
        let mut st = self.st();
        let id = rand_id("ABPt", 60);
        let data = st.dir.join(format!("session-{id}"));
        File::create(&data).expect("session file");
        st.sessions.insert(
            id.clone(),
            Session {
                update: None,
                meta: serde_json::json!({ "name": name, "parents": [parent] }),
                mime: "application/octet-stream".into(),
                total: Some(size),
                committed: 0,
                data,
                md5: Some(Md5::new()),
                fields: Some("id,size,md5Checksum".into()),
                expired: false,
                done: None,
                all_drives: true,
            },
        );
        format!("{}/upload/drive/v3/files?uploadType=resumable&upload_id={id}", st.base)
    }
}

impl State {
    fn tick(&mut self) -> u64 {
        self.clock += 1000;
        self.clock
    }

    /// Take the fault for this request, if one is due.
    fn fault(&mut self, op: Op) -> Option<Action> {
        self.fault_if(op, |_| true)
    }

    /// As [`State::fault`], for faults whose action passes `pick` only.
    fn fault_if(&mut self, op: Op, pick: impl Fn(&Action) -> bool) -> Option<Action> {
        let idx = self.faults.iter().position(|f| (f.op == op || f.op == Op::Any) && pick(&f.action))?;
        if self.faults[idx].skip > 0 {
            self.faults[idx].skip -= 1;
            return None;
        }
        Some(self.faults.remove(idx).action)
    }

    /// The role the caller has on an item (through its Shared Drive or a shared My Drive
    /// folder above it), or `None` when it cannot see it.
    fn role(&self, id: &str, who: &str) -> Option<Role> {
        let it = self.items.get(id)?;
        if let Some(d) = &it.drive_id {
            return self.drives.get(d)?.members.get(who).copied();
        }
        if it.owner.as_deref() == Some(who) {
            return Some(Role::Writer);
        }
        let mut cur = Some(it.clone());
        let mut hops = 0;
        while let Some(c) = cur {
            if let Some(r) = self.shares.get(&(c.id.clone(), who.to_string())) {
                return Some(*r);
            }
            hops += 1;
            if hops > 64 {
                return None;
            }
            cur = c.parents.first().and_then(|p| self.items.get(p)).cloned();
        }
        None
    }

    /// Can the caller see the item with these query flags?
    fn visible(&self, id: &str, who: &str, all_drives: bool) -> bool {
        match self.items.get(id) {
            Some(it) if it.drive_id.is_some() && !all_drives => false,
            Some(_) => self.role(id, who).is_some(),
            None => false,
        }
    }

    fn resource(&self, it: &Item, who: &str) -> serde_json::Value {
        let mut v = serde_json::json!({
            "kind": "drive#file",
            "id": it.id,
            "name": it.name,
            "mimeType": it.mime,
            "parents": it.parents,
            "trashed": it.trashed,
            "createdTime": rfc3339(it.created),
            "modifiedTime": rfc3339(it.modified),
            "version": it.version.to_string(),
        });
        let o = v.as_object_mut().expect("object");
        if it.mime != FOLDER_MIME {
            o.insert("size".into(), it.size.to_string().into());
            o.insert("md5Checksum".into(), it.md5.clone().into());
        }
        if !it.props.is_empty() {
            o.insert("appProperties".into(), serde_json::to_value(&it.props).expect("props"));
        }
        if let Some(d) = &it.drive_id {
            o.insert("driveId".into(), d.clone().into());
        }
        if let Some(owner) = &it.owner {
            o.insert("owners".into(), serde_json::json!([{ "kind": "drive#user", "emailAddress": owner }]));
        }
        let writer = self.role(&it.id, who) == Some(Role::Writer);
        o.insert(
            "capabilities".into(),
            serde_json::json!({ "canAddChildren": it.mime == FOLDER_MIME && writer, "canEdit": writer, "canTrash": writer }),
        );
        v
    }
}

// ---- fields= ----

#[derive(Debug)]
struct FieldTree(Vec<(String, Option<FieldTree>)>);

fn parse_fields(s: &str) -> FieldTree {
    fn parse(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> FieldTree {
        let mut out = Vec::new();
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            match c {
                ',' => {
                    chars.next();
                    if !name.trim().is_empty() {
                        out.push((name.trim().to_string(), None));
                    }
                    name.clear();
                }
                '(' => {
                    chars.next();
                    let sub = parse(chars);
                    out.push((name.trim().to_string(), Some(sub)));
                    name.clear();
                    if chars.peek() == Some(&',') {
                        chars.next();
                    }
                }
                ')' => {
                    chars.next();
                    break;
                }
                _ => {
                    name.push(c);
                    chars.next();
                }
            }
        }
        if !name.trim().is_empty() {
            out.push((name.trim().to_string(), None));
        }
        FieldTree(out)
    }
    parse(&mut s.chars().peekable())
}

fn select(v: &serde_json::Value, t: &FieldTree) -> serde_json::Value {
    match v {
        serde_json::Value::Array(a) => serde_json::Value::Array(a.iter().map(|x| select(x, t)).collect()),
        serde_json::Value::Object(o) => {
            let mut out = serde_json::Map::new();
            for (name, sub) in &t.0 {
                if name == "*" {
                    return v.clone();
                }
                // "files/id" paths select inside.
                let (head, rest) = name.split_once('/').map(|(a, b)| (a, Some(b))).unwrap_or((name.as_str(), None));
                if let Some(x) = o.get(head) {
                    let picked = match (rest, sub) {
                        (Some(r), _) => select(x, &FieldTree(vec![(r.to_string(), None)])),
                        (None, Some(s)) => select(x, s),
                        (None, None) => x.clone(),
                    };
                    match (out.get_mut(head), picked) {
                        (Some(serde_json::Value::Object(have)), serde_json::Value::Object(more)) => have.extend(more),
                        (_, p) => {
                            out.insert(head.to_string(), p);
                        }
                    }
                }
            }
            serde_json::Value::Object(out)
        }
        other => other.clone(),
    }
}

/// Which of the query's fields are invalid for a file resource (Drive answers 400).
fn bad_field(t: &FieldTree, list: bool) -> Option<String> {
    const FILE: &[&str] = &[
        "kind",
        "id",
        "name",
        "mimeType",
        "parents",
        "trashed",
        "createdTime",
        "modifiedTime",
        "version",
        "size",
        "md5Checksum",
        "appProperties",
        "driveId",
        "owners",
        "capabilities",
        "*",
    ];
    for (name, sub) in &t.0 {
        let head = name.split('/').next().unwrap_or("");
        if list {
            match head {
                "files" => {
                    if let Some(s) = sub
                        && let Some(b) = bad_field(s, false)
                    {
                        return Some(b);
                    }
                }
                "nextPageToken" | "kind" | "incompleteSearch" | "*" => {}
                _ => return Some(name.clone()),
            }
        } else if !FILE.contains(&head) {
            return Some(name.clone());
        }
    }
    None
}

// ---- q ----

#[derive(Debug, PartialEq)]
enum Clause {
    NameEq(String, bool),
    InParents(String),
    Trashed(bool),
    MimeEq(String, bool),
}

fn parse_q(q: &str) -> Result<Vec<Clause>, String> {
    let mut toks = Vec::new();
    let cs: Vec<char> = q.chars().collect();
    let mut i = 0;
    while i < cs.len() {
        let c = cs[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '\'' {
            let mut s = String::new();
            i += 1;
            loop {
                match cs.get(i) {
                    None => return Err("unterminated string".into()),
                    Some('\\') => {
                        match cs.get(i + 1) {
                            Some(&e @ ('\'' | '\\')) => s.push(e),
                            _ => return Err("bad escape".into()),
                        }
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(&ch) => {
                        s.push(ch);
                        i += 1;
                    }
                }
            }
            toks.push(format!("'{s}"));
        } else if c == '!' && cs.get(i + 1) == Some(&'=') {
            toks.push("!=".into());
            i += 2;
        } else if c == '=' {
            toks.push("=".into());
            i += 1;
        } else {
            let mut w = String::new();
            while i < cs.len() && !cs[i].is_whitespace() && cs[i] != '=' && cs[i] != '!' && cs[i] != '\'' {
                w.push(cs[i]);
                i += 1;
            }
            toks.push(w);
        }
    }
    let mut out = Vec::new();
    let mut k = 0;
    let lit = |t: &str| t.strip_prefix('\'').map(str::to_string);
    while k < toks.len() {
        let t: Vec<&str> = toks[k..].iter().map(String::as_str).take(3).collect();
        match t.as_slice() {
            ["name", op @ ("=" | "!="), v] if lit(v).is_some() => {
                out.push(Clause::NameEq(lit(v).unwrap_or_default(), *op == "="))
            }
            ["mimeType", op @ ("=" | "!="), v] if lit(v).is_some() => {
                out.push(Clause::MimeEq(lit(v).unwrap_or_default(), *op == "="))
            }
            ["trashed", "=", "false"] => out.push(Clause::Trashed(false)),
            ["trashed", "=", "true"] => out.push(Clause::Trashed(true)),
            [v, "in", "parents"] if lit(v).is_some() => out.push(Clause::InParents(lit(v).unwrap_or_default())),
            _ => return Err(format!("unsupported clause at '{}'", toks[k])),
        }
        k += 3;
        if k < toks.len() {
            if toks[k] != "and" {
                return Err(format!("only 'and' joins clauses here, got '{}'", toks[k]));
            }
            k += 1;
            if k == toks.len() {
                return Err("dangling and".into());
            }
        }
    }
    Ok(out)
}

// ---- HTTP plumbing ----

/// A response body: bytes read lazily from a file (`path`, `from`, `len`), optionally cut
/// after `cut` bytes with an error (hyper then drops the connection).
struct Payload {
    head: Option<Bytes>,
    file: Option<(File, u64)>,
    cut: Option<u64>,
    sent: u64,
    counter: Option<Arc<Mutex<State>>>,
}

impl Payload {
    fn bytes(b: impl Into<Bytes>) -> Self {
        Self { head: Some(b.into()), file: None, cut: None, sent: 0, counter: None }
    }

    fn empty() -> Self {
        Self { head: None, file: None, cut: None, sent: 0, counter: None }
    }
}

impl Body for Payload {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Some(h) = self.head.take() {
            return Poll::Ready(Some(Ok(Frame::data(h))));
        }
        let me = &mut *self;
        let Some((f, left)) = me.file.as_mut() else { return Poll::Ready(None) };
        if *left == 0 {
            return Poll::Ready(None);
        }
        if me.cut.is_some_and(|c| me.sent >= c) {
            return Poll::Ready(Some(Err(std::io::Error::other("stand-in cut the download"))));
        }
        let mut want = (*left).min(256 * 1024);
        if let Some(c) = me.cut {
            want = want.min(c - me.sent).max(1);
        }
        let mut buf = vec![0u8; want as usize];
        match f.read(&mut buf) {
            Ok(0) => Poll::Ready(None),
            Ok(n) => {
                buf.truncate(n);
                *left -= n as u64;
                me.sent += n as u64;
                if let Some(st) = &me.counter {
                    st.lock().unwrap_or_else(|p| p.into_inner()).counters.download_bytes += n as u64;
                }
                Poll::Ready(Some(Ok(Frame::data(Bytes::from(buf)))))
            }
            Err(e) => Poll::Ready(Some(Err(e))),
        }
    }
}

type Resp = Response<Payload>;

fn json_resp(status: u16, v: &serde_json::Value) -> Resp {
    let mut r = Response::new(Payload::bytes(v.to_string()));
    *r.status_mut() = StatusCode::from_u16(status).expect("status");
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=UTF-8"));
    r
}

fn google_error(status: u16, reason: &str, message: &str, retry_after: Option<u64>) -> Resp {
    let domain = match reason {
        "rateLimitExceeded" | "userRateLimitExceeded" | "storageQuotaExceeded" | "dailyLimitExceeded" => "usageLimits",
        _ => "global",
    };
    let v = serde_json::json!({
        "error": {
            "code": status,
            "message": message,
            "errors": [{ "message": message, "domain": domain, "reason": reason }],
        }
    });
    let mut r = json_resp(status, &v);
    if let Some(s) = retry_after {
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_str(&s.to_string()).expect("hv"));
    }
    r
}

fn not_found(id: &str) -> Resp {
    google_error(404, "notFound", &format!("File not found: {id}."), None)
}

fn invalid(location: &str, message: &str) -> Resp {
    let v = serde_json::json!({
        "error": {
            "code": 400,
            "message": message,
            "errors": [{ "message": message, "domain": "global", "reason": "invalid", "location": location, "locationType": "parameter" }],
        }
    });
    json_resp(400, &v)
}

fn oauth_error(status: u16, error: &str, desc: &str) -> Resp {
    json_resp(status, &serde_json::json!({ "error": error, "error_description": desc }))
}

fn query_map(q: Option<&str>) -> HashMap<String, String> {
    let mut m = HashMap::new();
    for pair in q.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        m.insert(pct_decode(k), pct_decode(v));
    }
    m
}

fn pct_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' if i + 2 < b.len() => {
                let h = std::str::from_utf8(&b[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
                match h {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<Mutex<State>>,
    alt: bool,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let (stream, _) = tokio::select! {
            r = listener.accept() => match r { Ok(x) => x, Err(_) => continue },
            _ = stop.changed() => return,
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let kill = Arc::new(tokio::sync::Notify::new());
            let k2 = kill.clone();
            let svc = hyper::service::service_fn(move |req| {
                let state = state.clone();
                let kill = k2.clone();
                async move { Ok::<_, Infallible>(handle(state, req, kill, alt).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc);
            tokio::select! {
                _ = conn => {}
                _ = kill.notified() => {}
                _ = stop.changed() => {}
            }
        });
    }
}

struct Caller {
    email: String,
    sub: Option<String>,
    write: bool,
}

async fn handle(state: Arc<Mutex<State>>, req: Request<Incoming>, kill: Arc<tokio::sync::Notify>, alt: bool) -> Resp {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let raw_q = req.uri().query().map(str::to_string);
    let q = query_map(raw_q.as_deref());
    {
        let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
        let line = match &raw_q {
            Some(r) => format!("{path}?{r}"),
            None => path.clone(),
        };
        if std::env::var_os("STANDIN_TRACE").is_some() {
            let range = req.headers().get(header::CONTENT_RANGE).and_then(|v| v.to_str().ok()).unwrap_or("");
            eprintln!(
                "stand-in {:?}: {method} {} {range}",
                std::time::SystemTime::now(),
                line.chars().take(60).collect::<String>()
            );
        }
        st.counters.seen.push((method.to_string(), line));
    }
    if alt {
        return alt_download(&state, &req, &path);
    }
    if method == Method::POST && path == "/token" {
        return token(&state, req).await;
    }
    // Session PUTs need no token (the session URI is the capability).
    if path == "/upload/drive/v3/files" && q.contains_key("upload_id") {
        return session_put(&state, req, &q, kill).await;
    }
    let caller = match authenticate(&state, &req) {
        Ok(c) => c,
        Err(r) => return r,
    };
    state.lock().unwrap_or_else(|p| p.into_inner()).counters.api_requests += 1;
    let all = q.get("supportsAllDrives").is_some_and(|v| v == "true");
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method.clone(), segs.as_slice()) {
        (Method::POST, ["upload", "drive", "v3", "files"]) => start_session(&state, req, &q, &caller, None).await,
        (Method::PATCH, ["upload", "drive", "v3", "files", id]) => {
            let id = id.to_string();
            start_session(&state, req, &q, &caller, Some(id)).await
        }
        (Method::GET, ["drive", "v3", "files"]) => list(&state, &q, &caller),
        (Method::GET, ["drive", "v3", "files", id]) if q.get("alt").is_some_and(|a| a == "media") => {
            download(&state, &req, id, &caller, all)
        }
        (Method::GET, ["drive", "v3", "files", id]) => get(&state, id, &q, &caller, all),
        (Method::POST, ["drive", "v3", "files"]) => create(&state, req, &q, &caller).await,
        (Method::PATCH, ["drive", "v3", "files", id]) => {
            let id = id.to_string();
            patch(&state, req, &id, &q, &caller).await
        }
        (Method::DELETE, ["drive", "v3", "files", id]) => delete(&state, id, &caller, all),
        (Method::GET, ["drive", "v3", "drives", id]) => drive_get(&state, id, &q, &caller),
        _ => google_error(404, "notFound", &format!("no such method: {method} {path}"), None),
    }
}

fn authenticate(state: &Arc<Mutex<State>>, req: &Request<Incoming>) -> Result<Caller, Resp> {
    let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
    let auth = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("");
    let unauth = |st: &mut State, msg: &str| {
        st.counters.unauthorized += 1;
        let v = serde_json::json!({
            "error": {
                "code": 401,
                "message": msg,
                "errors": [{ "message": "Invalid Credentials", "domain": "global", "reason": "authError", "location": "Authorization", "locationType": "header" }],
                "status": "UNAUTHENTICATED",
            }
        });
        let mut r = json_resp(401, &v);
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"https://accounts.google.com/\""),
        );
        r
    };
    let Some(tok) = auth.strip_prefix("Bearer ") else {
        return Err(unauth(
            &mut st,
            "Request is missing required authentication credential. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
        ));
    };
    let Some(t) = st.tokens.get(tok).cloned() else {
        return Err(unauth(&mut st, "Request had invalid authentication credentials."));
    };
    if t.revoked || t.expires <= Instant::now() {
        return Err(unauth(&mut st, "Request had invalid authentication credentials."));
    }
    let drive_scope = |s: &&String| s.contains("/auth/drive");
    if !t.scopes.iter().any(|s| drive_scope(&s)) {
        return Err(google_error(403, "insufficientPermissions", "Insufficient Permission", None));
    }
    let write = t.scopes.iter().any(|s| s.ends_with("/auth/drive") || s.ends_with("/auth/drive.file"));
    let email = t.sub.clone().unwrap_or_else(|| SA_EMAIL.to_string());
    Ok(Caller { email, sub: t.sub, write })
}

async fn token(state: &Arc<Mutex<State>>, req: Request<Incoming>) -> Resp {
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return oauth_error(400, "invalid_request", "unreadable body"),
    };
    let form = query_map(Some(&String::from_utf8_lossy(&body)));
    let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
    st.counters.token_requests += 1;
    let refuse = |st: &mut State, status: u16, error: &str, desc: &str| {
        st.counters.tokens_refused += 1;
        oauth_error(status, error, desc)
    };
    match st.fault(Op::Token) {
        Some(Action::Fail { status, reason, message, retry_after }) => {
            let mut r = oauth_error(status, &reason, &message);
            if let Some(s) = retry_after {
                r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_str(&s.to_string()).expect("hv"));
            }
            return r;
        }
        Some(Action::BadGrant) => return refuse(&mut st, 400, "invalid_grant", "Invalid JWT Signature."),
        _ => {}
    }
    if form.get("grant_type").map(String::as_str) != Some("urn:ietf:params:oauth:grant-type:jwt-bearer") {
        return refuse(&mut st, 400, "unsupported_grant_type", "Invalid grant_type: ");
    }
    let Some(assertion) = form.get("assertion") else {
        return refuse(&mut st, 400, "invalid_request", "Missing required parameter: assertion");
    };
    let parts: Vec<&str> = assertion.split('.').collect();
    if parts.len() != 3 {
        return refuse(&mut st, 400, "invalid_grant", "Invalid JWT: not three segments.");
    }
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s.trim_end_matches('='));
    let (Ok(h), Ok(c), Ok(sig)) = (b64(parts[0]), b64(parts[1]), b64(parts[2])) else {
        return refuse(&mut st, 400, "invalid_grant", "Invalid JWT: bad base64url.");
    };
    let header: serde_json::Value = serde_json::from_slice(&h).unwrap_or_default();
    let claims: serde_json::Value = serde_json::from_slice(&c).unwrap_or_default();
    if header["alg"] != "RS256" {
        return refuse(&mut st, 400, "invalid_grant", "Invalid JWT Signature.");
    }
    let key = aws_lc_rs::signature::UnparsedPublicKey::new(
        &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
        st.public_key.clone(),
    );
    let signed = format!("{}.{}", parts[0], parts[1]);
    if key.verify(signed.as_bytes(), &sig).is_err() || st.key_disabled {
        return refuse(&mut st, 400, "invalid_grant", "Invalid JWT Signature.");
    }
    if claims["iss"] != SA_EMAIL {
        return refuse(&mut st, 400, "invalid_grant", "Invalid grant: account not found");
    }
    // Google's own client always signs for Google's token endpoint, whatever the key's
    // token_uri says; yup-oauth2 signs for the key's token_uri. Both name this endpoint.
    let token_uri = format!("{}/token", st.base);
    let aud = claims["aud"].as_str().unwrap_or("");
    if aud != token_uri && !GOOGLE_TOKEN_AUDIENCES.contains(&aud) {
        return refuse(&mut st, 400, "invalid_grant", "Invalid JWT: Failed audience check.");
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    let (iat, exp) = (claims["iat"].as_i64().unwrap_or(-1), claims["exp"].as_i64().unwrap_or(-1));
    if iat < 0 || exp < 0 || exp - iat > 3600 || exp <= iat || iat > now + 60 || exp <= now {
        return refuse(
            &mut st,
            400,
            "invalid_grant",
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.",
        );
    }
    let scopes: Vec<String> = claims["scope"].as_str().unwrap_or("").split_whitespace().map(str::to_string).collect();
    if scopes.is_empty() || scopes.iter().any(|s| !SCOPES.contains(&s.as_str())) {
        return refuse(&mut st, 400, "invalid_scope", "Invalid OAuth scope or ID token audience provided.");
    }
    let sub = claims["sub"].as_str().map(str::to_string);
    if sub.is_some() && !st.opts.delegation {
        return refuse(
            &mut st,
            401,
            "unauthorized_client",
            "Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of the scopes requested.",
        );
    }
    let tok = rand_id("ya29.c.standin-", 80);
    let life = st.opts.token_lifetime;
    st.tokens.insert(
        tok.clone(),
        Token { scopes, sub, expires: Instant::now() + Duration::from_secs(life), revoked: false },
    );
    st.issued.push(tok.clone());
    json_resp(200, &serde_json::json!({ "access_token": tok, "expires_in": life, "token_type": "Bearer" }))
}

fn fail_resp(a: Action) -> Option<Resp> {
    match a {
        Action::Fail { status, reason, message, retry_after } => {
            Some(google_error(status, &reason, &message, retry_after))
        }
        _ => None,
    }
}

fn check_fields(q: &HashMap<String, String>, list: bool) -> Result<Option<FieldTree>, Resp> {
    match q.get("fields") {
        None => Ok(None),
        Some(f) => {
            let t = parse_fields(f);
            match bad_field(&t, list) {
                Some(b) => Err(invalid("fields", &format!("Invalid field selection {b}"))),
                None => Ok(Some(t)),
            }
        }
    }
}

fn file_out(st: &State, it: &Item, who: &str, fields: Option<&FieldTree>) -> serde_json::Value {
    let full = st.resource(it, who);
    match fields {
        Some(t) => select(&full, t),
        None => select(&full, &parse_fields("kind,id,name,mimeType")),
    }
}

fn get(state: &Arc<Mutex<State>>, id: &str, q: &HashMap<String, String>, c: &Caller, all: bool) -> Resp {
    let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(r) = st.fault(Op::Get).and_then(fail_resp) {
        return r;
    }
    let fields = match check_fields(q, false) {
        Ok(f) => f,
        Err(r) => return r,
    };
    if !st.visible(id, &c.email, all) {
        return not_found(id);
    }
    let it = st.items[id].clone();
    json_resp(200, &file_out(&st, &it, &c.email, fields.as_ref()))
}

fn list(state: &Arc<Mutex<State>>, q: &HashMap<String, String>, c: &Caller) -> Resp {
    let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(r) = st.fault(Op::List).and_then(fail_resp) {
        return r;
    }
    let fields = match check_fields(q, true) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let clauses = match parse_q(q.get("q").map(String::as_str).unwrap_or("")) {
        Ok(c) => c,
        Err(_) => return invalid("q", "Invalid Value"),
    };
    let all = q.get("supportsAllDrives").is_some_and(|v| v == "true")
        && q.get("includeItemsFromAllDrives").is_some_and(|v| v == "true");
    let mut hits: Vec<Item> = st
        .items
        .values()
        .filter(|it| !it.parents.is_empty())
        .filter(|it| all || it.drive_id.is_none())
        .filter(|it| st.role(&it.id, &c.email).is_some())
        .filter(|it| {
            clauses.iter().all(|cl| match cl {
                Clause::NameEq(n, eq) => (it.name == *n) == *eq,
                Clause::InParents(p) => it.parents.contains(p),
                Clause::Trashed(t) => it.trashed == *t,
                Clause::MimeEq(m, eq) => (it.mime == *m) == *eq,
            })
        })
        .cloned()
        .collect();
    // Newest first: a client must not rely on the order.
    hits.sort_by(|a, b| b.created.cmp(&a.created).then(b.id.cmp(&a.id)));
    let size =
        q.get("pageSize").and_then(|s| s.parse::<usize>().ok()).unwrap_or(100).clamp(1, 1000).min(st.opts.page_size);
    let start = q.get("pageToken").and_then(|t| t.strip_prefix("page-")).and_then(|t| t.parse().ok()).unwrap_or(0usize);
    let page: Vec<serde_json::Value> = hits.iter().skip(start).take(size).map(|it| st.resource(it, &c.email)).collect();
    let mut full = serde_json::json!({ "kind": "drive#fileList", "incompleteSearch": false, "files": page });
    if start + size < hits.len() {
        full["nextPageToken"] = format!("page-{}", start + size).into();
    }
    let out = match fields {
        Some(t) => select(&full, &t),
        None => {
            let mut v = select(&full, &parse_fields("kind,incompleteSearch,files(kind,id,name,mimeType)"));
            if let Some(n) = full.get("nextPageToken") {
                v["nextPageToken"] = n.clone();
            }
            v
        }
    };
    json_resp(200, &out)
}

fn drive_get(state: &Arc<Mutex<State>>, id: &str, q: &HashMap<String, String>, c: &Caller) -> Resp {
    let st = state.lock().unwrap_or_else(|p| p.into_inner());
    match st.drives.get(id) {
        Some(d) if d.members.contains_key(&c.email) => {
            let full = serde_json::json!({ "kind": "drive#drive", "id": id, "name": d.name });
            let out = match q.get("fields") {
                Some(f) => select(&full, &parse_fields(f)),
                None => full,
            };
            json_resp(200, &out)
        }
        _ => google_error(404, "notFound", &format!("Shared drive not found: {id}"), None),
    }
}

/// May `c` store a new child in `parent`? Ok(()) or the error Drive gives.
fn may_add(st: &State, parent: &str, c: &Caller, all: bool, folder: bool) -> Result<(), Resp> {
    if !st.visible(parent, &c.email, all) {
        return Err(not_found(parent));
    }
    let p = &st.items[parent];
    if p.mime != FOLDER_MIME {
        return Err(invalid("parents", "The specified parent is not a folder."));
    }
    if !c.write || st.role(parent, &c.email) != Some(Role::Writer) {
        return Err(google_error(
            403,
            "insufficientFilePermissions",
            "The user does not have sufficient permissions for this file.",
            None,
        ));
    }
    if p.drive_id.is_none() && c.sub.is_none() && !folder {
        return Err(google_error(
            403,
            "storageQuotaExceeded",
            "Service Accounts do not have storage quota. Leverage shared drives (https://developers.google.com/workspace/drive/api/guides/about-shareddrives), or use OAuth delegation (http://support.google.com/a/answer/7281227) instead.",
            None,
        ));
    }
    Ok(())
}

async fn read_json(req: Request<Incoming>) -> Result<serde_json::Value, Resp> {
    let body = req.into_body().collect().await.map_err(|_| invalid("body", "unreadable body"))?.to_bytes();
    if body.is_empty() {
        return Ok(serde_json::json!({}));
    }
    serde_json::from_slice(&body).map_err(|_| invalid("body", "Invalid JSON payload received."))
}

fn apply_props(it: &mut Item, meta: &serde_json::Value) {
    if let Some(p) = meta.get("appProperties").and_then(|p| p.as_object()) {
        for (k, v) in p {
            match v.as_str() {
                Some(s) => {
                    it.props.insert(k.clone(), s.to_string());
                }
                None => {
                    it.props.remove(k);
                }
            }
        }
    }
}

async fn create(state: &Arc<Mutex<State>>, req: Request<Incoming>, q: &HashMap<String, String>, c: &Caller) -> Resp {
    let meta = match read_json(req).await {
        Ok(m) => m,
        Err(r) => return r,
    };
    let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(r) = st.fault(Op::Write).and_then(fail_resp) {
        return r;
    }
    let fields = match check_fields(q, false) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let all = q.get("supportsAllDrives").is_some_and(|v| v == "true");
    let mime = meta["mimeType"].as_str().unwrap_or("application/octet-stream").to_string();
    let parent = meta["parents"][0].as_str().unwrap_or("").to_string();
    if let Err(r) = may_add(&st, &parent, c, all, mime == FOLDER_MIME) {
        return r;
    }
    let p = st.items[&parent].clone();
    let t = st.tick();
    let mut it = Item {
        id: rand_id("1", 32),
        name: meta["name"].as_str().unwrap_or("Untitled").to_string(),
        mime,
        parents: vec![parent],
        drive_id: p.drive_id.clone(),
        owner: if p.drive_id.is_some() { None } else { Some(c.email.clone()) },
        trashed: false,
        props: BTreeMap::new(),
        size: 0,
        md5: hexs(&Md5::digest(b"")),
        created: t,
        modified: t,
        content: None,
        version: 1,
    };
    apply_props(&mut it, &meta);
    if it.owner.is_some() && p.owner.is_some() {
        // Shared My Drive folders: the new item stays visible to the sharer's audience.
        it.owner = p.owner.clone();
    }
    st.items.insert(it.id.clone(), it.clone());
    json_resp(200, &file_out(&st, &it, &c.email, fields.as_ref()))
}

async fn patch(
    state: &Arc<Mutex<State>>,
    req: Request<Incoming>,
    id: &str,
    q: &HashMap<String, String>,
    c: &Caller,
) -> Resp {
    let meta = match read_json(req).await {
        Ok(m) => m,
        Err(r) => return r,
    };
    let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(r) = st.fault(Op::Write).and_then(fail_resp) {
        return r;
    }
    let fields = match check_fields(q, false) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let all = q.get("supportsAllDrives").is_some_and(|v| v == "true");
    if !st.visible(id, &c.email, all) {
        return not_found(id);
    }
    if !c.write || st.role(id, &c.email) != Some(Role::Writer) {
        return google_error(
            403,
            "insufficientFilePermissions",
            "The user does not have sufficient permissions for this file.",
            None,
        );
    }
    let t = st.tick();
    let it = st.items.get_mut(id).expect("visible item");
    apply_props(it, &meta);
    if let Some(tr) = meta.get("trashed").and_then(|t| t.as_bool()) {
        it.trashed = tr;
    }
    if let Some(n) = meta.get("name").and_then(|t| t.as_str()) {
        it.name = n.to_string();
    }
    it.modified = t;
    let it = it.clone();
    json_resp(200, &file_out(&st, &it, &c.email, fields.as_ref()))
}

fn delete(state: &Arc<Mutex<State>>, id: &str, c: &Caller, all: bool) -> Resp {
    let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(r) = st.fault(Op::Write).and_then(fail_resp) {
        return r;
    }
    if !st.visible(id, &c.email, all) {
        return not_found(id);
    }
    if st.role(id, &c.email) != Some(Role::Writer) {
        return google_error(
            403,
            "insufficientFilePermissions",
            "The user does not have sufficient permissions for this file.",
            None,
        );
    }
    st.items.remove(id);
    let mut r = Response::new(Payload::empty());
    *r.status_mut() = StatusCode::NO_CONTENT;
    r
}

async fn start_session(
    state: &Arc<Mutex<State>>,
    req: Request<Incoming>,
    q: &HashMap<String, String>,
    c: &Caller,
    update: Option<String>,
) -> Resp {
    if q.get("uploadType").map(String::as_str) != Some("resumable") {
        return invalid("uploadType", "The stand-in takes resumable uploads only (uploadType=resumable).");
    }
    let len =
        req.headers().get("x-upload-content-length").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    let mime = req
        .headers()
        .get("x-upload-content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream")
        .to_string();
    let meta = match read_json(req).await {
        Ok(m) => m,
        Err(r) => return r,
    };
    let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(r) = st.fault(Op::Start).and_then(fail_resp) {
        return r;
    }
    if let Err(r) = check_fields(q, false) {
        return r;
    }
    let all = q.get("supportsAllDrives").is_some_and(|v| v == "true");
    match &update {
        Some(id) => {
            if !st.visible(id, &c.email, all) {
                return not_found(id);
            }
            if !c.write || st.role(id, &c.email) != Some(Role::Writer) {
                return google_error(
                    403,
                    "insufficientFilePermissions",
                    "The user does not have sufficient permissions for this file.",
                    None,
                );
            }
            let it = &st.items[id];
            if it.drive_id.is_none() && c.sub.is_none() {
                return google_error(
                    403,
                    "storageQuotaExceeded",
                    "Service Accounts do not have storage quota. Leverage shared drives (https://developers.google.com/workspace/drive/api/guides/about-shareddrives), or use OAuth delegation (http://support.google.com/a/answer/7281227) instead.",
                    None,
                );
            }
        }
        None => {
            let parent = meta["parents"][0].as_str().unwrap_or("").to_string();
            if parent.is_empty() {
                return invalid("parents", "A parent is required here (the stand-in has no root folder of its own).");
            }
            if let Err(r) = may_add(&st, &parent, c, all, false) {
                return r;
            }
        }
    }
    st.counters.sessions_started += 1;
    let id = rand_id("ABPt", 60);
    let data = st.dir.join(format!("session-{id}"));
    if File::create(&data).is_err() {
        return google_error(500, "internalError", "stand-in storage failed", None);
    }
    st.sessions.insert(
        id.clone(),
        Session {
            update,
            meta,
            mime,
            total: len,
            committed: 0,
            data,
            md5: Some(Md5::new()),
            fields: q.get("fields").cloned(),
            expired: false,
            done: None,
            all_drives: all,
        },
    );
    let mut r = Response::new(Payload::empty());
    let loc = format!("{}/upload/drive/v3/files?uploadType=resumable&upload_id={id}", st.base);
    r.headers_mut().insert(header::LOCATION, HeaderValue::from_str(&loc).expect("hv"));
    r.headers_mut().insert("x-guploader-uploadid", HeaderValue::from_str(&id).expect("hv"));
    r
}

/// A `Content-Range`: the byte range sent (none for a status query) and the total (none
/// when `*`).
type ContentRange = (Option<(u64, u64)>, Option<u64>);

/// `bytes S-E/T`, `bytes */T`, `bytes */*`.
fn parse_content_range(v: &str) -> Option<ContentRange> {
    let rest = v.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let total = if total == "*" { None } else { Some(total.parse().ok()?) };
    if range == "*" {
        return Some((None, total));
    }
    let (s, e) = range.split_once('-')?;
    let (s, e): (u64, u64) = (s.parse().ok()?, e.parse().ok()?);
    if e < s {
        return None;
    }
    Some((Some((s, e)), total))
}

fn incomplete(committed: u64) -> Resp {
    let mut r = Response::new(Payload::empty());
    *r.status_mut() = StatusCode::PERMANENT_REDIRECT;
    if committed > 0 {
        r.headers_mut()
            .insert(header::RANGE, HeaderValue::from_str(&format!("bytes=0-{}", committed - 1)).expect("hv"));
    }
    r.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    r
}

/// Finish a session: the file (new or a new revision) with the metadata; its resource.
fn finish(st: &mut State, id: &str, who: &str) -> Resp {
    let s = st.sessions.get_mut(id).expect("session");
    let md5 = match s.md5.take() {
        Some(m) => hexs(&m.finalize()),
        None => {
            let mut f = File::open(&s.data).expect("session data");
            let mut h = Md5::new();
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = f.read(&mut buf).expect("read");
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
            }
            hexs(&h.finalize())
        }
    };
    let size = s.committed;
    let meta = s.meta.clone();
    let update = s.update.clone();
    let mime = s.mime.clone();
    let fields = s.fields.clone();
    let t = st.tick();
    let content = st.dir.join(format!("content-{id}"));
    let data = st.sessions[id].data.clone();
    std::fs::rename(&data, &content).expect("keep content");
    let file_id = match update {
        Some(fid) => {
            let it = st.items.get_mut(&fid).expect("updated item");
            it.size = size;
            it.md5 = md5;
            it.content = Some(content);
            it.modified = t;
            it.version += 1;
            apply_props(it, &meta);
            fid
        }
        None => {
            let parent = meta["parents"][0].as_str().unwrap_or("").to_string();
            let p = st.items.get(&parent).cloned();
            let mut it = Item {
                id: rand_id("1", 32),
                name: meta["name"].as_str().unwrap_or("Untitled").to_string(),
                mime: meta["mimeType"].as_str().map(str::to_string).unwrap_or(mime),
                parents: vec![parent],
                drive_id: p.as_ref().and_then(|p| p.drive_id.clone()),
                owner: p.as_ref().and_then(|p| p.owner.clone()),
                trashed: false,
                props: BTreeMap::new(),
                size,
                md5,
                created: t,
                modified: t,
                content: Some(content),
                version: 1,
            };
            apply_props(&mut it, &meta);
            let id = it.id.clone();
            st.items.insert(id.clone(), it);
            id
        }
    };
    st.sessions.get_mut(id).expect("session").done = Some(file_id.clone());
    done_resp(st, &file_id, fields.as_deref(), who)
}

fn done_resp(st: &State, file_id: &str, fields: Option<&str>, who: &str) -> Resp {
    let it = st.items[file_id].clone();
    let t = fields.map(parse_fields);
    json_resp(200, &file_out(st, &it, who, t.as_ref()))
}

async fn session_put(
    state: &Arc<Mutex<State>>,
    req: Request<Incoming>,
    q: &HashMap<String, String>,
    kill: Arc<tokio::sync::Notify>,
) -> Resp {
    let sid = q.get("upload_id").cloned().unwrap_or_default();
    let cr = req.headers().get(header::CONTENT_RANGE).and_then(|v| v.to_str().ok()).map(str::to_string);
    let clen =
        req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    let method = req.method().clone();
    let who = SA_EMAIL.to_string();
    // Where the session stands, and what this request is.
    let (range, total_h) = match &cr {
        Some(v) => match parse_content_range(v) {
            Some(x) => x,
            None => return invalid("Content-Range", "Failed to parse Content-Range header."),
        },
        None => match clen {
            // The whole file in one request.
            Some(0) => (None, Some(0)),
            Some(n) => (Some((0, n - 1)), Some(n)),
            None => return invalid("Content-Length", "Content-Length is required."),
        },
    };
    if method != Method::PUT && method != Method::POST {
        return invalid("method", "Session requests are PUT.");
    }
    let op = if range.is_some() { Op::Chunk } else { Op::Status };
    let (fault, data, committed, total, idle, throttle) = {
        let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
        let idle = st.opts.body_idle;
        let throttle = st.opts.throttle;
        if op == Op::Status {
            st.counters.status_queries += 1;
        } else {
            st.counters.chunks += 1;
        }
        let expired_status = st.opts.expired_status;
        let Some(s) = st.sessions.get(&sid) else {
            return google_error(404, "notFound", "Not Found", None);
        };
        if s.expired {
            return google_error(expired_status, "notFound", "Not Found", None);
        }
        if let Some(fid) = s.done.clone() {
            let fields = s.fields.clone();
            return done_resp(&st, &fid, fields.as_deref(), &who);
        }
        let (data, committed, total) = (s.data.clone(), s.committed, s.total);
        let fault = st.fault(op);
        (fault, data, committed, total, idle, throttle)
    };
    if let Some(r) = fault.clone().and_then(fail_resp) {
        // Drain the body so the connection stays usable, then fail.
        let _ = req.into_body().collect().await;
        return r;
    }
    let cut = match fault {
        Some(Action::Cut(n)) => Some(n),
        _ => None,
    };
    if let (Some(t), Some(th)) = (total, total_h)
        && t != th
    {
        let _ = req.into_body().collect().await;
        return invalid("Content-Range", &format!("The total size {th} does not match the size {t} given before."));
    }
    let total = total.or(total_h);
    let Some((s, e)) = range else {
        // A status query; with everything there and the size known, it finishes the upload.
        let _ = req.into_body().collect().await;
        let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
        if total == Some(committed) {
            if let Some(sess) = st.sessions.get_mut(&sid) {
                sess.total = total;
            }
            return finish(&mut st, &sid, &who);
        }
        return incomplete(committed);
    };
    let len = e - s + 1;
    if clen.is_some_and(|c| c != len) {
        let _ = req.into_body().collect().await;
        return invalid("Content-Length", "Content-Length does not match Content-Range.");
    }
    let last = total.is_some_and(|t| e + 1 == t);
    if total.is_some_and(|t| e + 1 > t) {
        let _ = req.into_body().collect().await;
        return invalid("Content-Range", "The range goes past the total size.");
    }
    if s > committed {
        let _ = req.into_body().collect().await;
        return invalid(
            "Content-Range",
            &format!(
                "Invalid request. According to the Content-Range header, the upload offset is {s} byte(s), which exceeds already uploaded size of {committed} byte(s)."
            ),
        );
    }
    if !last && len % UNIT != 0 {
        let _ = req.into_body().collect().await;
        return invalid(
            "Content-Range",
            &format!(
                "Invalid request. The number of bytes uploaded is required to be equal or greater than 262144, except for the final request (it's recommended to be the exact multiple of 262144). The received request contained {len} bytes, which does not meet this requirement."
            ),
        );
    }
    // Receive: bytes before `committed` are skipped, the rest appended in order.
    let mut out = match OpenOptions::new().write(true).open(&data) {
        Ok(f) => f,
        Err(_) => return google_error(404, "notFound", "Not Found", None),
    };
    let _ = out.seek(SeekFrom::Start(committed));
    let mut body = req.into_body();
    let mut pos = s; // absolute offset of the next body byte
    let mut cursor = committed; // where the next fresh byte goes
    let mut read = 0u64;
    let mut new_md5: Vec<Bytes> = Vec::new();
    let mut idle_out = false;
    let began = Instant::now();
    loop {
        let frame = match tokio::time::timeout(idle, body.frame()).await {
            Ok(Some(Ok(f))) => f,
            Ok(Some(Err(_))) | Ok(None) => break,
            Err(_) => {
                idle_out = true;
                break;
            }
        };
        let Ok(mut chunk) = frame.into_data() else { continue };
        if let Some(c) = cut {
            let room = c.saturating_sub(read);
            if (chunk.len() as u64) > room {
                chunk.truncate(room as usize);
            }
        }
        read += chunk.len() as u64;
        let end = pos + chunk.len() as u64;
        if end > cursor {
            let fresh = chunk.slice((cursor - pos) as usize..);
            let _ = out.write_all(&fresh);
            new_md5.push(fresh);
            cursor = end;
        }
        pos = end;
        {
            let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
            st.counters.upload_bytes += chunk.len() as u64;
        }
        if cut.is_some_and(|c| read >= c) {
            break;
        }
        if let Some(rate) = throttle {
            let due = Duration::from_secs_f64(read as f64 / rate.max(1) as f64);
            if let Some(wait) = due.checked_sub(began.elapsed()) {
                tokio::time::sleep(wait).await;
            }
        }
    }
    let answer = {
        let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
        let received_to = cursor;
        let Some(sess) = st.sessions.get_mut(&sid) else { return google_error(404, "notFound", "Not Found", None) };
        if cut.is_some() || read < len {
            // Cut (by the fault, or by the client going away): keep whole 256 KiB units.
            let keep = (received_to / UNIT * UNIT).max(committed);
            let _ = out.set_len(keep);
            if keep == received_to {
                if let Some(m) = sess.md5.as_mut() {
                    for b in &new_md5 {
                        m.update(b);
                    }
                }
            } else {
                sess.md5 = None;
            }
            sess.committed = keep;
            if cut.is_some() || idle_out {
                if cut.is_some() {
                    st.counters.cuts += 1;
                }
                None
            } else {
                Some(incomplete(keep))
            }
        } else {
            if let Some(m) = sess.md5.as_mut() {
                for b in &new_md5 {
                    m.update(b);
                }
            }
            sess.committed = received_to;
            if total.is_some() {
                sess.total = total;
            }
            if last { Some(finish(&mut st, &sid, &who)) } else { Some(incomplete(received_to)) }
        }
    };
    match answer {
        Some(r) => r,
        None => {
            // Drop the connection without an answer: never return, so no response is
            // written before the connection goes.
            kill.notify_one();
            std::future::pending::<()>().await;
            unreachable!("pending never ends")
        }
    }
}

fn parse_range(v: &str, size: u64) -> Option<(u64, u64)> {
    let r = v.trim().strip_prefix("bytes=")?;
    let (a, b) = r.split_once('-')?;
    let a: u64 = a.trim().parse().ok()?;
    let b: u64 = if b.trim().is_empty() { size.saturating_sub(1) } else { b.trim().parse().ok()? };
    (a < size && a <= b).then_some((a, b.min(size - 1)))
}

fn media(state: &Arc<Mutex<State>>, path: &Path, size: u64, range: Option<&str>, cut: Option<u64>) -> Resp {
    let (status, from, to) = match range {
        Some(r) => match parse_range(r, size) {
            Some((a, b)) => (StatusCode::PARTIAL_CONTENT, a, b),
            None => {
                let mut resp = json_resp(
                    416,
                    &serde_json::json!({ "error": { "code": 416, "message": "Request range not satisfiable" } }),
                );
                resp.headers_mut()
                    .insert(header::CONTENT_RANGE, HeaderValue::from_str(&format!("bytes */{size}")).expect("hv"));
                return resp;
            }
        },
        None => (StatusCode::OK, 0, size.saturating_sub(1)),
    };
    let len = if size == 0 { 0 } else { to - from + 1 };
    let mut f = File::open(path).expect("content");
    let _ = f.seek(SeekFrom::Start(from));
    let mut r = Response::new(Payload { head: None, file: Some((f, len)), cut, sent: 0, counter: Some(state.clone()) });
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from_str(&len.to_string()).expect("hv"));
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    if status == StatusCode::PARTIAL_CONTENT {
        h.insert(header::CONTENT_RANGE, HeaderValue::from_str(&format!("bytes {from}-{to}/{size}")).expect("hv"));
    }
    r
}

fn download(state: &Arc<Mutex<State>>, req: &Request<Incoming>, id: &str, c: &Caller, all: bool) -> Resp {
    let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
    st.counters.downloads += 1;
    // With redirects on, a cut happens at the other origin, which sends the bytes.
    let redirect = st.opts.redirect_downloads;
    let fault = st.fault_if(Op::Download, |a| !redirect || matches!(a, Action::Fail { .. }));
    if let Some(r) = fault.clone().and_then(fail_resp) {
        return r;
    }
    if !st.visible(id, &c.email, all) {
        return not_found(id);
    }
    let it = st.items[id].clone();
    let Some(path) = it.content.clone() else {
        return google_error(403, "fileNotDownloadable", "Only files with binary content can be downloaded.", None);
    };
    if st.opts.redirect_downloads {
        let ticket = rand_id("t", 24);
        st.tickets.insert(ticket.clone(), path);
        let mut r = Response::new(Payload::empty());
        *r.status_mut() = StatusCode::FOUND;
        let loc = format!("{}/download/{ticket}?e=download", st.alt_base);
        r.headers_mut().insert(header::LOCATION, HeaderValue::from_str(&loc).expect("hv"));
        return r;
    }
    drop(st);
    let cut = match fault {
        Some(Action::Cut(n)) => Some(n),
        _ => None,
    };
    let range = req.headers().get(header::RANGE).and_then(|v| v.to_str().ok());
    media(state, &path, it.size, range, cut)
}

/// The second origin: serves redirected downloads, and counts an `Authorization` header
/// that should not have followed the redirect.
fn alt_download(state: &Arc<Mutex<State>>, req: &Request<Incoming>, path: &str) -> Resp {
    let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
    if req.headers().contains_key(header::AUTHORIZATION) {
        st.counters.auth_leaks += 1;
    }
    let ticket = path.strip_prefix("/download/").unwrap_or("");
    let Some(p) = st.tickets.get(ticket).cloned() else {
        return google_error(404, "notFound", "Not Found", None);
    };
    let fault = st.fault(Op::Download);
    drop(st);
    let cut = match fault {
        Some(Action::Cut(n)) => Some(n),
        _ => None,
    };
    let size = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
    let range = req.headers().get(header::RANGE).and_then(|v| v.to_str().ok());
    media(state, &p, size, range, cut)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q_subset_parses_escapes_and_refuses_the_rest() {
        let c =
            parse_q("name = 'it\\'s \\\\ ü' and 'F1' in parents and trashed = false and mimeType != 'x'").expect("q");
        assert_eq!(
            c,
            vec![
                Clause::NameEq("it's \\ ü".into(), true),
                Clause::InParents("F1".into()),
                Clause::Trashed(false),
                Clause::MimeEq("x".into(), false),
            ]
        );
        assert!(parse_q("name contains 'a'").is_err());
        assert!(parse_q("name = 'a' or name = 'b'").is_err());
    }

    #[test]
    fn fields_select_nested_values() {
        let v = serde_json::json!({"files": [{"id": "1", "name": "a", "size": "3"}], "nextPageToken": "p"});
        assert_eq!(
            select(&v, &parse_fields("nextPageToken,files(id,size)")),
            serde_json::json!({"files": [{"id": "1", "size": "3"}], "nextPageToken": "p"})
        );
        assert_eq!(select(&v, &parse_fields("files/id")), serde_json::json!({"files": [{"id": "1"}]}));
    }
}
