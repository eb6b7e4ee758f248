//! The service-account key and the tokens it buys.
//!
//! The key is found in `key_file`, else `$GOOGLE_APPLICATION_CREDENTIALS`, else the seed's
//! `~/.secrets/colab-service-account.json`, and checked in words before it is used: it must
//! exist and be a service-account key; a key readable by others is warned about; a key inside
//! a git work tree that git does not ignore is refused until it is ignored. Tokens come from
//! the key's own `token_uri` through yup-oauth2 (an RS256-signed JWT, cached in memory and
//! fetched again a minute before it expires).
//!
//! Nothing here lets a secret out: the private key and the tokens have no `Debug` or
//! `Display` that shows them, and errors are written from scratch rather than passed on.

use std::ffi::OsString;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use yup_oauth2::authenticator::Authenticator;
use yup_oauth2::error::AuthErrorCode;
use yup_oauth2::{DefaultHyperClientBuilder, HyperClientBuilder, ServiceAccountKey};

use crate::sync::remote::{ErrorKind, RemoteError};

/// The seed's place for the key.
pub const DEFAULT_KEY: &str = "~/.secrets/colab-service-account.json";
/// The environment variable Google's own tools read.
pub const KEY_ENV: &str = "GOOGLE_APPLICATION_CREDENTIALS";
/// No service-account key is this large; anything larger is refused unread.
const MAX_KEY_BYTES: u64 = 256 * 1024;
/// How long a token request may take.
const TOKEN_TIMEOUT: Duration = Duration::from_secs(30);

/// The full scope URL for a configured scope (`drive.file`, `drive`).
pub fn scope_url(scope: &str) -> String {
    format!("https://www.googleapis.com/auth/{scope}")
}

/// `~` and `~/x` with the home folder.
pub fn expand_tilde(p: &Path, home: Option<&Path>) -> PathBuf {
    let Some(home) = home else { return p.to_path_buf() };
    match p.strip_prefix("~") {
        Ok(rest) => home.join(rest),
        Err(_) => p.to_path_buf(),
    }
}

/// Where the key is looked for: what the config says, the environment and the home folder
/// (passed in, so tests need not change the process's environment).
#[derive(Debug, Clone)]
pub struct KeyLookup {
    /// `key_file` as written in the config.
    pub key_file: Option<PathBuf>,
    /// `$GOOGLE_APPLICATION_CREDENTIALS`.
    pub env: Option<OsString>,
    pub home: Option<PathBuf>,
    /// A relative `key_file` is relative to the workspace.
    pub workspace: PathBuf,
}

impl KeyLookup {
    /// The lookup with this process's environment.
    pub fn from_env(key_file: Option<PathBuf>, workspace: &Path) -> Self {
        Self {
            key_file,
            env: std::env::var_os(KEY_ENV).filter(|v| !v.is_empty()),
            home: std::env::var_os("HOME").filter(|v| !v.is_empty()).map(PathBuf::from),
            workspace: workspace.to_path_buf(),
        }
    }

    /// The key file to use and how it was chosen ("key_file", the variable, the default).
    pub fn resolve(&self) -> (PathBuf, String) {
        let home = self.home.as_deref();
        if let Some(k) = &self.key_file {
            let p = expand_tilde(k, home);
            let p = if p.is_absolute() { p } else { self.workspace.join(p) };
            return (p, format!("key_file = \"{}\"", k.display()));
        }
        if let Some(v) = &self.env {
            return (expand_tilde(Path::new(v), home), format!("${KEY_ENV}"));
        }
        (expand_tilde(Path::new(DEFAULT_KEY), home), DEFAULT_KEY.to_string())
    }

