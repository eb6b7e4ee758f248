//! `opsconsole ssh-config HOST IP`: set that host's `HostName` in an OpenSSH client config
//! (run on the laptop after the VM restarted with a new external address), keeping every
//! other byte of the file.
//!
//! Enough of `ssh_config(5)` is read to find the `Host` blocks: keywords are
//! case-insensitive, `Keyword value` and `Keyword=value` both work, arguments may be
//! quoted, `#` starts a comment line, a block runs from a `Host` or `Match` line to the
//! next one, and lines before the first belong to every host. A block *names* HOST when
//! HOST is one of its patterns literally (`Host gpu-vm`, `Host gpu-vm gpu`); `Host gpu-*`
//! matches it but also others, so it is never edited. ssh uses the first value it finds
//! for a keyword, so:
//! - the first `HostName` in a block naming HOST has its value replaced (bytes around it,
//!   quotes, trailing comments and line ends kept);
//! - a block naming HOST without `HostName` gets one, right after its `Host` line;
//! - no block naming HOST: a new block is added at the end of the file (said on stderr,
//!   with a warning when the file has `Include` lines, which are never followed, or
//!   `Match` blocks, which are never evaluated).
//!
//! An earlier block whose patterns match HOST and that sets `HostName` wins over the one
//! edited: that is reported as a warning. Files are read and written as bytes (a comment
//! in Latin-1 survives). The file is replaced atomically (a temporary file in the same
//! folder, fsynced, renamed over it) after a backup `<name>.opsconsole.bak`, keeping its
//! mode (and owner, when run as root); a link is followed and its target replaced; a
//! missing file is created with mode 0600 (its folder with 0700).

use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::glob::ssh_match;

/// One line: its bytes without the line end, and the line end (`\n`, `\r\n` or none).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Line<'a> {
    body: &'a [u8],
    end: &'a [u8],
}

fn split_lines(text: &[u8]) -> Vec<Line<'_>> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (line, next) = match rest.iter().position(|b| *b == b'\n') {
            Some(i) => (&rest[..=i], &rest[i + 1..]),
            None => (rest, &rest[rest.len()..]),
        };
        let (body, end) = if line.ends_with(b"\r\n") {
            line.split_at(line.len() - 2)
        } else if line.ends_with(b"\n") {
            line.split_at(line.len() - 1)
        } else {
            (line, &line[line.len()..])
        };
        out.push(Line { body, end });
        rest = next;
    }
    out
}

/// A directive: its keyword (lower case) and each argument's byte range in the line
/// (quotes excluded).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Directive {
    keyword: String,
    args: Vec<std::ops::Range<usize>>,
    /// Where the keyword starts (the line's indentation ends).
    indent: usize,
}

