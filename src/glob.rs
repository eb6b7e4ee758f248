//! The one place that builds globs. Each caller names the semantics it wants, so two
//! patterns that look alike never quietly mean different things:
//!
//! | semantics          | `*` / `?` / `[..]`          | used by |
//! |--------------------|-----------------------------|---------|
//! | [`Semantics::Path`] | stop at `/`; `**` crosses folders | `log.glob`, the disk usage categories, `sync.*.include`/`exclude`, the airlock import pattern |
//! | [`Semantics::Name`] | also match `/`              | `checkpoints.patterns` and the components of `checkpoints.roots` |
//! | [`ssh_match`]       | ssh_config `Host` patterns: only `*` and `?`, no case | the checklist's ssh_config reader |
//!
//! `Name` is globset's default and is kept as it was: the checkpoint patterns are matched
//! against one file or folder name at a time (a pattern containing `/` is refused by
//! validation), so the difference only shows for a name that contains `/`, which a file
//! name never does, but changing it would change what a user's existing checkpoint pattern
//! may match, and those patterns decide what pruning deletes.
//!
//! ssh patterns are not globset globs: in ssh `[`, `{` and `\` are ordinary characters and
//! matching ignores case, so they get their own matcher here rather than an escaped glob.
//!
//! Both globset semantics treat `\` as an escape (globset's default on Unix, set explicitly
//! here so it does not depend on the platform).

use std::path::Path;

use globset::{GlobBuilder, GlobMatcher, GlobSetBuilder};

/// What the wildcards of a pattern may cross.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Semantics {
    /// Path globs: `*`, `?` and `[..]` never match `/`; `**` spans folders.
    Path,
    /// Checkpoint-name globs: `*`, `?` and `[..]` match any character, `/` included.
    Name,
}

/// A pattern that is not a glob. The message names the pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{pattern}` is not a valid glob: {kind}")]
pub struct GlobError {
    /// The pattern as given.
    pub pattern: String,
    kind: globset::ErrorKind,
}

fn build(pattern: &str, semantics: Semantics) -> Result<globset::Glob, GlobError> {
    GlobBuilder::new(pattern)
        .literal_separator(semantics == Semantics::Path)
        .backslash_escape(true)
        .build()
        .map_err(|e| GlobError { pattern: pattern.to_string(), kind: e.kind().clone() })
}

/// One compiled glob.
#[derive(Debug, Clone)]
pub struct Glob {
    matcher: GlobMatcher,
}

impl Glob {
    /// A path glob ([`Semantics::Path`]): `*` stops at `/`.
    pub fn path(pattern: &str) -> Result<Self, GlobError> {
        Self::new(pattern, Semantics::Path)
    }

    /// A checkpoint-name glob ([`Semantics::Name`]): `*` also matches `/`.
    pub fn name(pattern: &str) -> Result<Self, GlobError> {
        Self::new(pattern, Semantics::Name)
    }

    /// A glob with the given semantics.
    pub fn new(pattern: &str, semantics: Semantics) -> Result<Self, GlobError> {
        Ok(Self { matcher: build(pattern, semantics)?.compile_matcher() })
    }

    /// Whether the whole of `path` matches.
    pub fn is_match(&self, path: impl AsRef<Path>) -> bool {
        self.matcher.is_match(path)
    }
}

/// Several globs of one semantics, matched at once.
#[derive(Debug, Clone)]
pub struct GlobSet {
    set: globset::GlobSet,
}

impl GlobSet {
    /// All the patterns, or the first one that is not a glob.
    pub fn new<S: AsRef<str>>(patterns: &[S], semantics: Semantics) -> Result<Self, GlobError> {
        let mut b = GlobSetBuilder::new();
        for p in patterns {
            b.add(build(p.as_ref(), semantics)?);
        }
        Ok(Self { set: b.build().unwrap_or_else(|_| globset::GlobSet::empty()) })
    }

    /// The valid patterns; invalid ones are left out (for callers whose config validation
    /// already reported them by name).
    pub fn lenient<S: AsRef<str>>(patterns: &[S], semantics: Semantics) -> Self {
        let mut b = GlobSetBuilder::new();
        for p in patterns {
            if let Ok(g) = build(p.as_ref(), semantics) {
                b.add(g);
            }
        }
        Self { set: b.build().unwrap_or_else(|_| globset::GlobSet::empty()) }
    }

    /// Whether any pattern matches the whole of `path`.
    pub fn is_match(&self, path: impl AsRef<Path>) -> bool {
        self.set.is_match(path)
    }

    /// Whether the set has no patterns.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }
}

