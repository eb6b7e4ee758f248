//! Putting one object into the Hub's LFS storage: the batch call (offering `basic` and
//! `multipart`), then a single PUT of the whole file (`basic`) or one PUT per part to the
//! URLs the Hub handed out, collecting each part's ETag, then the completion call
//! (`multipart`), then the optional verify call. An object the batch answers without
//! actions is already stored and nothing is sent. Bodies stream from the file in 1 MiB
//! pieces, so memory stays flat whatever the file or part size.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::api::{BatchObject, Hub, LFS_JSON, LfsAction};
use super::error::{HttpFailure, classify};
use super::token::Token;
use crate::sync::hash::hex;
use crate::sync::remote::{ErrorKind, RemoteError, TransferCtx};

const PIECE: usize = 1024 * 1024;
/// Attempts per multipart part before the upload is given back to the engine's backoff.
const PART_ATTEMPTS: u32 = 4;

/// What happened to the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// The Hub already held it: nothing was sent.
    AlreadyThere,
    /// Sent through `basic` (one PUT).
    Basic,
    /// Sent through `multipart` in this many parts.
    Multipart(usize),
}

/// Store the object `sha256` (the file at `src`, `size` bytes) in the repo's LFS storage.
pub async fn upload(
    hub: &Hub,
    token: &Token,
    key: &str,
    src: &Path,
    size: u64,
    sha256: &str,
    ctx: &TransferCtx,
) -> Result<Sent, RemoteError> {
    let answer = hub.lfs_batch(token, &[(sha256, size)]).await?;
    let Some(obj) = answer.objects.into_iter().find(|o| o.oid == sha256) else {
        return Err(RemoteError::transient(format!(
            "remote '{}': the LFS batch answer did not mention {key}; it will be asked again",
            hub.remote
        )));
    };
    if let Some(err) = &obj.error {
        let f = HttpFailure { status: err.code, code: None, message: err.message.clone(), retry_after: None };
        return Err(classify(&f, &format!("the upload of {key}"), hub.place()));
    }
    let Some(actions) = obj.actions.clone() else {
        ctx.bytes_done.store(size, Ordering::Relaxed);
        return Ok(Sent::AlreadyThere);
    };
    let Some(up) = actions.upload else {
        // Only a verify action: the Hub has the bytes and wants them confirmed.
        if let Some(v) = &actions.verify {
            verify(hub, token, v, &obj).await?;
        }
        ctx.bytes_done.store(size, Ordering::Relaxed);
        return Ok(Sent::AlreadyThere);
    };
    let chunk_size = up.header.as_ref().and_then(|h| h.get("chunk_size")).map(|v| match v {
        serde_json::Value::String(s) => s.trim().parse::<u64>().ok(),
        serde_json::Value::Number(n) => n.as_u64(),
        _ => None,
    });
    let sent = match chunk_size {
        Some(Some(chunk)) if chunk > 0 => multipart(hub, key, src, size, sha256, chunk, &up, ctx).await?,
        Some(_) => {
            return Err(RemoteError::transient(format!(
                "remote '{}': the Hub sent a multipart upload for {key} without a usable chunk_size",
                hub.remote
            )));
        }
        None => {
            basic(hub, key, src, size, sha256, &up, ctx).await?;
            Sent::Basic
        }
    };
    if let Some(v) = &actions.verify {
        verify(hub, token, v, &obj).await?;
    }
    Ok(sent)
}

async fn verify(hub: &Hub, token: &Token, action: &LfsAction, obj: &BatchObject) -> Result<(), RemoteError> {
    let url = hub.fix_url(&action.href);
    let rb = hub
        .http()
        .post(&url)
        .header(ACCEPT, LFS_JSON)
        .header(CONTENT_TYPE, LFS_JSON)
        .body(serde_json::to_vec(&serde_json::json!({ "oid": obj.oid, "size": obj.size })).unwrap_or_default());
    // The token goes only to the Hub itself, never to another host named in an answer.
    let same_origin = origin(&url) == origin(&hub.endpoint);
    hub.send("the LFS verify call", rb, same_origin.then_some(token), false).await?;
    Ok(())
}

