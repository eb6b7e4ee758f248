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

/// What a key printed by a training loop means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Field(Field),
    /// `train_loss`: the latest loss, except on Hugging Face's final line.
    TrainLoss,
    TrainRuntime,
}

fn lookup_key(raw: &[u8]) -> Option<Key> {
    if raw.is_empty() || raw.len() > 40 {
        return None;
    }
    if !raw.iter().any(u8::is_ascii_uppercase) {
        return match_key(raw);
    }
    let mut buf = [0u8; 40];
    let key = &mut buf[..raw.len()];
    key.copy_from_slice(raw);
    key.make_ascii_lowercase();
    match_key(key)
}

fn match_key(key: &[u8]) -> Option<Key> {
    use Field::*;
    Some(Key::Field(match key {
        b"step" | b"global_step" | b"train/global_step" | b"trainer/global_step" | b"iter" | b"iteration" => Step,
        b"total_steps" | b"max_steps" => TotalSteps,
        b"loss" | b"train/loss" | b"training_loss" | b"loss_step" | b"train_loss_step" => Loss,
        b"train_loss" => return Some(Key::TrainLoss),
        b"train_runtime" => return Some(Key::TrainRuntime),
        b"eval_loss" | b"eval/loss" | b"val_loss" | b"val/loss" | b"validation_loss" | b"validation/loss"
        | b"valid_loss" => EvalLoss,
        b"learning_rate" | b"lr" | b"train/learning_rate" | b"train/lr" => LearningRate,
        b"grad_norm" | b"train/grad_norm" | b"gradnorm" | b"gnorm" => GradNorm,
        b"epoch" | b"train/epoch" => Epoch,
        b"tok/s"
        | b"tokens/s"
        | b"toks/s"
        | b"tokens_per_second"
        | b"tokens_per_sec"
        | b"tok_per_sec"
        | b"tps"
        | b"train/tokens_per_second" => TokensPerSecond,
        b"eta" | b"eta_seconds" => EtaSeconds,
        _ => return None,
    }))
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
        let mut u = MetricUpdate::default();
        let mut found = false;
        if let Some(i) = memchr(b'{', line) {
            found = parse_dict(&line[i..], &mut u);
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
        if let (Some(v), Some(k)) = (value, lookup_key(key)) {
            match k {
                Key::Field(f) => {
                    u.set(f, v);
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
/// `120it [00:30, 4.00it/s]`, `[00:30<03:40, 1.25s/it]`.
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
        u.from_bar = true;
        u.step = Some(step);
        u.total_steps = total;
        u.eta_seconds = remaining;
        u.iterations_per_second = rate;
        // `Epoch 1: ` before the bar, `loss=2.31, v_num=0` after the rate.
        let prefix_end = memchr(b'|', &before[..counter_start]).unwrap_or(counter_start);
        parse_pairs(&before[..prefix_end], u);
        // Lightning counts batches per epoch (`Epoch 2: ... 10/100`): the global step
        // is epoch × batches per epoch + batch.
        if let (Some(e), Some(t)) = (u.epoch, total)
            && e >= 0.0
            && e.fract() == 0.0
            && e < 1e9
        {
            u.step = Some((e as u64).saturating_mul(t).saturating_add(step));
        }
        parse_pairs(postfix, u);
        return true;
    }
    false
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

/// `step 120 | loss 2.3 | lr 1e-4 | tok/s 1900`, `loss=2.3 lr=1e-4`, `loss: 2.3`,
/// `Step 120/1000`. Only known keys count.
fn parse_pairs(s: &[u8], u: &mut MetricUpdate) -> bool {
    let mut found = false;
    let mut i = 0;
    while i < s.len() {
        if !is_key_start(s[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < s.len() && is_key_char(s[i]) {
            i += 1;
        }
        let mut key = &s[start..i];
        while let [rest @ .., b'.' | b'-' | b'/'] = key {
            key = rest;
        }
        let Some(k) = lookup_key(key) else { continue };
        let mut j = start + key.len();
        let after_key = j;
        while matches!(s.get(j), Some(b' ' | b'\t')) {
            j += 1;
        }
        if matches!(s.get(j), Some(b'=' | b':')) {
            j += 1;
            while matches!(s.get(j), Some(b' ' | b'\t')) {
                j += 1;
            }
        } else if j == after_key {
            continue;
        }
        let field = match k {
            Key::Field(f) => f,
            Key::TrainLoss => Field::Loss,
            Key::TrainRuntime => {
                if let Some((v, n)) = s.get(j..).and_then(parse_number) {
                    u.train_runtime = Some(v);
                    found = true;
                    i = j + n;
                }
                continue;
            }
        };
        let parsed = if field == Field::EtaSeconds {
            s.get(j..).and_then(parse_duration)
        } else {
            s.get(j..).and_then(parse_number)
        };
        let Some((v, n)) = parsed else { continue };
        let end = j + n;
        // `loss 2.3abc` is not a value; `tok/s 1.9k` is not either (units not supported).
        if s.get(end).is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_') {
            continue;
        }
        u.set(field, v);
        found = true;
        i = end;
        if field == Field::Step
            && s.get(end) == Some(&b'/')
            && let Some((t, m)) = s.get(end + 1..).and_then(parse_number)
        {
            u.set(Field::TotalSteps, t);
            i = end + 1 + m;
        }
    }
    found
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
    fn user_patterns_add_and_override() {
        let parser = MetricParser::new(&[r"it (?P<step>\d+): L=(?P<loss>[0-9.]+)".into()]).expect("compiles");
        let u = parser.parse(b"it 7: L=0.25 loss=9").expect("match");
        assert_eq!((u.step, u.loss), (Some(7), Some(0.25)));
        assert!(MetricParser::new(&["(?P<nope>x)".into()]).is_err());
    }
}
