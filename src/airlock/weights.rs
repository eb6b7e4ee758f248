//! Is a weights file whole? Checks that need no ledger, from the file's own structure:
//!
//! - `*.safetensors`: an 8-byte little-endian header length, a JSON header, then the
//!   tensors; the file must end exactly where the header's largest `data_offsets` end.
//! - `torch.save` files (`*.pt`, `*.pth`, `*.ckpt`, `*.bin` since PyTorch 1.6) are zip
//!   archives: the archive's central directory at the end must be there and readable.
//!   A file cut short (a trainer killed mid-save, a full disk) loses it first.
//!
//! Anything else (the legacy pickle format, other formats) is "not checkable": the ledger's
//! SHA-256 is then the only check.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// What the structure check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    /// Whole: which format it is.
    Whole(&'static str),
    /// Broken, in words.
    Broken(String),
    /// A format this check does not know.
    Unknown,
}

const MAX_HEADER: u64 = 100 << 20;

/// Checks one file.
pub fn check(path: &Path) -> Format {
    let mut f = match crate::util::open_regular(path) {
        Ok(f) => f,
        Err(e) => return Format::Broken(format!("cannot be read: {e}")),
    };
    let size = match f.metadata() {
        Ok(m) => m.len(),
        Err(e) => return Format::Broken(format!("cannot be read: {e}")),
    };
    let mut head = [0u8; 8];
    let n = read_up_to(&mut f, &mut head);
    let name = path.file_name().map(|n| n.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
    if name.ends_with(".safetensors") {
        return safetensors(&mut f, &head[..n], size);
    }
    if size == 0 {
        return Format::Broken("empty (0 bytes)".into());
    }
    if head.starts_with(b"PK\x03\x04") {
        return match zip::ZipArchive::new(f) {
            Ok(z) if z.is_empty() => Format::Broken("a zip archive with no entries".into()),
            Ok(_) => Format::Whole("torch.save (zip)"),
            Err(e) => Format::Broken(format!(
                "truncated or damaged: its zip directory (the end of a torch.save file) cannot be read ({e})"
            )),
        };
    }
    Format::Unknown
}

fn read_up_to(f: &mut impl Read, buf: &mut [u8]) -> usize {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    n
}

fn safetensors(f: &mut std::fs::File, head: &[u8], size: u64) -> Format {
    if head.len() < 8 {
        return Format::Broken(format!("truncated: {size} bytes, shorter than a safetensors header"));
    }
    let n = u64::from_le_bytes(head[..8].try_into().unwrap_or([0; 8]));
    if n == 0 || n > MAX_HEADER || 8 + n > size {
        return Format::Broken(format!(
            "truncated or damaged: the safetensors header says {n} bytes, the file has {size} in all"
        ));
    }
    let mut header = vec![0u8; n as usize];
    if f.seek(SeekFrom::Start(8)).is_err() || read_up_to(f, &mut header) != header.len() {
        return Format::Broken("truncated: the safetensors header cannot be read whole".into());
    }
    let json: serde_json::Value = match serde_json::from_slice(&header) {
        Ok(v) => v,
        Err(e) => return Format::Broken(format!("damaged: the safetensors header is not JSON ({e})")),
    };
    let Some(map) = json.as_object() else {
        return Format::Broken("damaged: the safetensors header is not a JSON object".into());
    };
    let mut end = 0u64;
    for (k, v) in map {
        if k == "__metadata__" {
            continue;
        }
        let Some(off) = v.get("data_offsets").and_then(|o| o.as_array()) else {
            return Format::Broken(format!("damaged: tensor {k:?} has no data_offsets"));
        };
        if let Some(e) = off.get(1).and_then(|e| e.as_u64()) {
            end = end.max(e);
        }
    }
    let want = 8 + n + end;
    if want != size {
        return Format::Broken(format!(
            "{}: the header describes {want} bytes, the file has {size}",
            if size < want { "truncated" } else { "damaged" }
        ));
    }
    Format::Whole("safetensors")
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn torch_like(path: &Path) {
        let f = std::fs::File::create(path).expect("create");
        let mut z = zip::ZipWriter::new(f);
        let o = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
        z.start_file("archive/data.pkl", o).expect("start");
        z.write_all(&[0x80, 2, b'}', b'.']).expect("write");
        z.start_file("archive/data/0", o).expect("start");
        z.write_all(&vec![7u8; 100_000]).expect("write");
        z.finish().expect("finish");
    }

    #[test]
    fn whole_and_truncated_files_are_told_apart() {
        let dir = tempfile::tempdir().expect("tmp");
        let pt = dir.path().join("v1_step_10.pt");
        torch_like(&pt);
        assert_eq!(check(&pt), Format::Whole("torch.save (zip)"));
        let len = std::fs::metadata(&pt).expect("meta").len();
        std::fs::OpenOptions::new().write(true).open(&pt).expect("open").set_len(len - 200).expect("truncate");
        assert!(matches!(check(&pt), Format::Broken(w) if w.contains("truncated")));

        let st = dir.path().join("model.safetensors");
        let header = br#"{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"__metadata__":{"a":"b"}}"#;
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header);
        bytes.extend_from_slice(&[0u8; 16]);
        std::fs::write(&st, &bytes).expect("write");
        assert_eq!(check(&st), Format::Whole("safetensors"));
        std::fs::write(&st, &bytes[..bytes.len() - 3]).expect("write");
        assert!(matches!(check(&st), Format::Broken(w) if w.starts_with("truncated")));

        let legacy = dir.path().join("old.pt");
        std::fs::write(&legacy, [0x80, 2, 0x8a, 0x0a]).expect("write");
        assert_eq!(check(&legacy), Format::Unknown);
        std::fs::write(&legacy, b"").expect("write");
        assert!(matches!(check(&legacy), Format::Broken(_)));
    }
}
