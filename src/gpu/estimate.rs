//! The VRAM estimator behind `opsconsole fit`: "which tier can run this?" before anything
//! runs. A pure function of the inputs; the model readers only read headers and configs,
//! never weights.
//!
//! Sources (see docs/fit.md):
//! - Hugging Face Transformers, "Model training anatomy" / "GPU memory usage"
//!   (huggingface.co/docs/transformers/model_memory_anatomy): weights 4 bytes/param in
//!   fp32 training, 6 in mixed precision (fp32 master + 16-bit copy); gradients 4 bytes/param
//!   (kept in fp32); AdamW 8 bytes/param, 8-bit AdamW 2, SGD with momentum 4; Adafactor
//!   "slightly more than 4"; loading the CUDA kernels alone takes 1-2 GB.
//! - Korthikanti et al. 2022, "Reducing Activation Recomputation in Large Transformer
//!   Models" (arXiv:2205.05198), eq. 1: activation memory per transformer layer with
//!   16-bit activations, no recomputation and no parallelism = s·b·h·(34 + 5·a·s/h) bytes.
//! - Same paper, section 4: with full activation recomputation (gradient checkpointing)
//!   only the input of each transformer layer is kept, 2·s·b·h bytes per layer; the
//!   backward pass recomputes one layer at a time, so one layer's full activations are
//!   added on top.
//! - KV cache for inference: 2 (K and V) · layers · batch · seq · kv_hidden · bytes.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::config::{GIB, TierConfig};
use super::tier::{Verdict, verdict};

/// Largest safetensors JSON header we read (the format itself caps it at 100 MB).
pub const MAX_SAFETENSORS_HEADER: u64 = 100 * 1000 * 1000;

/// Memory besides tensors: CUDA context and kernels ("1-2 GB" per the HF anatomy page).
pub const DEFAULT_OVERHEAD_BYTES: u64 = GIB;

/// Number format of the weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dtype {
    Fp32,
    Bf16,
    Fp16,
    Int8,
    Int4,
}

impl Dtype {
    /// Bytes per value, doubled (int4 is half a byte).
    fn half_bytes(self) -> u64 {
        match self {
            Dtype::Fp32 => 8,
            Dtype::Bf16 | Dtype::Fp16 => 4,
            Dtype::Int8 => 2,
            Dtype::Int4 => 1,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Dtype::Fp32 => "fp32",
            Dtype::Bf16 => "bf16",
            Dtype::Fp16 => "fp16",
            Dtype::Int8 => "int8",
            Dtype::Int4 => "int4",
        }
    }
}

impl FromStr for Dtype {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "fp32" | "float32" | "f32" => Ok(Dtype::Fp32),
            "bf16" | "bfloat16" => Ok(Dtype::Bf16),
            "fp16" | "float16" | "f16" | "half" => Ok(Dtype::Fp16),
            "int8" | "i8" | "8bit" => Ok(Dtype::Int8),
            "int4" | "i4" | "4bit" | "nf4" => Ok(Dtype::Int4),
            other => Err(format!("unknown dtype \"{other}\": use fp32, bf16, fp16, int8 or int4")),
        }
    }
}

/// The optimizer of a training run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Optimizer {
    Adamw,
    Adamw8bit,
    Sgd,
    Adafactor,
}

impl Optimizer {
    /// Optimizer state per trained parameter (HF "Model training anatomy").
    pub fn state_bytes_per_param(self) -> u64 {
        match self {
            Optimizer::Adamw => 8,
            Optimizer::Adamw8bit => 2,
            Optimizer::Sgd => 4,
            Optimizer::Adafactor => 4,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Optimizer::Adamw => "adamw",
            Optimizer::Adamw8bit => "adamw8bit",
            Optimizer::Sgd => "sgd",
            Optimizer::Adafactor => "adafactor",
        }
    }
}

impl FromStr for Optimizer {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().replace(['-', '_'], "").as_str() {
            "adamw" | "adam" => Ok(Optimizer::Adamw),
            "adamw8bit" | "adam8bit" | "pagedadamw8bit" => Ok(Optimizer::Adamw8bit),
            "sgd" => Ok(Optimizer::Sgd),
            "adafactor" => Ok(Optimizer::Adafactor),
            _ => Err(format!("unknown optimizer \"{s}\": use adamw, adamw8bit, sgd or adafactor")),
        }
    }
}

/// What the job does with the model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Mode {
    Inference,
    /// Every parameter trained.
    Full {
        optimizer: Optimizer,
    },
    /// Base frozen; a fraction of `params` trained as adapters (fp32, as PEFT keeps them).
    Lora {
        optimizer: Optimizer,
        fraction: f64,
    },
}

impl Mode {
    pub fn name(&self) -> &'static str {
        match self {
            Mode::Inference => "inference",
            Mode::Full { .. } => "full",
            Mode::Lora { .. } => "lora",
        }
    }
}

