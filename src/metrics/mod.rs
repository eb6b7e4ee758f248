//! Metrics for Prometheus: every figure `status --json` reports, in the OpenMetrics text
//! format (and Prometheus's 0.0.4 text format), served on `GET /metrics` by
//! `opsconsole exporter`, `sync --daemon --metrics-listen` and the console (`[metrics]
//! listen`), printed by `status --openmetrics` and written by `status --textfile`.
//!
//! The figures come from [`crate::status::collect_with`], the code behind `status
//! --json`. A sampler takes them every `[metrics] sample_ms` on a blocking thread and renders
//! both formats once; a scrape only copies the latest rendering out (see [`server`]), so it
//! never waits on a slow disk or NVML.

pub mod encode;
pub mod feed;
pub mod sampler;
pub mod server;

use std::net::SocketAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

pub use encode::{Exposition, RenderOptions, render};
pub use sampler::{Latest, Sampler};

/// The exporter's default address: loopback only (reach it through an SSH tunnel).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9464";

/// `[metrics]`: the console's exporter and how often figures are sampled for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Where the console serves `/metrics` ("" = off).
    pub listen: String,
    /// Milliseconds between samples for the exporter (each scrape serves the latest).
    pub sample_ms: u64,
    /// Also export the GPU figures under NVIDIA DCGM exporter names and labels.
    pub dcgm_names: bool,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self { listen: String::new(), sample_ms: 10_000, dcgm_names: false }
    }
}

impl MetricsConfig {
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if !self.listen.is_empty()
            && let Err(e) = parse_listen(&self.listen)
        {
            out.push(("metrics.listen".into(), e));
        }
        if self.sample_ms < 500 {
            out.push(("metrics.sample_ms".into(), format!("must be at least 500, got {}", self.sample_ms)));
        }
        out
    }
}

/// An `ADDRESS:PORT` to listen on (`localhost:PORT` is 127.0.0.1), or why not.
pub fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    let s = s.trim();
    let parsed = match s.strip_prefix("localhost:") {
        Some(port) => format!("127.0.0.1:{port}").parse::<SocketAddr>(),
        None => s.parse::<SocketAddr>(),
    };
    parsed.map_err(|_| {
        format!(
            "'{}' is not an ADDRESS:PORT to listen on (for example 127.0.0.1:9464, or [::1]:9464)",
            crate::util::printable(s)
        )
    })
}

/// The warning printed when the exporter listens beyond this machine, or `None` on loopback.
pub fn exposure_warning(addr: &SocketAddr) -> Option<String> {
    (!addr.ip().is_loopback()).then(|| {
        format!(
            "warning: serving metrics on {addr} without authentication: anyone who can reach this address \
             can read them (host name, disk, GPU and training figures). Prefer 127.0.0.1 and an SSH tunnel \
             (docs/fleet.md)."
        )
    })
}

/// Writes `text` to `path` atomically (a temp file beside it, then a rename), as
/// node_exporter's textfile collector needs: it never reads half a file.
pub fn write_textfile(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new().prefix(".opsconsole-metrics-").suffix(".tmp").tempfile_in(dir)?;
    tmp.write_all(text.as_bytes())?;
    tmp.as_file().sync_all()?;
    // node_exporter runs as another user: the file is readable like any .prom file.
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o644))?;
    }
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_values() {
        assert_eq!(parse_listen("127.0.0.1:9464").unwrap().port(), 9464);
        assert_eq!(parse_listen("localhost:9000").unwrap(), "127.0.0.1:9000".parse().unwrap());
        assert!(parse_listen("[::1]:9464").unwrap().ip().is_loopback());
        for bad in ["9464", "127.0.0.1", "127.0.0.1:99999", "host:9464", ""] {
            let e = parse_listen(bad).unwrap_err();
            assert!(e.contains("ADDRESS:PORT"), "{e}");
        }
        assert!(exposure_warning(&"127.0.0.1:9464".parse().unwrap()).is_none());
        let w = exposure_warning(&"0.0.0.0:9464".parse().unwrap()).unwrap();
        assert!(w.contains("without authentication"), "{w}");
    }

    #[test]
    fn config_is_checked() {
        let bad = MetricsConfig { listen: "nope".into(), sample_ms: 10, dcgm_names: false };
        let keys: Vec<_> = bad.validate().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["metrics.listen", "metrics.sample_ms"]);
        assert!(MetricsConfig::default().validate().is_empty());
    }

    #[test]
    fn textfile_is_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("opsconsole.prom");
        write_textfile(&p, "a 1\n").unwrap();
        write_textfile(&p, "a 2\n").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "a 2\n");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "no temp file left behind");
    }
}