/// `scheme://host:port` of a URL.
pub fn origin(url: &str) -> Option<(String, String, u16)> {
    let u = reqwest::Url::parse(url).ok()?;
    Some((u.scheme().to_string(), u.host_str()?.to_string(), u.port_or_known_default()?))
}

fn source_err(e: &std::io::Error, src: &Path) -> RemoteError {
    if e.kind() == std::io::ErrorKind::NotFound {
        RemoteError::new(ErrorKind::SourceGone, format!("{} vanished before it was stored", src.display()))
    } else {
        RemoteError::transient(format!("reading {}: {e}", src.display()))
    }
}

/// A body that streams `len` bytes of `src` from `start`, reporting progress (as
/// `base + sent`) and honouring the bandwidth cap and cancellation; with `hasher`, it also
/// hashes what it sends.
async fn body(
    src: &Path,
    start: u64,
    len: u64,
    base: u64,
    ctx: &TransferCtx,
    hasher: Option<Arc<std::sync::Mutex<Sha256>>>,
) -> Result<reqwest::Body, RemoteError> {
    let mut file = tokio::fs::File::open(src).await.map_err(|e| source_err(&e, src))?;
    file.seek(std::io::SeekFrom::Start(start)).await.map_err(|e| source_err(&e, src))?;
    let ctx = ctx.clone();
    let sent = Arc::new(AtomicU64::new(0));
    let state = (file, ctx, sent, hasher);
    let stream = futures_util::stream::unfold(Some(state), move |st| async move {
        let (mut file, ctx, sent, hasher) = st?;
        let done = sent.load(Ordering::Relaxed);
        if done >= len {
            return None;
        }
        let want = ((len - done) as usize).min(PIECE);
        // A fresh buffer per piece, handed to the body without a copy.
        let mut buf = bytes::BytesMut::with_capacity(want);
        let n = match (&mut file).take(want as u64).read_buf(&mut buf).await {
            Ok(0) => {
                let e = std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the file shrank while it was sent");
                return Some((Err(e), None));
            }
            Ok(n) => n,
            Err(e) => return Some((Err(e), None)),
        };
        if let Some(h) = &hasher {
            h.lock().unwrap_or_else(|p| p.into_inner()).update(&buf[..n]);
        }
        let now = done + n as u64;
        sent.store(now, Ordering::Relaxed);
        if ctx.advance(base + now, n as u64).await.is_err() {
            return Some((Err(std::io::Error::new(std::io::ErrorKind::Interrupted, "cancelled")), None));
        }
        Some((Ok::<Bytes, std::io::Error>(buf.freeze()), Some((file, ctx, sent, hasher))))
    });
    Ok(reqwest::Body::wrap_stream(stream))
}

/// A PUT of `len` bytes from `start` to a signed URL (never with the token). Returns the
/// answer's ETag.
#[allow(clippy::too_many_arguments)]
async fn put(
    hub: &Hub,
    what: &str,
    url: &str,
    src: &Path,
    start: u64,
    len: u64,
    ctx: &TransferCtx,
    hasher: Option<Arc<std::sync::Mutex<Sha256>>>,
) -> Result<Option<String>, RemoteError> {
    let body = body(src, start, len, start, ctx, hasher).await?;
    let rb = hub.http().put(hub.fix_url(url)).header(CONTENT_LENGTH, len).body(body);
    let sent = hub.send(what, rb, None, false).await;
    if ctx.cancel.is_cancelled() {
        return Err(RemoteError::new(ErrorKind::Cancelled, "cancelled"));
    }
    if let Err(e) = &sent
        && !src.exists()
    {
        return Err(RemoteError::new(
            ErrorKind::SourceGone,
            format!("{} vanished while it was sent ({})", src.display(), e.err.message),
        ));
    }
    let resp = sent?;
    Ok(resp.headers().get("etag").and_then(|v| v.to_str().ok()).map(str::to_string))
}