/// Everything the estimate depends on.
#[derive(Debug, Clone, PartialEq)]
pub struct EstimateInput {
    pub params: u64,
    /// Where `params` came from, in words ("--params", "3 safetensors headers", ...).
    pub params_source: String,
    pub dtype: Dtype,
    pub mode: Mode,
    pub batch: Option<u64>,
    pub seq: Option<u64>,
    pub hidden: Option<u64>,
    pub layers: Option<u64>,
    pub heads: Option<u64>,
    /// Key/value heads (grouped-query attention); `None` = `heads`.
    pub kv_heads: Option<u64>,
    /// Attention without stored s×s scores (FlashAttention / SDPA): drops the 5as/h term.
    pub flash_attention: bool,
    /// Full activation recomputation (training only): keep each layer's input, recompute
    /// the rest in the backward pass.
    pub gradient_checkpointing: bool,
    pub overhead_bytes: u64,
}

impl EstimateInput {
    pub fn new(params: u64, dtype: Dtype, mode: Mode) -> Self {
        Self {
            params,
            params_source: "--params".into(),
            dtype,
            mode,
            batch: None,
            seq: None,
            hidden: None,
            layers: None,
            heads: None,
            kv_heads: None,
            flash_attention: false,
            gradient_checkpointing: false,
            overhead_bytes: DEFAULT_OVERHEAD_BYTES,
        }
    }
}

/// Where the bytes go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Breakdown {
    pub weights_bytes: u64,
    pub gradients_bytes: u64,
    pub optimizer_bytes: u64,
    pub activations_bytes: u64,
    pub overhead_bytes: u64,
    pub total_bytes: u64,
}

/// The estimate against one tier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TierEstimate {
    pub tier: String,
    pub label: String,
    pub budget_bytes: u64,
    pub verdict: Verdict,
    /// Budget minus total; negative when it does not fit.
    pub headroom_bytes: i64,
}

/// The answer of `opsconsole fit` (also its `--json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FitEstimate {
    pub params: u64,
    pub params_source: String,
    pub trainable_params: u64,
    pub dtype: Dtype,
    pub mode: Mode,
    pub breakdown: Breakdown,
    /// Which formula gave `activations_bytes`, with its numbers.
    pub activation_formula: Option<String>,
    pub notes: Vec<String>,
    pub tiers: Vec<TierEstimate>,
    /// When the smallest tier does not run the job: changes the estimator models that
    /// lower the estimate, each with the estimate it gives (see [`advise`]).
    #[serde(default)]
    pub advice: Vec<Advice>,
}

impl FitEstimate {
    /// The first tier (the tiers are listed smallest first) that runs the job: `fits` or
    /// `near`.
    pub fn smallest_tier(&self) -> Option<&TierEstimate> {
        self.tiers.iter().find(|t| t.verdict != Verdict::Exceeds)
    }

    fn tier_rank(&self) -> usize {
        self.tiers.iter().position(|t| t.verdict != Verdict::Exceeds).unwrap_or(usize::MAX)
    }
}

/// One change to the job that the estimator models, and what it would give.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Advice {
    /// The `fit` flags that describe the changed job, e.g. `--dtype int4`.
    pub flags: String,
    /// The change in words.
    pub change: String,
    /// The estimate with this change.
    pub total_bytes: u64,
    /// The smallest tier that would run the changed job; `None` when still none.
    pub tier: Option<String>,
    pub tier_label: Option<String>,
    /// `fits` or `near` on that tier.
    pub verdict: Option<Verdict>,
}

/// Why no estimate could be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EstimateError(pub String);

fn mul_half(params: u64, half_bytes: u64) -> u64 {
    ((params as u128 * half_bytes as u128).div_ceil(2)).min(u64::MAX as u128) as u64
}

fn mul(a: u64, b: u64) -> u64 {
    (a as u128 * b as u128).min(u64::MAX as u128) as u64
}

/// Estimate VRAM for a job and judge it against every tier; when the smallest tier does
/// not run it, add the changes that would lower the estimate ([`advise`]).
pub fn estimate(input: &EstimateInput, tiers: &[TierConfig]) -> Result<FitEstimate, EstimateError> {
    let mut e = estimate_core(input, tiers)?;
    e.advice = advise(input, &e, tiers);
    Ok(e)
}

