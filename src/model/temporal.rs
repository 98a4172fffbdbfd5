//! Temporal layers of the Video LDM (Blattmann et al. 2023, §3.1): after every
//! spatial layer, a temporal layer mixes information across frames, and a learned
//! scalar per layer blends the two: `out = α·spatial + (1−α)·temporal`,
//! `α = sigmoid(mix)`. Temporal branches end in zero-initialised projections, so a
//! new video model starts exactly as its image model; α = 1 *is* the image model.
//!
//! Spatial layers see frames as batch `[b·t, c, h, w]`; the layers here reshape
//! at their edges only (via `layout`), so the rest of the UNet never knows.

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv3d, Conv3dConfig};
use burn::nn::{Initializer, LayerNorm, LayerNormConfig, Linear, LinearConfig, PaddingConfig3d};
use burn::tensor::activation::{sigmoid, silu};
use burn::tensor::{Tensor, backend::Backend};
use serde::{Deserialize, Serialize};

use super::attention::{Attention, AttentionConfig, FeedForward, FeedForwardConfig};
use super::embedding::sinusoidal;
use super::layout::{from_frame_tokens, from_video, per_channel, per_channel_video, to_frame_tokens, to_video};
use super::norm::{Norm, NormConfig, NormKind};

/// Which temporal layers a video model interleaves (the paper's ablation compares them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TemporalLayers {
    /// 3D-conv residual blocks after ResBlocks and temporal attention after transformers (the paper's).
    ConvAndAttention,
    /// Temporal attention only (after every spatial layer).
    AttentionOnly,
}

/// What the temporal layers see besides the frames.
#[derive(Debug, Clone)]
pub struct VideoContext<B: Backend> {
    /// Frames per clip `t`; the batch axis of spatial tensors is `b·t`.
    pub frames: usize,
    /// Joint image/video training: clips of one frame that must stay pure image
    /// samples use α = 1 (SVD's `learned_with_images`).
    pub image_only: bool,
    /// Context-encoder features for this resolution, `[b·t, c, h, w]`.
    pub context: Option<Tensor<B, 4>>,
}

/// `α = sigmoid(mix)`, one learned scalar per temporal layer.
#[derive(Module, Debug)]
pub struct AlphaBlend<B: Backend> {
    pub mix: Param<Tensor<B, 1>>,
}

impl<B: Backend> AlphaBlend<B> {
    /// `mix` starts at 0 (α = ½); the zero-initialised temporal branch makes the
    /// blend the identity at initialisation whatever α is.
    pub fn new(device: &B::Device) -> Self {
        AlphaBlend { mix: Param::from_tensor(Tensor::zeros([1], device)) }
    }

    /// The current α as a `[1]` tensor.
    pub fn alpha(&self) -> Tensor<B, 1> {
        sigmoid(self.mix.val())
    }

    /// `α·spatial + (1−α)·temporal` for tensors of any rank.
    pub fn forward<const D: usize>(
        &self,
        spatial: Tensor<B, D>,
        temporal: Tensor<B, D>,
        image_only: bool,
    ) -> Tensor<B, D> {
        if image_only {
            return spatial;
        }
        let a = self.alpha().reshape([1; D]);
        spatial * a.clone() + temporal * (a.neg() + 1.0)
    }
}

#[derive(Config, Debug)]
pub struct TemporalResBlockConfig {
    pub channels: usize,
    /// Width of the timestep embedding added per frame (`None` in the autoencoder's decoder).
    pub emb_dim: Option<usize>,
    /// Width of the context features injected here (`None`: no context).
    pub context_channels: Option<usize>,
    #[config(default = "NormKind::Group(32)")]
    pub norm: NormKind,
    /// Kernel over (t, h, w); (3, 1, 1) by default, (3, 3, 3) as an ablation.
    #[config(default = "[3, 1, 1]")]
    pub kernel: [usize; 3],
}