/// ssh_config pattern matching (`Host`, `Match host`): `*` is any run of characters, `?`
/// any one character, everything else literal and compared without ASCII case; the
/// pattern must match the whole of `s`. `!` negation is the caller's (it applies to a
/// pattern list, not to one pattern).
pub fn ssh_match(pat: &[u8], s: &[u8]) -> bool {
    // Iterative wildcard match: on a mismatch, let the last `*` swallow one more byte.
    let (mut p, mut i) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        match pat.get(p) {
            Some(b'*') => {
                star = Some((p, i));
                p += 1;
            }
            Some(b'?') => {
                p += 1;
                i += 1;
            }
            Some(c) if c.eq_ignore_ascii_case(&s[i]) => {
                p += 1;
                i += 1;
            }
            _ => match star {
                Some((sp, si)) => {
                    p = sp + 1;
                    i = si + 1;
                    star = Some((sp, si + 1));
                }
                None => return false,
            },
        }
    }
    pat[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_star_stops_at_a_slash_and_double_star_crosses() {
        let g = Glob::path("experiments/*.log").unwrap();
        assert!(g.is_match("experiments/train.log"));
        assert!(!g.is_match("experiments/run1/train.log"), "`*` must not cross `/` in a path glob");
        let g = Glob::path("experiments/**/*.log").unwrap();
        assert!(g.is_match("experiments/run1/logs/train.log"));
        assert!(g.is_match("experiments/train.log"));
        assert!(!Glob::path("a?b").unwrap().is_match("a/b"));
        assert!(!Glob::path("a[/]b").unwrap().is_match("a/b"));
    }

    #[test]
    fn name_star_crosses_a_slash() {
        let g = Glob::name("*.pt").unwrap();
        assert!(g.is_match("model.pt"));
        assert!(g.is_match("sub/model.pt"), "checkpoint-name globs keep globset's default: `*` matches `/`");
        assert!(Glob::name("a?b").unwrap().is_match("a/b"));
        assert!(!g.is_match("model.pth"));
        // Both: the whole string must match, and `\` escapes.
        assert!(Glob::name(r"\*.pt").unwrap().is_match("*.pt"));
        assert!(!Glob::name(r"\*.pt").unwrap().is_match("a.pt"));
        assert!(!Glob::path(r"\*.pt").unwrap().is_match("a.pt"));
    }

    #[test]
    fn the_same_pattern_differs_only_across_a_slash() {
        for (path, differs) in [("x.bin", false), ("a/x.bin", true), ("a/b/x.bin", true), ("x.txt", false)] {
            let p = Glob::path("*.bin").unwrap().is_match(path);
            let n = Glob::name("*.bin").unwrap().is_match(path);
            assert_eq!(p != n, differs, "{path}: path {p}, name {n}");
        }
    }

    #[test]
    fn errors_name_the_pattern() {
        let e = Glob::path("runs/[abc").unwrap_err();
        assert_eq!(e.pattern, "runs/[abc");
        assert!(e.to_string().contains("`runs/[abc`"), "{e}");
        assert!(e.to_string().contains("unclosed character class"), "{e}");
        let e = GlobSet::new(&["*.pt", "{a,b"], Semantics::Name).unwrap_err();
        assert!(e.to_string().starts_with("`{a,b` is not a valid glob"), "{e}");
        assert!(Glob::name("ok-*").is_ok());
    }

    #[test]
    fn sets_keep_their_semantics_and_lenient_drops_only_the_bad_pattern() {
        let names = GlobSet::new(&["*.pt", "*.safetensors"], Semantics::Name).unwrap();
        assert!(names.is_match("a/b.pt") && names.is_match("w.safetensors") && !names.is_match("w.json"));
        let paths = GlobSet::new(&["*.pt"], Semantics::Path).unwrap();
        assert!(paths.is_match("b.pt") && !paths.is_match("a/b.pt"));
        let lenient = GlobSet::lenient(&["[bad", "*.ckpt"], Semantics::Name);
        assert!(lenient.is_match("x.ckpt") && !lenient.is_match("[bad"));
        assert!(GlobSet::lenient(&["[bad"], Semantics::Path).is_empty());
    }

    #[test]
    fn ssh_patterns_are_star_question_and_case_insensitive_only() {
        assert!(ssh_match(b"gpu-*", b"gpu-vm"));
        assert!(!ssh_match(b"gpu-?", b"gpu-vm"));
        assert!(ssh_match(b"gpu-??", b"GPU-VM"));
        assert!(ssh_match(b"*", b""));
        assert!(ssh_match(b"*.example.com", b"a.b.example.com"));
        assert!(!ssh_match(b"*.example.com", b"example.com"));
        assert!(ssh_match(b"a*b*c", b"aXbYbZc"));
        assert!(!ssh_match(b"a*b*c", b"aXbYbZ"));
        // Characters that are special to globset are literal to ssh.
        assert!(ssh_match(b"[x]", b"[X]"));
        assert!(!ssh_match(b"[x]", b"x"));
        assert!(ssh_match(b"{a,b}", b"{a,b}"));
        // `*` crosses `/` and `.`: ssh has no separators.
        assert!(ssh_match(b"*", b"a/b.c"));
        // No blow-up on many stars.
        let s = vec![b'a'; 200];
        assert!(!ssh_match(b"*a*a*a*a*a*a*a*a*a*a*b", &s));
    }

    #[test]
    fn ssh_match_agrees_with_the_recursive_definition() {
        fn slow(pat: &[u8], s: &[u8]) -> bool {
            match (pat.first(), s.first()) {
                (None, None) => true,
                (Some(b'*'), _) => slow(&pat[1..], s) || (!s.is_empty() && slow(pat, &s[1..])),
                (Some(b'?'), Some(_)) => slow(&pat[1..], &s[1..]),
                (Some(p), Some(c)) if p.eq_ignore_ascii_case(c) => slow(&pat[1..], &s[1..]),
                _ => false,
            }
        }
        let alphabet = [b'a', b'B', b'*', b'?'];
        let mut rng = fastrand::Rng::with_seed(10);
        for _ in 0..5000 {
            let pat: Vec<u8> = (0..rng.usize(0..6)).map(|_| alphabet[rng.usize(0..4)]).collect();
            let s: Vec<u8> = (0..rng.usize(0..7)).map(|_| [b'A', b'b', b'a'][rng.usize(0..3)]).collect();
            assert_eq!(
                ssh_match(&pat, &s),
                slow(&pat, &s),
                "{:?} vs {:?}",
                String::from_utf8_lossy(&pat),
                String::from_utf8_lossy(&s)
            );
        }
    }
}