fn is_space(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn parse_directive(line: &[u8]) -> Option<Directive> {
    let indent = line.iter().position(|b| !is_space(*b))?;
    if line[indent] == b'#' {
        return None;
    }
    let mut i = indent;
    while i < line.len() && !is_space(line[i]) && line[i] != b'=' {
        i += 1;
    }
    let keyword = String::from_utf8_lossy(&line[indent..i]).to_ascii_lowercase();
    // Separator: spaces, at most one '=', spaces.
    while i < line.len() && is_space(line[i]) {
        i += 1;
    }
    if i < line.len() && line[i] == b'=' {
        i += 1;
        while i < line.len() && is_space(line[i]) {
            i += 1;
        }
    }
    let mut args = Vec::new();
    while i < line.len() {
        if line[i] == b'#' {
            break;
        }
        if line[i] == b'"' {
            let start = i + 1;
            let end = line[start..].iter().position(|b| *b == b'"').map(|p| start + p).unwrap_or(line.len());
            args.push(start..end);
            i = (end + 1).min(line.len());
        } else {
            let start = i;
            while i < line.len() && !is_space(line[i]) {
                i += 1;
            }
            args.push(start..i);
        }
        while i < line.len() && is_space(line[i]) {
            i += 1;
        }
    }
    Some(Directive { keyword, args, indent })
}

/// Whether a `Host` pattern list matches `host` (a negated match excludes it). Each pattern
/// uses ssh's own rules ([`ssh_match`]), not a path glob.
fn patterns_match(patterns: &[Vec<u8>], host: &[u8]) -> bool {
    let mut hit = false;
    for p in patterns {
        if let Some(neg) = p.strip_prefix(b"!") {
            if ssh_match(neg, host) {
                return false;
            }
        } else if ssh_match(p, host) {
            hit = true;
        }
    }
    hit
}

#[derive(Debug, Clone)]
struct Block {
    /// Line index of its `Host`/`Match` line (`None`: the lines before the first one).
    head: Option<usize>,
    /// `Host` patterns (empty for `Match` and the top).
    patterns: Vec<Vec<u8>>,
    is_match: bool,
    /// Line indexes of the directives inside (not the head).
    lines: Vec<usize>,
}

/// What an edit does to the file, line by line (for the diff).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// First line changed (0-based, in the old file).
    pub at: usize,
    /// Old lines removed there (with their line ends).
    pub removed: Vec<Vec<u8>>,
    /// New lines put there (with their line ends).
    pub added: Vec<Vec<u8>>,
}

/// The result of [`set_hostname`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    pub new_text: Vec<u8>,
    /// `None` when the value was already set.
    pub change: Option<Change>,
    /// One line for the user: what was done.
    pub summary: String,
    /// Things the user should know (an earlier HostName wins, `Include` not followed).
    pub warnings: Vec<String>,
}

/// Checks HOST as a name `ssh HOST` would use (no patterns, no spaces).
pub fn valid_host(host: &str) -> Result<(), String> {
    if host.is_empty()
        || host.starts_with('-')
        || host
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '*' | '?' | '!' | ',' | '"' | '#' | '='))
    {
        return Err(format!("{host:?} is not a host name (no spaces, patterns, quotes or a leading '-')"));
    }
    Ok(())
}