fn estimate_core(input: &EstimateInput, tiers: &[TierConfig]) -> Result<FitEstimate, EstimateError> {
    if input.params == 0 {
        return Err(EstimateError("the parameter count is 0".into()));
    }
    let mut notes = Vec::new();
    let p = input.params;
    let (weights, gradients, optimizer, trainable) = match input.mode {
        Mode::Inference => (mul_half(p, input.dtype.half_bytes()), 0, 0, 0),
        Mode::Full { optimizer } => {
            let weights_per_param = match input.dtype {
                Dtype::Fp32 => 4,
                // Mixed precision: an fp32 master copy plus the 16-bit copy.
                Dtype::Bf16 | Dtype::Fp16 => 6,
                Dtype::Int8 | Dtype::Int4 => {
                    return Err(EstimateError(format!(
                        "full fine-tuning needs fp32, bf16 or fp16 weights, not {}: use \
                         --mode lora (QLoRA) for quantized weights",
                        input.dtype.as_str()
                    )));
                }
            };
            if input.dtype != Dtype::Fp32 {
                notes.push(
                    "mixed precision: fp32 master weights + 16-bit copy (6 bytes/param), \
                     fp32 gradients (4 bytes/param)"
                        .to_string(),
                );
            }
            (mul(p, weights_per_param), mul(p, 4), mul(p, optimizer.state_bytes_per_param()), p)
        }
        Mode::Lora { optimizer, fraction } => {
            if !(fraction > 0.0 && fraction <= 1.0) {
                return Err(EstimateError(format!(
                    "--lora-fraction {fraction} is out of range: give a fraction above 0 \
                     and at most 1 (e.g. 0.01 for 1%)"
                )));
            }
            let trainable = ((p as f64) * fraction).round().max(1.0) as u64;
            let base = mul_half(p, input.dtype.half_bytes());
            notes.push(format!(
                "LoRA: {} frozen {} base weights, {} trainable adapter parameters in fp32",
                group_digits(p),
                input.dtype.as_str(),
                group_digits(trainable)
            ));
            (
                base.saturating_add(mul(trainable, 4)),
                mul(trainable, 4),
                mul(trainable, optimizer.state_bytes_per_param()),
                trainable,
            )
        }
    };
    if input.gradient_checkpointing && input.mode == Mode::Inference {
        return Err(EstimateError("--gradient-checkpointing only applies to training (--mode full or lora)".into()));
    }
    if matches!(
        input.mode,
        Mode::Full { optimizer: Optimizer::Adafactor } | Mode::Lora { optimizer: Optimizer::Adafactor, .. }
    ) {
        notes.push("Adafactor: at least 4 bytes/param of state (HF docs: \"slightly more\")".into());
    }

    let (activations, formula) = activation_term(input, &mut notes);
    let overhead = input.overhead_bytes;
    let total = weights
        .saturating_add(gradients)
        .saturating_add(optimizer)
        .saturating_add(activations)
        .saturating_add(overhead);
    let breakdown = Breakdown {
        weights_bytes: weights,
        gradients_bytes: gradients,
        optimizer_bytes: optimizer,
        activations_bytes: activations,
        overhead_bytes: overhead,
        total_bytes: total,
    };
    let tiers = tiers
        .iter()
        .map(|t| TierEstimate {
            tier: t.name.clone(),
            label: t.display_label().to_string(),
            budget_bytes: t.budget_bytes,
            verdict: verdict(total, t.budget_bytes),
            headroom_bytes: (t.budget_bytes as i128 - total as i128).clamp(i64::MIN as i128, i64::MAX as i128) as i64,
        })
        .collect();
    Ok(FitEstimate {
        params: p,
        params_source: input.params_source.clone(),
        trainable_params: trainable,
        dtype: input.dtype,
        mode: input.mode,
        breakdown,
        activation_formula: formula,
        notes,
        tiers,
        advice: Vec::new(),
    })
}

/// The `change` of the advice that combines several changes.
pub const TOGETHER: &str = "these together";

/// Smallest saving worth naming: what `fit` prints (0.1 GiB).
const MIN_SAVING_BYTES: u64 = GIB / 10;

