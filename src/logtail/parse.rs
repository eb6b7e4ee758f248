//! Metric parsers for what training loops print: Hugging Face Trainer dict lines,
//! tqdm / Lightning progress bars, JSON lines, `key=value` / `key: value` / `key value`
//! pairs, and user regexes with named groups. All work on bytes and never panic.

use memchr::{memchr, memchr_iter};
use regex::bytes::Regex;

/// Values found on one line; `None` where the line says nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MetricUpdate {
    pub step: Option<u64>,
    pub total_steps: Option<u64>,
    pub loss: Option<f64>,
    pub eval_loss: Option<f64>,
    pub learning_rate: Option<f64>,
    pub grad_norm: Option<f64>,
    pub epoch: Option<f64>,
    pub tokens_per_second: Option<f64>,
    pub eta_seconds: Option<f64>,
    pub iterations_per_second: Option<f64>,
    /// Hugging Face's final line: `train_runtime` (seconds) ...
    pub train_runtime: Option<f64>,
    /// ... and its `train_loss` (the average over the run, not the latest loss).
    pub final_train_loss: Option<f64>,
    /// Step and total came from a progress bar (which may be an eval bar).
    pub from_bar: bool,
    /// The bar counts one epoch (Lightning's `Epoch 2: ... 10/100`, torchtune's
    /// `1|100|Loss: ...`): `step` is the run's step, worked out or printed beside it, and
    /// the bar's total and time left are the epoch's, so they are not given.
    pub epoch_bar: bool,
}

/// Metrics a checkpoint can be ranked by (`checkpoints.keep_best_metric`).
pub const RANKABLE_METRICS: &[&str] = &["loss", "eval_loss", "grad_norm", "learning_rate", "tokens_per_second"];

impl MetricUpdate {
    /// The value of one of [`RANKABLE_METRICS`] in this update, if the line reported it.
    pub fn metric(&self, name: &str) -> Option<f64> {
        match name {
            "loss" => self.loss,
            "eval_loss" => self.eval_loss,
            "grad_norm" => self.grad_norm,
            "learning_rate" => self.learning_rate,
            "tokens_per_second" => self.tokens_per_second,
            _ => None,
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// The line reports a loss that is NaN or infinite.
    pub fn has_bad_loss(&self) -> bool {
        [self.loss, self.eval_loss].into_iter().flatten().any(|v| !v.is_finite())
    }

    fn set(&mut self, field: Field, v: f64) {
        match field {
            Field::Step => self.step = to_count(v),
            Field::TotalSteps => self.total_steps = to_count(v),
            Field::Loss => self.loss = Some(v),
            Field::EvalLoss => self.eval_loss = Some(v),
            Field::LearningRate => self.learning_rate = Some(v),
            Field::GradNorm => self.grad_norm = Some(v),
            Field::Epoch => self.epoch = Some(v),
            Field::TokensPerSecond => self.tokens_per_second = Some(v),
            Field::EtaSeconds => self.eta_seconds = (v.is_finite() && v >= 0.0).then_some(v),
        }
    }

    /// Values of `other` override ours where present.
    pub fn overlay(&mut self, other: &MetricUpdate) {
        macro_rules! take {
            ($($f:ident),*) => { $( if other.$f.is_some() { self.$f = other.$f; } )* };
        }
        take!(
            step,
            total_steps,
            loss,
            eval_loss,
            learning_rate,
            grad_norm,
            epoch,
            tokens_per_second,
            eta_seconds,
            iterations_per_second,
            train_runtime,
            final_train_loss
        );
        self.from_bar |= other.from_bar;
        self.epoch_bar |= other.epoch_bar;
    }
}

fn to_count(v: f64) -> Option<u64> {
    (0.0..1e18).contains(&v).then_some(v as u64)
}

/// A metric a user pattern may name as a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Step,
    TotalSteps,
    Loss,
    EvalLoss,
    LearningRate,
    GradNorm,
    Epoch,
    TokensPerSecond,
    EtaSeconds,
}

impl Field {
    pub const GROUP_NAMES: [&'static str; 9] = [
        "step",
        "total_steps",
        "loss",
        "eval_loss",
        "learning_rate",
        "grad_norm",
        "epoch",
        "tokens_per_second",
        "eta_seconds",
    ];

    fn from_group(name: &str) -> Option<Field> {
        Some(match name {
            "step" => Field::Step,
            "total_steps" => Field::TotalSteps,
            "loss" => Field::Loss,
            "eval_loss" => Field::EvalLoss,
            "learning_rate" => Field::LearningRate,
            "grad_norm" => Field::GradNorm,
            "epoch" => Field::Epoch,
            "tokens_per_second" => Field::TokensPerSecond,
            "eta_seconds" => Field::EtaSeconds,
            _ => return None,
        })
    }
}

// ---------------------------------------------------------------- keys

/// What a key printed by a training loop means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Field(Field),
    /// A loss with no qualifier: the training loss, unless the line reports an
    /// evaluation (`valid on 'valid' subset | loss 2.1`).
    Loss,
    /// `train_loss`, `train loss`: the training loss (on Hugging Face's final line, the
    /// average over the run).
    TrainLoss,
    TrainRuntime,
}

/// Which data a key is about, from its qualifier words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Qual {
    None,
    Train,
    Eval,
    Test,
}

const TRAIN_WORDS: &[&str] = &["train", "training"];
const EVAL_WORDS: &[&str] =
    &["val", "valid", "validation", "validate", "validating", "eval", "evaluation", "evaluate", "evaluating"];
const TEST_WORDS: &[&str] = &["test", "testing"];
/// Words that change nothing about a key: namespaces (`trainer/global_step`,
/// `perf/tokens_per_second`) and averaging (`avg_loss`, Megatron's `lm loss`).
const NEUTRAL_WORDS: &[&str] =
    &["trainer", "global", "lm", "avg", "average", "mean", "current", "perf", "throughput", "optim", "optimizer"];
/// Bars that are not the training bar (Lightning's `Sanity Checking DataLoader 0`,
/// `Predicting ...`), besides evaluation and test words.
const OTHER_BAR_WORDS: &[&str] = &["sanity", "predict", "predicting", "prediction"];
/// Log levels end a key phrase: `INFO step 100`.
const LOG_LEVELS: &[&[u8]] = &[b"INFO", b"DEBUG", b"WARNING", b"WARN", b"ERROR", b"CRITICAL", b"TRACE"];

fn word_in(w: &[u8], list: &[&str]) -> bool {
    list.iter().any(|l| w.eq_ignore_ascii_case(l.as_bytes()))
}

/// At most this many words in a key (`total optimization steps`, `tokens_per_second_per_gpu`).
const MAX_WORDS: usize = 8;

/// The words of a key, split on everything that is not a letter or digit; `whole` says
/// which words stood alone between spaces (`valid` in `valid on 'valid' subset`, not in
/// `valid_loss`).
struct Words<'a> {
    w: [&'a [u8]; MAX_WORDS],
    whole: [bool; MAX_WORDS],
    n: usize,
}