/// Sets the `HostName` of `host` to `ip` in the config `text`.
pub fn set_hostname(text: &[u8], host: &str, ip: IpAddr) -> Result<Edit, String> {
    valid_host(host)?;
    let ip_text = ip.to_string();
    let lines = split_lines(text);
    let host_b = host.as_bytes();
    // Blocks.
    let mut blocks = vec![Block { head: None, patterns: vec![], is_match: false, lines: vec![] }];
    let mut includes = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let Some(d) = parse_directive(l.body) else { continue };
        match d.keyword.as_str() {
            "host" => blocks.push(Block {
                head: Some(i),
                patterns: d.args.iter().map(|r| l.body[r.clone()].to_vec()).collect(),
                is_match: false,
                lines: vec![],
            }),
            "match" => blocks.push(Block { head: Some(i), patterns: vec![], is_match: true, lines: vec![] }),
            kw => {
                if kw == "include" {
                    includes.push(i + 1);
                }
                if let Some(b) = blocks.last_mut() {
                    b.lines.push(i);
                }
            }
        }
    }
    let hostname_line = |b: &Block| {
        b.lines.iter().copied().find(|&i| parse_directive(lines[i].body).is_some_and(|d| d.keyword == "hostname"))
    };
    let literal = |b: &Block| !b.is_match && b.head.is_some() && b.patterns.iter().any(|p| p.as_slice() == host_b);
    let named: Vec<&Block> = blocks.iter().filter(|b| literal(b) && patterns_match(&b.patterns, host_b)).collect();
    let mut warnings = Vec::new();

    let newline: &[u8] = {
        let crlf = lines.iter().filter(|l| l.end == b"\r\n").count();
        let lf = lines.iter().filter(|l| l.end == b"\n").count();
        if crlf > lf { b"\r\n" } else { b"\n" }
    };
    let indent: Vec<u8> = {
        // The indentation most used by directives inside Host blocks.
        let mut counts: std::collections::BTreeMap<Vec<u8>, usize> = Default::default();
        for b in blocks.iter().filter(|b| b.head.is_some()) {
            for &i in &b.lines {
                if let Some(d) = parse_directive(lines[i].body) {
                    *counts.entry(lines[i].body[..d.indent].to_vec()).or_default() += 1;
                }
            }
        }
        counts.into_iter().max_by_key(|(_, n)| *n).map(|(k, _)| k).unwrap_or_else(|| b"    ".to_vec())
    };

    let target_line = named.iter().find_map(|b| hostname_line(b));
    let (change, summary, target_at) = if let Some(i) = target_line {
        let l = &lines[i];
        let d = parse_directive(l.body).ok_or("internal: HostName line did not parse")?;
        let Some(r) = d.args.first().cloned() else {
            return Err(format!("line {}: HostName has no value", i + 1));
        };
        let old_value = String::from_utf8_lossy(&l.body[r.clone()]).into_owned();
        if old_value == ip_text {
            return Ok(Edit {
                new_text: text.to_vec(),
                change: None,
                summary: format!("HostName of {host} is already {ip_text} (line {}); nothing to change", i + 1),
                warnings: earlier_wins(&blocks, &lines, host_b, i, &hostname_line),
            });
        }
        let mut new_line = l.body[..r.start].to_vec();
        new_line.extend_from_slice(ip_text.as_bytes());
        new_line.extend_from_slice(&l.body[r.end..]);
        new_line.extend_from_slice(l.end);
        let mut old_line = l.body.to_vec();
        old_line.extend_from_slice(l.end);
        (
            Change { at: i, removed: vec![old_line], added: vec![new_line] },
            format!("set HostName of {host} to {ip_text} (line {}, was {old_value})", i + 1),
            i,
        )
    } else if let Some(b) = named.first() {
        let head = b.head.unwrap_or(0);
        let ind = b
            .lines
            .first()
            .and_then(|&i| parse_directive(lines[i].body).map(|d| lines[i].body[..d.indent].to_vec()))
            .unwrap_or_else(|| indent.clone());
        let mut added = Vec::new();
        // The Host line itself may be the last line, without a line end.
        let mut removed = Vec::new();
        let at = head + 1;
        let (at, prefix) = if lines[head].end.is_empty() {
            let mut old = lines[head].body.to_vec();
            removed.push(old.clone());
            old.extend_from_slice(newline);
            (head, vec![old])
        } else {
            (at, vec![])
        };
        added.extend(prefix);
        let mut line = ind;
        line.extend_from_slice(b"HostName ");
        line.extend_from_slice(ip_text.as_bytes());
        line.extend_from_slice(newline);
        added.push(line);
        (
            Change { at, removed, added },
            format!("added HostName {ip_text} to the block of {host} (line {})", head + 1),
            head + 1,
        )
    } else {
        let mut removed = Vec::new();
        let mut added = Vec::new();
        let at = lines.len().saturating_sub(1);
        let mut at_end = lines.len();
        if let Some(last) = lines.last() {
            if last.end.is_empty() {
                // Give the last line its line end first.
                let mut old = last.body.to_vec();
                removed.push(old.clone());
                old.extend_from_slice(newline);
                added.push(old);
                at_end = at;
            }
            if !last.body.iter().all(|b| is_space(*b)) {
                added.push(newline.to_vec());
            }
        }
        let mut head = b"Host ".to_vec();
        head.extend_from_slice(host_b);
        head.extend_from_slice(newline);
        added.push(head);
        let mut line = indent.clone();
        line.extend_from_slice(b"HostName ");
        line.extend_from_slice(ip_text.as_bytes());
        line.extend_from_slice(newline);
        added.push(line);
        if !includes.is_empty() {
            let at: Vec<String> = includes.iter().map(|n| n.to_string()).collect();
            warnings.push(format!(
                "{host} may be defined in a file named by Include (line {}), which is not followed; if it is, \
                 run again with --file that file (ssh uses the first HostName it reads)",
                at.join(", ")
            ));
        }
        (
            Change { at: at_end, removed, added },
            format!("no block names {host}: added `Host {host}` with HostName {ip_text} at the end"),
            lines.len(),
        )
    };
    warnings.extend(earlier_wins(&blocks, &lines, host_b, target_at, &hostname_line));
    let mut new_text = Vec::with_capacity(text.len() + 64);
    for l in &lines[..change.at.min(lines.len())] {
        new_text.extend_from_slice(l.body);
        new_text.extend_from_slice(l.end);
    }
    for a in &change.added {
        new_text.extend_from_slice(a);
    }
    for l in lines.iter().skip(change.at + change.removed.len()) {
        new_text.extend_from_slice(l.body);
        new_text.extend_from_slice(l.end);
    }
    Ok(Edit { new_text, change: Some(change), summary, warnings })
}