/// The changes to a job that the estimator models, each as (flags, words, changed input).
/// Only changes that apply are listed: no 8-bit optimizer for inference or when the
/// optimizer already keeps 2 bytes or less, no activation changes when activations are
/// not counted, nothing that is already so.
fn candidates(input: &EstimateInput, base: &FitEstimate) -> Vec<(String, String, EstimateInput)> {
    let mut out = Vec::new();
    let with = |f: &dyn Fn(&mut EstimateInput)| {
        let mut i = input.clone();
        f(&mut i);
        i
    };
    let activations = base.breakdown.activations_bytes > 0;
    match input.mode {
        Mode::Inference => {
            if matches!(input.dtype, Dtype::Fp32) {
                out.push(("--dtype bf16".into(), "16-bit weights".into(), with(&|i| i.dtype = Dtype::Bf16)));
            }
            if !matches!(input.dtype, Dtype::Int8 | Dtype::Int4) {
                out.push(("--dtype int8".into(), "8-bit quantized weights".into(), with(&|i| i.dtype = Dtype::Int8)));
            }
            if input.dtype != Dtype::Int4 {
                out.push(("--dtype int4".into(), "4-bit quantized weights".into(), with(&|i| i.dtype = Dtype::Int4)));
            }
        }
        Mode::Full { optimizer } => {
            let lora = Mode::Lora { optimizer, fraction: crate::gpu::fit::DEFAULT_LORA_FRACTION };
            out.push((
                "--mode lora".into(),
                format!("LoRA: freeze the {} base, train 1% as adapters", input.dtype.as_str()),
                with(&|i| i.mode = lora),
            ));
            out.push((
                "--mode lora --dtype int4".into(),
                "QLoRA: 4-bit base weights, train 1% as adapters".into(),
                with(&|i| {
                    i.mode = lora;
                    i.dtype = Dtype::Int4;
                }),
            ));
            if input.dtype == Dtype::Fp32 {
                out.push(("--dtype bf16".into(), "bf16 mixed precision".into(), with(&|i| i.dtype = Dtype::Bf16)));
            }
        }
        Mode::Lora { .. } => {
            if input.dtype != Dtype::Int4 {
                out.push(("--dtype int4".into(), "QLoRA: 4-bit base weights".into(), with(&|i| i.dtype = Dtype::Int4)));
            }
            if !matches!(input.dtype, Dtype::Int8 | Dtype::Int4) {
                out.push(("--dtype int8".into(), "8-bit base weights".into(), with(&|i| i.dtype = Dtype::Int8)));
            }
            if input.dtype == Dtype::Fp32 {
                out.push(("--dtype bf16".into(), "bf16 base weights".into(), with(&|i| i.dtype = Dtype::Bf16)));
            }
        }
    }
    if let Mode::Full { optimizer } | Mode::Lora { optimizer, .. } = input.mode
        && optimizer.state_bytes_per_param() > Optimizer::Adamw8bit.state_bytes_per_param()
    {
        out.push((
            "--optimizer adamw8bit".into(),
            "8-bit AdamW optimizer state".into(),
            with(&|i| match &mut i.mode {
                Mode::Full { optimizer } | Mode::Lora { optimizer, .. } => *optimizer = Optimizer::Adamw8bit,
                Mode::Inference => {}
            }),
        ));
    }
    if activations {
        let training = input.mode != Mode::Inference;
        if training && !input.gradient_checkpointing {
            out.push((
                "--gradient-checkpointing".into(),
                "gradient checkpointing: keep each layer's input, recompute the rest".into(),
                with(&|i| i.gradient_checkpointing = true),
            ));
        }
        if training && !input.flash_attention {
            out.push((
                "--flash-attention".into(),
                "FlashAttention / SDPA: no s×s attention scores kept".into(),
                with(&|i| i.flash_attention = true),
            ));
        }
        if input.batch.unwrap_or(1) > 1 {
            let words = if training {
                "micro-batch 1 (the same effective batch through gradient accumulation)"
            } else {
                "batch 1"
            };
            out.push(("--batch 1".into(), words.into(), with(&|i| i.batch = Some(1))));
        }
    }
    out
}

/// Advice for a job the smallest tier does not run, each change with the estimate it
/// gives:
/// - the single changes the estimator models that bring the job to a smaller tier than
///   now;
/// - when none does: every change that lowers the estimate by at least 0.1 GiB and then
///   all of them together, if no tier runs the job now or if together they bring it to a
///   smaller tier.
///
/// Nothing when the smallest tier already runs it, or when nothing would help.
pub fn advise(input: &EstimateInput, base: &FitEstimate, tiers: &[TierConfig]) -> Vec<Advice> {
    let now = base.tier_rank();
    if tiers.is_empty() || now == 0 {
        return Vec::new();
    }
    let advice_of = |flags: String, change: String, e: &FitEstimate| {
        let t = e.smallest_tier();
        Advice {
            flags,
            change,
            total_bytes: e.breakdown.total_bytes,
            tier: t.map(|t| t.tier.clone()),
            tier_label: t.map(|t| t.label.clone()),
            verdict: t.map(|t| t.verdict),
        }
    };
    let lowers =
        |e: &FitEstimate| e.breakdown.total_bytes.saturating_add(MIN_SAVING_BYTES) <= base.breakdown.total_bytes;
    let mut lowering = Vec::new();
    for (flags, change, changed) in candidates(input, base) {
        let Ok(e) = estimate_core(&changed, tiers) else { continue };
        if lowers(&e) {
            lowering.push((e.tier_rank(), advice_of(flags, change, &e), changed));
        }
    }
    lowering.sort_by_key(|(_, a, _)| a.total_bytes);
    let helping: Vec<Advice> = lowering.iter().filter(|(rank, _, _)| *rank < now).map(|(_, a, _)| a.clone()).collect();
    if !helping.is_empty() {
        return helping;
    }
    // Together: the biggest savings first, each kept only if it lowers the estimate
    // further, until a smaller tier runs the job (or every change is in).
    let mut together: Option<(EstimateInput, FitEstimate)> = None;
    let mut used: Vec<&EstimateInput> = Vec::new();
    let mut kept = 0;
    for (_, _, change) in &lowering {
        used.push(change);
        let all = all_together(input, used.iter().copied());
        let Ok(e) = estimate_core(&all, tiers) else {
            used.pop();
            continue;
        };
        let better = together.as_ref().is_none_or(|(_, t)| e.breakdown.total_bytes < t.breakdown.total_bytes);
        if !better {
            used.pop();
            continue;
        }
        kept += 1;
        let done = e.tier_rank() < now;
        together = Some((all, e));
        if done {
            break;
        }
    }
    let together = together.filter(|_| kept > 1);
    let together_helps = together.as_ref().is_some_and(|(_, e)| e.tier_rank() < now);
    if now != usize::MAX && !together_helps {
        // A tier runs it already and nothing brings it to a smaller one.
        return Vec::new();
    }
    let mut out: Vec<Advice> = lowering.into_iter().map(|(_, a, _)| a).collect();
    if let Some((all, e)) = together {
        out.push(advice_of(job_flags(input, &all).join(" "), TOGETHER.into(), &e));
    }
    out
}

