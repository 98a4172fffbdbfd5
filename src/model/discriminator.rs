//! Patch discriminator over clips for the temporal decoder's adversarial loss:
//! Conv3d kernels (3, 4, 4), stride (1, 2, 2) (no public 3D design exists; this
//! follows PatchGAN with the time axis added, see shared/VIDEOLDM-NOTES.md §2).

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::PaddingConfig3d;
use burn::nn::conv::{Conv3d, Conv3dConfig};
use burn::tensor::activation::leaky_relu;
use burn::tensor::{Tensor, backend::Backend};

use super::norm::{Norm, NormConfig, NormKind};

#[derive(Config, Debug)]
pub struct Discriminator3dConfig {
    #[config(default = 3)]
    pub in_channels: usize,
    pub base_channels: usize,
    /// Strided layers; each halves height and width.
    pub layers: usize,
}

#[derive(Module, Debug)]
pub struct DiscriminatorLayer<B: Backend> {
    pub conv: Conv3d<B>,
    pub norm: Option<Norm<B>>,
}

#[derive(Module, Debug)]
pub struct Discriminator3d<B: Backend> {
    pub layers: Vec<DiscriminatorLayer<B>>,
    pub conv_out: Conv3d<B>,
}

impl Discriminator3dConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> Discriminator3d<B> {
        let mut layers = Vec::new();
        let mut ch = self.in_channels;
        for i in 0..self.layers {
            let out = self.base_channels << i;
            layers.push(DiscriminatorLayer {
                conv: Conv3dConfig::new([ch, out], [3, 4, 4])
                    .with_stride([1, 2, 2])
                    .with_padding(PaddingConfig3d::Explicit(1, 1, 1))
                    .init(device),
                // PatchGAN leaves the first layer unnormalised.
                norm: (i > 0).then(|| NormConfig::new(NormKind::Group(8), out).init(device)),
            });
            ch = out;
        }
        let mut conv_out =
            Conv3dConfig::new([ch, 1], [3, 3, 3]).with_padding(PaddingConfig3d::Explicit(1, 1, 1)).init(device);
        // The logit's bias starts at 0: burn draws it at random, and a one-element tensor
        // looks constant to `train::seeded_init`, which would keep burn's (unseeded) draw.
        conv_out.bias = conv_out.bias.map(|b| Param::from_tensor(b.val().zeros_like()));
        Discriminator3d { layers, conv_out }
    }
}

impl<B: Backend> Discriminator3d<B> {
    /// `x`: `[b, c, t, h, w]` → patch logits `[b, 1, t, h/2^L, w/2^L]`.
    pub fn forward(&self, x: Tensor<B, 5>) -> Tensor<B, 5> {
        let mut h = x;
        for l in &self.layers {
            h = l.conv.forward(h);
            if let Some(n) = &l.norm {
                h = n.forward(h);
            }
            h = leaky_relu(h, 0.2);
        }
        self.conv_out.forward(h)
    }
}