/// A 3D-conv residual block over `[b, c, t, h, w]` with the α blend; its
/// parameters sit under `temporal` so they are stored apart from the spatial ones.
#[derive(Module, Debug)]
pub struct TemporalResBlock<B: Backend> {
    pub context_proj: Option<Conv2d<B>>,
    pub norm1: Norm<B>,
    pub conv1: Conv3d<B>,
    pub emb_proj: Option<Linear<B>>,
    pub norm2: Norm<B>,
    pub conv2: Conv3d<B>,
    pub alpha: AlphaBlend<B>,
}

impl TemporalResBlockConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> TemporalResBlock<B> {
        let c = self.channels;
        let [kt, kh, kw] = self.kernel;
        let conv = |zero: bool| {
            let cfg =
                Conv3dConfig::new([c, c], self.kernel).with_padding(PaddingConfig3d::Explicit(kt / 2, kh / 2, kw / 2));
            if zero { cfg.with_initializer(Initializer::Zeros).init(device) } else { cfg.init(device) }
        };
        TemporalResBlock {
            context_proj: self.context_channels.map(|cc| zero_conv1x1(cc, c, device)),
            norm1: NormConfig::new(self.norm, c).init(device),
            conv1: conv(false),
            emb_proj: self.emb_dim.map(|e| LinearConfig::new(e, c).init(device)),
            norm2: NormConfig::new(self.norm, c).init(device),
            conv2: conv(true),
            alpha: AlphaBlend::new(device),
        }
    }
}

fn zero_conv1x1<B: Backend>(cin: usize, cout: usize, device: &B::Device) -> Conv2d<B> {
    burn::nn::conv::Conv2dConfig::new([cin, cout], [1, 1]).with_initializer(Initializer::Zeros).init(device)
}

impl<B: Backend> TemporalResBlock<B> {
    /// `x`: `[b·t, c, h, w]` (output of the spatial block), `emb`: `[b·t, emb_dim]` → `[b·t, c, h, w]`.
    pub fn forward(&self, x: Tensor<B, 4>, emb: Option<Tensor<B, 2>>, ctx: &VideoContext<B>) -> Tensor<B, 4> {
        let t = ctx.frames;
        let mut inp = x.clone();
        if let (Some(proj), Some(c)) = (&self.context_proj, &ctx.context) {
            inp = inp + proj.forward(c.clone());
        }
        let temporal = if self.runs_on_frames(&inp) {
            self.branch_on_frames(inp, emb, t)
        } else {
            self.branch_in_video(inp, emb, t)
        };
        self.alpha.forward(x, temporal, ctx.image_only)
    }

    /// The temporal branch with `Conv3d`s on the video layout `[b, c, t, h, w]`.
    fn branch_in_video(&self, x: Tensor<B, 4>, emb: Option<Tensor<B, 2>>, t: usize) -> Tensor<B, 4> {
        let v = to_video(x, t);
        let mut h = self.conv1.forward(silu(self.norm1.forward(v.clone())));
        if let (Some(proj), Some(e)) = (&self.emb_proj, emb) {
            h = h + per_channel_video(proj.forward(silu(e)), t);
        }
        let h = self.conv2.forward(silu(self.norm2.forward(h)));
        from_video(v + h)
    }

    /// Whether the temporal branch can run in the frame layout `[b·t, c, h, w]`: for
    /// inference, with a per-pixel norm (its statistics do not span frames) and
    /// kernels `(kt, 1, 1)`. On burn-flex a `Conv3d` lowers to an im2col copy of `kt`
    /// times its input plus a layout change each way; here each kernel tap is a
    /// pointwise convolution (a plain GEMM) of a frame-shifted view. Same function,
    /// different rounding; training keeps `Conv3d` (its backward is burn's).
    fn runs_on_frames(&self, x: &Tensor<B, 4>) -> bool {
        let pointwise = |c: &Conv3d<B>| {
            let [_, _, kt, kh, kw] = c.weight.dims();
            kt % 2 == 1
                && kh == 1
                && kw == 1
                && c.stride == [1; 3]
                && c.dilation == [1; 3]
                && c.groups == 1
                && c.padding == PaddingConfig3d::Explicit(kt / 2, 0, 0)
        };
        !B::ad_enabled(&x.device())
            && matches!((&self.norm1, &self.norm2), (Norm::Channel(_), Norm::Channel(_)))
            && pointwise(&self.conv1)
            && pointwise(&self.conv2)
    }

