//! Drive v3 over HTTP: lookups by name, folders, resumable upload sessions, downloads,
//! metadata updates, and Google's error answers turned into [`RemoteError`]s for the engine
//! (transient or permanent, in words, with the fix).
//!
//! Every call carries `supportsAllDrives=true` (lists also `includeItemsFromAllDrives=true`):
//! without it an item in a Shared Drive answers 404. A 401 gets one fresh token and one more
//! try. The client follows no redirects: a resumable session answers 308, which must be
//! handed back; a download redirected to another origin is followed by hand, without the
//! `Authorization` header.

use std::collections::HashMap;
use std::time::Duration;

use reqwest::header::{self, HeaderMap};
use reqwest::{Method, StatusCode};
use serde::Deserialize;

use super::auth::{AccessToken, Tokens, origin_of};
use crate::sync::remote::{ErrorKind, RemoteError};

pub const FOLDER_MIME: &str = "application/vnd.google-apps.folder";
/// The fields asked for on every file, so lookups, stat and list agree.
pub const FILE_FIELDS: &str =
    "id,name,mimeType,size,md5Checksum,appProperties,createdTime,modifiedTime,driveId,trashed";
/// `appProperties` key holding the SHA-256 the file was stored with.
pub const PROP_SHA256: &str = "opsconsole_sha256";
/// `appProperties` key holding the MD5 the stored bytes were verified with; the SHA-256 is
/// trusted only while Drive's `md5Checksum` still equals it.
pub const PROP_MD5: &str = "opsconsole_md5";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
const READ_TIMEOUT: Duration = Duration::from_secs(120);
const MAX_REDIRECTS: usize = 5;

/// A Drive file as the API reports it (only the fields asked for are set).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DriveFile {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub mime_type: String,
    /// int64 as a decimal string.
    pub size: Option<String>,
    pub md5_checksum: Option<String>,
    pub app_properties: Option<HashMap<String, String>>,
    pub created_time: Option<String>,
    /// RFC 3339, when the content last changed.
    pub modified_time: Option<String>,
    pub drive_id: Option<String>,
    pub trashed: Option<bool>,
    pub capabilities: Option<Capabilities>,
    pub owners: Option<Vec<Owner>>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Capabilities {
    pub can_add_children: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Owner {
    pub email_address: Option<String>,
}

impl DriveFile {
    pub fn is_folder(&self) -> bool {
        self.mime_type == FOLDER_MIME
    }

    pub fn size(&self) -> u64 {
        self.size.as_deref().and_then(|s| s.parse().ok()).unwrap_or(0)
    }

    pub fn prop(&self, k: &str) -> Option<&str> {
        self.app_properties.as_ref()?.get(k).map(String::as_str)
    }

    /// The SHA-256 from `appProperties`, only while the bytes are the ones it was verified
    /// with (a new revision from elsewhere keeps the old properties).
    pub fn trusted_sha256(&self) -> Option<String> {
        let md5 = self.md5_checksum.as_deref()?;
        (self.prop(PROP_MD5) == Some(md5)).then(|| self.prop(PROP_SHA256).map(str::to_string)).flatten()
    }

    /// Sort key among same-named siblings: the oldest wins, ties by id, so every client picks
    /// the same one.
    fn age_key(&self) -> (String, String) {
        (self.created_time.clone().unwrap_or_default(), self.id.clone())
    }
}

/// Milliseconds since the Unix epoch of an RFC 3339 time as Drive writes it
/// (`2026-05-01T14:02:09.123Z`, or with an offset such as `+02:00`).
pub fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    let s = s.trim();
    let (date, rest) = s.split_once(['T', 't', ' '])?;
    let mut d = date.split('-');
    let (y, mo, da): (i64, i64, i64) = (d.next()?.parse().ok()?, d.next()?.parse().ok()?, d.next()?.parse().ok()?);
    let (clock, offset_s) = if let Some(c) = rest.strip_suffix(['Z', 'z']) {
        (c, 0)
    } else {
        let i = rest.rfind(['+', '-'])?;
        let (c, off) = rest.split_at(i);
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let (oh, om) = off[1..].split_once(':')?;
        (c, sign * (oh.parse::<i64>().ok()? * 3600 + om.parse::<i64>().ok()? * 60))
    };
    let mut t = clock.split(':');
    let (h, mi): (i64, i64) = (t.next()?.parse().ok()?, t.next()?.parse().ok()?);
    let sec_text = t.next()?;
    let (sec, frac) = sec_text.split_once('.').unwrap_or((sec_text, ""));
    let sec: i64 = sec.parse().ok()?;
    let ms: i64 = format!("{frac:0<3}").get(..3)?.parse().ok()?;
    if !(1..=12).contains(&mo) || !(1..=31).contains(&da) {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let (yy, mm) = if mo <= 2 { (y - 1, mo + 9) } else { (y, mo - 3) };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let doy = (153 * mm + 2) / 5 + da - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400 + h * 3600 + mi * 60 + sec) - offset_s) * 1000 + ms)
}

