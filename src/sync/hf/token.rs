//! Finding the Hub token the way the official client does: `HF_TOKEN` (or the older
//! `HUGGING_FACE_HUB_TOKEN`), else the file named by `HF_TOKEN_PATH`, else
//! `$HF_HOME/token` (`HF_HOME` defaults to `$XDG_CACHE_HOME/huggingface`, i.e.
//! `~/.cache/huggingface`). The token itself is never logged, shown, stored or put in an
//! error; only where it came from is.

use std::fmt;
use std::path::{Path, PathBuf};

/// A token and where it was found. `Debug` and `Display` never print the token.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    secret: String,
    /// Where it came from, in words ("HF_TOKEN", "/root/.cache/huggingface/token").
    pub source: String,
}

impl Token {
    /// The bearer value for an `Authorization` header. Only the HTTP layer calls this.
    pub(crate) fn secret(&self) -> &str {
        &self.secret
    }

    /// Replace every occurrence of the token in `text` (a server message could echo it).
    pub fn redact(&self, text: &str) -> String {
        if self.secret.len() >= 4 && text.contains(&self.secret) {
            text.replace(&self.secret, "hf_***")
        } else {
            text.to_string()
        }
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token(from {})", self.source)
    }
}

/// No token anywhere: every place that was looked at, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoToken {
    pub looked: Vec<String>,
}

impl fmt::Display for NoToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no Hugging Face token found (looked at: {})", self.looked.join("; "))
    }
}

/// What the environment holds, so tests need not touch the process environment.
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;
    fn home(&self) -> Option<PathBuf>;
}

/// The real process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
    fn home(&self) -> Option<PathBuf> {
        std::env::var_os("HOME").map(PathBuf::from).filter(|p| !p.as_os_str().is_empty())
    }
}

fn clean(s: &str) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_string())
}

fn expand_home(p: &str, env: &dyn Env) -> PathBuf {
    match (p.strip_prefix("~/"), env.home()) {
        (Some(rest), Some(home)) => home.join(rest),
        _ if p == "~" => env.home().unwrap_or_else(|| PathBuf::from(p)),
        _ => PathBuf::from(p),
    }
}

/// The token file the official client reads when no variable holds a token.
pub fn token_file(env: &dyn Env) -> (PathBuf, String) {
    if let Some(p) = env.var("HF_TOKEN_PATH").filter(|p| !p.trim().is_empty()) {
        let path = expand_home(p.trim(), env);
        return (path.clone(), format!("HF_TOKEN_PATH={}", path.display()));
    }
    let hf_home = match env.var("HF_HOME").filter(|p| !p.trim().is_empty()) {
        Some(h) => expand_home(h.trim(), env),
        None => {
            let cache = match env.var("XDG_CACHE_HOME").filter(|p| !p.trim().is_empty()) {
                Some(c) => expand_home(c.trim(), env),
                None => env.home().unwrap_or_else(|| PathBuf::from("~")).join(".cache"),
            };
            cache.join("huggingface")
        }
    };
    let path = hf_home.join("token");
    (path.clone(), path.display().to_string())
}

/// Find the token: `HF_TOKEN`, `HUGGING_FACE_HUB_TOKEN`, then the token file.
pub fn find(env: &dyn Env) -> Result<Token, NoToken> {
    let mut looked = Vec::new();
    for var in ["HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"] {
        match env.var(var) {
            Some(v) => match clean(&v) {
                Some(secret) => return Ok(Token { secret, source: var.to_string() }),
                None => looked.push(format!("{var} (set but empty)")),
            },
            None => looked.push(format!("{var} (not set)")),
        }
    }
    let (path, label) = token_file(env);
    match read_token_file(&path) {
        Ok(Some(secret)) => Ok(Token { secret, source: path.display().to_string() }),
        Ok(None) => {
            looked.push(format!("{label} (empty)"));
            Err(NoToken { looked })
        }
        Err(why) => {
            looked.push(format!("{label} ({why})"));
            Err(NoToken { looked })
        }
    }
}

fn read_token_file(path: &Path) -> Result<Option<String>, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(clean(&text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err("no such file".into()),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Err("not readable by this user".into()),
        Err(e) => Err(format!("unreadable: {}", e.kind())),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    struct Fake(HashMap<&'static str, String>, Option<PathBuf>);

    impl Env for Fake {
        fn var(&self, name: &str) -> Option<String> {
            self.0.get(name).cloned()
        }
        fn home(&self) -> Option<PathBuf> {
            self.1.clone()
        }
    }

    #[test]
    fn the_variable_wins_then_the_token_path_then_hf_home() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        std::fs::create_dir_all(home.join(".cache/huggingface")).unwrap();
        std::fs::write(home.join(".cache/huggingface/token"), "hf_fromhome\n").unwrap();
        std::fs::write(dir.path().join("alt"), "  hf_alt  \n").unwrap();

        let mut vars = HashMap::new();
        vars.insert("HF_TOKEN", "hf_env".to_string());
        vars.insert("HF_TOKEN_PATH", dir.path().join("alt").display().to_string());
        let t = find(&Fake(vars.clone(), Some(home.clone()))).unwrap();
        assert_eq!((t.secret(), t.source.as_str()), ("hf_env", "HF_TOKEN"));

        vars.insert("HF_TOKEN", "   ".to_string());
        let t = find(&Fake(vars.clone(), Some(home.clone()))).unwrap();
        assert_eq!(t.secret(), "hf_alt");

        vars.remove("HF_TOKEN_PATH");
        let t = find(&Fake(vars.clone(), Some(home.clone()))).unwrap();
        assert_eq!(t.secret(), "hf_fromhome");
        assert!(t.source.ends_with(".cache/huggingface/token"), "{}", t.source);

        vars.insert("HF_HOME", dir.path().join("nowhere").display().to_string());
        let err = find(&Fake(vars, Some(home))).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("HF_TOKEN (set but empty)"), "{text}");
        assert!(text.contains("HUGGING_FACE_HUB_TOKEN (not set)"), "{text}");
        assert!(text.contains("nowhere/token (no such file)"), "{text}");
    }

    #[test]
    fn debug_never_prints_the_secret_and_redact_hides_it() {
        let t = Token { secret: "hf_abcdefsecret".into(), source: "HF_TOKEN".into() };
        assert!(!format!("{t:?}").contains("abcdef"));
        assert_eq!(t.redact("echo hf_abcdefsecret back"), "echo hf_*** back");
    }

    #[test]
    fn xdg_cache_home_moves_the_default() {
        let mut vars = HashMap::new();
        vars.insert("XDG_CACHE_HOME", "/xdg".to_string());
        let (p, _) = token_file(&Fake(vars, Some("/home/u".into())));
        assert_eq!(p, PathBuf::from("/xdg/huggingface/token"));
    }
}