    /// The temporal branch `x + conv2(silu(norm2(conv1(silu(norm1(x))) + emb)))` on frames.
    fn branch_on_frames(&self, x: Tensor<B, 4>, emb: Option<Tensor<B, 2>>, t: usize) -> Tensor<B, 4> {
        let mut h = conv_over_frames(&self.conv1, silu(self.norm1.forward(x.clone())), t);
        if let (Some(proj), Some(e)) = (&self.emb_proj, emb) {
            h = h + per_channel(proj.forward(silu(e)));
        }
        x + conv_over_frames(&self.conv2, silu(self.norm2.forward(h)), t)
    }
}

/// A `(kt, 1, 1)` convolution (zero padding `kt / 2` in time, see
/// [`TemporalResBlock::runs_on_frames`]) of frames `[b·t, c, h, w]`: the sum over taps `k`
/// of a pointwise convolution with `weight[:, :, k]` applied to the frames shifted by
/// `k − kt/2`.
fn conv_over_frames<B: Backend>(conv: &Conv3d<B>, x: Tensor<B, 4>, t: usize) -> Tensor<B, 4> {
    use burn::tensor::module::conv2d;
    use burn::tensor::ops::ConvOptions;
    let [bt, c, h, w] = x.dims();
    let (b, len) = (bt / t, c * h * w);
    let weight = conv.weight.val();
    let [co, ci, kt, _, _] = weight.dims();
    let pad = kt / 2;
    let frames = x.reshape([b, t, len]);
    let padded = if pad == 0 {
        frames
    } else {
        let zeros = Tensor::<B, 3>::zeros([b, pad, len], &frames.device());
        Tensor::cat(vec![zeros.clone(), frames, zeros], 1)
    };
    let mut out: Option<Tensor<B, 4>> = None;
    for k in 0..kt {
        let shifted = padded.clone().narrow(1, k, t).reshape([bt, c, h, w]);
        let tap = weight.clone().narrow(2, k, 1).reshape([co, ci, 1, 1]);
        let bias = if k == 0 { conv.bias.as_ref().map(|p| p.val()) } else { None };
        let y = conv2d(shifted, tap, bias, ConvOptions::new([1, 1], [0, 0], [1, 1], 1));
        out = Some(match out {
            Some(o) => o + y,
            None => y,
        });
    }
    out.expect("a convolution has at least one tap")
}

#[derive(Config, Debug)]
pub struct TemporalAttentionConfig {
    pub channels: usize,
    pub heads: usize,
    pub context_channels: Option<usize>,
}

/// Self-attention over the frames of each pixel, with a sinusoidal frame-index
/// embedding (through a small MLP) added to the attention's input on the temporal
/// branch only, then a feed-forward; both end zero-initialised. Then the α blend.
#[derive(Module, Debug)]
pub struct TemporalAttention<B: Backend> {
    pub context_proj: Option<Conv2d<B>>,
    pub pos_mlp1: Linear<B>,
    pub pos_mlp2: Linear<B>,
    pub norm_attn: LayerNorm<B>,
    pub attn: Attention<B>,
    pub norm_ff: LayerNorm<B>,
    pub ff: FeedForward<B>,
    pub alpha: AlphaBlend<B>,
    channels: usize,
}