/// The changes of `changes` at once: the smallest weights, LoRA if any change is, the
/// optimizer with the least state, and every activation change.
fn all_together<'a>(input: &EstimateInput, changes: impl Iterator<Item = &'a EstimateInput>) -> EstimateInput {
    let changes: Vec<&EstimateInput> = changes.collect();
    let mut all = input.clone();
    if let Some(d) = changes.iter().map(|c| c.dtype).min_by_key(|d| d.half_bytes())
        && d.half_bytes() < all.dtype.half_bytes()
    {
        all.dtype = d;
    }
    if let Some(optimizer) = optimizer_of(input.mode) {
        let optimizer = changes
            .iter()
            .filter_map(|c| optimizer_of(c.mode))
            .min_by_key(|o| o.state_bytes_per_param())
            .filter(|o| o.state_bytes_per_param() < optimizer.state_bytes_per_param())
            .unwrap_or(optimizer);
        all.mode = match input.mode {
            Mode::Full { .. } if changes.iter().any(|c| matches!(c.mode, Mode::Lora { .. })) => {
                Mode::Lora { optimizer, fraction: crate::gpu::fit::DEFAULT_LORA_FRACTION }
            }
            Mode::Full { .. } => Mode::Full { optimizer },
            Mode::Lora { fraction, .. } => Mode::Lora { optimizer, fraction },
            Mode::Inference => Mode::Inference,
        };
    }
    all.gradient_checkpointing |= changes.iter().any(|c| c.gradient_checkpointing);
    all.flash_attention |= changes.iter().any(|c| c.flash_attention);
    if let Some(b) = changes.iter().filter_map(|c| c.batch).min() {
        all.batch = Some(b.min(all.batch.unwrap_or(b)));
    }
    all
}

fn optimizer_of(m: Mode) -> Option<Optimizer> {
    match m {
        Mode::Full { optimizer } | Mode::Lora { optimizer, .. } => Some(optimizer),
        Mode::Inference => None,
    }
}

/// The flags that turn job `from` into job `to`.
fn job_flags(from: &EstimateInput, to: &EstimateInput) -> Vec<String> {
    let mut flags = Vec::new();
    if from.mode.name() != to.mode.name() {
        flags.push(format!("--mode {}", to.mode.name()));
    }
    if from.dtype != to.dtype {
        flags.push(format!("--dtype {}", to.dtype.as_str()));
    }
    if let (Some(a), Some(b)) = (optimizer_of(from.mode), optimizer_of(to.mode))
        && a != b
    {
        flags.push(format!("--optimizer {}", b.as_str()));
    }
    if to.gradient_checkpointing && !from.gradient_checkpointing {
        flags.push("--gradient-checkpointing".into());
    }
    if to.flash_attention && !from.flash_attention {
        flags.push("--flash-attention".into());
    }
    if to.batch != from.batch
        && let Some(b) = to.batch
    {
        flags.push(format!("--batch {b}"));
    }
    flags
}