async fn basic(
    hub: &Hub,
    key: &str,
    src: &Path,
    size: u64,
    sha256: &str,
    up: &LfsAction,
    ctx: &TransferCtx,
) -> Result<(), RemoteError> {
    let hasher = Arc::new(std::sync::Mutex::new(Sha256::new()));
    put(hub, &format!("the upload of {key}"), &up.href, src, 0, size, ctx, Some(hasher.clone())).await?;
    let got = hex(&hasher.lock().unwrap_or_else(|p| p.into_inner()).clone().finalize());
    if got != sha256 {
        return Err(RemoteError::new(
            ErrorKind::SourceChanged,
            format!("{key} changed while it was uploaded; it is hashed and sent again"),
        ));
    }
    Ok(())
}

/// The part URLs of a multipart answer, in part order (keys "1", "00002", ...).
pub fn part_urls(up: &LfsAction) -> Vec<String> {
    let mut parts: Vec<(u64, String)> = up
        .header
        .iter()
        .flatten()
        .filter(|(k, _)| !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit()))
        .filter_map(|(k, v)| Some((k.parse::<u64>().ok()?, v.as_str()?.to_string())))
        .collect();
    parts.sort_by_key(|(n, _)| *n);
    parts.into_iter().map(|(_, u)| u).collect()
}

#[allow(clippy::too_many_arguments)]
async fn multipart(
    hub: &Hub,
    key: &str,
    src: &Path,
    size: u64,
    sha256: &str,
    chunk: u64,
    up: &LfsAction,
    ctx: &TransferCtx,
) -> Result<Sent, RemoteError> {
    let urls = part_urls(up);
    let expected = size.div_ceil(chunk) as usize;
    if urls.len() != expected {
        return Err(RemoteError::transient(format!(
            "remote '{}': the Hub offered {} part URLs for {key}, {expected} are needed; it will be asked again",
            hub.remote,
            urls.len()
        )));
    }
    let mut parts = Vec::with_capacity(urls.len());
    for (i, url) in urls.iter().enumerate() {
        let start = i as u64 * chunk;
        let len = chunk.min(size - start);
        let what = format!("part {} of {} of {key}", i + 1, urls.len());
        let mut attempt = 0;
        let etag = loop {
            attempt += 1;
            match put(hub, &what, url, src, start, len, ctx, None).await {
                Ok(Some(etag)) if !etag.is_empty() => break etag,
                Ok(_) => {
                    return Err(RemoteError::transient(format!(
                        "remote '{}': the storage answered {what} without an ETag",
                        hub.remote
                    )));
                }
                // A cut connection or a 5xx costs one part, not the whole file.
                Err(e) if e.kind == ErrorKind::Transient && e.retry_after.is_none() && attempt < PART_ATTEMPTS => {
                    ctx.bytes_done.store(start, Ordering::Relaxed);
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(500 << attempt)) => {}
                        _ = ctx.cancel.cancelled() => return Err(RemoteError::new(ErrorKind::Cancelled, "cancelled")),
                    }
                }
                Err(e) => return Err(e),
            }
        };
        parts.push(serde_json::json!({ "partNumber": i + 1, "etag": etag }));
    }
    let body = serde_json::json!({ "oid": sha256, "parts": parts });
    let rb = hub
        .http()
        .post(hub.fix_url(&up.href))
        .header(ACCEPT, LFS_JSON)
        .header(CONTENT_TYPE, LFS_JSON)
        .body(serde_json::to_vec(&body).unwrap_or_default());
    hub.send(&format!("completing the upload of {key}"), rb, None, false).await?;
    Ok(Sent::Multipart(urls.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_urls_come_in_part_order() {
        let up: LfsAction = serde_json::from_value(serde_json::json!({
            "href": "http://h/complete",
            "header": {"chunk_size": "10", "00010": "u10", "2": "u2", "00001": "u1"}
        }))
        .unwrap();
        assert_eq!(part_urls(&up), vec!["u1", "u2", "u10"]);
    }
}
