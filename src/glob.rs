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
//!
//! Compiled globs are kept ([`cache`]): the same configured patterns are asked for by every
//! checkpoint scan, log discovery and sync pass, and compiling one builds a regex on the
//! calling thread (tens of KB of stack on each thread that does it, and a heap left more
//! fragmented each time; docs/performance.md). A pattern compiles once per process.

use std::path::Path;
use std::sync::Arc;

use globset::{GlobBuilder, GlobMatcher, GlobSetBuilder};

/// What the wildcards of a pattern may cross.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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

/// Why `pattern` is not a glob of these semantics, without compiling it: every error is
/// found by parsing (compiling a parsed glob cannot fail), so config validation uses this
/// and nothing compiled for a check is kept.
pub fn check(pattern: &str, semantics: Semantics) -> Result<(), GlobError> {
    build(pattern, semantics).map(|_| ())
}

/// One compiled glob. Clones share the compiled matcher.
#[derive(Debug, Clone)]
pub struct Glob {
    matcher: Arc<GlobMatcher>,
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
        let key = cache::Key::One(semantics, pattern.to_string());
        if let Some(cache::Compiled::One(matcher)) = cache::get(&key) {
            return Ok(Self { matcher });
        }
        let matcher = Arc::new(build(pattern, semantics)?.compile_matcher());
        cache::put(key, cache::Compiled::One(matcher.clone()));
        Ok(Self { matcher })
    }

    /// Whether the whole of `path` matches.
    pub fn is_match(&self, path: impl AsRef<Path>) -> bool {
        self.matcher.is_match(path)
    }
}

/// Several globs of one semantics, matched at once. Clones share the compiled set.
#[derive(Debug, Clone)]
pub struct GlobSet {
    set: Arc<globset::GlobSet>,
}

impl GlobSet {
    /// All the patterns, or the first one that is not a glob.
    pub fn new<S: AsRef<str>>(patterns: &[S], semantics: Semantics) -> Result<Self, GlobError> {
        Self::compile(patterns, semantics, false)
    }

    /// The valid patterns; invalid ones are left out (for callers whose config validation
    /// already reported them by name).
    pub fn lenient<S: AsRef<str>>(patterns: &[S], semantics: Semantics) -> Self {
        match Self::compile(patterns, semantics, true) {
            Ok(set) => set,
            Err(_) => unreachable!("a lenient set leaves invalid patterns out"),
        }
    }