/// Training: Korthikanti et al. 2022 eq. 1, per layer s·b·h·(34 + 5as/h) bytes for 16-bit
/// activations (doubled for fp32); FlashAttention drops the 5as/h term (no s×s scores are
/// kept). Inference: the KV cache, 2·L·b·s·h_kv·bytes.
fn activation_term(input: &EstimateInput, notes: &mut Vec<String>) -> (u64, Option<String>) {
    let b = input.batch.unwrap_or(1);
    let (Some(s), Some(h), Some(l)) = (input.seq, input.hidden, input.layers) else {
        notes.push(
            "activations not counted: give --seq with --hidden and --layers (or a model \
             folder with config.json)"
                .into(),
        );
        return (0, None);
    };
    match input.mode {
        Mode::Inference => {
            let bytes: u64 = if input.dtype == Dtype::Fp32 { 4 } else { 2 };
            let kv_hidden = match (input.heads, input.kv_heads) {
                (Some(a), Some(kv)) if a > 0 && kv > 0 && kv <= a => h * kv / a,
                _ => h,
            };
            let total = mul(mul(mul(2 * l, b), s), mul(kv_hidden, bytes));
            (total, Some(format!("KV cache 2·L·b·s·h_kv·bytes = 2·{l}·{b}·{s}·{kv_hidden}·{bytes}")))
        }
        Mode::Full { .. } | Mode::Lora { .. } => {
            let scale: u128 = if input.dtype == Dtype::Fp32 && matches!(input.mode, Mode::Full { .. }) { 2 } else { 1 };
            let sbh = s as u128 * b as u128 * h as u128;
            let per_layer: u128 = if input.flash_attention {
                sbh * 34
            } else {
                let Some(a) = input.heads.filter(|a| *a > 0) else {
                    notes.push(
                        "activations not counted: the attention term needs --heads (or \
                         --flash-attention)"
                            .into(),
                    );
                    return (0, None);
                };
                // sbh(34 + 5as/h) = 34·sbh + 5·a·s²·b
                sbh * 34 + 5 * a as u128 * s as u128 * s as u128 * b as u128
            };
            if input.gradient_checkpointing {
                // Section 4: only each layer's input is kept (2·s·b·h bytes); the backward
                // pass recomputes one layer at a time, holding its full activations.
                let total = ((2 * sbh * l as u128 + per_layer) * scale).min(u64::MAX as u128) as u64;
                let one_layer = if input.flash_attention {
                    "s·b·h·34".to_string()
                } else {
                    format!("s·b·h·(34 + 5·a·s/h), a={}", input.heads.unwrap_or(0))
                };
                let formula = format!(
                    "Korthikanti et al. 2022 §4, gradient checkpointing: L·2·s·b·h + one layer's {one_layer}{} \
                     with L={l} s={s} b={b} h={h}",
                    if scale == 2 { ", ·2 (fp32)" } else { "" }
                );
                return (total, Some(formula));
            }
            let total = (per_layer * l as u128 * scale).min(u64::MAX as u128) as u64;
            let formula = if input.flash_attention {
                format!(
                    "Korthikanti et al. 2022, flash attention: L·s·b·h·34{} = {l}·{s}·{b}·{h}·34",
                    if scale == 2 { "·2 (fp32)" } else { "" }
                )
            } else {
                format!(
                    "Korthikanti et al. 2022: L·s·b·h·(34 + 5·a·s/h){} with L={l} s={s} b={b} h={h} a={}",
                    if scale == 2 { "·2 (fp32)" } else { "" },
                    input.heads.unwrap_or(0)
                )
            };
            (total, Some(formula))
        }
    }
}

/// 6738415616 -> "6,738,415,616".
pub fn group_digits(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Parse a parameter count: `7e9`, `1.3B`, `350M`, `125k`, `7000000000`, `1_000_000`.
pub fn parse_params(text: &str) -> Result<u64, String> {
    let t: String = text.trim().chars().filter(|c| *c != '_' && *c != ',').collect();
    let bad = || format!("\"{text}\" is not a parameter count: write e.g. 7e9, 1.3B, 350M or 125000000");
    if t.is_empty() {
        return Err(bad());
    }
    if let Ok(n) = t.parse::<u64>() {
        return if n > 0 { Ok(n) } else { Err(bad()) };
    }
    let (num, scale) = match t.chars().last().map(|c| c.to_ascii_lowercase()) {
        Some('k') => (&t[..t.len() - 1], 1e3),
        Some('m') => (&t[..t.len() - 1], 1e6),
        Some('b') | Some('g') => (&t[..t.len() - 1], 1e9),
        Some('t') => (&t[..t.len() - 1], 1e12),
        _ => (t.as_str(), 1.0),
    };
    let value: f64 = num.trim().parse().map_err(|_| bad())?;
    let n = value * scale;
    if !n.is_finite() || !(1.0..=1e15).contains(&n) {
        return Err(bad());
    }
    Ok(n.round() as u64)
}

/// What a model file or folder says about itself.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ModelInfo {
    pub params: u64,
    /// In words: which files gave the count.
    pub source: String,
    /// The dtype holding most parameters in the safetensors headers.
    pub dtype: Option<Dtype>,
    pub hidden: Option<u64>,
    pub layers: Option<u64>,
    pub heads: Option<u64>,
    pub kv_heads: Option<u64>,
    pub notes: Vec<String>,
}

/// Read a model: a `.safetensors` file (its JSON header), a `config.json`, or a Hugging
/// Face model folder (every top-level `*.safetensors` header, and `config.json` for the
/// shape; the count from config.json only when there are no safetensors files).
pub fn read_model(path: &Path) -> Result<ModelInfo, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if meta.is_file() {
        if path.extension().is_some_and(|e| e == "safetensors") {
            return read_safetensors_files(&[path.to_path_buf()]);
        }
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        return config_json_info(&text).map_err(|e| format!("{}: {e}", path.display()));
    }
    let mut shards: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    shards.sort();
    let config = path.join("config.json");
    let config_info = if config.is_file() {
        let text = std::fs::read_to_string(&config).map_err(|e| format!("{}: {e}", config.display()))?;
        Some(config_json_info(&text).map_err(|e| format!("{}: {e}", config.display()))?)
    } else {
        None
    };
    match (shards.is_empty(), config_info) {
        (false, cfg) => {
            let mut info = read_safetensors_files(&shards)?;
            if let Some(c) = cfg {
                info.hidden = c.hidden;
                info.layers = c.layers;
                info.heads = c.heads;
                info.kv_heads = c.kv_heads;
            }
            Ok(info)
        }
        (true, Some(c)) => Ok(c),
        (true, None) => Err(format!("{}: no *.safetensors and no config.json here", path.display())),
    }
}

