//! The Hub's HTTP API as the official client speaks it (read from `huggingface_hub`):
//! repo info and creation, whoami, preupload, the LFS batch, tree listings (paged by
//! `Link: <...>; rel="next"`), paths-info, commits as NDJSON, and `/resolve/` downloads.
//! One `reqwest` client with redirects off; a 429 closes a gate for every caller of this
//! remote until the wait the Hub asked for has passed, so workers never storm it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::Deserialize;

use super::error::{HttpFailure, Place, classify, network};
use super::token::{self, Env, Token};
use crate::sync::remote::{ErrorKind, RemoteError};

/// `Accept`/`Content-Type` of the LFS batch API.
pub const LFS_JSON: &str = "application/vnd.git-lfs+json";

/// The public Hub; signed URLs it hands out are rewritten to a configured mirror.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// A tree entry (`/tree` and `/paths-info`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TreeEntry {
    #[serde(rename = "type")]
    pub kind: String,
    pub path: String,
    #[serde(default)]
    pub size: u64,
    /// The git blob (or tree) id.
    #[serde(default)]
    pub oid: String,
    #[serde(default)]
    pub lfs: Option<LfsInfo>,
}

impl TreeEntry {
    pub fn is_file(&self) -> bool {
        self.kind == "file"
    }

    /// The SHA-256 of an LFS file's content.
    pub fn sha256(&self) -> Option<&str> {
        self.lfs.as_ref().map(|l| l.oid.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct LfsInfo {
    pub oid: String,
    pub size: u64,
}

/// What `/api/models/{repo}` says about a repo.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RepoInfo {
    #[serde(default)]
    pub private: bool,
    #[serde(default)]
    pub sha: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PreuploadFile {
    pub path: String,
    #[serde(rename = "uploadMode")]
    pub upload_mode: String,
    #[serde(rename = "shouldIgnore", default)]
    pub should_ignore: bool,
}

#[derive(Debug, Deserialize)]
struct PreuploadAnswer {
    files: Vec<PreuploadFile>,
}

/// One object of an LFS batch answer.
#[derive(Debug, Clone, Deserialize)]
pub struct BatchObject {
    pub oid: String,
    pub size: u64,
    #[serde(default)]
    pub actions: Option<BatchActions>,
    #[serde(default)]
    pub error: Option<BatchError>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct BatchActions {
    pub upload: Option<LfsAction>,
    pub verify: Option<LfsAction>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LfsAction {
    pub href: String,
    #[serde(default)]
    pub header: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct BatchError {
    pub code: u16,
    pub message: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct BatchAnswer {
    #[serde(default)]
    pub transfer: Option<String>,
    pub objects: Vec<BatchObject>,
}

/// `/api/whoami-v2`, the parts used.
#[derive(Debug, Clone, Deserialize)]
pub struct WhoAmI {
    pub name: String,
    #[serde(default)]
    pub orgs: Vec<OrgRef>,
    #[serde(default)]
    pub auth: Option<WhoAuth>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct OrgRef {
    pub name: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct WhoAuth {
    #[serde(rename = "accessToken", default)]
    pub access_token: Option<AccessToken>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AccessToken {
    #[serde(default)]
    pub role: String,
    #[serde(rename = "fineGrained", default)]
    pub fine_grained: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CommitAnswer {
    #[serde(rename = "commitOid")]
    pub commit_oid: String,
}

/// A failed request: the error in words, plus the status and `X-Error-Code` when the Hub
/// answered (so callers can tell a missing repo from a missing file).
#[derive(Debug)]
pub struct Fail {
    pub err: RemoteError,
    pub status: Option<u16>,
    pub code: Option<String>,
}

impl Fail {
    /// The Hub said the repo does not exist.
    pub fn repo_missing(&self) -> bool {
        self.code.as_deref() == Some("RepoNotFound")
    }

    /// The Hub said the path does not exist (in an existing repo and revision).
    pub fn entry_missing(&self) -> bool {
        self.code.as_deref() == Some("EntryNotFound") || (self.status == Some(404) && self.code.is_none())
    }
}

impl From<Fail> for RemoteError {
    fn from(f: Fail) -> Self {
        f.err
    }
}

impl From<RemoteError> for Fail {
    fn from(err: RemoteError) -> Self {
        Fail { err, status: None, code: None }
    }
}

/// How a commit ended when the Hub said no.
#[derive(Debug)]
pub enum CommitRefused {
    /// 409/412: the branch moved since the parent we named (or a concurrent commit).
    Conflict(String),
    Other(RemoteError),
}

/// Percent-encode one path segment (RFC 3986 unreserved characters stay).
pub fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Percent-encode a path, keeping its `/`.
pub fn encode_path(p: &str) -> String {
    p.split('/').map(encode_segment).collect::<Vec<_>>().join("/")
}

/// The Hub client of one remote.
pub struct Hub {
    http: reqwest::Client,
    pub endpoint: String,
    pub repo_id: String,
    pub revision: String,
    pub remote: String,
    env: Arc<dyn Env + Send + Sync>,
    /// Requests wait until then after a 429 (shared by every worker of this remote).
    gate: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").field("endpoint", &self.endpoint).field("repo_id", &self.repo_id).finish()
    }
}

impl Hub {
    pub fn new(
        remote: &str,
        endpoint: &str,
        repo_id: &str,
        revision: &str,
        env: Arc<dyn Env + Send + Sync>,
    ) -> Result<Self, RemoteError> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(30))
            // A stalled connection fails instead of hanging an upload forever.
            .read_timeout(Duration::from_secs(300))
            .user_agent(concat!("opsconsole/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| RemoteError::transient(format!("remote '{remote}': cannot set up HTTPS: {e}")))?;
        Ok(Self {
            http,
            endpoint: endpoint.trim_end_matches('/').to_string(),
            repo_id: repo_id.to_string(),
            revision: revision.to_string(),
            remote: remote.to_string(),
            env,
            gate: Mutex::new(None),
        })
    }

    pub fn place(&self) -> Place<'_> {
        Place { remote: &self.remote, repo: &self.repo_id, revision: &self.revision }
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The token, found afresh (a user who fixed it need not restart anything).
    pub fn token(&self) -> Result<Token, RemoteError> {
        token::find(self.env.as_ref()).map_err(|e| {
            RemoteError::new(ErrorKind::Auth, format!("remote '{}': {e}", self.remote)).with_fix(
                "create a write token at https://huggingface.co/settings/tokens and set HF_TOKEN, or run \
                 `hf auth login` (it writes ~/.cache/huggingface/token)",
            )
        })
    }

    pub fn host(&self) -> String {
        reqwest::Url::parse(&self.endpoint)
            .ok()
            .and_then(|u| {
                u.host_str().map(|h| match u.port() {
                    Some(p) => format!("{h}:{p}"),
                    None => h.to_string(),
                })
            })
            .unwrap_or_else(|| self.endpoint.clone())
    }

    fn api(&self, tail: &str) -> String {
        format!("{}/api/models/{}/{tail}", self.endpoint, self.repo_id)
    }

    /// A signed URL from the Hub pointing at the public Hub is sent to the configured
    /// endpoint instead (a mirror or proxy), as the official client does.
    pub fn fix_url(&self, url: &str) -> String {
        if self.endpoint != DEFAULT_ENDPOINT && url.starts_with(DEFAULT_ENDPOINT) {
            format!("{}{}", self.endpoint, &url[DEFAULT_ENDPOINT.len()..])
        } else {
            url.to_string()
        }
    }

    /// Wait out the 429 gate, or fail at once when `fail_fast`.
    fn gate_left(&self) -> Option<Duration> {
        let g = self.gate.lock().unwrap_or_else(|p| p.into_inner());
        g.and_then(|until| until.checked_duration_since(Instant::now())).filter(|d| !d.is_zero())
    }

    fn close_gate(&self, d: Duration) {
        let mut g = self.gate.lock().unwrap_or_else(|p| p.into_inner());
        let until = Instant::now() + d;
        if g.is_none_or(|old| old < until) {
            *g = Some(until);
        }
    }

    /// Send `rb` (with the token when given). A non-success answer becomes an error (a 3xx
    /// is handed back when `redirects_ok`). While the gate is closed nothing is sent.
    pub async fn send(
        &self,
        what: &str,
        rb: RequestBuilder,
        token: Option<&Token>,
        redirects_ok: bool,
    ) -> Result<Response, Fail> {
        if let Some(left) = self.gate_left() {
            return Err(RemoteError::transient(format!(
                "remote '{}': holding {what} for {}s; the Hub asked this account to slow down (429)",
                self.remote,
                left.as_secs().max(1)
            ))
            .with_retry_after(left)
            .into());
        }
        let rb = match token {
            Some(t) => rb.header(AUTHORIZATION, format!("Bearer {}", t.secret())),
            None => rb,
        };
        let resp = rb.send().await.map_err(|e| Fail::from(network(&e, what, &self.host(), &self.remote)))?;
        let status = resp.status();
        if status.is_success() || (redirects_ok && status.is_redirection()) {
            return Ok(resp);
        }
        let f = self.read_failure(resp, token).await;
        if f.status == 429 {
            self.close_gate(f.retry_after.unwrap_or(Duration::from_secs(60)));
        }
        Err(Fail { err: classify(&f, what, self.place()), status: Some(f.status), code: f.code.clone() })
    }

    pub async fn read_failure(&self, resp: Response, token: Option<&Token>) -> HttpFailure {
        let status = resp.status().as_u16();
        let headers: HeaderMap = resp.headers().clone();
        let body = resp.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
        let mut f = HttpFailure::from_parts(status, &headers, &body);
        if let Some(t) = token {
            f.message = t.redact(&f.message);
        }
        f
    }

    async fn json<T: serde::de::DeserializeOwned>(&self, what: &str, resp: Response) -> Result<T, RemoteError> {
        let bytes = resp.bytes().await.map_err(|e| network(&e, what, &self.host(), &self.remote))?;
        serde_json::from_slice(&bytes).map_err(|e| {
            RemoteError::transient(format!(
                "remote '{}': the Hub's answer to {what} was not understood: {e}",
                self.remote
            ))
        })
    }

    fn req(&self, method: Method, url: &str) -> RequestBuilder {
        self.http.request(method, url)
    }

    /// The repo, or `None` when the Hub says it does not exist.
    pub async fn repo_info(&self, token: &Token) -> Result<Option<RepoInfo>, RemoteError> {
        let url = format!("{}/api/models/{}", self.endpoint, self.repo_id);
        match self.send("reading the repo", self.req(Method::GET, &url), Some(token), false).await {
            Ok(resp) => Ok(Some(self.json("reading the repo", resp).await?)),
            Err(f) if f.repo_missing() || (f.status == Some(404) && f.code.is_none()) => Ok(None),
            Err(f) => Err(f.err),
        }
    }

    /// The repo as of the configured revision: its current commit (`sha`) and whether it
    /// is private. A missing repo or revision is an error.
    pub async fn head(&self, token: &Token) -> Result<(String, RepoInfo), Fail> {
        let url = self.api(&format!("revision/{}", encode_segment(&self.revision)));
        let resp = self.send("reading the branch", self.req(Method::GET, &url), Some(token), false).await?;
        let info: RepoInfo = self.json("reading the branch", resp).await?;
        match info.sha.clone() {
            Some(sha) => Ok((sha, info)),
            None => Err(RemoteError::transient(format!(
                "remote '{}': the Hub did not say which commit is current",
                self.remote
            ))
            .into()),
        }
    }

    /// Create the repo (a model repo; private when asked). `Ok(false)`: it already existed.
    pub async fn create_repo(&self, token: &Token, private: bool) -> Result<bool, RemoteError> {
        let (org, name) = self.repo_id.split_once('/').unwrap_or(("", &self.repo_id));
        let body = serde_json::json!({
            "name": name,
            "organization": org,
            "private": private,
            "type": "model",
        });
        let url = format!("{}/api/repos/create", self.endpoint);
        let rb = self.req(Method::POST, &url).json(&body);
        match self.send(&format!("creating the repo {}", self.repo_id), rb, Some(token), false).await {
            Ok(_) => Ok(true),
            Err(f) if f.status == Some(409) => Ok(false),
            Err(f) => Err(f.err),
        }
    }

    pub async fn whoami(&self, token: &Token) -> Result<WhoAmI, RemoteError> {
        let url = format!("{}/api/whoami-v2", self.endpoint);
        let resp = self.send("checking the token", self.req(Method::GET, &url), Some(token), false).await?;
        self.json("checking the token", resp).await
    }

    /// Ask how each file is to be stored ("lfs" or "regular").
    pub async fn preupload(
        &self,
        token: &Token,
        files: &[(String, u64, Vec<u8>)],
    ) -> Result<Vec<PreuploadFile>, RemoteError> {
        use base64::Engine;
        let files: Vec<serde_json::Value> = files
            .iter()
            .map(|(path, size, sample)| {
                serde_json::json!({
                    "path": path,
                    "size": size,
                    "sample": base64::engine::general_purpose::STANDARD.encode(sample),
                })
            })
            .collect();
        let url = self.api(&format!("preupload/{}", encode_segment(&self.revision)));
        let rb = self.req(Method::POST, &url).json(&serde_json::json!({ "files": files }));
        let resp = self.send("asking how to store the files", rb, Some(token), false).await?;
        let answer: PreuploadAnswer = self.json("asking how to store the files", resp).await?;
        Ok(answer.files)
    }

    /// The LFS batch call for an upload, offering `basic` and `multipart`.
    pub async fn lfs_batch(&self, token: &Token, objects: &[(&str, u64)]) -> Result<BatchAnswer, RemoteError> {
        let objects: Vec<serde_json::Value> =
            objects.iter().map(|(oid, size)| serde_json::json!({ "oid": oid, "size": size })).collect();
        let body = serde_json::json!({
            "operation": "upload",
            "transfers": ["basic", "multipart"],
            "objects": objects,
            "hash_algo": "sha256",
            "ref": { "name": self.revision },
        });
        let url = format!("{}/{}.git/info/lfs/objects/batch", self.endpoint, self.repo_id);
        let rb = self
            .req(Method::POST, &url)
            .header(ACCEPT, LFS_JSON)
            .header(CONTENT_TYPE, LFS_JSON)
            .body(serde_json::to_vec(&body).unwrap_or_default());
        let resp = self.send("the LFS batch request", rb, Some(token), false).await?;
        self.json("the LFS batch request", resp).await
    }

    /// The entries at `paths` in `rev` (missing ones are left out).
    pub async fn paths_info(&self, token: &Token, rev: &str, paths: &[String]) -> Result<Vec<TreeEntry>, Fail> {
        let mut out = Vec::new();
        for chunk in paths.chunks(100) {
            let mut form = String::new();
            for p in chunk {
                if !form.is_empty() {
                    form.push('&');
                }
                form.push_str("paths=");
                form.push_str(&encode_segment(p));
            }
            form.push_str("&expand=false");
            let url = self.api(&format!("paths-info/{}", encode_segment(rev)));
            let rb = self.req(Method::POST, &url).header(CONTENT_TYPE, "application/x-www-form-urlencoded").body(form);
            let resp = self.send("reading the repo's file list", rb, Some(token), false).await?;
            let page: Vec<TreeEntry> = self.json("reading the repo's file list", resp).await?;
            out.extend(page);
        }
        Ok(out)
    }

    /// Every entry under `dir` ("" = the root) in `rev`, recursively, following the pages.
    /// A folder that does not exist lists as empty.
    pub async fn tree(&self, token: &Token, rev: &str, dir: &str) -> Result<Vec<TreeEntry>, Fail> {
        let dir = dir.trim_matches('/');
        let tail = if dir.is_empty() {
            format!("tree/{}", encode_segment(rev))
        } else {
            format!("tree/{}/{}", encode_segment(rev), encode_segment(dir))
        };
        let mut url = format!("{}?recursive=true&expand=false", self.api(&tail));
        let mut out = Vec::new();
        for _ in 0..100_000 {
            let resp = match self.send("listing the repo", self.req(Method::GET, &url), Some(token), false).await {
                Ok(r) => r,
                Err(f) if f.entry_missing() => return Ok(out),
                Err(f) => return Err(f),
            };
            let next = next_link(resp.headers());
            let page: Vec<TreeEntry> = self.json("listing the repo", resp).await?;
            out.extend(page);
            match next {
                Some(n) => url = self.fix_url(&n),
                None => return Ok(out),
            }
        }
        Ok(out)
    }

    /// Post an NDJSON commit to the configured revision.
    pub async fn commit(&self, token: &Token, body: Vec<u8>) -> Result<CommitAnswer, CommitRefused> {
        let url = self.api(&format!("commit/{}", encode_segment(&self.revision)));
        let rb = self.req(Method::POST, &url).header(CONTENT_TYPE, "application/x-ndjson").body(body);
        let what = "the commit";
        if let Some(left) = self.gate_left() {
            return Err(CommitRefused::Other(
                RemoteError::transient(format!(
                    "remote '{}': holding the commit for {}s; the Hub asked this account to slow down (429)",
                    self.remote,
                    left.as_secs().max(1)
                ))
                .with_retry_after(left),
            ));
        }
        let rb = rb.header(AUTHORIZATION, format!("Bearer {}", token.secret()));
        let resp = rb.send().await.map_err(|e| CommitRefused::Other(network(&e, what, &self.host(), &self.remote)))?;
        let status = resp.status();
        if status.is_success() {
            return self.json(what, resp).await.map_err(CommitRefused::Other);
        }
        if status == StatusCode::CONFLICT || status == StatusCode::PRECONDITION_FAILED {
            let f = self.read_failure(resp, Some(token)).await;
            return Err(CommitRefused::Conflict(f.message));
        }
        let f = self.read_failure(resp, Some(token)).await;
        if f.status == 429 {
            self.close_gate(f.retry_after.unwrap_or(Duration::from_secs(60)));
        }
        Err(CommitRefused::Other(classify(&f, what, self.place())))
    }

    /// `GET /{repo}/resolve/{rev}/{path}` with an optional `Range` start; redirects are
    /// handed back to the caller.
    pub async fn resolve(&self, token: &Token, rev: &str, path: &str, from: u64) -> Result<Response, Fail> {
        let url = format!("{}/{}/resolve/{}/{}", self.endpoint, self.repo_id, encode_segment(rev), encode_path(path));
        let mut rb = self.req(Method::GET, &url).header("accept-encoding", "identity");
        if from > 0 {
            rb = rb.header("range", format!("bytes={from}-"));
        }
        self.send(&format!("the download of {path}"), rb, Some(token), true).await
    }
}

/// The `rel="next"` URL of a `Link` header.
pub fn next_link(headers: &HeaderMap) -> Option<String> {
    let link = headers.get("link")?.to_str().ok()?;
    link.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        params
            .split(';')
            .any(|p| {
                p.trim().trim_matches('"') == "rel=\"next\"" || p.trim() == "rel=next" || p.trim() == "rel=\"next\""
            })
            .then(|| url.trim().trim_start_matches('<').trim_end_matches('>').to_string())
    })
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    #[test]
    fn paths_are_encoded_by_segment_and_links_followed() {
        assert_eq!(encode_path("a b/checkpoint-5/ü.bin"), "a%20b/checkpoint-5/%C3%BC.bin");
        assert_eq!(encode_segment("refs/pr/1"), "refs%2Fpr%2F1");
        let mut h = HeaderMap::new();
        h.insert("link", HeaderValue::from_static("<http://h/api/models/a/b/tree/main?cursor=xyz>; rel=\"next\""));
        assert_eq!(next_link(&h).as_deref(), Some("http://h/api/models/a/b/tree/main?cursor=xyz"));
        assert_eq!(next_link(&HeaderMap::new()), None);
    }
}
