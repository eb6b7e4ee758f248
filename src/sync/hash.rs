//! SHA-256 of files, with reading and hashing overlapped on two threads for large files;
//! and the engine's hash pass, which takes the SHA-256 (and, for a file going to a remote
//! that confirms by MD5, the MD5 too) of exactly the first `len` bytes of a file in one
//! read (a growing log is stored as the prefix that was hashed).

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::sync::mpsc;

use md5::Md5;
use sha2::{Digest, Sha256};

/// The checksums of one version of a file: what the ledger records and a remote is
/// verified against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    /// Lower-case hex SHA-256.
    pub sha256: String,
    /// Lower-case hex MD5 (Drive's `md5Checksum`), when it was asked for.
    pub md5: Option<String>,
}

/// SHA-256 of exactly the first `len` bytes of a file, and their MD5 too when `with_md5`
/// (only a remote that confirms copies by MD5 needs it, see
/// [`super::remote::Remote::wants_md5`]; it costs about three times the SHA-256 on a CPU
/// with SHA extensions), in one read. Fails with `UnexpectedEof` when the file holds fewer
/// bytes (it shrank: it changed). Large files are read on one thread and hashed on
/// another (and MD5 on a third).
pub fn digest_prefix(path: &Path, len: u64, with_md5: bool) -> io::Result<Digests> {
    let file = File::open(path)?;
    let mut sha = Sha256::new();
    if !with_md5 {
        let got =
            if len < 16 * BUF as u64 { hash_reader(file.take(len), &mut sha)? } else { hash_pipelined(file.take(len), &mut sha)? };
        if got < len {
            return Err(short(path, got, len));
        }
        return Ok(Digests { sha256: hex(&sha.finalize()), md5: None });
    }
    let mut md5 = Md5::new();
    let got = if len < 16 * BUF as u64 {
        let mut r = file.take(len);
        let mut buf = vec![0u8; BUF];
        let mut total = 0u64;
        loop {
            let n = match r.read(&mut buf) {
                Ok(0) => break total,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            sha.update(&buf[..n]);
            md5.update(&buf[..n]);
            total += n as u64;
        }
    } else {
        digest_pipelined(file.take(len), &mut sha, &mut md5)?
    };
    if got < len {
        return Err(short(path, got, len));
    }
    Ok(Digests { sha256: hex(&sha.finalize()), md5: Some(hex(&md5.finalize())) })
}

fn short(path: &Path, got: u64, len: u64) -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, format!("{} has {got} bytes, fewer than the {len} to hash", path.display()))
}