impl<'a> Words<'a> {
    fn split(key: &'a [u8]) -> Option<Words<'a>> {
        let mut out = Words { w: [&[]; MAX_WORDS], whole: [false; MAX_WORDS], n: 0 };
        let mut i = 0;
        while i < key.len() {
            if !key[i].is_ascii_alphanumeric() {
                i += 1;
                continue;
            }
            let start = i;
            while i < key.len() && key[i].is_ascii_alphanumeric() {
                i += 1;
            }
            if out.n == MAX_WORDS || i - start > 32 {
                return None;
            }
            let spaced = |c: Option<&u8>| c.is_none_or(|c| *c == b' ' || *c == b'\t');
            out.whole[out.n] = spaced(start.checked_sub(1).and_then(|p| key.get(p))) && spaced(key.get(i));
            out.w[out.n] = &key[start..i];
            out.n += 1;
        }
        (out.n > 0).then_some(out)
    }

    fn words(&self) -> &[&'a [u8]] {
        &self.w[..self.n]
    }

    /// A whole word of `list` is among them.
    fn has_whole(&self, list: &[&str]) -> bool {
        (0..self.n).any(|i| self.whole[i] && word_in(self.w[i], list))
    }
}

/// What a key means, and its qualifier. Qualifier words may stand on either side
/// (`val_loss`, `loss/val`, `train loss`); any other word makes the key unknown
/// (`nll_loss`, `sop loss`, `loss scale`, `eval_steps`), so nothing is guessed.
fn classify(words: &[&[u8]]) -> Option<(Key, Qual)> {
    let (mut train, mut eval, mut test, mut qualified, mut lm) = (false, false, false, false, false);
    let mut take = |w: &[u8]| {
        if word_in(w, TRAIN_WORDS) {
            train = true;
        } else if word_in(w, EVAL_WORDS) {
            eval = true;
        } else if word_in(w, TEST_WORDS) {
            test = true;
        } else if word_in(w, NEUTRAL_WORDS) {
            lm |= w.eq_ignore_ascii_case(b"lm");
        } else {
            return false;
        }
        qualified = true;
        true
    };
    let (mut lo, mut hi) = (0, words.len());
    while lo < hi && take(words[lo]) {
        lo += 1;
    }
    while hi > lo && take(words[hi - 1]) {
        hi -= 1;
    }
    let core = &words[lo..hi];
    let qual = match (train, eval, test) {
        (false, false, false) => Qual::None,
        (true, false, false) => Qual::Train,
        (false, true, false) => Qual::Eval,
        (false, false, true) => Qual::Test,
        _ => return None,
    };
    let is = |pat: &[&str]| {
        core.len() == pat.len() && core.iter().zip(pat).all(|(w, p)| w.eq_ignore_ascii_case(p.as_bytes()))
    };
    use Field::*;
    // `lm loss value` is Megatron's evaluation line; `loss_step` is Lightning's per-step
    // value of a loss logged on step and epoch.
    if is(&["loss"]) || is(&["loss", "step"]) || is(&["total", "loss"]) || (lm && is(&["loss", "value"])) {
        let key = match qual {
            Qual::None => Key::Loss,
            Qual::Train => Key::TrainLoss,
            Qual::Eval => Key::Field(EvalLoss),
            Qual::Test => return None,
        };
        return Some((key, qual));
    }
    // The step of any line, an evaluation's too; a bare `steps` only unqualified
    // (`steps: 100`, not `eval_steps`, `warmup_steps`).
    if is(&["step"]) || is(&["iter"]) || is(&["iteration"]) || is(&["num", "updates"]) || (!qualified && is(&["steps"]))
    {
        return (qual != Qual::Test).then_some((Key::Field(Step), qual));
    }
    if is(&["runtime"]) {
        return (qual == Qual::Train).then_some((Key::TrainRuntime, qual));
    }
    // The rest describe training only (`eval_runtime`, `eval_tokens_per_second` are not).
    if !matches!(qual, Qual::None | Qual::Train) {
        return None;
    }
    let field = if is(&["total", "steps"])
        || is(&["max", "steps"])
        || is(&["total", "optimization", "steps"])
        || is(&["max", "iters"])
        || is(&["max", "iterations"])
        || is(&["total", "iters"])
        || is(&["total", "iterations"])
    {
        TotalSteps
    } else if is(&["lr"]) || is(&["learning", "rate"]) {
        LearningRate
    } else if is(&["grad", "norm"]) || is(&["gradnorm"]) || is(&["gnorm"]) || is(&["gradient", "norm"]) {
        GradNorm
    } else if is(&["epoch"]) {
        Epoch
    } else if is(&["tok", "s"])
        || is(&["tokens", "s"])
        || is(&["toks", "s"])
        || is(&["tokens", "per", "second"])
        || is(&["tokens", "per", "sec"])
        || is(&["tok", "per", "sec"])
        || is(&["tokens", "per", "second", "per", "gpu"])
        || is(&["tps"])
        || is(&["wps"])
    {
        TokensPerSecond
    } else if is(&["eta"]) || is(&["eta", "seconds"]) {
        EtaSeconds
    } else {
        return None;
    };
    Some((Key::Field(field), qual))
}

fn lookup_key(raw: &[u8]) -> Option<(Key, Qual)> {
    if raw.is_empty() || raw.len() > 64 {
        return None;
    }
    if raw.len() > MEMO_KEY {
        return classify(Words::split(raw)?.words());
    }
    let slot = memo_slot(raw);
    KEY_MEMO.with_borrow_mut(|memo| {
        let m = &mut memo[slot];
        if usize::from(m.len) == raw.len() && &m.key[..raw.len()] == raw {
            return m.answer;
        }
        let answer = Words::split(raw).and_then(|w| classify(w.words()));
        m.len = raw.len() as u8;
        m.key[..raw.len()].copy_from_slice(raw);
        m.answer = answer;
        answer
    })
}

/// Keys of at most this many bytes are remembered (`learning_rate`, `train/global_step`).
const MEMO_KEY: usize = 32;
/// How many keys a thread remembers.
const MEMO_SLOTS: usize = 32;

/// A remembered key and what it means (`len` 0: an empty slot; empty keys are never
/// looked up).
#[derive(Clone, Copy)]
struct MemoSlot {
    len: u8,
    key: [u8; MEMO_KEY],
    answer: Option<(Key, Qual)>,
}

thread_local! {
    /// What recent keys mean, per thread. A training log repeats a handful of keys on
    /// every line, and splitting and classifying a key was a third of the time of reading
    /// a Trainer log's history (`perf`, docs/performance.md). What a key means depends on
    /// its bytes alone, so a slot keeps the key whole and is compared whole; a key is kept
    /// in the slot its bytes hash to, replacing whatever was there.
    static KEY_MEMO: std::cell::RefCell<[MemoSlot; MEMO_SLOTS]> = const {
        std::cell::RefCell::new([MemoSlot { len: 0, key: [0; MEMO_KEY], answer: None }; MEMO_SLOTS])
    };
}

/// The memo slot of a key: FNV-1a over its bytes.
fn memo_slot(raw: &[u8]) -> usize {
    let h = raw.iter().fold(0x811c_9dc5_u32, |h, &b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193));
    (h ^ (h >> 16)) as usize % MEMO_SLOTS
}

