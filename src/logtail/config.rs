//! `[log]` configuration: which log to follow and how.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::parse::MetricParser;

/// Configuration of the Log panel and `status --json`'s `log` and `metrics`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// An explicit log file, relative to the workspace root (or absolute).
    pub path: Option<PathBuf>,
    /// A glob relative to the workspace root (`*` does not cross `/`, `**` does);
    /// the newest match is followed.
    pub glob: Option<String>,
    /// No new line for this long while a training process is alive = stalled.
    #[serde(with = "duration_text")]
    pub stall_after: Duration,
    /// Slow poll used beside file-system notifications (network mounts send none).
    #[serde(with = "duration_text")]
    pub poll_interval: Duration,
    /// Longest line kept, in bytes; the rest of a longer line is skipped and the
    /// line is marked truncated.
    pub max_line_bytes: usize,
    /// Log lines kept in memory for scrolling and search.
    pub buffer_lines: usize,
    /// Most points kept per chart series (older points are thinned out).
    pub chart_points: usize,
    /// Extra regular expressions with named groups (`step`, `total_steps`, `loss`,
    /// `eval_loss`, `learning_rate`, `grad_norm`, `epoch`, `tokens_per_second`,
    /// `eta_seconds`); a match adds or overrides the built-in parsers' values.
    pub patterns: Vec<String>,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            path: None,
            glob: None,
            stall_after: Duration::from_secs(15 * 60),
            poll_interval: Duration::from_secs(2),
            max_line_bytes: 4096,
            buffer_lines: 10_000,
            chart_points: 2_000,
            patterns: Vec::new(),
        }
    }
}

impl LogConfig {
    /// Problems with the values, as (dotted key, problem) pairs.
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut bad = |key: &str, why: String| out.push((format!("log.{key}"), why));
        if self.path.is_some() && self.glob.is_some() {
            bad("glob", "set either log.path or log.glob, not both".into());
        }
        if let Some(p) = &self.path
            && p.as_os_str().is_empty()
        {
            bad("path", "must not be empty".into());
        }
        if let Some(g) = &self.glob
            && let Err(e) = crate::glob::check(g, crate::glob::Semantics::Path)
        {
            bad("glob", e.to_string());
        }
        if self.stall_after < Duration::from_secs(10) {
            bad("stall_after", "must be at least 10s".into());
        }
        if self.poll_interval < Duration::from_millis(100) || self.poll_interval > Duration::from_secs(300) {
            bad("poll_interval", "must be between 100ms and 5m".into());
        }
        if !(80..=1 << 20).contains(&self.max_line_bytes) {
            bad("max_line_bytes", "must be between 80 and 1048576".into());
        }
        if !(100..=1_000_000).contains(&self.buffer_lines) {
            bad("buffer_lines", "must be between 100 and 1000000".into());
        }
        if !(16..=100_000).contains(&self.chart_points) {
            bad("chart_points", "must be between 16 and 100000".into());
        }
        for (i, p) in self.patterns.iter().enumerate() {
            if let Err(e) = MetricParser::check_pattern(p) {
                bad(&format!("patterns[{i}]"), e);
            }
        }
        out
    }
}

/// Durations written the way people say them: "15m", "2s", "1h 30m".
pub(crate) mod duration_text {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(|e| D::Error::custom(format!("not a duration like \"15m\": {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_glob_is_named() {
        let c = LogConfig { glob: Some("runs/[a/*.log".into()), ..LogConfig::default() };
        let problems = c.validate();
        assert!(
            problems.iter().any(|(k, why)| k == "log.glob" && why.starts_with("`runs/[a/*.log` is not a valid glob")),
            "{problems:?}"
        );
    }

    #[test]
    fn defaults_are_valid_and_round_trip() {
        let c = LogConfig::default();
        assert!(c.validate().is_empty(), "{:?}", c.validate());
        let text = toml::to_string(&c).expect("serialize");
        let back: LogConfig = toml::from_str(&text).expect("parse");
        assert_eq!(back, c);
        assert!(text.contains("stall_after = \"15m\""), "{text}");
    }

    #[test]
    fn unknown_key_is_refused() {
        let err = toml::from_str::<LogConfig>("stall = \"1m\"").unwrap_err();
        assert!(err.to_string().contains("stall"), "{err}");
    }

    #[test]
    fn bad_values_are_named() {
        let c: LogConfig = toml::from_str(
            r#"
            path = "a.log"
            glob = "logs/[.log"
            stall_after = "1s"
            max_line_bytes = 10
            patterns = ["(?P<loss>[0-9.]+", "step (?P<stepp>\\d+)", "no groups"]
            "#,
        )
        .expect("parse");
        let keys: Vec<String> = c.validate().into_iter().map(|(k, _)| k).collect();
        for k in [
            "log.glob",
            "log.stall_after",
            "log.max_line_bytes",
            "log.patterns[0]",
            "log.patterns[1]",
            "log.patterns[2]",
        ] {
            assert!(keys.iter().any(|x| x == k), "{k} missing from {keys:?}");
        }
    }

    #[test]
    fn bad_duration_is_an_error() {
        assert!(toml::from_str::<LogConfig>("stall_after = \"soon\"").is_err());
    }
}
