//! Recognising secrets — key files, tokens and credentials — by name and by content, so
//! that they never leave the machine: the sync engine withholds them from every level, and
//! a bundle leaves them out.
//!
//! [`scan`] checks a file's name and the first [`CONTENT_WINDOW`] bytes of its contents.
//! A [`Finding`] says what was recognised and why in words; it never carries the secret
//! itself, so it may be logged, shown and stored.
//!
//! The rules lean towards withholding: a file named like a key (`gcp-key.json`) is
//! withheld whatever it holds. Look-alikes pass: `hf_utils.py`, a public key
//! `id_rsa.pub`, `tokenizer.json`, a JSON that mentions `"private_key"` without being a
//! service-account key.

use std::io::Read;
use std::path::Path;
use std::sync::LazyLock;

use regex::bytes::Regex;
use serde::Serialize;

/// How much of a file's beginning is read for the content rules.
pub const CONTENT_WINDOW: usize = 64 * 1024;

/// What kind of secret a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretKind {
    /// A PEM, OpenSSH, PuTTY or PGP private key, or a key store (`.pfx`, `.p12`, `.jks`).
    PrivateKey,
    /// A Google service-account key (JSON with `"private_key"` and `"type": "service_account"`).
    ServiceAccountKey,
    /// A Google OAuth access token (`ya29.`), refresh token or client secret.
    OAuthToken,
    /// A Hugging Face token (`hf_…`).
    HfToken,
    /// AWS access keys.
    AwsCredentials,
    /// A Kaggle API key (`kaggle.json`).
    KaggleKey,
    /// An npm auth token (`.npmrc`).
    NpmToken,
    /// PyPI credentials (`.pypirc`, `pypi-…` tokens).
    PypiCredentials,
    /// Docker registry credentials (`.docker/config.json` `auths`).
    DockerAuth,
    /// Another service's API token (GitHub, GitLab, Slack, OpenAI, Anthropic).
    ApiToken,
    /// An environment file (`.env`, `prod.env`).
    EnvFile,
    /// A file named like a credential, or inside a folder of them (`.secrets/`, `.ssh/`).
    Credentials,
}

/// Why a file was recognised as a secret. `why` is words, never the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub kind: SecretKind,
    pub why: String,
}

impl Finding {
    fn new(kind: SecretKind, why: impl Into<String>) -> Self {
        Self { kind, why: why.into() }
    }
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.why)
    }
}

/// Check a file: its name (`path` as given; pass a workspace-relative path so that the
/// folders above the workspace do not count) and the first [`CONTENT_WINDOW`] bytes of its
/// contents. A file that cannot be read is judged by its name alone.
pub fn scan(path: &Path) -> Option<Finding> {
    scan_in(Path::new(""), &path.to_string_lossy())
}

/// [`scan`] for a file at `root/rel`, judging the name by `rel` only.
pub fn scan_in(root: &Path, rel: &str) -> Option<Finding> {
    check_name(rel).or_else(|| check_file_content(&root.join(rel)))
}

/// [`scan_in`], with the content rules over the whole file instead of its first 64 KiB:
/// for text the sync engine uploads (a log that printed a token after its first megabyte).
/// Weights are better judged by [`scan_in`]: they are large and binary.
pub fn scan_whole_in(root: &Path, rel: &str) -> Option<Finding> {
    check_name(rel).or_else(|| check_whole_file(&root.join(rel)))
}

/// The content rules over the whole of `bytes` (in 1 MiB pieces overlapping by 4 KiB,
/// like [`check_whole_file`]): for contents already in memory.
pub fn check_whole_bytes(bytes: &[u8]) -> Option<Finding> {
    const PIECE: usize = 1 << 20;
    const OVERLAP: usize = 4096;
    let mut start = 0;
    loop {
        let end = (start + PIECE + OVERLAP).min(bytes.len());
        if let Some(f) = check_bytes(&bytes[start..end]) {
            return Some(f);
        }
        if end == bytes.len() {
            return None;
        }
        start = end - OVERLAP;
    }
}