/// A user pattern: a compiled regex and which group fills which field.
#[derive(Debug, Clone)]
struct UserPattern {
    re: Regex,
    groups: Vec<(usize, Field)>,
}

/// Parses lines into [`MetricUpdate`]s.
#[derive(Debug, Clone, Default)]
pub struct MetricParser {
    user: Vec<UserPattern>,
}

impl MetricParser {
    /// A parser with the user's extra patterns (see [`MetricParser::check_pattern`]).
    pub fn new(patterns: &[String]) -> Result<Self, String> {
        let mut user = Vec::new();
        for (i, p) in patterns.iter().enumerate() {
            user.push(compile(p).map_err(|e| format!("log.patterns[{i}]: {e}"))?);
        }
        Ok(Self { user })
    }

    /// Why a user pattern is unusable, if it is.
    pub fn check_pattern(pattern: &str) -> Result<(), String> {
        compile(pattern).map(|_| ())
    }

    /// Metrics on one line (one `\r` state of it); `None` when it has none.
    pub fn parse(&self, line: &[u8]) -> Option<MetricUpdate> {
        let stripped;
        let line = if memchr(0x1b, line).is_some() {
            stripped = strip_escapes(line);
            &stripped[..]
        } else {
            line
        };
        let mut u = MetricUpdate::default();
        let mut found = false;
        if let Some(i) = memchr(b'{', line) {
            found = parse_dict(&line[i..], &mut u);
        }
        if !found && line.trim_ascii_start().first().is_some_and(u8::is_ascii_digit) {
            found = parse_keras(line, &mut u);
        }
        if !found && memchr(b'[', line).is_some() {
            found = parse_bar(line, &mut u);
        }
        if !found {
            found = parse_pairs(line, &mut u);
        }
        for p in &self.user {
            if let Some(caps) = p.re.captures(line) {
                for &(idx, field) in &p.groups {
                    let Some(m) = caps.get(idx) else { continue };
                    let text = m.as_bytes().trim_ascii();
                    let value = if field == Field::EtaSeconds {
                        parse_duration(text).map(|(v, _)| v)
                    } else {
                        parse_number(text).map(|(v, _)| v)
                    };
                    if let Some(v) = value {
                        u.set(field, v);
                        found = true;
                    }
                }
            }
        }
        found.then_some(u)
    }
}

fn compile(pattern: &str) -> Result<UserPattern, String> {
    let re = regex::bytes::RegexBuilder::new(pattern).size_limit(1 << 20).build().map_err(|e| match e {
        regex::Error::Syntax(s) => {
            format!("not a valid regex: {}", s.lines().last().unwrap_or_default())
        }
        other => format!("not a valid regex: {other}"),
    })?;
    let mut groups = Vec::new();
    for (idx, name) in re.capture_names().enumerate() {
        let Some(name) = name else { continue };
        match Field::from_group(name) {
            Some(f) => groups.push((idx, f)),
            None => {
                return Err(format!("unknown group name {name:?}; use one of {}", Field::GROUP_NAMES.join(", ")));
            }
        }
    }
    if groups.is_empty() {
        return Err(format!("needs a named group, one of {}", Field::GROUP_NAMES.join(", ")));
    }
    Ok(UserPattern { re, groups })
}

// ---------------------------------------------------------------- numbers and times

/// A number at the start of `s` (after nothing): `2.31`, `-3e-4`, `.5`, `nan`, `inf`.
/// Returns the value and the bytes used.
pub(crate) fn parse_number(s: &[u8]) -> Option<(f64, usize)> {
    let mut i = 0;
    if matches!(s.first(), Some(b'-' | b'+')) {
        i = 1;
    }
    let neg = s.first() == Some(&b'-');
    let rest = &s[i..];
    if rest.first().is_some_and(u8::is_ascii_alphabetic) {
        for (word, value) in [(&b"nan"[..], f64::NAN), (b"infinity", f64::INFINITY), (b"inf", f64::INFINITY)] {
            if rest.len() >= word.len()
                && rest[..word.len()].eq_ignore_ascii_case(word)
                && rest.get(word.len()).is_none_or(|c| !c.is_ascii_alphanumeric())
            {
                let v = if neg { -value } else { value };
                return Some((v, i + word.len()));
            }
        }
        return None;
    }
    // Digits are gathered into an integer mantissa as they are scanned.
    let mut mantissa: u64 = 0;
    let mut mant_digits = 0u32;
    let int_start = i;
    while let Some(&c) = s.get(i).filter(|c| c.is_ascii_digit()) {
        mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(c - b'0'));
        mant_digits += 1;
        i += 1;
    }
    let mut digits = i - int_start;
    let mut frac_digits = 0i32;
    if s.get(i) == Some(&b'.') {
        let frac_start = i + 1;
        let mut j = frac_start;
        while let Some(&c) = s.get(j).filter(|c| c.is_ascii_digit()) {
            mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(c - b'0'));
            mant_digits += 1;
            j += 1;
        }
        if j > frac_start || digits > 0 {
            digits += j - frac_start;
            frac_digits = (j - frac_start) as i32;
            i = if j > frac_start { j } else { i };
        }
    }
    if digits == 0 {
        return None;
    }
    let mut exp: i32 = 0;
    if matches!(s.get(i), Some(b'e' | b'E')) {
        let mut j = i + 1;
        let exp_neg = s.get(j) == Some(&b'-');
        if matches!(s.get(j), Some(b'-' | b'+')) {
            j += 1;
        }
        let exp_start = j;
        while let Some(&c) = s.get(j).filter(|c| c.is_ascii_digit()) {
            exp = exp.saturating_mul(10).saturating_add(i32::from(c - b'0'));
            j += 1;
        }
        if j > exp_start {
            i = j;
            if exp_neg {
                exp = -exp;
            }
        } else {
            exp = 0;
        }
    }
    // Fast path (Clinger): an exact mantissa times an exact power of ten is rounded
    // once, so it equals what the full parser gives.
    let net = exp.saturating_sub(frac_digits);
    if mant_digits <= 15 && (-22..=22).contains(&net) {
        const POW10: [f64; 23] = [
            1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18,
            1e19, 1e20, 1e21, 1e22,
        ];
        let m = mantissa as f64;
        let v = if net >= 0 { m * POW10[net as usize] } else { m / POW10[(-net) as usize] };
        return Some((if neg { -v } else { v }, i));
    }
    let text = std::str::from_utf8(&s[..i]).ok()?;
    text.parse::<f64>().ok().map(|v| (v, i))
}