/// Sum the parameter counts in the headers of safetensors files (8-byte little-endian
/// header length, then that much JSON; the tensor data after it is never read).
pub fn read_safetensors_files(files: &[PathBuf]) -> Result<ModelInfo, String> {
    let mut params: u64 = 0;
    let mut by_dtype: Vec<(String, u64)> = Vec::new();
    for file in files {
        let header = read_safetensors_header(file)?;
        for (name, tensor) in header.iter().filter(|(k, _)| k.as_str() != "__metadata__") {
            let shape = tensor
                .get("shape")
                .and_then(|s| s.as_array())
                .ok_or_else(|| format!("{}: tensor {name} has no shape", file.display()))?;
            let mut n: u64 = 1;
            for d in shape {
                let d = d.as_u64().ok_or_else(|| format!("{}: tensor {name} has a bad shape", file.display()))?;
                n = n.checked_mul(d).ok_or_else(|| format!("{}: tensor {name} is too large", file.display()))?;
            }
            params = params.saturating_add(n);
            let dtype = tensor.get("dtype").and_then(|d| d.as_str()).unwrap_or("?").to_string();
            match by_dtype.iter_mut().find(|(d, _)| *d == dtype) {
                Some((_, c)) => *c += n,
                None => by_dtype.push((dtype, n)),
            }
        }
    }
    let main = by_dtype.iter().max_by_key(|(_, n)| *n).map(|(d, _)| d.as_str());
    let dtype = match main {
        Some("F32") => Some(Dtype::Fp32),
        Some("BF16") => Some(Dtype::Bf16),
        Some("F16") => Some(Dtype::Fp16),
        Some("I8") | Some("F8_E4M3") | Some("F8_E5M2") => Some(Dtype::Int8),
        _ => None,
    };
    let mut notes = Vec::new();
    if by_dtype.iter().any(|(d, _)| d == "I32" || d == "U8") {
        notes.push(
            "packed quantized tensors (I32/U8) found: the parameter count from their shapes \
             is too low"
                .into(),
        );
    }
    Ok(ModelInfo {
        params,
        source: format!("{} safetensors header{}", files.len(), if files.len() == 1 { "" } else { "s" }),
        dtype,
        notes,
        ..ModelInfo::default()
    })
}

fn read_safetensors_header(file: &Path) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    let mut f = std::fs::File::open(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let file_len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let mut len = [0u8; 8];
    f.read_exact(&mut len).map_err(|_| format!("{}: too short for a safetensors file", file.display()))?;
    let n = u64::from_le_bytes(len);
    if n > MAX_SAFETENSORS_HEADER || n.saturating_add(8) > file_len {
        return Err(format!("{}: header length {n} is not plausible: not a safetensors file?", file.display()));
    }
    let mut buf = vec![0u8; n as usize];
    f.read_exact(&mut buf).map_err(|e| format!("{}: {e}", file.display()))?;
    serde_json::from_slice(&buf).map_err(|e| format!("{}: header is not JSON: {e}", file.display()))
}

fn get_u64(v: &serde_json::Value, keys: &[&str]) -> Option<u64> {
    keys.iter().find_map(|k| v.get(*k).and_then(|x| x.as_u64()))
}

