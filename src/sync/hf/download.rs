//! Downloading a file from the Hub into `dest`: bytes go to `dest.part`, a partial file
//! left by an earlier try is resumed with `Range`, a connection cut mid-way is resumed
//! from where it stopped, and the finished file must have the size and SHA-256 the repo's
//! tree lists before it is renamed into place. LFS files are redirected to another
//! origin (the CDN): the token never goes there.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::StreamExt;
use reqwest::StatusCode;
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

use super::api::Hub;
use super::error::network;
use super::lfs::origin;
use super::token::Token;
use crate::sync::remote::{ErrorKind, RemoteError, TransferCtx};

const ATTEMPTS: u32 = 6;
const MAX_REDIRECTS: u32 = 5;

/// `dest` with `.part` appended.
pub fn part_path(dest: &Path) -> PathBuf {
    let mut s = dest.as_os_str().to_owned();
    s.push(".part");
    PathBuf::from(s)
}

fn local(e: &std::io::Error, p: &Path) -> RemoteError {
    RemoteError::transient(format!("writing {}: {e}", p.display()))
}

/// `bytes START-END/TOTAL` -> START.
fn range_start(v: &str) -> Option<u64> {
    v.trim().strip_prefix("bytes ")?.split('-').next()?.trim().parse().ok()
}

/// Fetch `path` (in the repo) of `size` bytes and SHA-256 `sha256` into `dest`.
#[allow(clippy::too_many_arguments)]
pub async fn fetch(
    hub: &Hub,
    token: &Token,
    rev: &str,
    path: &str,
    size: u64,
    sha256: &str,
    dest: &Path,
    ctx: &TransferCtx,
) -> Result<u64, RemoteError> {
    let part = part_path(dest);
    if let Some(parent) = dest.parent() {
        tokio::fs::create_dir_all(parent).await.map_err(|e| local(&e, parent))?;
    }
    let mut file = tokio::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&part)
        .await
        .map_err(|e| local(&e, &part))?;
    let mut have = file.metadata().await.map_err(|e| local(&e, &part))?.len();
    if have > size {
        have = 0;
    }
    file.set_len(have).await.map_err(|e| local(&e, &part))?;
    let mut attempt = 0;
    while have < size {
        attempt += 1;
        let before = have;
        match fetch_from(hub, token, rev, path, size, &mut file, &part, &mut have, ctx).await {
            Ok(()) => {}
            Err(e) if e.kind == ErrorKind::Cancelled => return Err(e),
            // A cut connection that delivered something resumes at once; one that did
            // not counts as a failed attempt.
            Err(e) if e.kind == ErrorKind::Transient && e.retry_after.is_none() && attempt < ATTEMPTS => {
                if have == before {
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(250 << attempt)) => {}
                        _ = ctx.cancel.cancelled() => return Err(RemoteError::new(ErrorKind::Cancelled, "cancelled")),
                    }
                }
            }
            Err(e) => return Err(e),
        }
    }
    file.flush().await.map_err(|e| local(&e, &part))?;
    file.sync_all().await.map_err(|e| local(&e, &part))?;
    drop(file);
    let p = part.clone();
    let got = tokio::task::spawn_blocking(move || crate::sync::hash::sha256_file(&p))
        .await
        .map_err(|e| RemoteError::transient(format!("hashing stopped: {e}")))?
        .map_err(|e| local(&e, &part))?;
    if got != sha256 {
        let _ = tokio::fs::remove_file(&part).await;
        return Err(RemoteError::transient(format!(
            "remote '{}': the download of {path} does not match the SHA-256 the Hub lists; it will be fetched again",
            hub.remote
        )));
    }
    tokio::fs::rename(&part, dest).await.map_err(|e| local(&e, dest))?;
    Ok(size)
}

