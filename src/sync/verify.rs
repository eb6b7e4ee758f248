//! Is a confirmed copy still the copy the ledger confirmed? One comparison, used by the
//! engine after an upload and on every pass, by `sync --verify`, and by the prune
//! executor right before each deletion.

use super::ledger::LedgerEntry;
use super::remote::RemoteObject;

/// `Ok` when the object the remote reports now is the version `entry` describes: the same
/// size, and every checksum the remote reports equal to the ledger's (SHA-256 against the
/// version's SHA-256, MD5 against its MD5). An object that reports no checksum at all does
/// not verify, and neither does an MD5 the ledger has nothing to compare with. `Err` says
/// what differs, in words.
pub fn matches(obj: &RemoteObject, entry: &LedgerEntry) -> Result<(), String> {
    if obj.size != entry.bytes_total {
        return Err(format!("it holds {} bytes, not the {} that were stored", obj.size, entry.bytes_total));
    }
    if obj.sha256.is_none() && obj.md5.is_none() {
        return Err("the remote reports no checksum for it, so it cannot be verified".into());
    }
    if let Some(sha) = &obj.sha256
        && !sha.eq_ignore_ascii_case(&entry.sha256)
    {
        return Err("its SHA-256 differs from the version that was stored (changed or corrupted)".into());
    }
    if let Some(md5) = &obj.md5 {
        match &entry.md5 {
            Some(want) if want.eq_ignore_ascii_case(md5) => {}
            Some(_) => return Err("its MD5 differs from the version that was stored (changed or corrupted)".into()),
            None if obj.sha256.is_some() => {}
            None => return Err("no MD5 of this version was recorded to compare with".into()),
        }
    }
    Ok(())
}

/// [`matches`] for an object that may be absent: a missing copy is a failure too.
pub fn check(obj: Option<&RemoteObject>, entry: &LedgerEntry) -> Result<(), String> {
    match obj {
        None => Err("it is missing".into()),
        Some(o) => matches(o, entry),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::ledger::UploadState;

    fn entry(size: u64, sha: &str, md5: Option<&str>) -> LedgerEntry {
        LedgerEntry {
            path: "ck/a.pt".into(),
            level: "L3".into(),
            remote: "r".into(),
            state: UploadState::Confirmed,
            sha256: sha.into(),
            md5: md5.map(String::from),
            mtime_ns: 0,
            bytes_done: size,
            bytes_total: size,
            remote_id: None,
            remote_checksum: None,
            attempts: 0,
            last_error: None,
            permanent: false,
            next_attempt_ms: 0,
            session: None,
            queued_ms: 0,
            updated_ms: 0,
            confirmed_ms: None,
        }
    }

    fn obj(size: u64, sha: Option<&str>, md5: Option<&str>) -> RemoteObject {
        RemoteObject {
            key: "ck/a.pt".into(),
            id: "x".into(),
            size,
            sha256: sha.map(String::from),
            md5: md5.map(String::from),
            modified_ms: None,
        }
    }

    #[test]
    fn size_and_every_reported_checksum_must_match() {
        let e = entry(10, "aa", Some("mm"));
        assert_eq!(matches(&obj(10, Some("aa"), None), &e), Ok(()));
        assert_eq!(matches(&obj(10, Some("AA"), Some("mm")), &e), Ok(()));
        assert_eq!(matches(&obj(10, None, Some("mm")), &e), Ok(()));
        assert!(matches(&obj(11, Some("aa"), None), &e).unwrap_err().contains("11 bytes"));
        assert!(matches(&obj(10, Some("bb"), None), &e).unwrap_err().contains("SHA-256 differs"));
        assert!(matches(&obj(10, Some("aa"), Some("zz")), &e).unwrap_err().contains("MD5 differs"));
        assert!(matches(&obj(10, None, None), &e).unwrap_err().contains("no checksum"));
        // An MD5 with nothing to compare it with does not verify on its own.
        let no_md5 = entry(10, "aa", None);
        assert!(matches(&obj(10, None, Some("mm")), &no_md5).is_err());
        assert_eq!(matches(&obj(10, Some("aa"), Some("mm")), &no_md5), Ok(()));
        assert_eq!(check(None, &e), Err("it is missing".into()));
    }
}