/// The content rules over a whole regular file, read in 1 MiB pieces that overlap by
/// 4 KiB (so a token across a boundary is seen whole).
pub fn check_whole_file(path: &Path) -> Option<Finding> {
    const PIECE: usize = 1 << 20;
    const OVERLAP: usize = 4096;
    let mut file = open_regular_nofollow(path).ok()?;
    let mut buf = vec![0u8; PIECE + OVERLAP];
    let mut kept = 0;
    loop {
        let n = match file.read(&mut buf[kept..]) {
            Ok(0) => return None,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return None,
        };
        let end = kept + n;
        if let Some(f) = check_bytes(&buf[..end]) {
            return Some(f);
        }
        let tail = end.min(OVERLAP);
        buf.copy_within(end - tail..end, 0);
        kept = tail;
    }
}

fn open_regular_nofollow(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(
            (rustix::fs::OFlags::NONBLOCK | rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NOCTTY).bits() as i32
        )
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file"));
    }
    Ok(file)
}

/// The content rules on the beginning of a file (`None` when it cannot be read, or is
/// not a regular file).
pub fn check_file_content(path: &Path) -> Option<Finding> {
    read_window(path).ok().and_then(|b| check_content(&b))
}

/// The first [`CONTENT_WINDOW`] bytes of a regular file. Does not follow a symbolic link
/// and never blocks on a FIFO or a device.
pub fn read_window(path: &Path) -> std::io::Result<Vec<u8>> {
    let file = open_regular_nofollow(path)?;
    let mut buf = Vec::with_capacity(8192);
    file.take(CONTENT_WINDOW as u64).read_to_end(&mut buf)?;
    Ok(buf)
}

/// Folders whose every file is a secret.
const SECRET_DIRS: [&str; 7] = [".secrets", ".ssh", ".gnupg", ".aws", ".kaggle", ".password-store", ".azure"];

/// Exact file names (lower case) of credential files.
const SECRET_NAMES: [(&str, SecretKind, &str); 24] = [
    (".env", SecretKind::EnvFile, "an environment file"),
    (".netrc", SecretKind::Credentials, "a .netrc login file"),
    ("_netrc", SecretKind::Credentials, "a .netrc login file"),
    (".git-credentials", SecretKind::Credentials, "git's stored credentials"),
    (".npmrc", SecretKind::NpmToken, "an npm config (.npmrc) with registry tokens"),
    (".pypirc", SecretKind::PypiCredentials, "a PyPI config (.pypirc) with upload credentials"),
    (".pgpass", SecretKind::Credentials, "a PostgreSQL password file"),
    (".htpasswd", SecretKind::Credentials, "an htpasswd file"),
    (".boto", SecretKind::Credentials, "a boto config with cloud keys"),
    (".s3cfg", SecretKind::AwsCredentials, "an s3cmd config with AWS keys"),
    (".dockercfg", SecretKind::DockerAuth, "a Docker registry login file"),
    ("credentials", SecretKind::Credentials, "a credentials file"),
    ("token", SecretKind::ApiToken, "a token file"),
    ("stored_tokens", SecretKind::HfToken, "Hugging Face's stored tokens"),
    ("kaggle.json", SecretKind::KaggleKey, "a Kaggle API key file (kaggle.json)"),
    ("id_rsa", SecretKind::PrivateKey, "an SSH private key"),
    ("id_dsa", SecretKind::PrivateKey, "an SSH private key"),
    ("id_ecdsa", SecretKind::PrivateKey, "an SSH private key"),
    ("id_ed25519", SecretKind::PrivateKey, "an SSH private key"),
    ("id_ecdsa_sk", SecretKind::PrivateKey, "an SSH private key"),
    ("id_ed25519_sk", SecretKind::PrivateKey, "an SSH private key"),
    ("access_tokens.db", SecretKind::OAuthToken, "gcloud's stored access tokens"),
    ("credentials.db", SecretKind::OAuthToken, "gcloud's stored credentials"),
    ("application_default_credentials.json", SecretKind::OAuthToken, "Google application-default credentials"),
];

