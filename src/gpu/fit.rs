//! `opsconsole fit`: from command-line words to an [`EstimateInput`], and the estimate as
//! text. The arithmetic is in [`super::estimate`].

use std::path::PathBuf;

use super::config::{GIB, TierConfig};
use super::estimate::{
    Advice, DEFAULT_OVERHEAD_BYTES, Dtype, EstimateInput, FitEstimate, Mode, Optimizer, estimate, group_digits,
    parse_params, read_model,
};
use super::tier::fmt_gib;

/// What the user asked, as typed (strings parsed here so errors name the flag).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FitRequest {
    pub params: Option<String>,
    pub model: Option<PathBuf>,
    pub dtype: Option<String>,
    /// inference | full | lora (default full).
    pub mode: Option<String>,
    pub optimizer: Option<String>,
    pub lora_fraction: Option<f64>,
    pub batch: Option<u64>,
    pub seq: Option<u64>,
    pub hidden: Option<u64>,
    pub layers: Option<u64>,
    pub heads: Option<u64>,
    pub kv_heads: Option<u64>,
    pub flash_attention: bool,
    pub gradient_checkpointing: bool,
    pub overhead_gib: Option<f64>,
}

/// Default adapter share for `--mode lora` when `--lora-fraction` is not given (1%).
pub const DEFAULT_LORA_FRACTION: f64 = 0.01;

/// Parses the request, reads the model's headers or config if one is named, and returns the
/// estimator's input plus any notes from reading the model.
pub fn build_input(req: &FitRequest) -> Result<(EstimateInput, Vec<String>), String> {
    let model = match &req.model {
        Some(p) => Some(read_model(p)?),
        None => None,
    };
    let (params, source) = match (&req.params, &model) {
        (Some(p), _) => (parse_params(p).map_err(|e| format!("--params: {e}"))?, "--params".to_string()),
        (None, Some(m)) => (m.params, m.source.clone()),
        (None, None) => {
            return Err("give --params (e.g. 7e9, 1.3B) or --model (a .safetensors file, a config.json, \
                        or a Hugging Face model folder)"
                .into());
        }
    };
    let dtype = match &req.dtype {
        Some(d) => d.parse::<Dtype>().map_err(|e| format!("--dtype: {e}"))?,
        None => model.as_ref().and_then(|m| m.dtype).unwrap_or(Dtype::Bf16),
    };
    let optimizer = match &req.optimizer {
        Some(o) => o.parse::<Optimizer>().map_err(|e| format!("--optimizer: {e}"))?,
        None => Optimizer::Adamw,
    };
    let mode = match req.mode.as_deref().unwrap_or("full").to_ascii_lowercase().as_str() {
        "inference" | "infer" => Mode::Inference,
        "full" | "finetune" | "full-finetune" | "train" => Mode::Full { optimizer },
        "lora" | "qlora" => Mode::Lora { optimizer, fraction: req.lora_fraction.unwrap_or(DEFAULT_LORA_FRACTION) },
        other => return Err(format!("--mode: unknown mode \"{other}\": use inference, full or lora")),
    };
    if req.lora_fraction.is_some() && !matches!(mode, Mode::Lora { .. }) {
        return Err("--lora-fraction only applies to --mode lora".into());
    }
    let overhead_bytes = match req.overhead_gib {
        None => DEFAULT_OVERHEAD_BYTES,
        Some(g) if g.is_finite() && (0.0..=1024.0).contains(&g) => (g * GIB as f64) as u64,
        Some(g) => return Err(format!("--overhead-gib: {g} is out of range (0 to 1024)")),
    };
    let shape = |given: Option<u64>, from_model: Option<u64>| given.or(from_model);
    let m = model.clone().unwrap_or_default();
    let input = EstimateInput {
        params,
        params_source: source,
        dtype,
        mode,
        batch: req.batch,
        seq: req.seq,
        hidden: shape(req.hidden, m.hidden),
        layers: shape(req.layers, m.layers),
        heads: shape(req.heads, m.heads),
        kv_heads: shape(req.kv_heads, m.kv_heads),
        flash_attention: req.flash_attention,
        gradient_checkpointing: req.gradient_checkpointing,
        overhead_bytes,
    };
    for (flag, v) in
        [("--batch", input.batch), ("--seq", input.seq), ("--hidden", input.hidden), ("--layers", input.layers)]
    {
        if v == Some(0) {
            return Err(format!("{flag} must be above 0"));
        }
    }
    Ok((input, m.notes))
}

/// Runs the whole command: the estimate, with the model-reading notes added.
pub fn run(req: &FitRequest, tiers: &[TierConfig]) -> Result<FitEstimate, String> {
    let (input, notes) = build_input(req)?;
    let mut est = estimate(&input, tiers).map_err(|e| e.to_string())?;
    est.notes.extend(notes);
    Ok(est)
}