/// One request: from `*have` on, appending to `file`; updates `*have` as bytes land.
#[allow(clippy::too_many_arguments)]
async fn fetch_from(
    hub: &Hub,
    token: &Token,
    rev: &str,
    path: &str,
    size: u64,
    file: &mut tokio::fs::File,
    part: &Path,
    have: &mut u64,
    ctx: &TransferCtx,
) -> Result<(), RemoteError> {
    let what = format!("the download of {path}");
    let mut resp = hub.resolve(token, rev, path, *have).await?;
    let mut url = resp.url().to_string();
    let mut hops = 0;
    while resp.status().is_redirection() {
        hops += 1;
        let Some(loc) = resp.headers().get("location").and_then(|v| v.to_str().ok()) else {
            return Err(RemoteError::transient(format!(
                "remote '{}': a redirect for {what} had no Location",
                hub.remote
            )));
        };
        if hops > MAX_REDIRECTS {
            return Err(RemoteError::transient(format!("remote '{}': too many redirects for {what}", hub.remote)));
        }
        let next = reqwest::Url::parse(&url)
            .and_then(|base| base.join(loc))
            .map_err(|_| {
                RemoteError::transient(format!("remote '{}': a redirect for {what} was unusable", hub.remote))
            })?
            .to_string();
        // The token stays on the Hub's own origin; a CDN gets a signed URL and nothing else.
        let same = origin(&next).is_some() && origin(&next) == origin(&hub.endpoint);
        let mut rb = hub.http().get(&next).header("accept-encoding", "identity");
        if *have > 0 {
            rb = rb.header("range", format!("bytes={}-", *have));
        }
        resp = hub.send(&what, rb, same.then_some(token), true).await?;
        url = next;
    }
    match resp.status() {
        StatusCode::PARTIAL_CONTENT => {
            let start = resp.headers().get("content-range").and_then(|v| v.to_str().ok()).and_then(range_start);
            if start != Some(*have) {
                // Not the range asked for: start over rather than splice wrong bytes.
                *have = 0;
                file.set_len(0).await.map_err(|e| local(&e, part))?;
                return Err(RemoteError::transient(format!(
                    "remote '{}': the Hub answered {what} with another range; starting again",
                    hub.remote
                )));
            }
        }
        StatusCode::OK => {
            if *have > 0 {
                // The server ignored Range: the whole file comes again.
                *have = 0;
                file.set_len(0).await.map_err(|e| local(&e, part))?;
            }
        }
        s => {
            return Err(RemoteError::transient(format!("remote '{}': unexpected {s} for {what}", hub.remote)));
        }
    }
    file.seek(std::io::SeekFrom::Start(*have)).await.map_err(|e| local(&e, part))?;
    let mut stream = resp.bytes_stream();
    loop {
        let next = tokio::select! {
            n = stream.next() => n,
            _ = ctx.cancel.cancelled() => return Err(RemoteError::new(ErrorKind::Cancelled, "cancelled")),
        };
        let Some(chunk) = next else { break };
        let chunk = chunk.map_err(|e| network(&e, &what, &hub.host(), &hub.remote))?;
        if *have + chunk.len() as u64 > size {
            *have = 0;
            file.set_len(0).await.map_err(|e| local(&e, part))?;
            return Err(RemoteError::transient(format!(
                "remote '{}': {what} is longer than the {size} bytes the Hub lists; starting again",
                hub.remote
            )));
        }
        file.write_all(&chunk).await.map_err(|e| local(&e, part))?;
        *have += chunk.len() as u64;
        ctx.advance(*have, chunk.len() as u64).await?;
    }
    if *have < size {
        return Err(RemoteError::transient(format!(
            "remote '{}': {what} stopped at {} of {size} bytes; resuming",
            hub.remote, *have
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_start_is_read() {
        assert_eq!(range_start("bytes 100-199/200"), Some(100));
        assert_eq!(range_start("bytes */200"), None);
        assert_eq!(part_path(Path::new("/a/b.pt")), PathBuf::from("/a/b.pt.part"));
    }
}