/// Warnings about `HostName` lines before `target` that ssh would use instead.
fn earlier_wins(
    blocks: &[Block],
    lines: &[Line<'_>],
    host: &[u8],
    target: usize,
    hostname_line: &dyn Fn(&Block) -> Option<usize>,
) -> Vec<String> {
    let mut out = Vec::new();
    for b in blocks {
        let Some(i) = hostname_line(b) else { continue };
        if i >= target {
            continue;
        }
        let what = match b.head {
            None => "before any Host block (applies to every host)".to_string(),
            Some(h) => format!("in `{}` (line {})", String::from_utf8_lossy(lines[h].body).trim(), h + 1),
        };
        if b.is_match {
            out.push(format!("line {} sets HostName {what}; when that Match applies, ssh uses it instead", i + 1));
        } else if b.head.is_none() || patterns_match(&b.patterns, host) {
            out.push(format!("line {} sets HostName {what}, and ssh uses the first one it reads", i + 1));
        }
    }
    out
}

/// A unified diff of `change` against the old text, with 3 lines of context.
pub fn unified_diff(old: &[u8], change: &Change, old_name: &str, new_name: &str) -> String {
    let lines = split_lines(old);
    let full: Vec<Vec<u8>> = lines
        .iter()
        .map(|l| {
            let mut v = l.body.to_vec();
            v.extend_from_slice(l.end);
            v
        })
        .collect();
    let start = change.at.saturating_sub(3);
    let after = change.at + change.removed.len();
    let end = (after + 3).min(full.len());
    let old_count = end - start;
    let new_count = old_count - change.removed.len() + change.added.len();
    let pos = |count: usize| if count == 0 { start } else { start + 1 };
    let mut out = format!(
        "--- {old_name}\n+++ {new_name}\n@@ -{},{} +{},{} @@\n",
        pos(old_count),
        old_count,
        pos(new_count),
        new_count
    );
    let mut put = |sign: char, line: &[u8]| {
        let (body, has_end) = match line.strip_suffix(b"\n") {
            Some(b) => (b.strip_suffix(b"\r").unwrap_or(b), true),
            None => (line, false),
        };
        out.push(sign);
        out.push_str(&String::from_utf8_lossy(body));
        out.push('\n');
        if !has_end {
            out.push_str("\\ No newline at end of file\n");
        }
    };
    for l in &full[start..change.at.min(full.len())] {
        put(' ', l);
    }
    for l in &change.removed {
        put('-', l);
    }
    for l in &change.added {
        put('+', l);
    }
    for l in &full[after.min(full.len())..end] {
        put(' ', l);
    }
    out
}

/// The default file: `~/.ssh/config`.
pub fn default_path() -> Result<PathBuf, String> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join(".ssh").join("config"))
        .ok_or_else(|| "HOME is not set: give --file PATH".to_string())
}