impl TemporalAttentionConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> TemporalAttention<B> {
        let c = self.channels;
        TemporalAttention {
            context_proj: self.context_channels.map(|cc| zero_conv1x1(cc, c, device)),
            pos_mlp1: LinearConfig::new(c, 4 * c).init(device),
            pos_mlp2: LinearConfig::new(4 * c, c).init(device),
            norm_attn: LayerNormConfig::new(c).init(device),
            attn: AttentionConfig::new(c, self.heads).with_zero_out(true).init(device),
            norm_ff: LayerNormConfig::new(c).init(device),
            ff: FeedForwardConfig::new(c).with_zero_out(true).init(device),
            alpha: AlphaBlend::new(device),
            channels: c,
        }
    }
}

impl<B: Backend> TemporalAttention<B> {
    /// `x`: `[b·t, c, h, w]` → `[b·t, c, h, w]`.
    pub fn forward(&self, x: Tensor<B, 4>, ctx: &VideoContext<B>) -> Tensor<B, 4> {
        let t = ctx.frames;
        let [_, c, h, w] = x.dims();
        let mut inp = x.clone();
        if let (Some(proj), Some(cf)) = (&self.context_proj, &ctx.context) {
            inp = inp + proj.forward(cf.clone());
        }
        let tokens = to_frame_tokens(inp, t);
        let idx: Vec<f32> = (0..t).map(|i| i as f32).collect();
        let pos = sinusoidal(Tensor::<B, 1>::from_floats(idx.as_slice(), &x.device()), self.channels);
        let pos = self.pos_mlp2.forward(silu(self.pos_mlp1.forward(pos))).reshape([1, t, c]);
        // The frame position enters the attention's input only, not the residual
        // stream, so the zero-initialised branch is exactly the identity at start.
        let mut z = tokens.clone() + self.attn.forward(self.norm_attn.forward(tokens + pos), None);
        z = z.clone() + self.ff.forward(self.norm_ff.forward(z));
        let temporal = from_frame_tokens(z, h, w);
        self.alpha.forward(x, temporal, ctx.image_only)
    }
}

/// Encodes the context `c_S = (m_S ∘ z, m_S)` (masked latents and the mask,
/// `[b·t, latent+1, h, w]`) into features for every UNet resolution with a small
/// learned downsampling stack (the paper's "learned downsampling" of the mask
/// and encoded frames). Its parameters live under the UNet's `temporal` field.
#[derive(Module, Debug)]
pub struct ContextEncoder<B: Backend> {
    pub conv_in: Conv2d<B>,
    pub levels: Vec<Conv2d<B>>,
}

#[derive(Config, Debug)]
pub struct ContextEncoderConfig {
    /// Latent channels + 1 mask channel.
    pub in_channels: usize,
    /// Channels of each UNet level; level k is at 1/2^k of the latent resolution.
    pub level_channels: Vec<usize>,
}

impl ContextEncoderConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> ContextEncoder<B> {
        let c0 = self.level_channels[0];
        let levels =
            self.level_channels.windows(2).map(|w| super::resnet::downsample_conv(w[0], w[1], device)).collect();
        ContextEncoder { conv_in: super::resnet::conv3x3(self.in_channels, c0, device), levels }
    }
}

impl<B: Backend> ContextEncoder<B> {
    /// `c`: `[b·t, latent+1, h, w]` → one `[b·t, c_k, h/2^k, w/2^k]` per level.
    pub fn forward(&self, c: Tensor<B, 4>) -> Vec<Tensor<B, 4>> {
        let mut h = silu(self.conv_in.forward(c));
        let mut out = vec![h.clone()];
        for conv in &self.levels {
            h = silu(conv.forward(h));
            out.push(h.clone());
        }
        out
    }
}

/// The temporal half of a video UNet level's block: a 3D-conv block and/or temporal attention.
pub fn new_res_temporal<B: Backend>(
    layers: TemporalLayers,
    channels: usize,
    emb_dim: usize,
    heads: usize,
    context: Option<usize>,
    norm: NormKind,
    device: &B::Device,
) -> TemporalMix<B> {
    match layers {
        TemporalLayers::ConvAndAttention => TemporalMix::Conv(
            TemporalResBlockConfig::new(channels)
                .with_emb_dim(Some(emb_dim))
                .with_context_channels(context)
                .with_norm(norm)
                .init(device),
        ),
        TemporalLayers::AttentionOnly => TemporalMix::Attention(
            TemporalAttentionConfig::new(channels, heads).with_context_channels(context).init(device),
        ),
    }
}

