//! Attention blocks of the UNet's spatial layers: multi-head attention, and the
//! spatial transformer (self-attention over pixels, GLIGEN-style gated attention
//! over box tokens, feed-forward).

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::{Initializer, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::activation::gelu;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Tensor, backend::Backend};

use super::layout::{from_pixel_tokens, to_pixel_tokens};
use super::norm::{Norm, NormConfig, NormKind};
use super::resnet::conv1x1;

#[derive(Config, Debug)]
pub struct AttentionConfig {
    pub dim: usize,
    pub heads: usize,
    /// Width of the tokens attended to; `None` for self-attention.
    pub context_dim: Option<usize>,
    /// Zero-initialise the output projection (a new branch starts silent).
    #[config(default = false)]
    pub zero_out: bool,
}

/// Multi-head scaled dot-product attention with its projections.
#[derive(Module, Debug)]
pub struct Attention<B: Backend> {
    pub to_q: Linear<B>,
    pub to_k: Linear<B>,
    pub to_v: Linear<B>,
    pub to_out: Linear<B>,
    heads: usize,
}

impl AttentionConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> Attention<B> {
        let ctx = self.context_dim.unwrap_or(self.dim);
        let out = LinearConfig::new(self.dim, self.dim);
        let out = if self.zero_out { out.with_initializer(Initializer::Zeros) } else { out };
        Attention {
            to_q: LinearConfig::new(self.dim, self.dim).with_bias(false).init(device),
            to_k: LinearConfig::new(ctx, self.dim).with_bias(false).init(device),
            to_v: LinearConfig::new(ctx, self.dim).with_bias(false).init(device),
            to_out: out.init(device),
            heads: self.heads,
        }
    }
}

impl<B: Backend> Attention<B> {
    /// `x`: `[n, s, dim]`, `context`: `[n, m, context_dim]` (self-attention when `None`) → `[n, s, dim]`.
    pub fn forward(&self, x: Tensor<B, 3>, context: Option<Tensor<B, 3>>) -> Tensor<B, 3> {
        let ctx = context.unwrap_or_else(|| x.clone());
        let [n, s, d] = x.dims();
        let m = ctx.dims()[1];
        let dh = d / self.heads;
        let split = |t: Tensor<B, 3>, len: usize| t.reshape([n, len, self.heads, dh]).swap_dims(1, 2);
        let q = split(self.to_q.forward(x), s);
        let k = split(self.to_k.forward(ctx.clone()), m);
        let v = split(self.to_v.forward(ctx), m);
        // The scale is the default 1/√d_h, given explicitly: burn-cubecl then runs its
        // unfused attention rather than an autotuned fused kernel. On the H200 both agree
        // with the CPU to 5e-4 (TF32), so attention is not where the latent denoisers'
        // CUDA results depart from the CPU's (docs/train/tiny/gpu-2026-12-04b). Flex
        // computes the same scale either way.
        let options = AttentionModuleOptions { scale: Some(1.0 / (dh as f64).sqrt()), ..Default::default() };
        let o = attention(q, k, v, None, None, options);
        self.to_out.forward(o.swap_dims(1, 2).reshape([n, s, d]))
    }
}

#[derive(Config, Debug)]
pub struct FeedForwardConfig {
    pub dim: usize,
    /// Zero-initialise the output layer (a new branch starts silent).
    #[config(default = false)]
    pub zero_out: bool,
}

/// Feed-forward `Linear(d, 4d) → GELU → Linear(4d, d)`.
#[derive(Module, Debug)]
pub struct FeedForward<B: Backend> {
    pub fc1: Linear<B>,
    pub fc2: Linear<B>,
}

impl FeedForwardConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> FeedForward<B> {
        let fc2 = LinearConfig::new(4 * self.dim, self.dim);
        let fc2 = if self.zero_out { fc2.with_initializer(Initializer::Zeros) } else { fc2 };
        FeedForward { fc1: LinearConfig::new(self.dim, 4 * self.dim).init(device), fc2: fc2.init(device) }
    }
}

impl<B: Backend> FeedForward<B> {
    /// `[…, d]` → `[…, d]`.
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        self.fc2.forward(gelu(self.fc1.forward(x)))
    }
}

/// GLIGEN's gated self-attention over `[visual tokens; box tokens]`: only the visual
/// outputs are kept, scaled by `tanh(γ)` with γ = 0 at init, so a new box pathway
/// leaves a trained network unchanged until it learns to use the boxes.
#[derive(Module, Debug)]
pub struct GatedBoxAttention<B: Backend> {
    pub box_proj: Linear<B>,
    pub norm: LayerNorm<B>,
    pub attn: Attention<B>,
    pub gate_attn: Param<Tensor<B, 1>>,
    pub norm_ff: LayerNorm<B>,
    pub ff: FeedForward<B>,
    pub gate_ff: Param<Tensor<B, 1>>,
}