/// The file the edit lands in: a link is followed to its target.
fn real_path(path: &Path) -> PathBuf {
    if let Ok(p) = std::fs::canonicalize(path) {
        return p;
    }
    // A dangling link: its target (relative to the link's folder).
    if let Ok(t) = std::fs::read_link(path) {
        return if t.is_absolute() { t } else { path.parent().unwrap_or(Path::new(".")).join(t) };
    }
    path.to_path_buf()
}

/// Writes `bytes` to `dest` by a temporary file in its folder, fsynced and renamed over it,
/// with `mode` (and the owner of `like`, when run as root).
fn replace_atomically(dest: &Path, bytes: &[u8], mode: u32, like: Option<&std::fs::Metadata>) -> std::io::Result<()> {
    let dir = dest.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "config".into());
    let tmp = dir.join(format!(".{name}.opsconsole-tmp.{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let result = (|| {
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp)?;
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        if let Some(m) = like
            && rustix::process::getuid().is_root()
        {
            std::os::unix::fs::fchown(&f, Some(m.uid()), Some(m.gid()))?;
        }
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, dest)?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// The backup written before a file is replaced.
pub fn backup_path(real: &Path) -> PathBuf {
    let name = real.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "config".into());
    real.with_file_name(format!("{name}.opsconsole.bak"))
}

/// What [`apply`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub edit: Edit,
    /// The file written (a link's target).
    pub written: Option<PathBuf>,
    pub backup: Option<PathBuf>,
    pub created: bool,
    /// The diff (always computed; `--print` shows only this).
    pub diff: String,
}

/// Sets `host`'s `HostName` in the file at `path`; with `print_only`, writes nothing.
pub fn apply(path: &Path, host: &str, ip: IpAddr, print_only: bool) -> Result<Applied, String> {
    let real = real_path(path);
    let (old, meta) = match std::fs::read(&real) {
        Ok(b) => (Some(b), std::fs::metadata(&real).ok()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (None, None),
        Err(e) => return Err(format!("cannot read {}: {e}", real.display())),
    };
    let text = old.clone().unwrap_or_default();
    let edit = set_hostname(&text, host, ip)?;
    let shown = path.display().to_string();
    let diff = match &edit.change {
        Some(c) => unified_diff(&text, c, if old.is_some() { &shown } else { "/dev/null" }, &shown),
        None => String::new(),
    };
    if print_only || edit.change.is_none() {
        return Ok(Applied { edit, written: None, backup: None, created: false, diff });
    }
    let created = old.is_none();
    let mut backup = None;
    if let (Some(old), Some(m)) = (&old, &meta) {
        let mode = m.permissions().mode() & 0o7777;
        let b = backup_path(&real);
        replace_atomically(&b, old, mode, Some(m))
            .map_err(|e| format!("cannot write the backup {}: {e}", b.display()))?;
        backup = Some(b);
    } else if let Some(dir) = real.parent().filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let mode = meta.as_ref().map(|m| m.permissions().mode() & 0o7777).unwrap_or(0o600);
    replace_atomically(&real, &edit.new_text, mode, meta.as_ref())
        .map_err(|e| format!("cannot write {}: {e} (the file is unchanged)", real.display()))?;
    Ok(Applied { edit, written: Some(real), backup, created, diff })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives() {
        let d = parse_directive(b"  HostName = \"1.2.3.4\"  # old").expect("directive");
        assert_eq!(d.keyword, "hostname");
        assert_eq!(d.args, vec![14..21]);
        assert_eq!(parse_directive(b"Host=a b").expect("d").args.len(), 2);
        assert_eq!(parse_directive(b"   # comment"), None);
        assert_eq!(parse_directive(b""), None);
        assert!(ssh_match(b"gpu-*", b"gpu-vm") && !ssh_match(b"gpu-?", b"gpu-vm") && ssh_match(b"*", b""));
        assert!(!patterns_match(&[b"*".to_vec(), b"!gpu-vm".to_vec()], b"gpu-vm"));
    }
}