/// The oldest of several same-named files (every client picks the same one).
pub fn canonical(mut files: Vec<DriveFile>) -> Option<DriveFile> {
    files.sort_by_key(|a| a.age_key());
    files.into_iter().next()
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FileList {
    #[serde(default)]
    files: Vec<DriveFile>,
    next_page_token: Option<String>,
}

/// Where a resumable session stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionState {
    /// The server holds this many bytes; send from there.
    Committed(u64),
    /// The upload is complete: the stored file.
    Done(Box<DriveFile>),
    /// The session is gone (404/410, they last a week): start again from zero.
    Expired,
}

/// What a file's upload targets.
#[derive(Debug, Clone)]
pub enum Target<'a> {
    /// A new file `name` in folder `parent`.
    Create { parent: &'a str, name: &'a str },
    /// A new revision of an existing file.
    Update { id: &'a str },
}

/// Google's error body: `{"error": {"code", "message", "errors": [{"reason", "message"}]}}`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiFailure {
    pub status: u16,
    pub reason: String,
    pub message: String,
    pub retry_after: Option<Duration>,
}

impl ApiFailure {
    fn parse(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Self {
        let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        let err = &v["error"];
        let reason = err["errors"][0]["reason"]
            .as_str()
            .or_else(|| err["status"].as_str())
            .or_else(|| v["error"].as_str())
            .unwrap_or("")
            .to_string();
        let message = err["message"]
            .as_str()
            .or_else(|| err["errors"][0]["message"].as_str())
            .or_else(|| v["error_description"].as_str())
            .map(str::to_string)
            .unwrap_or_else(|| {
                let text = String::from_utf8_lossy(body);
                let text = text.trim();
                if text.is_empty() || text.starts_with('<') {
                    status.canonical_reason().unwrap_or("").to_string()
                } else {
                    text.chars().take(200).collect()
                }
            });
        let message: String = message.chars().filter(|c| !c.is_control()).take(300).collect();
        Self { status: status.as_u16(), reason, message, retry_after: retry_after(headers) }
    }
}

/// `Retry-After` as seconds or an HTTP date.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate_parse(v)?;
    Some(when.duration_since(std::time::SystemTime::now()).unwrap_or(Duration::ZERO))
}

fn httpdate_parse(v: &str) -> Option<std::time::SystemTime> {
    humantime::parse_rfc3339_weak(v).ok().or_else(|| {
        // "Wed, 21 Oct 2015 07:28:00 GMT"
        let parts: Vec<&str> = v.split_whitespace().collect();
        if parts.len() != 6 {
            return None;
        }
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
        let m = months.iter().position(|x| *x == parts[2])? + 1;
        let text = format!("{}-{m:02}-{:0>2} {}", parts[3], parts[1], parts[4]);
        humantime::parse_rfc3339_weak(&text).ok()
    })
}