    /// Every place looked, for a "not found" message.
    fn places(&self, found_missing: &Path) -> String {
        let missing = format!("{} does not exist", found_missing.display());
        let mut parts = Vec::new();
        match &self.key_file {
            Some(k) => {
                parts.push(format!("key_file = \"{}\" ({missing})", k.display()));
                return parts.join("; ");
            }
            None => parts.push("key_file (not set)".to_string()),
        }
        match &self.env {
            Some(v) => {
                parts.push(format!("${KEY_ENV} = {} ({missing})", Path::new(v).display()));
                return parts.join("; ");
            }
            None => parts.push(format!("${KEY_ENV} (not set)")),
        }
        parts.push(format!("{DEFAULT_KEY} ({missing})"));
        parts.join("; ")
    }
}

/// A service-account key that passed the checks. Its private key never leaves this value
/// except into the token flow.
pub struct KeyFile {
    pub path: PathBuf,
    /// How it was chosen (`key_file = "..."`, `$GOOGLE_APPLICATION_CREDENTIALS`, the default).
    pub chosen_by: String,
    pub client_email: String,
    pub token_uri: String,
    /// Things to fix that do not stop the key from being used (permissions).
    pub warnings: Vec<String>,
    key: ServiceAccountKey,
}

impl std::fmt::Debug for KeyFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyFile")
            .field("path", &self.path)
            .field("client_email", &self.client_email)
            .field("token_uri", &self.token_uri)
            .finish_non_exhaustive()
    }
}

fn auth_err(message: String, fix: impl Into<String>) -> RemoteError {
    RemoteError::new(ErrorKind::Auth, message).with_fix(fix)
}

const CREATE_KEY: &str = "create a key for the service account (gcloud iam service-accounts keys create \
     ~/.secrets/colab-service-account.json --iam-account=NAME@PROJECT.iam.gserviceaccount.com), \
     chmod 600 it, or set key_file";

/// Find, check and read the key (blocking: file system and `git`).
pub fn load_key(lookup: &KeyLookup, remote: &str) -> Result<KeyFile, RemoteError> {
    let (path, chosen_by) = lookup.resolve();
    let shown = path.display().to_string();
    let meta = match std::fs::metadata(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(auth_err(
                format!("no service-account key for remote '{remote}': looked at {}", lookup.places(&path)),
                CREATE_KEY,
            ));
        }
        Err(e) => {
            return Err(auth_err(
                format!("cannot read the key file {shown} ({chosen_by}): {}", io_words(&e)),
                "make the key readable by the user running opsconsole (chmod 600, owned by that user)",
            ));
        }
    };
    if !meta.is_file() {
        return Err(auth_err(format!("the key file {shown} ({chosen_by}) is not a file"), CREATE_KEY));
    }
    if meta.len() > MAX_KEY_BYTES {
        return Err(auth_err(
            format!("{shown} ({chosen_by}) is {} bytes: not a service-account key", meta.len()),
            CREATE_KEY,
        ));
    }
    let mut warnings = Vec::new();
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        warnings
            .push(format!("the key file {shown} can be read by other users (mode {mode:04o}); run: chmod 600 {shown}"));
    }
    check_not_in_git(&path)?;
    let text = std::fs::read(&path).map_err(|e| {
        auth_err(
            format!("cannot read the key file {shown}: {}", io_words(&e)),
            "make the key readable by the user running opsconsole (chmod 600, owned by that user)",
        )
    })?;
    let key = parse_key(&text, &shown)?;
    Ok(KeyFile {
        path,
        chosen_by,
        client_email: key.client_email.clone(),
        token_uri: key.token_uri.clone(),
        warnings,
        key,
    })
}

/// An I/O error in words, without the path (the caller names it).
fn io_words(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::PermissionDenied => "permission denied".into(),
        io::ErrorKind::NotFound => "no such file".into(),
        _ => e.to_string(),
    }
}