/// A clock time `mm:ss` or `h:mm:ss` (tqdm's elapsed / remaining).
fn parse_clock(s: &[u8]) -> Option<(f64, usize)> {
    let mut total = 0.0;
    let mut i = 0;
    let mut parts = 0;
    loop {
        let start = i;
        while s.get(i).is_some_and(u8::is_ascii_digit) && i - start < 6 {
            i += 1;
        }
        if i == start {
            return None;
        }
        let n: f64 = std::str::from_utf8(&s[start..i]).ok()?.parse().ok()?;
        total = total * 60.0 + n;
        parts += 1;
        if s.get(i) == Some(&b':') && parts < 3 && s.get(i + 1).is_some_and(u8::is_ascii_digit) {
            i += 1;
        } else {
            break;
        }
    }
    (parts >= 2).then_some((total, i))
}

/// A duration: a clock (`1:02:03`), units (`2h10m`, `90s`, `1.5h`) or plain seconds.
fn parse_duration(s: &[u8]) -> Option<(f64, usize)> {
    if let Some(c) = parse_clock(s) {
        return Some(c);
    }
    let mut i = 0;
    let mut total = 0.0;
    let mut any = false;
    while let Some((v, n)) = s.get(i..).and_then(parse_number) {
        if !v.is_finite() || v < 0.0 {
            return None;
        }
        let unit_at = i + n;
        let mult = match s.get(unit_at) {
            Some(b'd') => 86_400.0,
            Some(b'h') => 3600.0,
            Some(b'm') if s.get(unit_at + 1) != Some(&b's') => 60.0,
            Some(b's') => 1.0,
            _ => {
                if !any {
                    return Some((v, unit_at));
                }
                break;
            }
        };
        total += v * mult;
        any = true;
        i = unit_at + 1;
    }
    any.then_some((total, i))
}

// ---------------------------------------------------------------- dict / JSON lines

fn skip_ws(s: &[u8], mut i: usize) -> usize {
    while s.get(i).is_some_and(|c| c.is_ascii_whitespace()) {
        i += 1;
    }
    i
}

/// `{'loss': 2.31, 'grad_norm': 0.8, ...}` (Python repr) or `{"loss": 2.31, ...}`
/// (JSON). `s` starts at `{`. Values that are not numbers are skipped.
fn parse_dict(s: &[u8], u: &mut MetricUpdate) -> bool {
    let mut i = skip_ws(s, 1);
    let mut found = false;
    let mut train_loss = None;
    let mut runtime = None;
    while i < s.len() {
        let q = s[i];
        if q != b'\'' && q != b'"' {
            break;
        }
        let Some(kend) = memchr(q, &s[i + 1..]) else {
            break;
        };
        let key = &s[i + 1..i + 1 + kend];
        i = skip_ws(s, i + 2 + kend);
        if s.get(i) != Some(&b':') {
            break;
        }
        i = skip_ws(s, i + 1);
        let (value, next) = dict_value(s, i);
        i = next;
        if let (Some(v), Some((k, _))) = (value, lookup_key(key)) {
            match k {
                Key::Field(f) => {
                    u.set(f, v);
                    found = true;
                }
                Key::Loss => {
                    u.loss = Some(v);
                    found = true;
                }
                Key::TrainLoss => train_loss = Some(v),
                Key::TrainRuntime => runtime = Some(v),
            }
        }
        i = skip_ws(s, i);
        match s.get(i) {
            Some(b',') => i = skip_ws(s, i + 1),
            _ => break,
        }
    }
    if runtime.is_some() {
        u.train_runtime = runtime;
        u.final_train_loss = train_loss;
        found = true;
    } else if let Some(v) = train_loss {
        if u.loss.is_none() {
            u.loss = Some(v);
        }
        found = true;
    }
    found
}

/// One value in a dict: its number if it is one (also `'2.31'`, `tensor(2.31)`,
/// `np.float32(0.8)`), and where the next token starts.
fn dict_value(s: &[u8], i: usize) -> (Option<f64>, usize) {
    match s.get(i) {
        None => (None, i),
        Some(&q @ (b'\'' | b'"')) => match memchr(q, &s[i + 1..]) {
            Some(end) => {
                let inner = s[i + 1..i + 1 + end].trim_ascii();
                let v = parse_number(inner).filter(|&(_, n)| n == inner.len()).map(|(v, _)| v);
                (v, i + 2 + end)
            }
            None => (None, s.len()),
        },
        Some(b'{' | b'[' | b'(') => (None, skip_nested(s, i)),
        Some(_) => {
            if let Some((v, n)) = parse_number(&s[i..]) {
                return (Some(v), i + n);
            }
            // A wrapper: an identifier (dots allowed) followed by `(`.
            let mut j = i;
            while s.get(j).is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'.') {
                j += 1;
            }
            if j > i && s.get(j) == Some(&b'(') {
                let inner = skip_ws(s, j + 1);
                let v = parse_number(&s[inner.min(s.len())..]).map(|(v, _)| v);
                return (v, skip_nested(s, j));
            }
            // Anything else (None, True, a name): skip to the next separator.
            while s.get(j).is_some_and(|c| !matches!(c, b',' | b'}')) {
                j += 1;
            }
            (None, j)
        }
    }
}

/// Skip a bracketed value starting at `i`, quotes respected; returns the index after it.
fn skip_nested(s: &[u8], mut i: usize) -> usize {
    let mut depth = 0usize;
    let mut quote: Option<u8> = None;
    while i < s.len() {
        let c = s[i];
        if let Some(q) = quote {
            if c == b'\\' {
                i += 1;
            } else if c == q {
                quote = None;
            }
        } else {
            match c {
                b'\'' | b'"' => quote = Some(c),
                b'{' | b'[' | b'(' => depth += 1,
                b'}' | b']' | b')' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        return i + 1;
                    }
                }
                _ => {}
            }
        }
        i += 1;
    }
    s.len()
}

// ---------------------------------------------------------------- progress bars