/// What a call was about, for the words of its errors.
#[derive(Debug, Clone, Copy)]
pub enum Ctx<'a> {
    /// The configured folder itself.
    Folder,
    /// A stored file (its workspace-relative key).
    File(&'a str),
    /// A resumable upload of a key.
    Upload(&'a str),
}

/// Who the requests run as and where, for the fixes in error messages.
#[derive(Debug, Clone)]
pub struct Who {
    pub remote: String,
    pub folder_id: String,
    pub client_email: String,
    pub scope: String,
    pub subject: Option<String>,
}

/// Turn an error answer into words and a kind the engine understands.
pub fn classify(f: &ApiFailure, ctx: Ctx<'_>, who: &Who) -> RemoteError {
    let remote = &who.remote;
    let what = match ctx {
        Ctx::Folder => format!("the folder {} of remote '{remote}'", who.folder_id),
        Ctx::File(k) | Ctx::Upload(k) => format!("'{k}' on remote '{remote}'"),
    };
    let said = if f.reason.is_empty() { f.message.clone() } else { format!("{}: {}", f.reason, f.message) };
    let retry = |e: RemoteError| match f.retry_after {
        Some(d) => e.with_retry_after(d),
        None => e,
    };
    match (f.status, f.reason.as_str()) {
        (403, "storageQuotaExceeded") => {
            let (message, fix) = match &who.subject {
                Some(user) => (
                    format!("no storage quota: the Drive of {user} is full, so Drive refused {what}"),
                    format!("free space in the Drive of {user} or add storage, then retry failed uploads (R)"),
                ),
                None => (
                    format!(
                        "no storage quota: a service account has none of its own, so Drive refused {what} (the \
                         folder is in a My Drive, or the Shared Drive is full)"
                    ),
                    format!(
                        "put folder_id in a Shared Drive with {} as Content manager (or set subject for \
                         domain-wide delegation), then retry failed uploads (R)",
                        who.client_email
                    ),
                ),
            };
            RemoteError::new(ErrorKind::Quota, message).with_fix(fix)
        }
        (403, "teamDriveFileLimitExceeded" | "numChildrenInNonRootLimitExceeded" | "teamDriveHierarchyTooDeep") => {
            RemoteError::new(ErrorKind::Quota, format!("Drive refused to store {what}: {said}"))
                .with_fix("the Shared Drive or folder holds as many items as Drive allows: use another folder_id")
        }
        (403, "uploadLimitExceeded" | "dailyLimitExceeded" | "dailyLimitExceededUnreg") => {
            let wait = until_quota_day_rolls(std::time::SystemTime::now());
            let message = if f.reason == "uploadLimitExceeded" {
                format!(
                    "Drive's daily upload cap (750 GB a day per account) is reached: {what} waits until it resets \
                     (midnight Pacific time)"
                )
            } else {
                format!("the project's daily Drive API quota is used up: {what} waits until it resets")
            };
            RemoteError::transient(message).with_retry_after(f.retry_after.unwrap_or(wait).max(wait))
        }
        (403, "userRateLimitExceeded" | "rateLimitExceeded" | "sharingRateLimitExceeded") | (429, _) => {
            retry(RemoteError::transient(format!("Drive asks to slow down for {what} ({said})")))
        }
        (403, "appNotAuthorizedToFile" | "appNotAuthorizedToChild") => {
            RemoteError::new(ErrorKind::Auth, format!("the scope \"{}\" does not reach {what} ({said})", who.scope))
                .with_fix(
                    "with scope = \"drive.file\" the account sees only what it created itself: set scope = \"drive\" \
             in the remote's section",
                )
        }
        (403, _) | (401, _) => {
            let fix = format!(
                "give {} Content manager on the Shared Drive (or Editor on the folder), then retry failed uploads \
                 (R); `opsconsole remote check {remote}` shows which step fails",
                who.client_email
            );
            RemoteError::new(ErrorKind::Auth, format!("Drive refused access to {what} ({said})")).with_fix(fix)
        }
        (404, _) if matches!(ctx, Ctx::Folder) => {
            let mut fix = format!(
                "check folder_id (the part after /folders/ in the folder's URL) and add {} as a member of the \
                 Shared Drive holding it",
                who.client_email
            );
            if who.scope == "drive.file" {
                fix.push_str(
                    "; with scope = \"drive.file\" the account sees only folders it created: set scope = \"drive\"",
                );
            }
            RemoteError::new(
                ErrorKind::NotFound,
                format!(
                    "{what} was not found: a wrong id, or a Shared Drive the service account {} is not a member of",
                    who.client_email
                ),
            )
            .with_fix(fix)
        }
        (404, _) => RemoteError::new(ErrorKind::NotFound, format!("{what} was not found on Drive ({said})"))
            .with_fix("it may have been deleted on Drive; retry failed uploads (R) to store it again"),
        (408 | 500..=599, _) => retry(RemoteError::transient(format!("Drive failed on {what} ({} {said})", f.status))),
        (400, _) => RemoteError::transient(format!("Drive rejected a request about {what} ({said})")),
        _ => retry(RemoteError::transient(format!("Drive answered {} about {what} ({said})", f.status))),
    }
}

/// Time until Drive's daily quotas reset: midnight US Pacific time, taken as 08:00 UTC (an
/// hour late while daylight saving time runs, never early).
pub fn until_quota_day_rolls(now: std::time::SystemTime) -> Duration {
    let secs = now.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let day = 86_400;
    let reset = 8 * 3600;
    let into = (secs + day - reset) % day;
    Duration::from_secs(day - into)
}

/// A network failure in words (no URL: a session URL is a capability).
pub fn net_error(e: &reqwest::Error, what: &str, endpoint: &str) -> RemoteError {
    let why = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "cannot connect".to_string()
    } else if e.is_body() || e.is_request() {
        "the connection broke".to_string()
    } else if e.is_decode() {
        "the answer was cut short".to_string()
    } else {
        "the connection failed".to_string()
    };
    let mut source = std::error::Error::source(e);
    let mut detail = String::new();
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    let detail = if detail.is_empty() || detail.contains("://") { String::new() } else { format!(": {detail}") };
    RemoteError::transient(format!("{what}: {why} ({}{detail})", origin_of(endpoint)))
}