/// Read a key's JSON without echoing any of it: serde's messages may quote values, and the
/// values here are secrets.
fn parse_key(text: &[u8], shown: &str) -> Result<ServiceAccountKey, RemoteError> {
    let v: serde_json::Value = serde_json::from_slice(text).map_err(|e| {
        auth_err(
            format!("{shown} is not a service-account key: not valid JSON (line {}, column {})", e.line(), e.column()),
            CREATE_KEY,
        )
    })?;
    let field = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
    match field("type").as_deref() {
        Some("service_account") => {}
        Some(other) => {
            let what = match other {
                "authorized_user" => "a user's OAuth credentials",
                "external_account" => "a workload-identity configuration",
                "impersonated_service_account" => "an impersonation configuration",
                _ => "some other credential",
            };
            return Err(auth_err(
                format!("{shown} is {what} (type \"{other}\"), not a service-account key"),
                CREATE_KEY,
            ));
        }
        None if v.get("installed").is_some() || v.get("web").is_some() => {
            return Err(auth_err(
                format!("{shown} is an OAuth client id (\"installed\"/\"web\"), not a service-account key"),
                CREATE_KEY,
            ));
        }
        None => {
            return Err(auth_err(
                format!("{shown} is not a service-account key (no \"type\": \"service_account\")"),
                CREATE_KEY,
            ));
        }
    }
    for k in ["private_key", "client_email", "token_uri"] {
        if field(k).is_none_or(|s| s.trim().is_empty()) {
            return Err(auth_err(
                format!("the service-account key {shown} has no \"{k}\"; it is damaged or cut short"),
                CREATE_KEY,
            ));
        }
    }
    let private_key = field("private_key").unwrap_or_default();
    if !private_key.contains("-----BEGIN PRIVATE KEY-----") {
        return Err(auth_err(format!("the \"private_key\" in {shown} is not a PEM-encoded PKCS#8 key"), CREATE_KEY));
    }
    let token_uri = field("token_uri").unwrap_or_default();
    if let Err(e) = crate::sync::config::check_endpoint(origin_of(&token_uri)) {
        return Err(auth_err(format!("the token_uri in {shown} is not usable: {e}"), CREATE_KEY));
    }
    Ok(ServiceAccountKey {
        key_type: field("type"),
        project_id: field("project_id"),
        private_key_id: field("private_key_id"),
        private_key,
        client_email: field("client_email").unwrap_or_default(),
        client_id: field("client_id"),
        auth_uri: field("auth_uri"),
        token_uri,
        auth_provider_x509_cert_url: field("auth_provider_x509_cert_url"),
        client_x509_cert_url: field("client_x509_cert_url"),
    })
}

/// `scheme://host[:port]` of a URL.
pub fn origin_of(url: &str) -> &str {
    let start = url.find("://").map(|i| i + 3).unwrap_or(0);
    match url[start..].find(['/', '?', '#']) {
        Some(i) => &url[..start + i],
        None => url,
    }
}

/// A key inside a git work tree must be ignored by git (or it is one `git add .` away from
/// a public repository). A key git already tracks is in the history: it must be replaced.
pub fn check_not_in_git(key: &Path) -> Result<(), RemoteError> {
    let abs = std::fs::canonicalize(key).unwrap_or_else(|_| key.to_path_buf());
    let Some(tree) = abs.parent().and_then(find_work_tree) else { return Ok(()) };
    let rel = abs.strip_prefix(&tree).unwrap_or(&abs).to_path_buf();
    let shown = key.display();
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(["-c", "safe.directory=*", "-C"])
            .arg(&tree)
            .args(args)
            .arg("--")
            .arg(&rel)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
    };
    let tracked = git(&["ls-files", "--error-unmatch"]);
    let ignored = git(&["check-ignore", "-q"]);
    match (tracked, ignored) {
        (Ok(t), _) if t.success() => Err(auth_err(
            format!("the key file {shown} is tracked by git in {}: it is in the repository's history", tree.display()),
            format!(
                "disable this key and create a new one outside the repository, then run: git -C {} rm --cached {}",
                tree.display(),
                rel.display()
            ),
        )),
        (_, Ok(i)) if i.code() == Some(0) => Ok(()),
        (_, Ok(i)) if i.code() == Some(1) => Err(auth_err(
            format!(
                "the key file {shown} is inside the git work tree {} and git does not ignore it: \
                 refusing to use it until it is ignored",
                tree.display()
            ),
            format!(
                "add it to {}/.gitignore (for example the line '{}'), or move the key out of the work tree \
                 (~/.secrets/)",
                tree.display(),
                ignore_line(&rel)
            ),
        )),
        _ => Err(auth_err(
            format!(
                "the key file {shown} is inside the git work tree {} and git could not say whether it is ignored",
                tree.display()
            ),
            "install git, or move the key out of the work tree (~/.secrets/)",
        )),
    }
}

