//! The VM's external address from the GCE metadata server: one plain HTTP/1.1 `GET` with the
//! `Metadata-Flavor: Google` header, a short timeout, and an answer accepted only when the
//! server says `Metadata-Flavor: Google` back (so a proxy or a captive portal answering
//! for `metadata.google.internal` is not believed). Off unless on GCE (or asked for).

use std::io::{Read, Write};
use std::net::{IpAddr, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::time::{Duration, Instant};

use super::config::{ExternalIpConfig, LookupMode};

/// Where the DMI product name is read (GCE VMs say "Google Compute Engine").
pub const DMI_PRODUCT_NAME: &str = "/sys/class/dmi/id/product_name";

/// Whether this machine is a GCE VM, from the DMI product name in `path`.
pub fn on_gce(path: &Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|s| s.trim() == "Google Compute Engine")
}

/// Whether the lookup runs here, and why not when it does not.
pub fn enabled(cfg: &ExternalIpConfig, dmi_product_name: &Path) -> Result<(), String> {
    match cfg.lookup {
        LookupMode::Off => Err("external_ip.lookup = \"off\"".into()),
        LookupMode::On => Ok(()),
        LookupMode::Auto if on_gce(dmi_product_name) => Ok(()),
        LookupMode::Auto => {
            Err("not a Google Compute Engine VM (set external_ip.lookup = \"on\" to look anyway)".into())
        }
    }
}

/// A plain `http://host[:port]/path` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    pub host: String,
    pub port: u16,
    pub path: String,
}

impl HttpUrl {
    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("{url:?} is not a plain http:// URL (the metadata server speaks plain HTTP)"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err(format!("{url:?} has no usable host"));
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => {
                (h.to_string(), p.parse::<u16>().map_err(|_| format!("{url:?} has a bad port {p:?}"))?)
            }
            _ => (authority.to_string(), 80),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
        if host.is_empty() || path.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("{url:?} is not a usable URL"));
        }
        Ok(Self { host, port, path: path.to_string() })
    }
}

/// Looks the external address up, within `cfg.timeout` overall.
pub fn lookup(cfg: &ExternalIpConfig) -> Result<IpAddr, String> {
    let url = HttpUrl::parse(&cfg.url)?;
    let body = get(&url, cfg.timeout)?;
    let text = body.trim();
    if text.is_empty() {
        return Err("the metadata server has no external address for this VM (no access config)".into());
    }
    text.parse::<IpAddr>().map_err(|_| format!("the metadata server answered {:?}, not an address", short(text)))
}

fn short(s: &str) -> String {
    crate::util::ellipsize(s, 40)
}

/// `GET` with the metadata header; the body of a `200` that carries `Metadata-Flavor: Google`.
fn get(url: &HttpUrl, timeout: Duration) -> Result<String, String> {
    let deadline = Instant::now() + timeout;
    let left = || deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
    let addrs: Vec<_> = (url.host.as_str(), url.port)
        .to_socket_addrs()
        .map_err(|e| format!("{} does not resolve: {e}", url.host))?
        .collect();
    let mut last = format!("{} has no address", url.host);
    let mut stream = None;
    for a in addrs {
        match TcpStream::connect_timeout(&a, left()) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = format!("cannot reach {}:{}: {e}", url.host, url.port),
        }
    }
    let mut s = stream.ok_or(last)?;
    let req = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nMetadata-Flavor: Google\r\nAccept: text/plain\r\nConnection: close\r\n\r\n",
        url.path, url.host
    );
    s.set_write_timeout(Some(left())).map_err(|e| e.to_string())?;
    s.write_all(req.as_bytes()).map_err(|e| format!("sending the request: {e}"))?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        s.set_read_timeout(Some(left())).map_err(|e| e.to_string())?;
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                raw.extend_from_slice(&buf[..n]);
                if raw.len() > 64 * 1024 {
                    return Err("the answer is too long for an address".into());
                }
                if let Some(body) = complete_body(&raw)? {
                    return check(&raw, body);
                }
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                return Err(format!("no answer within {}", humantime::format_duration(timeout)));
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("reading the answer: {e}")),
        }
        if Instant::now() >= deadline {
            return Err(format!("no answer within {}", humantime::format_duration(timeout)));
        }
    }
    match complete_body(&raw)? {
        Some(body) => check(&raw, body),
        // Closed before the end of what it announced, or before its headers.
        None if head_end(&raw).is_some() && content_length(&raw).is_none() && !chunked(&raw) => {
            let start = head_end(&raw).unwrap_or(raw.len());
            check(&raw, raw[start..].to_vec())
        }
        None => Err("the connection closed before the answer was complete".into()),
    }
}