/// The Drive API for one remote.
pub struct Api {
    http: reqwest::Client,
    endpoint: String,
    tokens: Tokens,
    pub who: Who,
}

/// A response that was not an error.
pub struct Ok200 {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub resp: reqwest::Response,
}

impl Api {
    pub fn new(endpoint: &str, tokens: Tokens, who: Who) -> Result<Self, RemoteError> {
        let endpoint = endpoint.trim_end_matches('/').to_string();
        let mut b = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .user_agent(concat!("opsconsole/", env!("CARGO_PKG_VERSION")));
        if is_loopback(&endpoint) {
            b = b.no_proxy();
        }
        let http = b.build().map_err(|_| {
            RemoteError::new(ErrorKind::Auth, "cannot set up HTTPS (no usable CA certificates?)")
                .with_fix("install the system's CA certificates (apt-get install ca-certificates)")
        })?;
        Ok(Self { http, endpoint, tokens, who })
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.endpoint)
    }

    pub async fn token(&self) -> Result<AccessToken, RemoteError> {
        self.tokens.get().await
    }

    /// Send a request built by `build` (called again for the retry after a 401) with the
    /// token, when `url` is on the API's own origin. Error answers come back as
    /// `Err(ApiFailure)` inside `Ok`, so callers can read a 404 or a 308 themselves.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        build: impl Fn(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
        what: &str,
    ) -> Result<Result<Ok200, ApiFailure>, RemoteError> {
        let same_origin = origin_of(url) == origin_of(&self.endpoint);
        let mut refreshed = false;
        let mut token = if same_origin { Some(self.tokens.get().await?) } else { None };
        loop {
            let mut rb = build(self.http.request(method.clone(), url));
            if let Some(t) = &token {
                rb = rb.header(header::AUTHORIZATION, t.header());
            }
            let resp = rb.send().await.map_err(|e| net_error(&e, what, &self.endpoint))?;
            let status = resp.status();
            if status == StatusCode::UNAUTHORIZED && same_origin && !refreshed {
                refreshed = true;
                token = Some(self.tokens.refresh().await?);
                continue;
            }
            let headers = resp.headers().clone();
            if status.is_success() || status == StatusCode::PERMANENT_REDIRECT || status.is_redirection() {
                return Ok(Ok(Ok200 { status, headers, resp }));
            }
            let body = resp.bytes().await.unwrap_or_default();
            return Ok(Err(ApiFailure::parse(status, &headers, &body)));
        }
    }

    /// A JSON answer, or the error in words.
    async fn json<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        url: &str,
        build: impl Fn(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
        ctx: Ctx<'_>,
        what: &str,
    ) -> Result<T, RemoteError> {
        match self.send(method, url, build, what).await? {
            Ok(ok) => {
                let body = ok.resp.bytes().await.map_err(|e| net_error(&e, what, &self.endpoint))?;
                serde_json::from_slice(&body)
                    .map_err(|_| RemoteError::transient(format!("{what}: Drive's answer was not understood")))
            }
            Err(f) => Err(classify(&f, ctx, &self.who)),
        }
    }

    /// `files.get` of any item by id, with `fields`; `None` when it does not exist.
    pub async fn get(&self, id: &str, fields: &str, ctx: Ctx<'_>) -> Result<Option<DriveFile>, RemoteError> {
        let url = self.url(&format!("/drive/v3/files/{}", enc(id)));
        let what = "reading a Drive item";
        match self
            .send(Method::GET, &url, |r| r.query(&[("supportsAllDrives", "true"), ("fields", fields)]), what)
            .await?
        {
            Ok(ok) => {
                let body = ok.resp.bytes().await.map_err(|e| net_error(&e, what, &self.endpoint))?;
                serde_json::from_slice(&body)
                    .map(Some)
                    .map_err(|_| RemoteError::transient(format!("{what}: Drive's answer was not understood")))
            }
            Err(f) if f.status == 404 => Ok(None),
            Err(f) => Err(classify(&f, ctx, &self.who)),
        }
    }

    /// The name of a Shared Drive.
    pub async fn drive_name(&self, drive_id: &str) -> Result<Option<String>, RemoteError> {
        #[derive(Deserialize)]
        struct D {
            name: Option<String>,
        }
        let url = self.url(&format!("/drive/v3/drives/{}", enc(drive_id)));
        match self.send(Method::GET, &url, |r| r.query(&[("fields", "id,name")]), "reading a Shared Drive").await? {
            Ok(ok) => Ok(ok.resp.json::<D>().await.ok().and_then(|d| d.name)),
            Err(_) => Ok(None),
        }
    }

    /// Every child of `parent` matching `extra` (a `q` clause or ""), all pages.
    pub async fn children(&self, parent: &str, extra: &str, ctx: Ctx<'_>) -> Result<Vec<DriveFile>, RemoteError> {
        let mut q = format!("'{}' in parents and trashed = false", escape_q(parent));
        if !extra.is_empty() {
            q.push_str(" and ");
            q.push_str(extra);
        }
        let fields = format!("nextPageToken,files({FILE_FIELDS})");
        let url = self.url("/drive/v3/files");
        let mut out = Vec::new();
        let mut page: Option<String> = None;
        loop {
            let p = page.clone();
            let list: FileList = self
                .json(
                    Method::GET,
                    &url,
                    |r| {
                        let r = r.query(&[
                            ("q", q.as_str()),
                            ("fields", fields.as_str()),
                            ("pageSize", "1000"),
                            ("supportsAllDrives", "true"),
                            ("includeItemsFromAllDrives", "true"),
                        ]);
                        match &p {
                            Some(t) => r.query(&[("pageToken", t.as_str())]),
                            None => r,
                        }
                    },
                    ctx,
                    "listing a Drive folder",
                )
                .await?;
            out.extend(list.files);
            match list.next_page_token {
                Some(t) if !t.is_empty() => page = Some(t),
                _ => return Ok(out),
            }
        }
    }

    /// Same-named children of `parent` (folders or files), oldest first.
    pub async fn named(
        &self,
        parent: &str,
        name: &str,
        folder: bool,
        ctx: Ctx<'_>,
    ) -> Result<Vec<DriveFile>, RemoteError> {
        let op = if folder { "=" } else { "!=" };
        let extra = format!("name = '{}' and mimeType {op} '{FOLDER_MIME}'", escape_q(name));
        let mut v = self.children(parent, &extra, ctx).await?;
        v.retain(|f| f.name == name && f.is_folder() == folder);
        v.sort_by_key(|a| a.age_key());
        Ok(v)
    }

    /// Create a folder (metadata only).
    pub async fn create_folder(&self, parent: &str, name: &str, ctx: Ctx<'_>) -> Result<DriveFile, RemoteError> {
        let body = serde_json::json!({ "name": name, "mimeType": FOLDER_MIME, "parents": [parent] });
        let url = self.url("/drive/v3/files");
        self.json(
            Method::POST,
            &url,
            |r| r.query(&[("supportsAllDrives", "true"), ("fields", FILE_FIELDS)]).json(&body),
            ctx,
            "creating a Drive folder",
        )
        .await
    }

    /// Set `appProperties` (a `None` value removes one) and/or trash an item.
    pub async fn patch_meta(
        &self,
        id: &str,
        props: Option<serde_json::Value>,
        trashed: Option<bool>,
        ctx: Ctx<'_>,
    ) -> Result<DriveFile, RemoteError> {
        let mut body = serde_json::Map::new();
        if let Some(p) = props {
            body.insert("appProperties".into(), p);
        }
        if let Some(t) = trashed {
            body.insert("trashed".into(), t.into());
        }
        let body = serde_json::Value::Object(body);
        let url = self.url(&format!("/drive/v3/files/{}", enc(id)));
        self.json(
            Method::PATCH,
            &url,
            |r| r.query(&[("supportsAllDrives", "true"), ("fields", FILE_FIELDS)]).json(&body),
            ctx,
            "updating a Drive file",
        )
        .await
    }

    /// Open a resumable session; returns the session URI. The SHA-256 goes into the file's
    /// `appProperties` when the upload completes.
    pub async fn start_session(&self, target: Target<'_>, sha256: &str, ctx: Ctx<'_>) -> Result<String, RemoteError> {
        let (method, url, body) = match target {
            Target::Create { parent, name } => (
                Method::POST,
                self.url("/upload/drive/v3/files"),
                serde_json::json!({ "name": name, "parents": [parent], "appProperties": { PROP_SHA256: sha256 } }),
            ),
            Target::Update { id } => (
                Method::PATCH,
                self.url(&format!("/upload/drive/v3/files/{}", enc(id))),
                serde_json::json!({ "appProperties": { PROP_SHA256: sha256 } }),
            ),
        };
        let what = "starting a Drive upload";
        let res = self
            .send(
                method,
                &url,
                |r| {
                    r.query(&[("uploadType", "resumable"), ("supportsAllDrives", "true"), ("fields", FILE_FIELDS)])
                        .header("X-Upload-Content-Type", "application/octet-stream")
                        .json(&body)
                },
                what,
            )
            .await?;
        match res {
            Ok(ok) => {
                let loc = ok.headers.get(header::LOCATION).and_then(|v| v.to_str().ok()).map(str::to_string);
                match loc {
                    Some(l) if l.starts_with("https://") || l.starts_with("http://") => Ok(l),
                    _ => Err(RemoteError::transient(format!("{what}: Drive gave no session address"))),
                }
            }
            Err(f) => Err(classify(&f, ctx, &self.who)),
        }
    }

    /// Send bytes `start..start+len` of `total` to a session (`len` 0 with `total` 0 finishes an
    /// empty file). Answers where the session stands afterwards.
    pub async fn put_chunk(
        &self,
        session: &str,
        start: u64,
        chunk: bytes::Bytes,
        total: u64,
        ctx: Ctx<'_>,
    ) -> Result<SessionState, RemoteError> {
        let len = chunk.len() as u64;
        let range =
            if len == 0 { format!("bytes */{total}") } else { format!("bytes {start}-{}/{total}", start + len - 1) };
        let res = self
            .send(
                Method::PUT,
                session,
                |r| {
                    r.header(header::CONTENT_RANGE, range.as_str())
                        .header(header::CONTENT_LENGTH, len)
                        .body(chunk.clone())
                },
                "sending a chunk to Drive",
            )
            .await?;
        self.session_answer(res, ctx).await
    }

    /// Ask a session where it stands (`Content-Range: bytes */TOTAL`, or `*/*` when the size
    /// is not known here).
    pub async fn query_session(
        &self,
        session: &str,
        total: Option<u64>,
        ctx: Ctx<'_>,
    ) -> Result<SessionState, RemoteError> {
        let range = match total {
            Some(t) => format!("bytes */{t}"),
            None => "bytes */*".to_string(),
        };
        let res = self
            .send(
                Method::PUT,
                session,
                |r| r.header(header::CONTENT_RANGE, range.as_str()).header(header::CONTENT_LENGTH, 0),
                "asking Drive where an upload stands",
            )
            .await?;
        self.session_answer(res, ctx).await
    }

    async fn session_answer(&self, res: Result<Ok200, ApiFailure>, ctx: Ctx<'_>) -> Result<SessionState, RemoteError> {
        match res {
            Ok(ok) if ok.status == StatusCode::PERMANENT_REDIRECT => {
                let range = ok.headers.get(header::RANGE).and_then(|v| v.to_str().ok());
                Ok(SessionState::Committed(range.and_then(parse_range_end).map(|e| e + 1).unwrap_or(0)))
            }
            Ok(ok) if ok.status.is_success() => {
                let what = "finishing a Drive upload";
                let body = ok.resp.bytes().await.map_err(|e| net_error(&e, what, &self.endpoint))?;
                serde_json::from_slice(&body)
                    .map(|f| SessionState::Done(Box::new(f)))
                    .map_err(|_| RemoteError::transient(format!("{what}: Drive's answer was not understood")))
            }
            Ok(ok) => Err(RemoteError::transient(format!("Drive answered {} to an upload chunk", ok.status.as_u16()))),
            Err(f) if f.status == 404 || f.status == 410 => Ok(SessionState::Expired),
            Err(f) => Err(classify(&f, ctx, &self.who)),
        }
    }

    /// `GET ?alt=media` from `offset`, following redirects by hand (the `Authorization`
    /// header goes only to the API's own origin).
    pub async fn download(&self, id: &str, offset: u64, ctx: Ctx<'_>) -> Result<Ok200, RemoteError> {
        let mut url = self.url(&format!("/drive/v3/files/{}?alt=media&supportsAllDrives=true", enc(id)));
        let what = "downloading from Drive";
        for _ in 0..=MAX_REDIRECTS {
            let range = (offset > 0).then(|| format!("bytes={offset}-"));
            let res = self
                .send(
                    Method::GET,
                    &url,
                    |r| match &range {
                        Some(v) => r.header(header::RANGE, v.as_str()),
                        None => r,
                    },
                    what,
                )
                .await?;
            match res {
                Ok(ok) if ok.status.is_redirection() => {
                    let loc = ok.headers.get(header::LOCATION).and_then(|v| v.to_str().ok()).unwrap_or("");
                    if loc.is_empty() {
                        return Err(RemoteError::transient(format!("{what}: a redirect without a target")));
                    }
                    url = if loc.starts_with('/') { format!("{}{loc}", origin_of(&url)) } else { loc.to_string() };
                }
                Ok(ok) => return Ok(ok),
                Err(f) if f.status == 416 => {
                    return Err(RemoteError::transient(format!(
                        "{what}: the partial download is longer than the file"
                    )));
                }
                Err(f) => return Err(classify(&f, ctx, &self.who)),
            }
        }
        Err(RemoteError::transient(format!("{what}: too many redirects")))
    }
}