/// The `.gitignore` line to suggest: its top folder when it is a secrets folder, else the
/// file itself.
fn ignore_line(rel: &Path) -> String {
    let mut parts = rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned());
    match parts.next() {
        Some(first) if rel.components().count() > 1 && first.starts_with('.') => format!("{first}/"),
        _ => format!("/{}", rel.display()),
    }
}

/// The nearest folder at or above `dir` holding `.git` (a folder, or a file for worktrees
/// and submodules).
fn find_work_tree(dir: &Path) -> Option<PathBuf> {
    let mut d = Some(dir);
    while let Some(cur) = d {
        if cur.join(".git").exists() {
            return Some(cur.to_path_buf());
        }
        d = cur.parent();
    }
    None
}

/// An access token. Shown nowhere: no `Debug` of its value, and the header built from it
/// is marked sensitive.
#[derive(Clone)]
pub struct AccessToken(String);

impl AccessToken {
    /// `Authorization: Bearer ...`, marked sensitive so the HTTP stack never prints it.
    pub fn header(&self) -> reqwest::header::HeaderValue {
        let mut v = reqwest::header::HeaderValue::from_str(&format!("Bearer {}", self.0))
            .unwrap_or_else(|_| reqwest::header::HeaderValue::from_static("Bearer invalid"));
        v.set_sensitive(true);
        v
    }
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccessToken(hidden)")
    }
}

type Connector = <DefaultHyperClientBuilder as HyperClientBuilder>::Connector;

/// Tokens for one key and scope: cached, and fetched again before they expire.
pub struct Tokens {
    auth: Authenticator<Connector>,
    scopes: [String; 1],
    token_uri: String,
    remote: String,
}

impl Tokens {
    /// Set up the token flow for a checked key (nothing is fetched yet).
    pub async fn new(key: &KeyFile, scope: &str, subject: Option<&str>, remote: &str) -> Result<Self, RemoteError> {
        let client = DefaultHyperClientBuilder::default().with_timeout(TOKEN_TIMEOUT);
        let mut builder = yup_oauth2::ServiceAccountAuthenticator::with_client(key.key.clone(), client);
        if let Some(s) = subject {
            builder = builder.subject(s);
        }
        let auth = builder.build().await.map_err(|e| {
            let message = if e.kind() == io::ErrorKind::InvalidInput {
                format!("the private key in {} cannot be read as an RSA key", key.path.display())
            } else if e.to_string().contains("certificate") || e.to_string().contains("root") {
                "no CA certificates on this machine for HTTPS to Google".to_string()
            } else {
                format!("cannot set up the token flow for {}", key.path.display())
            };
            let fix = if message.contains("CA certificates") {
                "install the system's CA certificates (apt-get install ca-certificates)"
            } else {
                CREATE_KEY
            };
            auth_err(message, fix)
        })?;
        Ok(Self { auth, scopes: [scope_url(scope)], token_uri: key.token_uri.clone(), remote: remote.to_string() })
    }

    /// A valid token (cached until a minute before it expires).
    pub async fn get(&self) -> Result<AccessToken, RemoteError> {
        self.fetch(false).await
    }

    /// A new token, after the API refused the cached one.
    pub async fn refresh(&self) -> Result<AccessToken, RemoteError> {
        self.fetch(true).await
    }