/// tqdm / Lightning: ` 45%|████▌     | 450/1000 [01:00<01:13,  7.50it/s, loss=2.31]`,
/// `120it [00:30, 4.00it/s]`, `[00:30<03:40, 1.25s/it]`; torchtune's
/// `1|100|Loss: 2.345: 10%|█ | 100/1000 [...]`.
fn parse_bar(line: &[u8], u: &mut MetricUpdate) -> bool {
    for open in memchr_iter(b'[', line) {
        let Some(close) = memchr(b']', &line[open..]) else {
            return false;
        };
        let inner = &line[open + 1..open + close];
        let Some((remaining, rate, postfix)) = bar_inner(inner) else {
            continue;
        };
        let before = line[..open].trim_ascii_end();
        let Some((step, total, counter_start)) = bar_counter(before) else {
            continue;
        };
        let desc = bar_description(&before[..counter_start]);
        if let Some(words) = Words::split(desc)
            && (words.has_whole(EVAL_WORDS) || words.has_whole(TEST_WORDS) || words.has_whole(OTHER_BAR_WORDS))
        {
            // Lightning's `Validation DataLoader 0: 40%|...| 8/20`: not the training's
            // progress, so it says nothing about the step, the rate or the time left.
            return true;
        }
        u.from_bar = true;
        u.iterations_per_second = rate;
        // What a program printed after the bar without a new line (accelerate's examples
        // log through `logging` while the bar is drawn: `...3.99it/s]05/01/2024 ... -
        // epoch 0: perplexity: 28.9 eval_loss: tensor(3.36, ...)`).
        let after = &line[open + close + 1..];
        if let Some((epoch, global_step, rest)) = torchtune_description(desc) {
            // The bar counts this epoch's steps: its total and time left are the epoch's,
            // not the run's, so they are left out.
            u.epoch_bar = true;
            u.step = Some(global_step);
            u.epoch = Some(epoch as f64);
            parse_pairs(rest, u);
            parse_pairs(postfix, u);
            parse_pairs(after, u);
            return true;
        }
        u.step = Some(step);
        u.total_steps = total;
        u.eta_seconds = remaining;
        // `Epoch 1` before the bar, `loss=2.31, v_num=0` after the rate.
        parse_pairs(desc, u);
        // Lightning counts batches per epoch (`Epoch 2: ... 10/100`): the global step
        // is epoch × batches per epoch + batch; the bar's total and time left are the
        // epoch's.
        if let (Some(e), Some(t)) = (u.epoch, total)
            && e >= 0.0
            && e.fract() == 0.0
            && e < 1e9
        {
            u.step = Some((e as u64).saturating_mul(t).saturating_add(step));
            u.epoch_bar = true;
            u.total_steps = None;
            u.eta_seconds = None;
        }
        parse_pairs(postfix, u);
        parse_pairs(after, u);
        return true;
    }
    false
}

/// The text before a bar's counter without the bar: tqdm draws
/// `{desc}: {percent}%|{bar}| {n}/{total}`, so `Epoch 2:  10%|█   | ` gives `Epoch 2`.
fn bar_description(b: &[u8]) -> &[u8] {
    let mut d = b.trim_ascii_end();
    if let [rest @ .., b'|'] = d
        && let Some(p) = memchr::memrchr(b'|', rest)
    {
        let left = rest[..p].trim_ascii_end();
        if let [pct @ .., b'%'] = left {
            let start =
                pct.iter().rposition(|c| !(c.is_ascii_digit() || *c == b'.' || *c == b' ')).map_or(0, |i| i + 1);
            d = pct[..start].trim_ascii_end();
        } else {
            d = left;
        }
    }
    match d {
        [rest @ .., b':'] => rest,
        _ => d,
    }
}

/// torchtune's bar description `{epoch}|{global step}|Loss: {loss}` (its recipes'
/// `pbar.set_description`): the epoch counted from 1, the step, and the rest.
fn torchtune_description(d: &[u8]) -> Option<(u64, u64, &[u8])> {
    let digits = |s: &[u8]| s.iter().take_while(|c| c.is_ascii_digit()).count();
    let a = digits(d);
    if a == 0 || a > 9 || d.get(a) != Some(&b'|') {
        return None;
    }
    let rest = &d[a + 1..];
    let b = digits(rest);
    if b == 0 || b > 18 || rest.get(b) != Some(&b'|') {
        return None;
    }
    let epoch = std::str::from_utf8(&d[..a]).ok()?.parse().ok()?;
    let step = std::str::from_utf8(&rest[..b]).ok()?.parse().ok()?;
    Some((epoch, step, &rest[b + 1..]))
}

/// Keras' progress bar: ` 100/1875 ━━━━━━━━━━━━━━━━━━━━ 3:04 98ms/step - loss: 2.3456`
/// (Keras 3), `100/1875 [==>...] - ETA: 3:04 - loss: 2.3456` (Keras 2) and the one line per
/// epoch of `verbose=2` (`1875/1875 - 12s - 6ms/step - loss: 0.3 - val_loss: 0.2`). The
/// counter and the time left are the epoch's, not the run's: only the metrics are read.
fn parse_keras(line: &[u8], u: &mut MetricUpdate) -> bool {
    let t = line.trim_ascii_start();
    let n = t.iter().take_while(|c| c.is_ascii_digit()).count();
    if n == 0 || t.get(n) != Some(&b'/') {
        return false;
    }
    let rest = &t[n + 1..];
    let m = rest.iter().take_while(|c| c.is_ascii_digit()).count();
    let m = if m == 0 && rest.starts_with(b"Unknown") { 7 } else { m };
    if m == 0 || rest.get(m) != Some(&b' ') {
        return false;
    }
    let after = &rest[m + 1..];
    let keras = after.starts_with("━".as_bytes())
        || after.starts_with(b"[=")
        || after.starts_with(b"[>")
        || after.starts_with(b"[.")
        || after.starts_with(b"- ");
    if !keras {
        return false;
    }
    // Metrics follow ` - `; Keras 2 names its time left `ETA`, which is the epoch's.
    let found = parse_pairs(after, u);
    u.eta_seconds = None;
    found && !u.is_empty()
}

/// `01:00<01:13,  7.50it/s, loss=2.31` -> (remaining, iterations per second, postfix).
fn bar_inner(inner: &[u8]) -> Option<(Option<f64>, Option<f64>, &[u8])> {
    let (_, n) = parse_clock(inner)?;
    let mut i = n;
    let mut remaining = None;
    if inner.get(i) == Some(&b'<') {
        i += 1;
        if inner.get(i) == Some(&b'?') {
            i += 1;
        } else {
            let (r, m) = parse_clock(&inner[i..])?;
            remaining = Some(r);
            i += m;
        }
    }
    if inner.get(i) != Some(&b',') {
        return None;
    }
    i = skip_ws(inner, i + 1);
    let (value, m) = match inner.get(i) {
        Some(b'?') => (None, 1),
        _ => {
            let (v, m) = parse_number(&inner[i..])?;
            (Some(v), m)
        }
    };
    i += m;
    let unit_end = inner[i..].iter().position(|c| matches!(c, b',' | b' ')).map_or(inner.len(), |p| i + p);
    let unit = &inner[i..unit_end];
    let rate = if unit.ends_with(b"/s") {
        value
    } else if unit.starts_with(b"s/") {
        value.filter(|v| *v > 0.0).map(|v| 1.0 / v)
    } else {
        return None;
    };
    // Only count iterations (`it`) as steps per second; `B/s` and such are not steps.
    let rate = if unit == b"it/s" || unit == b"s/it" { rate } else { None };
    Some((remaining, rate, &inner[unit_end..]))
}

/// The counter before the bracket: `450/1000` or `120it` -> (step, total, where it starts).
fn bar_counter(before: &[u8]) -> Option<(u64, Option<u64>, usize)> {
    let mut end = before.len();
    // `120it`: a unit word after the count.
    while end > 0 && before[end - 1].is_ascii_alphabetic() {
        end -= 1;
    }
    let has_unit = end < before.len();
    let digits_end = end;
    let mut start = digits_end;
    while start > 0 && before[start - 1].is_ascii_digit() {
        start -= 1;
    }
    if start == digits_end {
        return None;
    }
    let last: u64 = std::str::from_utf8(&before[start..digits_end]).ok()?.parse().ok()?;
    if !has_unit && start > 0 && before[start - 1] == b'/' {
        let num_end = start - 1;
        let mut num_start = num_end;
        while num_start > 0 && before[num_start - 1].is_ascii_digit() {
            num_start -= 1;
        }
        if num_start == num_end {
            return None;
        }
        let step: u64 = std::str::from_utf8(&before[num_start..num_end]).ok()?.parse().ok()?;
        return Some((step, Some(last), num_start));
    }
    if has_unit {
        return Some((last, None, start));
    }
    None
}