/// `bytes=0-N` → N.
pub fn parse_range_end(v: &str) -> Option<u64> {
    v.trim().strip_prefix("bytes=")?.split('-').nth(1)?.trim().parse().ok()
}

/// A string inside single quotes in a Drive `q`: backslash and quote escaped.
pub fn escape_q(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c == '\\' || c == '\'' {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Percent-encode an id for a URL path (Drive ids are URL-safe; this guards the rest).
fn enc(id: &str) -> String {
    let mut out = String::new();
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn is_loopback(endpoint: &str) -> bool {
    let o = origin_of(endpoint);
    ["http://127.0.0.1", "http://localhost", "http://[::1]"].iter().any(|p| o == *p || o.starts_with(&format!("{p}:")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_times_parse_to_milliseconds() {
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339_ms("2024-02-29T23:59:59.5Z"), Some(1_709_251_199_500));
        assert_eq!(parse_rfc3339_ms("2024-03-01T01:59:59.500+02:00"), Some(1_709_251_199_500));
        assert_eq!(parse_rfc3339_ms("yesterday"), None);
    }

    fn who() -> Who {
        Who {
            remote: "drive".into(),
            folder_id: "F1".into(),
            client_email: "sa@p.iam.gserviceaccount.com".into(),
            scope: "drive.file".into(),
            subject: None,
        }
    }

    fn fail(status: u16, reason: &str) -> ApiFailure {
        ApiFailure { status, reason: reason.into(), message: "m".into(), retry_after: None }
    }

    #[test]
    fn quotes_and_backslashes_are_escaped_in_q() {
        assert_eq!(escape_q("it's a\\b"), "it\\'s a\\\\b");
        assert_eq!(escape_q("ünï cödé ✓"), "ünï cödé ✓");
    }

    #[test]
    fn errors_are_classified_for_the_engine() {
        let w = who();
        let e = classify(&fail(403, "storageQuotaExceeded"), Ctx::Upload("a.log"), &w);
        assert_eq!(e.kind, ErrorKind::Quota);
        assert!(e.message.contains("a service account has none of its own"), "{}", e.message);
        assert!(e.fix.as_deref().is_some_and(|f| f.contains("Shared Drive") && f.contains("sa@p.iam")));
        let e = classify(&fail(404, "notFound"), Ctx::Folder, &w);
        assert_eq!(e.kind, ErrorKind::NotFound);
        assert!(e.message.contains("a wrong id, or a Shared Drive"), "{}", e.message);
        assert!(e.fix.as_deref().is_some_and(|f| f.contains("scope = \"drive\"")));
        for (s, r) in [(403, "userRateLimitExceeded"), (403, "rateLimitExceeded"), (429, ""), (500, ""), (503, "")] {
            let e =
                classify(&ApiFailure { retry_after: Some(Duration::from_secs(7)), ..fail(s, r) }, Ctx::File("x"), &w);
            assert_eq!(e.kind, ErrorKind::Transient, "{s} {r}");
            assert_eq!(e.retry_after, Some(Duration::from_secs(7)));
        }
        let e = classify(&fail(403, "uploadLimitExceeded"), Ctx::Upload("x"), &w);
        assert_eq!(e.kind, ErrorKind::Transient);
        assert!(e.message.contains("750 GB"), "{}", e.message);
        assert!(e.retry_after.is_some_and(|d| d > Duration::ZERO && d <= Duration::from_secs(86_400)));
        assert_eq!(classify(&fail(403, "insufficientFilePermissions"), Ctx::File("x"), &w).kind, ErrorKind::Auth);
        let with_subject = Who { subject: Some("me@x.org".into()), ..who() };
        let e = classify(&fail(403, "storageQuotaExceeded"), Ctx::Upload("a"), &with_subject);
        assert!(e.message.contains("the Drive of me@x.org is full"), "{}", e.message);
    }

    #[test]
    fn error_bodies_retry_after_and_ranges_are_read() {
        let mut h = HeaderMap::new();
        h.insert(header::RETRY_AFTER, "30".parse().expect("hv"));
        let body = br#"{"error":{"code":403,"message":"Rate Limit Exceeded","errors":[{"domain":"usageLimits","reason":"rateLimitExceeded","message":"Rate Limit Exceeded"}]}}"#;
        let f = ApiFailure::parse(StatusCode::FORBIDDEN, &h, body);
        assert_eq!((f.reason.as_str(), f.message.as_str()), ("rateLimitExceeded", "Rate Limit Exceeded"));
        assert_eq!(f.retry_after, Some(Duration::from_secs(30)));
        let f = ApiFailure::parse(StatusCode::BAD_GATEWAY, &HeaderMap::new(), b"<html>oops</html>");
        assert_eq!(f.message, "Bad Gateway");
        assert_eq!(parse_range_end("bytes=0-262143"), Some(262_143));
        assert_eq!(parse_range_end("0-5"), None);
        assert!(httpdate_parse("Wed, 21 Oct 2015 07:28:00 GMT").is_some());
        let t = std::time::UNIX_EPOCH + Duration::from_secs(86_400 * 10 + 7 * 3600);
        assert_eq!(until_quota_day_rolls(t), Duration::from_secs(3600));
        let t = std::time::UNIX_EPOCH + Duration::from_secs(86_400 * 10 + 8 * 3600);
        assert_eq!(until_quota_day_rolls(t), Duration::from_secs(86_400));
    }
}
