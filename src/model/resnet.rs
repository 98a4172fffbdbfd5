//! The 2D residual block of LDM's UNet and autoencoder:
//! `x + conv(SiLU(norm(conv(SiLU(norm(x))) + emb)))`, with a 1×1 skip when widths differ.

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Initializer, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::silu;
use burn::tensor::{Tensor, backend::Backend};

use super::layout::per_channel;
use super::norm::{Norm, NormConfig, NormKind};

/// 3×3 convolution with "same" padding.
pub fn conv3x3<B: Backend>(cin: usize, cout: usize, device: &B::Device) -> Conv2d<B> {
    Conv2dConfig::new([cin, cout], [3, 3]).with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)).init(device)
}

/// 3×3 convolution initialised to zero: a residual branch that starts as identity.
pub fn conv3x3_zero<B: Backend>(cin: usize, cout: usize, device: &B::Device) -> Conv2d<B> {
    Conv2dConfig::new([cin, cout], [3, 3])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .with_initializer(Initializer::Zeros)
        .init(device)
}

pub fn conv1x1<B: Backend>(cin: usize, cout: usize, device: &B::Device) -> Conv2d<B> {
    Conv2dConfig::new([cin, cout], [1, 1]).init(device)
}

/// 3×3 convolution with stride 2: halves height and width (LDM's `Downsample`).
pub fn downsample_conv<B: Backend>(cin: usize, cout: usize, device: &B::Device) -> Conv2d<B> {
    Conv2dConfig::new([cin, cout], [3, 3])
        .with_stride([2, 2])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init(device)
}

/// Nearest-neighbour ×2: `[n, c, h, w]` → `[n, c, 2h, 2w]`.
pub fn nearest_2x<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 4> {
    let [_, _, h, w] = x.dims();
    let options = burn::tensor::ops::InterpolateOptions::new(burn::tensor::ops::InterpolateMode::Nearest);
    burn::tensor::module::interpolate(x, [2 * h, 2 * w], options)
}

/// Nearest-neighbour ×2 then `conv` (LDM's `Upsample`): `[n, c, h, w]` → `[n, c', 2h, 2w]`.
pub fn upsample_nearest<B: Backend>(x: Tensor<B, 4>, conv: &Conv2d<B>) -> Tensor<B, 4> {
    conv.forward(nearest_2x(x))
}

#[derive(Config, Debug)]
pub struct ResBlockConfig {
    pub in_channels: usize,
    pub out_channels: usize,
    /// Width of the conditioning embedding added after the first conv; `None` for
    /// blocks without one (autoencoder).
    pub emb_dim: Option<usize>,
    #[config(default = "NormKind::Group(32)")]
    pub norm: NormKind,
}

#[derive(Module, Debug)]
pub struct ResBlock<B: Backend> {
    pub norm1: Norm<B>,
    pub conv1: Conv2d<B>,
    pub emb_proj: Option<Linear<B>>,
    pub norm2: Norm<B>,
    pub conv2: Conv2d<B>,
    pub skip: Option<Conv2d<B>>,
}

impl ResBlockConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> ResBlock<B> {
        let (cin, cout) = (self.in_channels, self.out_channels);
        ResBlock {
            norm1: NormConfig::new(self.norm, cin).init(device),
            conv1: conv3x3(cin, cout, device),
            emb_proj: self.emb_dim.map(|e| LinearConfig::new(e, cout).init(device)),
            norm2: NormConfig::new(self.norm, cout).init(device),
            // Zero-initialised output: a fresh block is the identity (LDM's zero_module).
            conv2: conv3x3_zero(cout, cout, device),
            skip: (cin != cout).then(|| conv1x1(cin, cout, device)),
        }
    }
}

impl<B: Backend> ResBlock<B> {
    /// `x`: `[n, c_in, h, w]`, `emb`: `[n, emb_dim]` → `[n, c_out, h, w]`.
    pub fn forward(&self, x: Tensor<B, 4>, emb: Option<Tensor<B, 2>>) -> Tensor<B, 4> {
        let mut h = self.conv1.forward(silu(self.norm1.forward(x.clone())));
        if let (Some(proj), Some(e)) = (&self.emb_proj, emb) {
            h = h + per_channel(proj.forward(silu(e)));
        }
        let h = self.conv2.forward(silu(self.norm2.forward(h)));
        let skip = match &self.skip {
            Some(s) => s.forward(x),
            None => x,
        };
        skip + h
    }
}