// ---------------------------------------------------------------- key / value pairs

fn is_key_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_'
}

fn is_key_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'/' | b'.' | b'-')
}

/// At most this many space-separated words in a key phrase (`total optimization steps`).
const MAX_PHRASE_WORDS: usize = 6;

/// The end of the word of key characters starting at `i`.
fn word_end(s: &[u8], mut i: usize) -> usize {
    while i < s.len() && is_key_char(s[i]) {
        i += 1;
    }
    i
}

/// `nan`, `inf`: a value, not the next word of a key (`loss nan`).
fn is_number_word(w: &[u8]) -> bool {
    parse_number(w).is_some_and(|(_, n)| n == w.len())
}

fn is_log_level(w: &[u8]) -> bool {
    LOG_LEVELS.contains(&w)
}

/// `step 120 | loss 2.3 | lr 1e-4 | tok/s 1900`, `loss=2.3 lr=1e-4`, `loss: 2.3`,
/// `Step 120/1000`, and keys of several words: `train loss 4.1, val loss 4.3` (nanoGPT),
/// `learning rate: 1.5E-04 | lm loss: 7.1E+00 | grad norm: 1.2` (Megatron-LM). A key is
/// the run of words (single spaces between them) right before its value; it counts only
/// when all of its words are known ([`classify`]). Words that say the line reports an
/// evaluation (`valid on 'valid' subset |` in fairseq, `validation loss at iteration 1000
/// |` in Megatron-LM, `validate step: 100` in torchtitan) make the unqualified `loss` after
/// them the evaluation loss, and its throughput is not the training's; after a test set's
/// words (`... on test set`) it is no loss at all.
fn parse_pairs(s: &[u8], u: &mut MetricUpdate) -> bool {
    let mut found = false;
    let (mut plain_loss, mut train_loss) = (None, None);
    let (mut eval_ctx, mut test_ctx) = (false, false);
    let mut i = 0;
    while i < s.len() {
        if !is_key_start(s[i]) {
            i += 1;
            continue;
        }
        let start = i;
        let mut end = word_end(s, i);
        if is_log_level(&s[start..end]) {
            i = end;
            continue;
        }
        let mut words = 1;
        while words < MAX_PHRASE_WORDS
            && s.get(end) == Some(&b' ')
            && s.get(end + 1).is_some_and(|&c| is_key_start(c))
            && !is_log_level(&s[end + 1..word_end(s, end + 1)])
            && !is_number_word(&s[end + 1..word_end(s, end + 1)])
        {
            end = word_end(s, end + 1);
            words += 1;
        }
        i = end;
        let mut key_end = end;
        while key_end > start && matches!(s[key_end - 1], b'.' | b'-' | b'/') {
            key_end -= 1;
        }
        let Some(phrase) = Words::split(&s[start..key_end]) else { continue };
        // The value: after spaces, `=` or `:` and spaces; or after spaces alone.
        let mut j = key_end;
        while matches!(s.get(j), Some(b' ' | b'\t')) {
            j += 1;
        }
        let spaced = j > key_end;
        if matches!(s.get(j), Some(b'=' | b':')) {
            j += 1;
            while matches!(s.get(j), Some(b' ' | b'\t')) {
                j += 1;
            }
        } else if !spaced {
            j = usize::MAX;
        }
        let has_value = s.get(j).is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'+' | b'.' | b'['));
        // `validation loss at iteration 1000`: what comes before `at` labels the line.
        let all = phrase.words();
        let (label, key): (&[&[u8]], &[&[u8]]) = match all.iter().rposition(|w| w.eq_ignore_ascii_case(b"at")) {
            Some(k) if has_value && k > 0 && k + 1 < all.len() => (&all[..k], &all[k + 1..]),
            _ if has_value => (&[], all),
            _ => (all, &[]),
        };
        if !label.is_empty() {
            let whole = |list: &[&str]| (0..label.len()).any(|x| phrase.whole[x] && word_in(label[x], list));
            eval_ctx |= whole(EVAL_WORDS);
            test_ctx |= whole(TEST_WORDS);
        }
        if key.is_empty() {
            continue;
        }
        let Some((k, qual)) = classify(key) else { continue };
        let parsed =
            if k == Key::Field(Field::EtaSeconds) { s.get(j..).and_then(parse_duration) } else { pair_value(s, j) };
        let Some((v, n)) = parsed else { continue };
        let end = j + n;
        // `loss 2.3abc` is not a value; `tok/s 1.9k` is not either (units not supported).
        if s.get(end).is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_') {
            continue;
        }
        i = end;
        found = true;
        match k {
            // What the line said before this loss decides whose loss it is.
            Key::Loss => plain_loss = Some((v, eval_ctx, test_ctx)),
            Key::TrainLoss => train_loss = Some(v),
            Key::TrainRuntime => u.train_runtime = Some(v),
            // An evaluation's throughput and time left are not the training's.
            Key::Field(Field::TokensPerSecond | Field::EtaSeconds) if eval_ctx || test_ctx => {}
            Key::Field(f) => {
                u.set(f, v);
                if f == Field::Step {
                    // An evaluation's step (`validate step: 100`) marks the line.
                    eval_ctx |= qual == Qual::Eval;
                    // `Step 5/100`, Megatron-LM's `iteration      100/  500000`.
                    let mut t = end;
                    while s.get(t) == Some(&b' ') {
                        t += 1;
                    }
                    if s.get(t) == Some(&b'/') {
                        t += 1;
                        while s.get(t) == Some(&b' ') {
                            t += 1;
                        }
                        if let Some((total, m)) = s.get(t..).and_then(parse_number)
                            && !s.get(t + m).is_some_and(|c| c.is_ascii_alphanumeric())
                        {
                            u.set(Field::TotalSteps, total);
                            i = t + m;
                        }
                    }
                }
            }
        }
    }
    match plain_loss {
        // A test set's loss is neither the training's nor the evaluation's.
        Some((_, _, true)) => {}
        Some((v, true, false)) => u.eval_loss = u.eval_loss.or(Some(v)),
        Some((v, false, false)) if train_loss.is_none() => u.loss = Some(v),
        _ => {}
    }
    if train_loss.is_some() {
        u.loss = train_loss;
    }
    found && !u.is_empty()
}