/// Extensions (lower case, without the dot) of key files and key stores.
const KEY_EXTENSIONS: [(&str, &str); 8] = [
    ("pem", "a PEM key file (*.pem)"),
    ("key", "a key file (*.key)"),
    ("p12", "a PKCS#12 key store (*.p12)"),
    ("pfx", "a PKCS#12 key store (*.pfx)"),
    ("jks", "a Java key store (*.jks)"),
    ("keystore", "a key store (*.keystore)"),
    ("ppk", "a PuTTY private key (*.ppk)"),
    ("kdbx", "a KeePass password database (*.kdbx)"),
];

/// Extensions of data files judged by the words of their name (`gcp-key.json`).
const DATA_EXTENSIONS: [&str; 10] = ["", "json", "yaml", "yml", "toml", "ini", "cfg", "conf", "txt", "env"];

/// Words that make a data file a secret wherever they stand in its name.
const SECRET_WORDS: [&str; 6] = ["secret", "secrets", "credential", "credentials", "serviceaccount", "passwords"];

/// Words that make a data file a secret as the last word of its name (`api_keys.json`,
/// `hf_token`), not elsewhere (`key_metrics.json`, `tokenizer.json`).
const SECRET_LAST_WORDS: [&str; 8] = ["key", "keys", "apikey", "apikeys", "token", "password", "passwd", "pat"];

/// The name rules: secret folders, credential file names, key extensions, and words in
/// the names of data files. `rel` is a `/`-separated relative path.
pub fn check_name(rel: &str) -> Option<Finding> {
    let lower = rel.to_ascii_lowercase();
    let parts: Vec<&str> = lower.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    let (name, dirs) = parts.split_last()?;
    let name = *name;
    if let Some(d) = dirs.iter().find(|d| SECRET_DIRS.contains(d)) {
        return Some(Finding::new(SecretKind::Credentials, format!("by name: inside a {d}/ folder")));
    }
    if dirs.ends_with(&[".docker"]) && name == "config.json" {
        return Some(Finding::new(SecretKind::DockerAuth, "by name: a Docker registry login (.docker/config.json)"));
    }
    if dirs.windows(2).any(|w| w == [".config", "gcloud"]) {
        return Some(Finding::new(SecretKind::OAuthToken, "by name: inside gcloud's config folder"));
    }
    if dirs.ends_with(&[".huggingface"]) || dirs.ends_with(&["huggingface"]) && name.contains("token") {
        return Some(Finding::new(SecretKind::HfToken, "by name: a Hugging Face token file"));
    }
    if let Some((_, kind, why)) = SECRET_NAMES.iter().find(|(n, _, _)| *n == name) {
        return Some(Finding::new(*kind, format!("by name: {why}")));
    }
    if let Some(rest) = name.strip_prefix(".env.") {
        // Templates hold no values: `.env.example`, `.env.sample`, `.env.template`.
        if !matches!(rest, "example" | "sample" | "template" | "dist" | "defaults") {
            return Some(Finding::new(SecretKind::EnvFile, format!("by name: an environment file ({name})")));
        }
        return None;
    }
    let (stem, ext) = match name.rsplit_once('.') {
        Some((s, e)) if !s.is_empty() => (s, e),
        _ => (name, ""),
    };
    if ext == "env" {
        return Some(Finding::new(SecretKind::EnvFile, format!("by name: an environment file ({name})")));
    }
    if let Some((_, why)) = KEY_EXTENSIONS.iter().find(|(e, _)| *e == ext) {
        return Some(Finding::new(SecretKind::PrivateKey, format!("by name: {why}")));
    }
    if !DATA_EXTENSIONS.contains(&ext) {
        return None;
    }
    let words: Vec<&str> = stem.split(['-', '_', '.', ' ']).filter(|w| !w.is_empty()).collect();
    let named = |what: &str| Some(Finding::new(SecretKind::Credentials, format!("by name: {what} ({name})")));
    if words.iter().any(|w| SECRET_WORDS.contains(w)) || words.windows(2).any(|w| w == ["service", "account"]) {
        return named("named like a credential");
    }
    if words.last().is_some_and(|w| SECRET_LAST_WORDS.contains(w)) {
        return named("named like a key or token");
    }
    if stem == "sa" || stem == "gcp" || stem == "gcloud" {
        return named("named like a service-account key");
    }
    // The name Google Cloud gives a downloaded service-account key:
    // `<project-id>-<10 to 16 hex digits>.json`.
    if ext == "json"
        && words.len() >= 2
        && words.last().is_some_and(|w| {
            (10..=16).contains(&w.len())
                && w.bytes().all(|b| b.is_ascii_hexdigit())
                && w.bytes().any(|b| b.is_ascii_digit())
                && w.bytes().any(|b| b.is_ascii_alphabetic())
        })
    {
        return named("named like a downloaded Google service-account key");
    }
    None
}

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("static secret pattern")
}