    /// The kept set for these patterns, or a new one: with `lenient`, invalid patterns are
    /// left out; without, the first one is the error.
    fn compile<S: AsRef<str>>(patterns: &[S], semantics: Semantics, lenient: bool) -> Result<Self, GlobError> {
        let key = cache::Key::set(semantics, lenient, patterns);
        if let Some(cache::Compiled::Set(set)) = cache::get(&key) {
            return Ok(Self { set });
        }
        let mut b = GlobSetBuilder::new();
        for p in patterns {
            match build(p.as_ref(), semantics) {
                Ok(g) => {
                    b.add(g);
                }
                Err(_) if lenient => {}
                Err(e) => return Err(e),
            }
        }
        let set = Arc::new(b.build().unwrap_or_else(|_| globset::GlobSet::empty()));
        cache::put(key, cache::Compiled::Set(set.clone()));
        Ok(Self { set })
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

/// Compiled globs by pattern, for the life of the process. Only what compiled is kept; the
/// patterns come from the configuration, so there are few, and the map is emptied should
/// it ever pass [`cache::MAX`] entries (patterns typed at a prompt, a config edited many
/// times under a daemon).
mod cache {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    use super::Semantics;

    pub const MAX: usize = 256;

    #[derive(Debug, Clone, PartialEq, Eq, Hash)]
    pub enum Key {
        One(Semantics, String),
        /// The semantics, whether invalid patterns are left out, and the patterns in order.
        Set(Semantics, bool, Vec<String>),
    }

    impl Key {
        pub fn set<S: AsRef<str>>(semantics: Semantics, lenient: bool, patterns: &[S]) -> Self {
            Key::Set(semantics, lenient, patterns.iter().map(|p| p.as_ref().to_string()).collect())
        }
    }

    #[derive(Debug, Clone)]
    pub enum Compiled {
        One(Arc<globset::GlobMatcher>),
        Set(Arc<globset::GlobSet>),
    }

    static CACHE: Mutex<Option<HashMap<Key, Compiled>>> = Mutex::new(None);

    pub fn get(key: &Key) -> Option<Compiled> {
        CACHE.lock().unwrap_or_else(|p| p.into_inner()).as_ref()?.get(key).cloned()
    }

    pub fn put(key: Key, value: Compiled) {
        let mut guard = CACHE.lock().unwrap_or_else(|p| p.into_inner());
        let map = guard.get_or_insert_with(HashMap::new);
        if map.len() >= MAX {
            map.clear();
        }
        map.insert(key, value);
    }

    /// How many compiled globs are kept (tests).
    #[cfg(test)]
    pub fn len() -> usize {
        CACHE.lock().unwrap_or_else(|p| p.into_inner()).as_ref().map_or(0, HashMap::len)
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
    fn a_pattern_compiles_once_and_its_matches_do_not_change() {
        let a = Glob::path("cache-test/**/*.log").unwrap();
        let b = Glob::path("cache-test/**/*.log").unwrap();
        assert!(Arc::ptr_eq(&a.matcher, &b.matcher), "the second ask must reuse the compiled glob");
        // The semantics are part of the key: the same text as a name glob is another glob.
        let n = Glob::name("cache-test/**/*.log").unwrap();
        assert!(!Arc::ptr_eq(&a.matcher, &n.matcher));
        assert!(b.is_match("cache-test/x/y.log") && !b.is_match("cache-test/y.txt"));

        let s1 = GlobSet::new(&["cache-*.pt", "*.bin"], Semantics::Name).unwrap();
        let s2 = GlobSet::new(&["cache-*.pt", "*.bin"], Semantics::Name).unwrap();
        assert!(Arc::ptr_eq(&s1.set, &s2.set));
        // The order and the leniency are part of the key too.
        let s3 = GlobSet::new(&["*.bin", "cache-*.pt"], Semantics::Name).unwrap();
        assert!(!Arc::ptr_eq(&s1.set, &s3.set));
        let l = GlobSet::lenient(&["cache-*.pt", "*.bin"], Semantics::Name);
        assert!(!Arc::ptr_eq(&s1.set, &l.set));
        assert!(s2.is_match("cache-1.pt") && s2.is_match("a.bin") && !s2.is_match("a.pt"));

        // An invalid pattern is an error every time, and a lenient set leaves it out.
        for _ in 0..2 {
            assert!(GlobSet::new(&["cache-ok-*", "cache-[bad"], Semantics::Path).is_err());
            assert!(Glob::path("cache-[bad").is_err());
        }
        let l = GlobSet::lenient(&["cache-ok-*", "cache-[bad"], Semantics::Path);
        assert!(l.is_match("cache-ok-1") && !l.is_empty());
    }

    #[test]
    fn check_finds_every_error_compiling_would_and_keeps_nothing() {
        for pat in ["*.pt", "a[", "[a-", "{a,b", "a{b,{c,d}}", r"a\", "**/x/**", "[!a]*", "", "a]", "{}", "[]]"] {
            for sem in [Semantics::Path, Semantics::Name] {
                let checked = check(pat, sem);
                let compiled = Glob::new(pat, sem);
                assert_eq!(checked.is_err(), compiled.is_err(), "{pat:?} {sem:?}");
                if let (Err(a), Err(b)) = (checked, compiled) {
                    assert_eq!(a, b);
                }
            }
        }
        assert!(check("check-only-[ab]-*", Semantics::Path).is_ok());
        assert!(cache::get(&cache::Key::One(Semantics::Path, "check-only-[ab]-*".into())).is_none());
    }

    #[test]
    fn the_cache_stays_bounded() {
        for i in 0..cache::MAX + 40 {
            Glob::path(&format!("bounded-{i}-*")).unwrap();
            assert!(cache::len() <= cache::MAX);
        }
        assert!(Glob::path("bounded-3-*").unwrap().is_match("bounded-3-x"));
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