/// The estimate as a table for people.
pub fn to_text(e: &FitEstimate) -> String {
    let mut out = String::new();
    out.push_str(&format!("model: {} parameters ({})\n", group_digits(e.params), e.params_source));
    let job = match e.mode {
        Mode::Inference => format!("inference, {} weights", e.dtype.as_str()),
        Mode::Full { optimizer } => format!(
            "full fine-tune, {}{}, {}",
            e.dtype.as_str(),
            if e.dtype == Dtype::Fp32 { "" } else { " mixed precision" },
            optimizer.as_str()
        ),
        Mode::Lora { optimizer, fraction } => format!(
            "LoRA on {} base weights, {:.2}% trainable ({}), {}",
            e.dtype.as_str(),
            fraction * 100.0,
            group_digits(e.trainable_params),
            optimizer.as_str()
        ),
    };
    out.push_str(&format!("job:   {job}\n"));
    let b = &e.breakdown;
    let activations = if matches!(e.mode, Mode::Inference) { "KV cache" } else { "activations" };
    for (name, v) in [
        ("weights", b.weights_bytes),
        ("gradients", b.gradients_bytes),
        ("optimizer state", b.optimizer_bytes),
        (activations, b.activations_bytes),
        ("framework overhead", b.overhead_bytes),
    ] {
        out.push_str(&format!("  {name:<20}{:>11}\n", fmt_gib(v)));
    }
    out.push_str(&format!("  {:<20}{:>11}  ({:.1} GB)\n", "total", fmt_gib(b.total_bytes), b.total_bytes as f64 / 1e9));
    out.push_str("tiers:\n");
    for t in &e.tiers {
        let margin = if t.headroom_bytes >= 0 {
            format!("{} to spare", fmt_gib(t.headroom_bytes as u64))
        } else {
            format!("{} over", fmt_gib(t.headroom_bytes.unsigned_abs()))
        };
        out.push_str(&format!(
            "  {:<8} {:<16} budget {:>9}  {:<8} {margin}\n",
            t.tier,
            t.label,
            fmt_gib(t.budget_bytes),
            t.verdict.as_str()
        ));
    }
    match e.smallest_tier() {
        Some(t) => out.push_str(&format!("smallest tier that runs it: {} ({})\n", t.tier, t.label)),
        None => out.push_str("no configured tier runs it\n"),
    }
    out.push_str(&advice_text(e));
    if let Some(f) = &e.activation_formula {
        out.push_str(&format!("{activations}: {f}\n"));
    }
    for n in &e.notes {
        out.push_str(&format!("note: {n}\n"));
    }
    out
}

/// The advice lines: what each change would give, or why there is none.
fn advice_text(e: &FitEstimate) -> String {
    let mut out = String::new();
    let runs_now = e.smallest_tier().is_some();
    if e.advice.is_empty() {
        if !runs_now {
            out.push_str(
                "nothing fit models brings it under a tier's budget (splitting it over several GPUs, \
                 ZeRO/FSDP, is not modelled)\n",
            );
        }
        return out;
    }
    let helps = e.advice.iter().any(|a| a.tier.is_some());
    let together = e.advice.iter().any(|a| a.change == super::estimate::TOGETHER);
    out.push_str(match (runs_now, together, helps) {
        (true, false, _) => "to run it on a smaller tier (each change alone):\n",
        (true, true, _) => "to run it on a smaller tier (no change alone is enough):\n",
        (false, false, true) => "changes that would let a tier run it (each alone):\n",
        _ => "changes that lower the estimate:\n",
    });
    let width = e.advice.iter().map(|a| a.flags.chars().count()).max().unwrap_or(0);
    let outcome = |a: &Advice| match (&a.tier, &a.tier_label, a.verdict) {
        (Some(t), Some(l), Some(v)) => format!("{} {t} ({l})", v.as_str()),
        _ => "over every tier".to_string(),
    };
    let owidth = e.advice.iter().map(|a| outcome(a).chars().count()).max().unwrap_or(0);
    for a in &e.advice {
        out.push_str(&format!(
            "  {:<width$}  {:>9}  {:<owidth$}  {}\n",
            a.flags,
            fmt_gib(a.total_bytes),
            outcome(a),
            a.change,
        ));
    }
    if !runs_now && !helps {
        out.push_str(
            "with these changes it stays over every tier's budget (splitting it over several GPUs, \
             ZeRO/FSDP, is not modelled)\n",
        );
    }
    out
}

/// The exit status of `opsconsole fit` for an estimate: 0 when a configured tier runs the
/// job, 1 when none does (errors are 2, from the caller).
pub fn exit_code(e: &FitEstimate) -> u8 {
    if e.smallest_tier().is_some() { 0 } else { 1 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::config::default_tiers;

    fn req(params: &str) -> FitRequest {
        FitRequest { params: Some(params.into()), ..FitRequest::default() }
    }

    #[test]
    fn defaults_are_bf16_full_adamw() {
        let (input, _) = build_input(&req("1.3B")).expect("input");
        assert_eq!(input.params, 1_300_000_000);
        assert_eq!(input.dtype, Dtype::Bf16);
        assert_eq!(input.mode, Mode::Full { optimizer: Optimizer::Adamw });
        assert_eq!(input.overhead_bytes, GIB);
    }

    #[test]
    fn errors_name_the_flag() {
        let mut r = req("7B");
        r.dtype = Some("fp8".into());
        assert!(build_input(&r).expect_err("dtype").starts_with("--dtype"));
        let mut r = req("7B");
        r.mode = Some("pretrain".into());
        assert!(build_input(&r).expect_err("mode").starts_with("--mode"));
        let mut r = req("7B");
        r.lora_fraction = Some(0.1);
        assert!(build_input(&r).expect_err("fraction").contains("--mode lora"));
        assert!(build_input(&FitRequest::default()).expect_err("nothing").contains("--params"));
        assert!(build_input(&req("lots")).expect_err("params").starts_with("--params"));
    }

    #[test]
    fn text_names_the_smallest_tier_that_runs_it() {
        let mut r = req("1.3B");
        r.mode = Some("lora".into());
        let e = run(&r, &default_tiers()).expect("estimate");
        let text = to_text(&e);
        assert!(text.contains("smallest tier that runs it: tier1"), "{text}");
        assert!(text.contains("1,300,000,000 parameters"), "{text}");
        let e = run(&req("70B"), &default_tiers()).expect("estimate");
        assert!(to_text(&e).contains("no configured tier runs it"));
    }
}