/// A value after a key: a number (with thousands separators, `2,345`), the one value of a
/// list (`lr=[0.0003, 0.0003]`, DeepSpeed's per-group rates), or a wrapped number
/// (`tensor(2.51, device='cuda:0')`). `None` when it is ambiguous: `2,3`, a list of
/// different values.
fn pair_value(s: &[u8], j: usize) -> Option<(f64, usize)> {
    let t = s.get(j..)?;
    match t.first()? {
        b'[' => {
            let close = memchr(b']', t)?;
            let mut value: Option<f64> = None;
            for item in t[1..close].split(|&c| c == b',') {
                let item = item.trim_ascii();
                let (v, n) = parse_number(item)?;
                if n != item.len() || value.is_some_and(|w| w.to_bits() != v.to_bits()) {
                    return None;
                }
                value = Some(v);
            }
            value.map(|v| (v, close + 1))
        }
        c if c.is_ascii_alphabetic() => parse_number(t).or_else(|| {
            // A wrapper: an identifier (dots allowed) and `(`.
            let id = t.iter().take_while(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.')).count();
            if t.get(id) != Some(&b'(') {
                return None;
            }
            let inner = skip_ws(t, id + 1);
            let (v, _) = parse_number(t.get(inner..)?)?;
            Some((v, skip_nested(t, id)))
        }),
        _ => {
            let (v, n) = parse_number(t)?;
            if t.get(n) == Some(&b',') && t.get(n + 1).is_some_and(u8::is_ascii_digit) {
                return grouped_number(t);
            }
            Some((v, n))
        }
    }
}

/// `2,345` or `1,234,567.5` (Python's `{:,}`): 1 to 3 digits, then groups of exactly 3.
/// `None` for anything else with a comma between digits (`2,3`, `0,5`): not guessed.
fn grouped_number(t: &[u8]) -> Option<(f64, usize)> {
    let head = t.iter().take_while(|c| c.is_ascii_digit()).count();
    if !(1..=3).contains(&head) || (t[0] == b'0') {
        return None;
    }
    let mut digits: Vec<u8> = t[..head].to_vec();
    let mut i = head;
    while t.get(i) == Some(&b',') {
        let group = t.get(i + 1..i + 4)?;
        if !group.iter().all(u8::is_ascii_digit) || t.get(i + 4).is_some_and(u8::is_ascii_digit) {
            return None;
        }
        digits.extend_from_slice(group);
        i += 4;
    }
    if t.get(i) == Some(&b'.') {
        let frac = t[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        digits.push(b'.');
        digits.extend_from_slice(&t[i + 1..i + 1 + frac]);
        i += 1 + frac;
    }
    let v: f64 = std::str::from_utf8(&digits).ok()?.parse().ok()?;
    Some((v, i))
}

/// The line without terminal escape sequences (torchtitan colours its metrics, Keras
/// bolds its counter): the history is parsed from the raw file.
fn strip_escapes(line: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(line.len());
    let mut i = 0;
    while i < line.len() {
        if line[i] != 0x1b {
            out.push(line[i]);
            i += 1;
            continue;
        }
        i += 1;
        match line.get(i) {
            Some(b'[') => {
                i += 1;
                while i < line.len() && !(0x40..=0x7e).contains(&line[i]) {
                    i += 1;
                }
                i += 1;
            }
            Some(b']') => {
                while i < line.len() && line[i] != 0x07 && line[i] != 0x1b {
                    i += 1;
                }
                i += 1;
            }
            Some(_) => i += 1,
            None => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(line: &str) -> MetricUpdate {
        MetricParser::default().parse(line.as_bytes()).unwrap_or_default()
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_number(b"2.31,"), Some((2.31, 4)));
        assert_eq!(parse_number(b"-3e-4"), Some((-3e-4, 5)));
        assert_eq!(parse_number(b".5"), Some((0.5, 2)));
        assert_eq!(parse_number(b"7."), Some((7.0, 1)));
        assert_eq!(parse_number(b"1e"), Some((1.0, 1)));
        assert!(parse_number(b"nan").is_some_and(|(v, n)| v.is_nan() && n == 3));
        assert_eq!(parse_number(b"-inf"), Some((f64::NEG_INFINITY, 4)));
        assert_eq!(parse_number(b"info"), None);
        assert_eq!(parse_number(b"."), None);
        assert_eq!(parse_number(b"-"), None);
    }

    #[test]
    fn fast_number_path_matches_std() {
        let mut rng = fastrand::Rng::with_seed(3);
        for _ in 0..20_000 {
            let text = match rng.u8(0..4) {
                0 => format!("{}", rng.f64() * 10f64.powi(rng.i32(-8..8))),
                1 => format!("{:.4}", rng.f64() * 10.0),
                2 => format!("{:e}", rng.f64() * 1e-3),
                _ => format!("{}.{}e-{}", rng.u32(0..1000), rng.u32(0..100), rng.u8(0..30)),
            };
            let want: f64 = text.parse().expect("std parses");
            assert_eq!(parse_number(text.as_bytes()), Some((want, text.len())), "{text}");
        }
        assert_eq!(parse_number(b"12345678901234567890"), Some((12345678901234567890.0, 20)));
        assert_eq!(parse_number(b"1e400"), Some((f64::INFINITY, 5)));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration(b"1:02:03"), Some((3723.0, 7)));
        assert_eq!(parse_duration(b"03:40"), Some((220.0, 5)));
        assert_eq!(parse_duration(b"2h10m"), Some((7800.0, 5)));
        assert_eq!(parse_duration(b"90s"), Some((90.0, 3)));
        assert_eq!(parse_duration(b"45"), Some((45.0, 2)));
    }

    #[test]
    fn hf_dict() {
        let u = p("{'loss': 2.31, 'grad_norm': 0.8, 'learning_rate': 3e-4, 'epoch': 1.4}");
        assert_eq!(u.loss, Some(2.31));
        assert_eq!(u.grad_norm, Some(0.8));
        assert_eq!(u.learning_rate, Some(3e-4));
        assert_eq!(u.epoch, Some(1.4));
        let u = p("{'train_runtime': 3600.5, 'train_samples_per_second': 9.1, 'train_loss': 2.05, 'epoch': 3.0}");
        assert_eq!((u.train_runtime, u.final_train_loss, u.loss), (Some(3600.5), Some(2.05), None));
        let u = p("{'loss': '1.5', 'grad_norm': tensor(0.9, device='cuda:0'), 'x': None, 'lr': np.float32(1e-5)}");
        assert_eq!((u.loss, u.grad_norm, u.learning_rate), (Some(1.5), Some(0.9), Some(1e-5)));
    }

    #[test]
    fn bars() {
        let u = p(" 45%|████▌     | 450/1000 [01:00<01:13,  7.50it/s, loss=2.31]");
        assert_eq!((u.step, u.total_steps, u.eta_seconds), (Some(450), Some(1000), Some(73.0)));
        assert_eq!((u.iterations_per_second, u.loss, u.from_bar), (Some(7.5), Some(2.31), true));
        let u = p("Epoch 2:  10%|█         | 10/100 [00:20<03:00,  2.00s/it, v_num=0, train_loss=1.23]");
        assert_eq!((u.epoch, u.step, u.iterations_per_second), (Some(2.0), Some(210), Some(0.5)));
        assert_eq!(u.loss, Some(1.23));
        // That bar counts epoch 2's batches: its 100 and 3 minutes are the epoch's.
        assert_eq!((u.total_steps, u.eta_seconds, u.epoch_bar), (None, None, true));
        let u = p("120it [00:30, 4.00it/s]");
        assert_eq!((u.step, u.total_steps), (Some(120), None));
        let u = p("  0%|          | 0/500 [00:00<?, ?it/s]");
        assert_eq!((u.step, u.total_steps, u.eta_seconds, u.iterations_per_second), (Some(0), Some(500), None, None));
    }

    #[test]
    fn pairs() {
        let u = p("step 120 | loss 2.3 | lr 1e-4 | tok/s 1900");
        assert_eq!(
            (u.step, u.loss, u.learning_rate, u.tokens_per_second),
            (Some(120), Some(2.3), Some(1e-4), Some(1900.0))
        );
        let u = p("Step: 5/100, loss=0.5, eta 1:00:00");
        assert_eq!((u.step, u.total_steps, u.loss, u.eta_seconds), (Some(5), Some(100), Some(0.5), Some(3600.0)));
        assert!(MetricParser::default().parse(b"Saving model checkpoint to out/checkpoint-500").is_none());
        assert!(MetricParser::default().parse(b"the loss of a friend").is_none());
    }

    #[test]
    fn evaluation_words_count_for_what_follows_them() {
        let u = p("epoch 001 | valid on 'valid' subset | loss 8.123 | num_updates 1563");
        assert_eq!((u.loss, u.eval_loss, u.step), (None, Some(8.123), Some(1563)));
        let u = p("step 1000 | loss 2.1 | saving, then running validation");
        assert_eq!((u.loss, u.eval_loss), (Some(2.1), None));
        let u = p("validate step: 100  loss:  4.3210  tps: 23,456");
        assert_eq!((u.step, u.eval_loss, u.loss, u.tokens_per_second), (Some(100), Some(4.321), None, None));
        // An explicit qualifier wins over the line's words.
        let u = p("validation loss at iteration 1000 | train loss 2.0 | lm loss value: 2.2");
        assert_eq!((u.loss, u.eval_loss), (Some(2.0), Some(2.2)));
    }

    /// The remembered answer is the answer: keys in any order, many more than the memo
    /// holds (so slots are replaced), asked again and again on one thread.
    #[test]
    fn remembered_keys_mean_what_they_meant() {
        let fresh = |k: &[u8]| Words::split(k).and_then(|w| classify(w.words()));
        let words = ["train", "eval", "loss", "step", "lr", "learning", "rate", "val", "global", "tok", "s", "x"];
        let seps = ["_", "/", " ", "-", "."];
        let mut keys = Vec::new();
        for (i, a) in words.iter().enumerate() {
            for (j, b) in words.iter().enumerate() {
                keys.push(format!("{a}{}{b}", seps[(i + j) % seps.len()]));
            }
            keys.push((*a).to_string());
        }
        keys.push("a_key_of_more_than_thirty_two_bytes/loss".into());
        keys.push("epoch".into());
        assert!(keys.len() > 4 * MEMO_SLOTS);
        let mut seen = 0;
        for round in 0..3 {
            for (n, k) in keys.iter().enumerate() {
                // A different order each round: what a slot holds changes.
                let k = if round == 1 { &keys[keys.len() - 1 - n] } else { k };
                let want = fresh(k.as_bytes());
                assert_eq!(lookup_key(k.as_bytes()), want, "{k}");
                seen += usize::from(want.is_some());
            }
        }
        assert!(seen > 30, "the keys include known ones: {seen}");
        // A key that shares a slot with another is still told apart.
        let a = keys.iter().find(|k| lookup_key(k.as_bytes()) == Some((Key::Loss, Qual::None))).expect("loss");
        let twin = keys
            .iter()
            .find(|k| {
                k != &a
                    && memo_slot(k.as_bytes()) == memo_slot(a.as_bytes())
                    && fresh(k.as_bytes()) != fresh(a.as_bytes())
            })
            .expect("some key shares the slot");
        for _ in 0..3 {
            assert_eq!(lookup_key(a.as_bytes()), fresh(a.as_bytes()));
            assert_eq!(lookup_key(twin.as_bytes()), fresh(twin.as_bytes()));
        }
    }

    #[test]
    fn key_words() {
        let key = |k: &str| lookup_key(k.as_bytes()).map(|(k, _)| k);
        assert_eq!(key("train/global_step"), Some(Key::Field(Field::Step)));
        assert_eq!(key("trainer/global_step"), Some(Key::Field(Field::Step)));
        assert_eq!(key("Total optimization steps"), Some(Key::Field(Field::TotalSteps)));
        assert_eq!(key("loss_val"), Some(Key::Field(Field::EvalLoss)));
        assert_eq!(key("valid_num_updates"), Some(Key::Field(Field::Step)));
        assert_eq!(key("train_loss_step"), Some(Key::TrainLoss));
        assert_eq!(key("train_runtime"), Some(Key::TrainRuntime));
        for unknown in [
            "eval_runtime",
            "train_loss_epoch",
            "train/val/loss",
            "steps_per_second",
            "eval_steps",
            "loss/value_avg",
            "lm loss PPL",
            "test/loss",
        ] {
            assert_eq!(key(unknown), None, "{unknown}");
        }
    }

    #[test]
    fn numbers_after_keys() {
        assert_eq!(p("tps: 2,345").tokens_per_second, Some(2345.0));
        assert_eq!(p("tok/s 1,234,567.5").tokens_per_second, Some(1_234_567.5));
        assert_eq!(p("tok/s 12,34").tokens_per_second, None);
        assert_eq!(p("tok/s 1,2345").tokens_per_second, None);
        assert_eq!(p("lr=[1e-4, 1e-4, 1e-4]").learning_rate, Some(1e-4));
        assert_eq!(p("lr=[1e-4, 2e-4]").learning_rate, None);
        assert_eq!(p("loss=tensor(2.5, device='cuda:0', grad_fn=<NllLossBackward0>)").loss, Some(2.5));
        assert_eq!(p("grad_norm: np.float64(0.75)").grad_norm, Some(0.75));
        assert!(p("loss nan").loss.is_some_and(f64::is_nan));
        assert_eq!(p("\x1b[31mstep:  1  \x1b[32mloss: 12.23650\x1b[39m").loss, Some(12.2365));
    }

    #[test]
    fn user_patterns_add_and_override() {
        let parser = MetricParser::new(&[r"it (?P<step>\d+): L=(?P<loss>[0-9.]+)".into()]).expect("compiles");
        let u = parser.parse(b"it 7: L=0.25 loss=9").expect("match");
        assert_eq!((u.step, u.loss), (Some(7), Some(0.25)));
        assert!(MetricParser::new(&["(?P<nope>x)".into()]).is_err());
    }
}