#[derive(Config, Debug)]
pub struct GatedBoxAttentionConfig {
    pub dim: usize,
    pub heads: usize,
    pub token_dim: usize,
}

impl GatedBoxAttentionConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> GatedBoxAttention<B> {
        let zero = || Param::from_tensor(Tensor::zeros([1], device));
        GatedBoxAttention {
            box_proj: LinearConfig::new(self.token_dim, self.dim).init(device),
            norm: LayerNormConfig::new(self.dim).init(device),
            attn: AttentionConfig::new(self.dim, self.heads).init(device),
            gate_attn: zero(),
            norm_ff: LayerNormConfig::new(self.dim).init(device),
            ff: FeedForwardConfig::new(self.dim).init(device),
            gate_ff: zero(),
        }
    }
}

impl<B: Backend> GatedBoxAttention<B> {
    /// `x`: `[n, s, dim]` visual tokens, `boxes`: `[n, k, token_dim]` → `[n, s, dim]`.
    pub fn forward(&self, x: Tensor<B, 3>, boxes: Tensor<B, 3>) -> Tensor<B, 3> {
        let s = x.dims()[1];
        let joint = self.norm.forward(Tensor::cat(vec![x.clone(), self.box_proj.forward(boxes)], 1));
        let [n, _, d] = x.dims();
        let visual = self.attn.forward(joint, None).slice([0..n, 0..s, 0..d]);
        let gate = |g: &Param<Tensor<B, 1>>| g.val().tanh().unsqueeze_dim::<2>(0).unsqueeze_dim::<3>(0);
        let x = x + visual * gate(&self.gate_attn);
        let ff = self.ff.forward(self.norm_ff.forward(x.clone()));
        x + ff * gate(&self.gate_ff)
    }
}

#[derive(Config, Debug)]
pub struct SpatialTransformerConfig {
    pub channels: usize,
    pub heads: usize,
    /// Width of box tokens; `None` for a transformer without box conditioning.
    pub box_token_dim: Option<usize>,
    #[config(default = "NormKind::Group(32)")]
    pub norm: NormKind,
}

/// `x + proj_out(block(proj_in(norm(x))))` over the pixels of each frame, where
/// block = self-attention → gated box attention → feed-forward (all residual).
/// The output projection starts at zero, so a fresh transformer is the identity.
#[derive(Module, Debug)]
pub struct SpatialTransformer<B: Backend> {
    pub norm: Norm<B>,
    pub proj_in: burn::nn::conv::Conv2d<B>,
    pub norm_attn: LayerNorm<B>,
    pub attn: Attention<B>,
    pub boxes: Option<GatedBoxAttention<B>>,
    pub norm_ff: LayerNorm<B>,
    pub ff: FeedForward<B>,
    pub proj_out: Linear<B>,
}

impl SpatialTransformerConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> SpatialTransformer<B> {
        let c = self.channels;
        SpatialTransformer {
            norm: NormConfig::new(self.norm, c).init(device),
            proj_in: conv1x1(c, c, device),
            norm_attn: LayerNormConfig::new(c).init(device),
            attn: AttentionConfig::new(c, self.heads).init(device),
            boxes: self.box_token_dim.map(|k| GatedBoxAttentionConfig::new(c, self.heads, k).init(device)),
            norm_ff: LayerNormConfig::new(c).init(device),
            ff: FeedForwardConfig::new(c).init(device),
            proj_out: LinearConfig::new(c, c).with_initializer(Initializer::Zeros).init(device),
        }
    }
}

impl<B: Backend> SpatialTransformer<B> {
    /// `x`: `[n, c, h, w]`, `boxes`: `[n, k, token_dim]` → `[n, c, h, w]`.
    pub fn forward(&self, x: Tensor<B, 4>, boxes: Option<Tensor<B, 3>>) -> Tensor<B, 4> {
        let [_, _, h, w] = x.dims();
        let mut t = to_pixel_tokens(self.proj_in.forward(self.norm.forward(x.clone())));
        t = t.clone() + self.attn.forward(self.norm_attn.forward(t), None);
        if let (Some(gated), Some(b)) = (&self.boxes, boxes) {
            t = gated.forward(t, b);
        }
        t = t.clone() + self.ff.forward(self.norm_ff.forward(t));
        x + from_pixel_tokens(self.proj_out.forward(t), h, w)
    }
}
