//! `opsconsole fit`: the arguments; the estimate is `gpu::fit`.

use std::path::PathBuf;

use crate::gpu::fit::FitRequest;

/// What `fit --help` says after the options.
pub const FIT_AFTER_HELP: &str = "\
When the smallest tier does not run the job, fit lists the changes it models that would
lower the estimate (QLoRA, 8-bit optimizer state, gradient checkpointing, FlashAttention,
micro-batch 1, quantized weights), each with the estimate it gives and the tier that would
run it. See docs/fit.md for the formulas and their sources.

Exit status:
  0  a configured tier runs the job (fits or near)
  1  no configured tier runs it (the estimate exceeds every tier's budget)
  2  the request is invalid (a bad flag value, an unreadable model)";

/// `opsconsole fit`: see docs/fit.md for the formulas and their sources.
#[derive(Debug, clap::Args)]
#[command(after_help = FIT_AFTER_HELP)]
pub struct FitArgs {
    /// Parameter count: 7e9, 1.3B, 350M, 6738415616.
    #[arg(long, value_name = "N")]
    pub params: Option<String>,
    /// A .safetensors file, a config.json, or a Hugging Face model folder (only headers and
    /// config are read, never weights).
    #[arg(long, value_name = "PATH")]
    pub model: Option<PathBuf>,
    /// Weights: fp32, bf16, fp16, int8, int4 (default: from the model, else bf16).
    #[arg(long)]
    pub dtype: Option<String>,
    /// inference, full (fine-tune every weight) or lora.
    #[arg(long, default_value = "full")]
    pub mode: String,
    /// adamw, adamw8bit, sgd or adafactor (training modes).
    #[arg(long, default_value = "adamw")]
    pub optimizer: String,
    /// Share of the parameters trained as LoRA adapters (default 0.01).
    #[arg(long, value_name = "F")]
    pub lora_fraction: Option<f64>,
    /// Micro-batch size for the activation / KV-cache term (default 1 when --seq is given).
    #[arg(long)]
    pub batch: Option<u64>,
    /// Sequence length; with --hidden and --layers (or --model) adds activations.
    #[arg(long)]
    pub seq: Option<u64>,
    /// Hidden size (default: from the model's config.json).
    #[arg(long)]
    pub hidden: Option<u64>,
    /// Transformer layers (default: from the model's config.json).
    #[arg(long)]
    pub layers: Option<u64>,
    /// Attention heads (default: from the model's config.json).
    #[arg(long)]
    pub heads: Option<u64>,
    /// Key/value heads for grouped-query attention (default: from config.json, else --heads).
    #[arg(long)]
    pub kv_heads: Option<u64>,
    /// Attention that keeps no s×s score matrix (FlashAttention, PyTorch SDPA).
    #[arg(long)]
    pub flash_attention: bool,
    /// Gradient (activation) checkpointing: keep each layer's input and recompute the rest
    /// in the backward pass (training modes).
    #[arg(long)]
    pub gradient_checkpointing: bool,
    /// CUDA context and kernels, in GiB (default 1).
    #[arg(long, value_name = "GIB")]
    pub overhead_gib: Option<f64>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

impl FitArgs {
    pub fn request(&self) -> FitRequest {
        FitRequest {
            params: self.params.clone(),
            model: self.model.clone(),
            dtype: self.dtype.clone(),
            mode: Some(self.mode.clone()),
            optimizer: Some(self.optimizer.clone()),
            lora_fraction: self.lora_fraction,
            batch: self.batch,
            seq: self.seq,
            hidden: self.hidden,
            layers: self.layers,
            heads: self.heads,
            kv_heads: self.kv_heads,
            flash_attention: self.flash_attention,
            gradient_checkpointing: self.gradient_checkpointing,
            overhead_gib: self.overhead_gib,
        }
    }
}