    async fn fetch(&self, force: bool) -> Result<AccessToken, RemoteError> {
        let fut = async {
            if force {
                self.auth.force_refreshed_token(&self.scopes).await
            } else {
                self.auth.token(&self.scopes).await
            }
        };
        let res = match tokio::time::timeout(TOKEN_TIMEOUT + Duration::from_secs(5), fut).await {
            Ok(r) => r,
            Err(_) => {
                return Err(RemoteError::transient(format!(
                    "no answer from the token endpoint {} within {}s",
                    origin_of(&self.token_uri),
                    TOKEN_TIMEOUT.as_secs()
                )));
            }
        };
        match res {
            Ok(t) => match t.token() {
                Some(s) if !s.is_empty() => Ok(AccessToken(s.to_string())),
                _ => Err(RemoteError::transient(format!(
                    "the token endpoint {} answered without a token",
                    origin_of(&self.token_uri)
                ))),
            },
            Err(e) => Err(self.token_error(e)),
        }
    }

    /// A token failure in words; never the library's own text, which may quote a response.
    fn token_error(&self, e: yup_oauth2::Error) -> RemoteError {
        let at = origin_of(&self.token_uri);
        let remote = &self.remote;
        match e {
            yup_oauth2::Error::AuthError(a) => {
                let desc = a.error_description.as_deref().map(clean_description).unwrap_or_default();
                let code = a.error.as_str().to_string();
                let said = if desc.is_empty() { code.clone() } else { format!("{code}: {desc}") };
                match a.error {
                    AuthErrorCode::InvalidGrant => auth_err(
                        format!("Google refused the service-account key of remote '{remote}' ({said})"),
                        "check the machine's clock (the signed request carries the time); if the key was \
                         deleted or disabled in the Cloud console, create a new one and point key_file at it",
                    ),
                    AuthErrorCode::InvalidScope => auth_err(
                        format!("Google refused the scope of remote '{remote}' ({said})"),
                        "use scope = \"drive.file\" or \"drive\"; with subject set, allow that scope for \
                         the service account in the Workspace admin console (domain-wide delegation)",
                    ),
                    AuthErrorCode::InvalidClient | AuthErrorCode::UnauthorizedClient | AuthErrorCode::AccessDenied => {
                        auth_err(
                            format!("Google refused the service account of remote '{remote}' ({said})"),
                            "check that the service account still exists and is enabled; with subject set, \
                             check domain-wide delegation in the Workspace admin console",
                        )
                    }
                    _ => RemoteError::transient(format!("the token endpoint {at} failed ({said})")),
                }
            }
            yup_oauth2::Error::JSONError(_) | yup_oauth2::Error::MissingAccessToken => RemoteError::transient(format!(
                "the token endpoint {at} answered with something that is not a token (a server error, or a proxy \
                 in the way)"
            )),
            yup_oauth2::Error::HttpError(_) | yup_oauth2::Error::HttpClientError(_) => {
                RemoteError::transient(format!("cannot reach the token endpoint {at}"))
            }
            yup_oauth2::Error::LowLevelError(_) => {
                RemoteError::transient(format!("the request to the token endpoint {at} could not be made"))
            }
            _ => RemoteError::transient(format!("getting a token from {at} failed")),
        }
    }
}