/// One temporal layer: either kind behind one call.
// Built once per model; the size difference between the variants costs nothing at run time.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum TemporalMix<B: Backend> {
    Conv(TemporalResBlock<B>),
    Attention(TemporalAttention<B>),
}

impl<B: Backend> TemporalMix<B> {
    /// `x`: `[b·t, c, h, w]`, `emb`: `[b·t, e]` → `[b·t, c, h, w]`.
    pub fn forward(&self, x: Tensor<B, 4>, emb: Tensor<B, 2>, ctx: &VideoContext<B>) -> Tensor<B, 4> {
        match self {
            TemporalMix::Conv(block) => block.forward(x, Some(emb), ctx),
            TemporalMix::Attention(attn) => attn.forward(x, ctx),
        }
    }

    pub fn alpha(&self) -> &AlphaBlend<B> {
        match self {
            TemporalMix::Conv(b) => &b.alpha,
            TemporalMix::Attention(a) => &a.alpha,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};
    use burn::tensor::{Distribution, TensorData};

    /// A block with every weight random (conv2 too, which starts at zero).
    fn random_block<B: Backend>(norm: NormKind, kernel: [usize; 3], device: &B::Device) -> TemporalResBlock<B> {
        let mut block =
            TemporalResBlockConfig::new(6).with_emb_dim(Some(5)).with_norm(norm).with_kernel(kernel).init::<B>(device);
        let w = block.conv2.weight.dims();
        block.conv2.weight = Param::from_tensor(Tensor::random(w, Distribution::Normal(0.0, 0.3), device));
        block.conv2.bias = Some(Param::from_tensor(Tensor::random([6], Distribution::Normal(0.0, 0.3), device)));
        block
    }

    #[test]
    fn the_frame_layout_branch_computes_the_conv3d_branch() {
        let device = Default::default();
        for (b, t, kernel) in [(1, 5, [3, 1, 1]), (2, 4, [3, 1, 1]), (2, 3, [1, 1, 1]), (1, 6, [5, 1, 1])] {
            let block = random_block::<Flex>(NormKind::Channel, kernel, &device);
            let x = Tensor::<Flex, 4>::random([b * t, 6, 3, 4], Distribution::Normal(0.0, 1.0), &device);
            let emb = Tensor::<Flex, 2>::random([b * t, 5], Distribution::Normal(0.0, 1.0), &device);
            assert!(block.runs_on_frames(&x));
            let fast = block.branch_on_frames(x.clone(), Some(emb.clone()), t);
            let reference = block.branch_in_video(x, Some(emb), t);
            let diff: f32 = (fast.clone() - reference.clone()).abs().max().into_scalar();
            let scale: f32 = reference.abs().max().into_scalar();
            assert!(diff <= 1e-5 * scale.max(1.0), "b {b}, t {t}, kernel {kernel:?}: max diff {diff} (scale {scale})");
        }
    }

    #[test]
    fn only_inference_with_a_per_pixel_norm_and_time_only_kernels_runs_on_frames() {
        let device = Default::default();
        let x = Tensor::<Flex, 4>::zeros([4, 6, 2, 2], &device);
        assert!(!random_block::<Flex>(NormKind::Group(2), [3, 1, 1], &device).runs_on_frames(&x));
        assert!(!random_block::<Flex>(NormKind::Channel, [3, 3, 3], &device).runs_on_frames(&x));
        let ad = Tensor::<Autodiff<Flex>, 4>::from_data(TensorData::zeros::<f32, _>([4, 6, 2, 2]), &device);
        assert!(!random_block::<Autodiff<Flex>>(NormKind::Channel, [3, 1, 1], &device).runs_on_frames(&ad));
    }
}