fn head_end(raw: &[u8]) -> Option<usize> {
    raw.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

fn headers(raw: &[u8]) -> Vec<(String, String)> {
    let Some(end) = head_end(raw) else { return vec![] };
    String::from_utf8_lossy(&raw[..end])
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':').map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string())))
        .collect()
}

fn header(raw: &[u8], name: &str) -> Option<String> {
    headers(raw).into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

fn content_length(raw: &[u8]) -> Option<usize> {
    header(raw, "content-length").and_then(|v| v.parse().ok())
}

fn chunked(raw: &[u8]) -> bool {
    header(raw, "transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
}

/// The body once all of it has arrived (by Content-Length or chunked encoding).
fn complete_body(raw: &[u8]) -> Result<Option<Vec<u8>>, String> {
    let Some(start) = head_end(raw) else { return Ok(None) };
    let body = &raw[start..];
    if chunked(raw) {
        let mut out = Vec::new();
        let mut at = 0;
        loop {
            let Some(nl) = body[at..].windows(2).position(|w| w == b"\r\n") else { return Ok(None) };
            let size_text = String::from_utf8_lossy(&body[at..at + nl]);
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| "a malformed chunked answer".to_string())?;
            at += nl + 2;
            if size == 0 {
                return Ok(Some(out));
            }
            if body.len() < at + size + 2 {
                return Ok(None);
            }
            out.extend_from_slice(&body[at..at + size]);
            at += size + 2;
        }
    }
    match content_length(raw) {
        Some(n) if body.len() >= n => Ok(Some(body[..n].to_vec())),
        _ => Ok(None),
    }
}

fn check(raw: &[u8], body: Vec<u8>) -> Result<String, String> {
    let status_line =
        String::from_utf8_lossy(&raw[..raw.iter().position(|b| *b == b'\r').unwrap_or(raw.len())]).into_owned();
    let code: u16 = status_line.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let flavor = header(raw, "metadata-flavor");
    if flavor.as_deref() != Some("Google") {
        return Err(format!(
            "the answer did not come from a metadata server ({}; no Metadata-Flavor: Google header)",
            status_line.trim()
        ));
    }
    match code {
        200 => Ok(String::from_utf8_lossy(&body).into_owned()),
        404 => Err("the metadata server has no external address for this VM (no access config)".into()),
        _ => Err(format!("the metadata server answered {}", status_line.trim())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = HttpUrl::parse(super::super::config::GCE_EXTERNAL_IP_URL).expect("gce url");
        assert_eq!((u.host.as_str(), u.port), ("metadata.google.internal", 80));
        assert!(u.path.ends_with("/external-ip"));
        let u = HttpUrl::parse("http://127.0.0.1:8123/x").expect("local");
        assert_eq!((u.host.as_str(), u.port, u.path.as_str()), ("127.0.0.1", 8123, "/x"));
        assert!(HttpUrl::parse("https://metadata/x").is_err());
        assert!(HttpUrl::parse("http://:80/x").is_err());
        assert!(HttpUrl::parse("http://h:99999/x").is_err());
    }

    #[test]
    fn dmi() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("product_name");
        std::fs::write(&p, "Google Compute Engine\n").expect("write");
        assert!(on_gce(&p));
        std::fs::write(&p, "Standard PC (Q35 + ICH9, 2009)\n").expect("write");
        assert!(!on_gce(&p));
        assert!(!on_gce(&dir.path().join("missing")));
        let cfg = ExternalIpConfig::default();
        assert!(enabled(&cfg, &p).is_err());
        assert!(enabled(&ExternalIpConfig { lookup: LookupMode::On, ..cfg.clone() }, &p).is_ok());
    }

    #[test]
    fn chunked_bodies() {
        let raw = b"HTTP/1.1 200 OK\r\nMetadata-Flavor: Google\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n34.1\r\n5\r\n.2.3.\r\n1\r\n4\r\n0\r\n\r\n";
        let body = complete_body(raw).expect("ok").expect("complete");
        assert_eq!(check(raw, body).expect("200"), "34.1.2.3.4");
        assert_eq!(complete_body(&raw[..raw.len() - 10]).expect("ok"), None);
    }
}
