//! Hub answers and network failures turned into [`RemoteError`]s: in words, with the fix,
//! classified for the engine (401/403 and 404 permanent; 429 transient with the wait the
//! Hub asked for; 5xx, timeouts and cut connections transient). Never carries the token
//! or a signed URL.

use std::time::Duration;

use reqwest::header::HeaderMap;

use crate::sync::remote::{ErrorKind, RemoteError};

/// Where a token comes from, for the fix of an auth error.
pub const TOKEN_FIX: &str = "create a token with write access at https://huggingface.co/settings/tokens and put it \
in HF_TOKEN (or run `hf auth login`), then retry failed uploads (R)";

/// A non-success answer, as read from the response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpFailure {
    pub status: u16,
    /// `X-Error-Code` (RepoNotFound, RevisionNotFound, EntryNotFound, GatedRepo).
    pub code: Option<String>,
    /// `X-Error-Message`, else the body's `error` field, else the start of the body.
    pub message: String,
    /// `Retry-After` seconds, else the `t=` of a `RateLimit` header.
    pub retry_after: Option<Duration>,
}

impl HttpFailure {
    pub fn from_parts(status: u16, headers: &HeaderMap, body: &[u8]) -> Self {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(|s| s.trim().to_string());
        let code = header("x-error-code").filter(|s| !s.is_empty());
        let from_json = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str().map(str::to_string)));
        let text = String::from_utf8_lossy(&body[..body.len().min(400)]).trim().to_string();
        let message = header("x-error-message").filter(|s| !s.is_empty()).or(from_json).unwrap_or(text);
        let message: String = message.chars().take(300).collect();
        Self { status, code, message, retry_after: retry_after(headers) }
    }
}

/// `Retry-After: <seconds>`, else `RateLimit: "api";r=0;t=<seconds>` (the Hub's header).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    if let Some(s) = headers.get("retry-after").and_then(|v| v.to_str().ok())
        && let Ok(n) = s.trim().parse::<u64>()
    {
        return Some(Duration::from_secs(n));
    }
    let rl = headers.get("ratelimit").and_then(|v| v.to_str().ok())?;
    let t = rl.split(';').find_map(|p| p.trim().strip_prefix("t=").and_then(|n| n.trim().parse::<u64>().ok()))?;
    Some(Duration::from_secs(t))
}

/// The place an error is about, for its words.
#[derive(Debug, Clone, Copy)]
pub struct Place<'a> {
    pub remote: &'a str,
    pub repo: &'a str,
    pub revision: &'a str,
}

/// Turn a failed answer to `what` ("the upload of x.pt", "the commit") into an error.
pub fn classify(f: &HttpFailure, what: &str, at: Place<'_>) -> RemoteError {
    let Place { remote, repo, revision } = at;
    let said = if f.message.is_empty() { String::new() } else { format!(": {}", f.message) };
    let code = f.code.as_deref().unwrap_or("");
    match f.status {
        _ if code == "RevisionNotFound" => RemoteError::new(
            ErrorKind::NotFound,
            format!("remote '{remote}': revision '{revision}' does not exist in Hub repo {repo}"),
        )
        .with_fix(format!(
            "create the branch (`hf repo branch create {repo} {revision}`) or set revision = \"main\" in \
             [remotes.{remote}], then retry failed uploads (R)"
        )),
        _ if code == "RepoNotFound" => RemoteError::new(
            ErrorKind::NotFound,
            format!("remote '{remote}': Hub repo {repo} does not exist or this token cannot see it"),
        )
        .with_fix(format!(
            "check repo_id in [remotes.{remote}] and that the token's account owns it (a missing repo is \
                 created when the token may create repos in that namespace), then retry failed uploads (R)"
        )),
        401 => RemoteError::new(
            ErrorKind::Auth,
            format!("remote '{remote}': the Hub refused the token (401 Unauthorized) for {what}{said}"),
        )
        .with_fix(TOKEN_FIX),
        403 => RemoteError::new(
            ErrorKind::Auth,
            format!(
                "remote '{remote}': the token may not write to Hub repo {repo} (403 Forbidden) for {what}{said}; \
                 a read-only token cannot upload"
            ),
        )
        .with_fix(TOKEN_FIX),
        404 => RemoteError::new(ErrorKind::NotFound, format!("remote '{remote}': {what}: not found on the Hub{said}"))
            .with_fix(format!("check repo_id and revision in [remotes.{remote}]")),
        429 => {
            let wait = f.retry_after.unwrap_or(Duration::from_secs(60));
            let mut e = RemoteError::new(
                ErrorKind::Transient,
                format!(
                    "remote '{remote}': the Hub is rate limiting this account (429 Too Many Requests) for {what}{said}; \
                     waiting {}s as it asked",
                    wait.as_secs().max(1)
                ),
            );
            e.retry_after = Some(wait);
            e
        }
        408 | 500..=599 => {
            let mut e = RemoteError::new(
                ErrorKind::Transient,
                format!("remote '{remote}': the Hub failed {what} ({} {}){said}", f.status, reason(f.status)),
            );
            e.retry_after = f.retry_after;
            e
        }
        413 => {
            RemoteError::new(ErrorKind::Quota, format!("remote '{remote}': the Hub refused {what} as too large{said}"))
                .with_fix("check the repo's storage quota at https://huggingface.co/settings/storage")
        }
        // Anything else the Hub refuses (400, 409, 422...) will not change by retrying.
        _ => RemoteError::new(
            ErrorKind::NotFound,
            format!("remote '{remote}': the Hub refused {what} ({} {}){said}", f.status, reason(f.status)),
        )
        .with_fix("see the Hub's message above; retry failed uploads (R) once it is resolved"),
    }
}