/// A server's error description, kept short and printable.
fn clean_description(s: &str) -> String {
    let s: String = s.chars().filter(|c| !c.is_control()).take(200).collect();
    s.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(dir: &Path) -> KeyLookup {
        KeyLookup { key_file: None, env: None, home: Some(dir.to_path_buf()), workspace: dir.join("ws") }
    }

    #[test]
    fn key_places_follow_the_issue_order_and_are_named_when_missing() {
        let dir = tempfile::tempdir().expect("tmp");
        let l = lookup(dir.path());
        assert_eq!(l.resolve().0, dir.path().join(".secrets/colab-service-account.json"));
        let e = load_key(&l, "drive").unwrap_err();
        assert_eq!(e.kind, ErrorKind::Auth);
        assert!(e.message.contains("key_file (not set)"), "{}", e.message);
        assert!(e.message.contains("$GOOGLE_APPLICATION_CREDENTIALS (not set)"), "{}", e.message);
        assert!(e.message.contains("~/.secrets/colab-service-account.json ("), "{}", e.message);
        assert!(e.fix.as_deref().is_some_and(|f| f.contains("gcloud iam service-accounts keys create")));

        let l = KeyLookup { env: Some("~/env.json".into()), ..lookup(dir.path()) };
        assert_eq!(l.resolve().0, dir.path().join("env.json"));
        let e = load_key(&l, "drive").unwrap_err();
        assert!(e.message.contains("$GOOGLE_APPLICATION_CREDENTIALS = ~/env.json"), "{}", e.message);
        assert!(!e.message.contains(DEFAULT_KEY), "a set variable is not passed over: {}", e.message);

        let l = KeyLookup { key_file: Some("keys/k.json".into()), ..l };
        assert_eq!(l.resolve().0, dir.path().join("ws/keys/k.json"), "relative to the workspace");
        let e = load_key(&l, "drive").unwrap_err();
        assert!(
            e.message.starts_with("no service-account key for remote 'drive': looked at key_file = \"keys/k.json\"")
        );
    }

    #[test]
    fn keys_that_are_not_service_account_keys_are_named_without_quoting_them() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("k.json");
        let check = |text: &str, words: &str| {
            std::fs::write(&p, text).expect("write");
            let l = KeyLookup { key_file: Some(p.clone()), ..lookup(dir.path()) };
            let e = load_key(&l, "drive").unwrap_err();
            assert!(e.message.contains(words), "{text}: {}", e.message);
            assert!(!e.message.contains("SECRETVALUE"), "never quoted: {}", e.message);
        };
        check("{\"type\": \"service_account\", \"private_key\": SECRETVALUE", "not valid JSON (line 1");
        check("{\"type\": \"authorized_user\", \"refresh_token\": \"SECRETVALUE\"}", "a user's OAuth credentials");
        check("{\"installed\": {\"client_secret\": \"SECRETVALUE\"}}", "an OAuth client id");
        check(
            "{\"type\": \"service_account\", \"client_email\": \"a@b\", \"token_uri\": \"https://x/t\"}",
            "no \"private_key\"",
        );
        check(
            "{\"type\": \"service_account\", \"private_key\": \"SECRETVALUE\", \"client_email\": \"a@b\", \"token_uri\": \"https://x/t\"}",
            "not a PEM-encoded PKCS#8 key",
        );
        check(
            "{\"type\": \"service_account\", \"private_key\": \"-----BEGIN PRIVATE KEY-----SECRETVALUE\", \"client_email\": \"a@b\", \"token_uri\": \"http://evil.example/t\"}",
            "plain http",
        );
    }

    #[test]
    fn ignore_lines_and_origins() {
        assert_eq!(ignore_line(Path::new(".secrets/k.json")), ".secrets/");
        assert_eq!(ignore_line(Path::new("k.json")), "/k.json");
        assert_eq!(ignore_line(Path::new("conf/k.json")), "/conf/k.json");
        assert_eq!(origin_of("http://127.0.0.1:5/token?x"), "http://127.0.0.1:5");
        assert_eq!(origin_of("https://oauth2.googleapis.com"), "https://oauth2.googleapis.com");
        assert_eq!(expand_tilde(Path::new("~"), Some(Path::new("/h"))), Path::new("/h"));
        assert_eq!(expand_tilde(Path::new("~x/y"), Some(Path::new("/h"))), Path::new("~x/y"));
        assert_eq!(format!("{:?}", AccessToken("ya29.secret".into())), "AccessToken(hidden)");
        assert!(AccessToken("t".into()).header().is_sensitive());
    }
}