/// Estimate the parameter count from a Hugging Face `config.json`: GPT-2 style
/// (`n_embd`: learned positions, biases, 4h MLP) or Llama style (`hidden_size`: gated MLP
/// for SiLU models, grouped-query attention, optional mixture of experts).
pub fn config_json_info(text: &str) -> Result<ModelInfo, String> {
    let root: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    // Multimodal configs nest the language model.
    let v = if root.get("hidden_size").is_none() && root.get("n_embd").is_none() {
        root.get("text_config").unwrap_or(&root)
    } else {
        &root
    };
    let vocab = get_u64(v, &["vocab_size"]).ok_or("no vocab_size")?;
    let tied = v
        .get("tie_word_embeddings")
        .and_then(|t| t.as_bool())
        .or_else(|| root.get("tie_word_embeddings").and_then(|t| t.as_bool()))
        .unwrap_or(true);
    let mut notes = Vec::new();
    let dtype = v
        .get("torch_dtype")
        .or_else(|| v.get("dtype"))
        .or_else(|| root.get("torch_dtype"))
        .and_then(|d| d.as_str())
        .and_then(|d| d.parse::<Dtype>().ok());
    if let Some(h) = get_u64(v, &["n_embd"]) {
        let l = get_u64(v, &["n_layer"]).ok_or("no n_layer")?;
        let heads = get_u64(v, &["n_head"]);
        let positions = get_u64(v, &["n_positions", "n_ctx"]).unwrap_or(1024);
        let i = get_u64(v, &["n_inner"]).unwrap_or(4 * h);
        // wte + wpe + per block (ln_1, c_attn, attn c_proj, ln_2, c_fc, mlp c_proj) + ln_f
        let per_layer = 2 * h + (3 * h * h + 3 * h) + (h * h + h) + 2 * h + (h * i + i) + (i * h + h);
        let lm_head = if tied { 0 } else { vocab * h };
        let params = vocab * h + positions * h + l * per_layer + 2 * h + lm_head;
        return Ok(ModelInfo {
            params,
            source: "config.json (GPT-2 layout)".into(),
            dtype,
            hidden: Some(h),
            layers: Some(l),
            heads,
            kv_heads: heads,
            notes,
        });
    }
    let h = get_u64(v, &["hidden_size", "d_model"]).ok_or("no hidden_size")?;
    let l = get_u64(v, &["num_hidden_layers", "num_layers"]).ok_or("no num_hidden_layers")?;
    let heads = get_u64(v, &["num_attention_heads", "num_heads"]).ok_or("no num_attention_heads")?;
    if heads == 0 {
        return Err("num_attention_heads is 0".into());
    }
    let kv = get_u64(v, &["num_key_value_heads"]).unwrap_or(heads);
    let head_dim = get_u64(v, &["head_dim"]).unwrap_or(h / heads);
    let i = get_u64(v, &["intermediate_size", "ffn_dim", "d_ff"]).unwrap_or(4 * h);
    let experts = get_u64(v, &["num_local_experts", "num_experts"]).unwrap_or(1).max(1);
    let act = v.get("hidden_act").or_else(|| v.get("hidden_activation")).and_then(|a| a.as_str()).unwrap_or("");
    let model_type = v.get("model_type").and_then(|a| a.as_str()).unwrap_or("");
    let gated = act == "silu"
        || act == "swiglu"
        || ["llama", "mistral", "mixtral", "qwen2", "qwen3", "gemma", "gemma2", "phi3"].contains(&model_type);
    let attn = h * heads * head_dim * 2 + h * kv * head_dim * 2;
    let mlp = experts * (if gated { 3 } else { 2 }) * h * i + if experts > 1 { h * experts } else { 0 };
    let per_layer = attn + mlp + 2 * h;
    let lm_head = if tied { 0 } else { vocab * h };
    let params = vocab * h + l * per_layer + h + lm_head;
    notes.push(
        "parameter count estimated from config.json (biases ignored); safetensors headers \
         give the exact count"
            .into(),
    );
    Ok(ModelInfo {
        params,
        source: "config.json (Llama layout)".into(),
        dtype,
        hidden: Some(h),
        layers: Some(l),
        heads: Some(heads),
        kv_heads: Some(kv),
        notes,
    })
}

#[cfg(test)]
mod props {
    use super::*;
    use crate::gpu::config::default_tiers;
    use proptest::prelude::*;

    fn dtype() -> impl Strategy<Value = Dtype> {
        prop_oneof![Just(Dtype::Fp32), Just(Dtype::Bf16), Just(Dtype::Fp16)]
    }

    proptest! {
        /// The parts add up to the total, and more parameters never need less memory.
        #[test]
        fn parts_add_up_and_grow_with_params(p in 1u64..1_000_000_000_000, extra in 0u64..1_000_000_000, d in dtype(),
                                             seq in proptest::option::of(1u64..65_536)) {
            let mut a = EstimateInput::new(p, d, Mode::Full { optimizer: Optimizer::Adamw });
            a.seq = seq;
            a.hidden = Some(4096);
            a.layers = Some(32);
            a.heads = Some(32);
            let e = estimate(&a, &default_tiers()).expect("estimate");
            let b = e.breakdown;
            prop_assert_eq!(
                b.total_bytes,
                b.weights_bytes + b.gradients_bytes + b.optimizer_bytes + b.activations_bytes + b.overhead_bytes
            );
            let mut bigger = a.clone();
            bigger.params = p + extra;
            let e2 = estimate(&bigger, &default_tiers()).expect("estimate");
            prop_assert!(e2.breakdown.total_bytes >= b.total_bytes);
            // Inference never needs more than full fine-tuning of the same model.
            let mut inf = a.clone();
            inf.mode = Mode::Inference;
            let ei = estimate(&inf, &default_tiers()).expect("estimate");
            prop_assert!(ei.breakdown.weights_bytes < b.weights_bytes + b.gradients_bytes + b.optimizer_bytes);
        }

        #[test]
        fn parse_params_reads_back_what_it_prints(n in 1u64..1_000_000_000_000_000) {
            prop_assert_eq!(parse_params(&n.to_string()), Ok(n));
            prop_assert_eq!(parse_params(&group_digits(n).replace(',', "_")), Ok(n));
        }
    }
}