static PEM_PRIVATE: LazyLock<Regex> =
    LazyLock::new(|| re(r"-----BEGIN ((?:[A-Z0-9]+ )*)PRIVATE KEY(?: BLOCK)?-----|PuTTY-User-Key-File-\d"));
static SA_TYPE: LazyLock<Regex> = LazyLock::new(|| re(r#""type"\s*:\s*"service_account""#));
static SA_KEY: LazyLock<Regex> = LazyLock::new(|| re(r#""private_key"\s*:\s*"[^"]"#));
/// A service account's address, `…@PROJECT.iam.gserviceaccount.com`: with a `"private_key"`
/// value it is a key even without its `"type"` line (a trimmed or re-serialised key file).
static SA_EMAIL: LazyLock<Regex> =
    LazyLock::new(|| re(r#""client_email"\s*:\s*"[^"\s]+@[^"\s]+\.gserviceaccount\.com""#));
static YA29: LazyLock<Regex> = LazyLock::new(|| re(r"(?:^|[^A-Za-z0-9_])ya29\.[0-9A-Za-z_\-]{20,}"));
static REFRESH: LazyLock<Regex> = LazyLock::new(|| re(r#""refresh_token"\s*:\s*"[^"\s]{10,}""#));
static CLIENT_SECRET: LazyLock<Regex> = LazyLock::new(|| re(r#""client_secret"\s*:\s*"[^"\s]{8,}""#));
static HF: LazyLock<Regex> = LazyLock::new(|| re(r"(?:^|[^A-Za-z0-9_])(?:hf|api_org)_[A-Za-z0-9]{30,}"));
static AWS_ID: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?:^|[^A-Z0-9])(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}(?:[^A-Z0-9]|$)"));
static AWS_SECRET_NAMED: LazyLock<Regex> = LazyLock::new(|| {
    re(r#"(?i)(?:aws_secret_access_key|secret_access_key|secretaccesskey)["']?\s*[:=]\s*["']?[A-Za-z0-9/+]{40}"#)
});
static AWS_SECRET_BARE: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?:^|[^A-Za-z0-9/+])[A-Za-z0-9/+]{40}(?:[^A-Za-z0-9/+=]|$)"));
static KAGGLE_USER: LazyLock<Regex> = LazyLock::new(|| re(r#""username"\s*:\s*"[^"]+""#));
static KAGGLE_KEY: LazyLock<Regex> = LazyLock::new(|| re(r#""key"\s*:\s*"[A-Za-z0-9]{20,}""#));
static NPM: LazyLock<Regex> = LazyLock::new(|| re(r"(?m)(?:_authToken|_auth|_password)\s*=\s*[^\s$]"));
static PYPI_SECTION: LazyLock<Regex> = LazyLock::new(|| re(r"(?m)^\s*\[(?:pypi|testpypi|distutils|server-login)\]"));
static PYPI_PASSWORD: LazyLock<Regex> = LazyLock::new(|| re(r"(?m)^\s*password\s*[:=]\s*\S"));
static PYPI_TOKEN: LazyLock<Regex> = LazyLock::new(|| re(r"pypi-AgE[A-Za-z0-9_\-]{50,}"));
static DOCKER_AUTHS: LazyLock<Regex> = LazyLock::new(|| re(r#""auths"\s*:\s*\{"#));
static DOCKER_AUTH: LazyLock<Regex> =
    LazyLock::new(|| re(r#""(?:auth|identitytoken)"\s*:\s*"[A-Za-z0-9+/=._\-]{4,}""#));
static API_TOKENS: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?:^|[^A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9_]{50,}|glpat-[A-Za-z0-9_\-]{20}|xox[abprs]-[A-Za-z0-9\-]{10,}|sk-ant-[A-Za-z0-9_\-]{20,}|sk-proj-[A-Za-z0-9_\-]{20,})",
    )
});

/// Literals at least one of which each content rule requires (case-insensitive), so a
/// piece of text without any of them needs no further look.
const TRIGGERS: &[&str] = &[
    "private key",
    "putty-user-key-file-",
    "service_account",
    "gserviceaccount",
    "ya29.",
    "refresh_token",
    "client_secret",
    "client-secret",
    "clientsecret",
    "hf_",
    "api_org_",
    "secret_access_key",
    "secretaccesskey",
    "akia",
    "asia",
    "agpa",
    "aida",
    "aroa",
    "anpa",
    "anva",
    "aipa",
    "\"username\"",
    "_auth",
    "_password",
    "pypi",
    "[distutils]",
    "[server-login]",
    "\"auths\"",
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "github_pat_",
    "glpat-",
    "xoxa-",
    "xoxb-",
    "xoxp-",
    "xoxr-",
    "xoxs-",
    "sk-ant-",
    "sk-proj-",
    "machine",
    "bearer",
    "api_key",
    "api-key",
    "apikey",
    "secret_key",
    "secret-key",
    "secretkey",
    "access_token",
    "access-token",
    "accesstoken",
    "auth_token",
    "auth-token",
    "authtoken",
    "private_token",
    "private-token",
    "privatetoken",
    "wandb_api",
    "wandb-api",
];

static PREFILTER: LazyLock<Regex> = LazyLock::new(|| {
    let alternation: Vec<String> = TRIGGERS.iter().map(|t| regex::escape(t)).collect();
    re(&format!("(?i){}", alternation.join("|")))
});

static NETRC: LazyLock<Regex> = LazyLock::new(|| re(r"(?m)^\s*machine\s+\S+(?:\s+login\s+\S+)?\s+password\s+\S{8,}"));
static BEARER: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?i)authorization[\x22']?\s*:\s*[\x22']?bearer\s+[A-Za-z0-9_\-.=/+]{20,}"));
static GENERIC: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r#"(?i)\b(?:api[_-]?key|apikey|secret[_-]?key|access[_-]?token|auth[_-]?token|client[_-]?secret|private[_-]?token|wandb[_-]?api[_-]?key)["']?\s*[:=]\s*(["']?)([A-Za-z0-9_\-/+=.]{20,})"#,
    )
});

/// The content rules, on the beginning of a file (its first [`CONTENT_WINDOW`] bytes).
pub fn check_content(bytes: &[u8]) -> Option<Finding> {
    check_bytes(&bytes[..bytes.len().min(CONTENT_WINDOW)])
}

/// A quoted value, or one mixing letters and digits (a key, not a word or a call).
fn looks_like_a_key(value: &[u8], quoted: bool) -> bool {
    quoted || (value.iter().any(u8::is_ascii_digit) && value.iter().any(u8::is_ascii_alphabetic))
}

fn check_bytes(bytes: &[u8]) -> Option<Finding> {
    // One pass for the literals every rule below needs; most text has none of them.
    if !PREFILTER.is_match(bytes) {
        return None;
    }
    let found = |kind, why: &str| Some(Finding::new(kind, format!("by content: {why}")));
    if let Some(c) = PEM_PRIVATE.captures(bytes) {
        let label = c.get(1).map(|m| String::from_utf8_lossy(m.as_bytes()).trim().to_string()).unwrap_or_default();
        let what = match label.as_str() {
            "OPENSSH" => "an OpenSSH private key".to_string(),
            "PGP" => "a PGP private key block".to_string(),
            "" if c.get(0).is_some_and(|m| m.as_bytes().starts_with(b"PuTTY")) => "a PuTTY private key".to_string(),
            "" => "a PEM private key".to_string(),
            other => format!("a PEM private key ({other})"),
        };
        return found(SecretKind::PrivateKey, &what);
    }
    if (SA_TYPE.is_match(bytes) || SA_EMAIL.is_match(bytes)) && SA_KEY.is_match(bytes) {
        return found(
            SecretKind::ServiceAccountKey,
            "a Google service-account key (\"private_key\", \"type\": \"service_account\")",
        );
    }
    if YA29.is_match(bytes) {
        return found(SecretKind::OAuthToken, "a Google OAuth access token (ya29.…)");
    }
    if REFRESH.is_match(bytes) {
        return found(SecretKind::OAuthToken, "an OAuth refresh token (\"refresh_token\")");
    }
    if CLIENT_SECRET.is_match(bytes) {
        return found(SecretKind::OAuthToken, "an OAuth client secret (\"client_secret\")");
    }
    if HF.is_match(bytes) {
        return found(SecretKind::HfToken, "a Hugging Face token (hf_…)");
    }
    if AWS_SECRET_NAMED.is_match(bytes) || (AWS_ID.is_match(bytes) && AWS_SECRET_BARE.is_match(bytes)) {
        return found(SecretKind::AwsCredentials, "AWS access keys (a key id with its secret)");
    }
    if KAGGLE_USER.is_match(bytes) && KAGGLE_KEY.is_match(bytes) {
        return found(SecretKind::KaggleKey, "a Kaggle API key ({\"username\", \"key\"})");
    }
    if NPM.is_match(bytes) {
        return found(SecretKind::NpmToken, "an npm auth token (_authToken)");
    }
    if (PYPI_SECTION.is_match(bytes) && PYPI_PASSWORD.is_match(bytes)) || PYPI_TOKEN.is_match(bytes) {
        return found(SecretKind::PypiCredentials, "PyPI upload credentials (a .pypirc password or pypi- token)");
    }
    if DOCKER_AUTHS.is_match(bytes) && DOCKER_AUTH.is_match(bytes) {
        return found(SecretKind::DockerAuth, "Docker registry credentials (\"auths\")");
    }
    if API_TOKENS.is_match(bytes) {
        return found(SecretKind::ApiToken, "an API token (GitHub, GitLab, Slack, OpenAI or Anthropic)");
    }
    if NETRC.is_match(bytes) {
        return found(SecretKind::Credentials, "a .netrc login (machine … password)");
    }
    if BEARER.is_match(bytes) {
        return found(SecretKind::ApiToken, "an Authorization: Bearer token");
    }
    if GENERIC
        .captures_iter(bytes)
        .any(|c| c.get(2).is_some_and(|v| looks_like_a_key(v.as_bytes(), c.get(1).is_some_and(|q| !q.is_empty()))))
    {
        return found(SecretKind::ApiToken, "a key or token assigned in the file (api_key = …)");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Obviously fake key material, assembled at run time so no file in the repository
    /// looks like a real secret.
    fn fake(prefix: &str, n: usize) -> String {
        format!("{prefix}{}", "X1".repeat(n / 2 + 1).chars().take(n).collect::<String>())
    }

    #[test]
    fn names_from_the_issue_are_secrets() {
        for rel in [
            "my-project-3f2a1b9c0d.json",
            "gcp-key.json",
            "sa.json",
            "kaggle.json",
            ".kaggle/kaggle.json",
            "secrets.json",
            "api_keys.json",
            ".aws/credentials",
            ".docker/config.json",
            ".npmrc",
            ".pypirc",
            "hf_token",
            "token.txt",
            "prod.env",
            "certs/client.pfx",
            "client.p12",
            "release.jks",
            ".secrets/anything.json",
            ".env",
            ".env.production",
            "deep/dir/.ssh/id_ed25519",
            "keys/id_rsa",
            "server.pem",
            "client_secret_1234.apps.googleusercontent.com.json",
            "colab-service-account.json",
            "GCP_Credentials.JSON",
            ".cache/huggingface/token",
            ".config/gcloud/application_default_credentials.json",
        ] {
            assert!(check_name(rel).is_some(), "{rel} must be a secret by name");
        }
    }

    #[test]
    fn look_alike_names_pass() {
        for rel in [
            "hf_utils.py",
            "keys/id_rsa.pub",
            "tokenizer.json",
            "tokenizer_config.json",
            "special_tokens_map.json",
            "added_tokens.json",
            "key_metrics.json",
            "monkey.json",
            "metrics/eval.json",
            "config.json",
            "trainer_state.json",
            "experiments/v68/logs/train.log",
            "environment.yml",
            ".env.example",
            "wandb-summary.json",
            "run-20240101.json",
            "checkpoint-500/model.safetensors",
            "journal.md",
        ] {
            assert_eq!(check_name(rel), None, "{rel} is not a secret by name");
        }
    }

    #[test]
    fn content_rules_catch_each_kind() {
        let cases: Vec<(String, SecretKind)> = vec![
            (
                format!(
                    "-----BEGIN OPENSSH PRIVATE KEY-----\n{}\n-----END OPENSSH PRIVATE KEY-----\n",
                    fake("b3Bl", 60)
                ),
                SecretKind::PrivateKey,
            ),
            (format!("-----BEGIN RSA PRIVATE KEY-----\n{}\n", fake("MIIE", 60)), SecretKind::PrivateKey),
            (format!("-----BEGIN PRIVATE KEY-----\n{}\n", fake("MIIE", 60)), SecretKind::PrivateKey),
            (
                format!(
                    "{{\n  \"type\": \"service_account\",\n  \"project_id\": \"p\",\n  \"private_key_id\": \"ab\",\n  \"private_key\": \"{}\"\n}}",
                    fake("fake", 40)
                ),
                SecretKind::ServiceAccountKey,
            ),
            (
                format!(
                    "{{\"client_email\": \"bot@proj.iam.gserviceaccount.com\", \"private_key\": \"{}\"}}",
                    fake("MIIE", 40)
                ),
                SecretKind::ServiceAccountKey,
            ),
            (format!("token = {}\n", fake("ya29.", 40)), SecretKind::OAuthToken),
            (format!("HF_TOKEN={}\n", fake("hf_", 34)), SecretKind::HfToken),
            (
                format!(
                    "[default]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
                    fake("AKIA", 16),
                    fake("w", 40)
                ),
                SecretKind::AwsCredentials,
            ),
            (format!("export A={} B={}\n", fake("AKIA", 16), fake("Zq/", 37)), SecretKind::AwsCredentials),
            (format!("{{\"username\":\"someone\",\"key\":\"{}\"}}", fake("0a", 32)), SecretKind::KaggleKey),
            (format!("//registry.npmjs.org/:_authToken={}\n", fake("npm_", 36)), SecretKind::NpmToken),
            (
                "[distutils]\nindex-servers = pypi\n\n[pypi]\nusername = me\npassword = hunter2\n".into(),
                SecretKind::PypiCredentials,
            ),
            (format!("{{\"auths\": {{\"ghcr.io\": {{\"auth\": \"{}\"}}}}}}", fake("dXNl", 20)), SecretKind::DockerAuth),
            (format!("GITHUB_TOKEN={}\n", fake("ghp_", 36)), SecretKind::ApiToken),
            (format!("client = OpenAI(api_key=\"{}\")\n", fake("sk-", 48)), SecretKind::ApiToken),
            (format!("WANDB_API_KEY={}\n", fake("", 40)), SecretKind::ApiToken),
            (format!("openai:\n  api_key: {}\n", fake("", 40)), SecretKind::ApiToken),
            (format!("machine api.wandb.ai\n  login user\n  password {}\n", fake("", 40)), SecretKind::Credentials),
            (format!("curl -H 'Authorization: Bearer {}'\n", fake("", 40)), SecretKind::ApiToken),
        ];
        for (text, kind) in cases {
            let f = check_content(text.as_bytes()).unwrap_or_else(|| panic!("not caught: {text}"));
            assert_eq!(f.kind, kind, "{text}");
            assert!(f.why.starts_with("by content: "), "{}", f.why);
        }
    }

    #[test]
    fn look_alike_contents_pass() {
        for text in [
            // Mentions private_key, but is no service-account key.
            "{\"private_key\": null, \"note\": \"set private_key in the vault\"}",
            "{\"type\": \"service_account\", \"note\": \"no key here\"}",
            // A public key.
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeFakeFakeFakeFakeFakeFakeFakeFakeFake me@host",
            "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----\n",
            "from huggingface_hub import hf_hub_download\nx = hf_hub_download(repo_id='a/b')\n",
            "//registry.npmjs.org/:_authToken=${NPM_TOKEN}\n",
            "{\"auths\": {\"ghcr.io\": {}}, \"credsStore\": \"desktop\"}",
            "{\"username\": \"me\", \"key\": \"short\"}",
            "{'loss': 2.31, 'learning_rate': 0.0003, 'epoch': 1.42}",
            "[tool]\npassword = not-in-a-pypi-section\n",
            "api_key = os.environ[\"OPENAI_API_KEY\"]\n",
            "api_key = get_api_key_from_environment_variable()\n",
            "{\"use_auth_token\": true, \"pad_token\": \"<pad>\", \"eos_token_id\": 2}",
            "{\"access_token\": null}",
        ] {
            assert_eq!(check_content(text.as_bytes()), None, "{text}");
        }
    }

    #[test]
    fn the_whole_file_is_read_for_text_and_a_token_across_a_piece_boundary_is_seen() {
        let dir = tempfile::tempdir().expect("tempdir");
        for at in [100_000usize, (1 << 20) - 10, (1 << 20) + 4096 - 20, 3 << 20] {
            let p = dir.path().join(format!("train-{at}.log"));
            let mut text = "step 1 loss 2.0\n".repeat(at / 16 + 1);
            text.truncate(at);
            text.push_str(" token=");
            text.push_str(&fake("hf_", 34));
            text.push_str("\nstep 2\n");
            std::fs::write(&p, &text).expect("write");
            assert_eq!(check_file_content(&p), None, "only the first 64 KiB");
            let rel = p.file_name().and_then(|n| n.to_str()).expect("name").to_string();
            assert_eq!(scan_whole_in(dir.path(), &rel).map(|f| f.kind), Some(SecretKind::HfToken), "at {at}");
        }
        let clean = dir.path().join("clean.log");
        std::fs::write(&clean, "step 1 loss 2.0\n".repeat(200_000)).expect("write");
        assert_eq!(check_whole_file(&clean), None);
    }

    #[test]
    fn files_are_read_only_up_to_the_window_and_never_through_fifos() {
        let dir = tempfile::tempdir().expect("tempdir");
        let late = dir.path().join("late.txt");
        let mut text = "x".repeat(CONTENT_WINDOW);
        text.push_str(&fake("hf_", 34));
        std::fs::write(&late, &text).expect("write");
        assert_eq!(check_file_content(&late), None, "beyond the window");
        let early = dir.path().join("notes.txt");
        std::fs::write(&early, format!("token: {}\n", fake("hf_", 34))).expect("write");
        assert_eq!(scan_in(dir.path(), "notes.txt").map(|f| f.kind), Some(SecretKind::HfToken));
        let fifo = dir.path().join("pipe");
        rustix::fs::mkfifoat(rustix::fs::CWD, &fifo, rustix::fs::Mode::from_raw_mode(0o600)).expect("mkfifo");
        assert!(read_window(&fifo).is_err(), "a FIFO is refused, not waited on");
        std::os::unix::fs::symlink(&early, dir.path().join("link.txt")).expect("symlink");
        assert!(read_window(&dir.path().join("link.txt")).is_err(), "a link is not followed");
    }
}