fn reason(status: u16) -> &'static str {
    reqwest::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("")
}

/// A request that never got an answer (connect refused, timeout, connection cut).
pub fn network(e: &reqwest::Error, what: &str, host: &str, remote: &str) -> RemoteError {
    let how = if e.is_connect() {
        "could not connect"
    } else if e.is_timeout() {
        "timed out"
    } else if e.is_decode() {
        "got an unreadable answer"
    } else if e.is_body() || e.is_request() {
        "lost the connection"
    } else {
        "failed"
    };
    // The error's own text may carry a signed URL: only its innermost cause is shown.
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    let detail = cause.to_string();
    let detail = if detail.contains("http") { String::new() } else { format!(" ({detail})") };
    RemoteError::transient(format!("remote '{remote}': {what} {how} to the Hub at {host}{detail}"))
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    const AT: Place<'static> = Place { remote: "hf", repo: "me/w", revision: "main" };

    #[test]
    fn auth_not_found_and_rate_limits_are_told_apart() {
        let mut h = HeaderMap::new();
        h.insert("x-error-code", HeaderValue::from_static("RevisionNotFound"));
        let f = HttpFailure::from_parts(404, &h, b"{\"error\":\"Invalid rev id: nope\"}");
        let e = classify(&f, "the commit", AT);
        assert_eq!(e.kind, ErrorKind::NotFound);
        assert!(e.reason().contains("revision 'main' does not exist in Hub repo me/w"), "{}", e.reason());

        let mut h = HeaderMap::new();
        h.insert("x-error-code", HeaderValue::from_static("RepoNotFound"));
        let e = classify(&HttpFailure::from_parts(404, &h, b"{\"error\":\"Repository not found\"}"), "the commit", AT);
        assert!(e.kind == ErrorKind::NotFound && e.is_permanent(), "{e}");
        assert!(e.reason().contains("Hub repo me/w does not exist or this token cannot see it"), "{}", e.reason());

        let f = HttpFailure::from_parts(403, &HeaderMap::new(), b"{\"error\":\"You don't have the rights\"}");
        let e = classify(&f, "the commit", AT);
        assert!(e.is_permanent());
        assert!(e.reason().contains("read-only token") && e.reason().contains("write access"), "{}", e.reason());

        let mut h = HeaderMap::new();
        h.insert("ratelimit", HeaderValue::from_static("\"api\";r=0;t=55"));
        let f = HttpFailure::from_parts(429, &h, b"");
        let e = classify(&f, "the commit", AT);
        assert_eq!((e.kind, e.retry_after), (ErrorKind::Transient, Some(Duration::from_secs(55))));

        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));

        let e = classify(&HttpFailure { status: 502, ..Default::default() }, "the upload", AT);
        assert!(!e.is_permanent());
        assert!(e.reason().contains("502 Bad Gateway"), "{}", e.reason());
    }
}