/// Three stages: a reader thread fills buffers, this thread hashes SHA-256, an MD5 thread
/// takes each buffer after it and hands it back to the reader.
fn digest_pipelined(mut r: impl Read + Send + 'static, sha: &mut Sha256, md5: &mut Md5) -> io::Result<u64> {
    let (full_tx, full_rx) = mpsc::sync_channel::<io::Result<Vec<u8>>>(3);
    let (md5_tx, md5_rx) = mpsc::sync_channel::<Vec<u8>>(3);
    let (empty_tx, empty_rx) = mpsc::channel::<Vec<u8>>();
    for _ in 0..6 {
        let _ = empty_tx.send(vec![0u8; 4 * BUF]);
    }
    let reader = std::thread::spawn(move || {
        while let Ok(mut buf) = empty_rx.recv() {
            buf.resize(buf.capacity(), 0);
            let mut filled = 0;
            let res = loop {
                match r.read(&mut buf[filled..]) {
                    Ok(0) => break Ok(()),
                    Ok(n) => {
                        filled += n;
                        if filled == buf.len() {
                            break Ok(());
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => break Err(e),
                }
            };
            if let Err(e) = res {
                let _ = full_tx.send(Err(e));
                return;
            }
            buf.truncate(filled);
            let done = filled == 0;
            if full_tx.send(Ok(buf)).is_err() || done {
                return;
            }
        }
    });
    let mut m = Md5::new();
    let md5_thread = std::thread::spawn(move || {
        while let Ok(buf) = md5_rx.recv() {
            m.update(&buf);
            // The reader may be done already: every buffer queued here is still hashed.
            let _ = empty_tx.send(buf);
        }
        m
    });
    let mut total = 0u64;
    let mut result = Ok(());
    while let Ok(msg) = full_rx.recv() {
        match msg {
            Ok(buf) if buf.is_empty() => break,
            Ok(buf) => {
                sha.update(&buf);
                total += buf.len() as u64;
                if md5_tx.send(buf).is_err() {
                    break;
                }
            }
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    drop(md5_tx);
    drop(full_rx);
    let _ = reader.join();
    match md5_thread.join() {
        Ok(m) => *md5 = m,
        Err(_) => return Err(io::Error::other("the MD5 thread stopped")),
    }
    result.map(|()| total)
}

const BUF: usize = 1 << 20;

/// Lower-case hex SHA-256 of a whole file.
pub fn sha256_file(path: &Path) -> io::Result<String> {
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    let mut hasher = Sha256::new();
    if len < 16 * BUF as u64 {
        hash_reader(file, &mut hasher)?;
    } else {
        hash_pipelined(file, &mut hasher)?;
    }
    Ok(hex(&hasher.finalize()))
}

/// Hash everything `r` yields into `hasher`; returns the byte count.
pub fn hash_reader(mut r: impl Read, hasher: &mut Sha256) -> io::Result<u64> {
    let mut buf = vec![0u8; BUF];
    let mut total = 0u64;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        total += n as u64;
    }
}

/// A reader thread fills buffers while this thread hashes; buffers are recycled.
fn hash_pipelined(mut file: impl Read + Send + 'static, hasher: &mut Sha256) -> io::Result<u64> {
    let (full_tx, full_rx) = mpsc::sync_channel::<io::Result<Vec<u8>>>(3);
    let (empty_tx, empty_rx) = mpsc::channel::<Vec<u8>>();
    for _ in 0..4 {
        let _ = empty_tx.send(vec![0u8; 4 * BUF]);
    }
    let reader = std::thread::spawn(move || {
        while let Ok(mut buf) = empty_rx.recv() {
            buf.resize(buf.capacity(), 0);
            let mut filled = 0;
            let res = loop {
                match file.read(&mut buf[filled..]) {
                    Ok(0) => break Ok(()),
                    Ok(n) => {
                        filled += n;
                        if filled == buf.len() {
                            break Ok(());
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => break Err(e),
                }
            };
            if let Err(e) = res {
                let _ = full_tx.send(Err(e));
                return;
            }
            buf.truncate(filled);
            let done = filled == 0;
            if full_tx.send(Ok(buf)).is_err() || done {
                return;
            }
        }
    });
    let mut total = 0u64;
    let mut result = Ok(());
    while let Ok(msg) = full_rx.recv() {
        match msg {
            Ok(buf) if buf.is_empty() => break,
            Ok(buf) => {
                hasher.update(&buf);
                total += buf.len() as u64;
                let _ = empty_tx.send(buf);
            }
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    drop(empty_tx);
    drop(full_rx);
    let _ = reader.join();
    result.map(|()| total)
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_known_digests_small_and_large() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("abc");
        std::fs::write(&p, b"abc").expect("write");
        assert_eq!(sha256_file(&p).expect("hash"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        // Large enough for the pipelined path; compare with the one-shot digest.
        let data: Vec<u8> = (0..(40 * BUF + 123)).map(|i| (i * 31 % 251) as u8).collect();
        let p = dir.path().join("big");
        std::fs::write(&p, &data).expect("write");
        assert_eq!(sha256_file(&p).expect("hash"), hex(&Sha256::digest(&data)));
        // Both digests of a prefix, small and pipelined, against the one-shot digests.
        for len in [0usize, 3, BUF + 5, 17 * BUF + 9, data.len()] {
            let d = digest_prefix(&p, len as u64, true).expect("digest");
            assert_eq!(d.sha256, hex(&Sha256::digest(&data[..len])), "sha256 of {len}");
            assert_eq!(d.md5, Some(hex(&Md5::digest(&data[..len]))), "md5 of {len}");
            let d = digest_prefix(&p, len as u64, false).expect("digest");
            assert_eq!(d.sha256, hex(&Sha256::digest(&data[..len])), "sha256 alone of {len}");
            assert_eq!(d.md5, None, "no MD5 when not asked for");
        }
        assert_eq!(
            digest_prefix(&p, 3, true).expect("d").md5.as_deref(),
            Some("f5d25c6c5c47baec29ab1d087f07dd58"),
            "md5 of bytes 00 1f 3e, as Python's hashlib gives it"
        );
        for md5 in [true, false] {
            for len in [data.len() + 1, 17 * BUF + data.len()] {
                let err = digest_prefix(&p, len as u64, md5).unwrap_err();
                assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
            }
        }
    }
}
