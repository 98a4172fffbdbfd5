//! Normalisation of feature maps `[n, c, …]`: group norm (LDM's default) or a
//! per-pixel channel norm, which keeps a network fully convolutional: a patch's
//! output then equals the matching crop of the full frame's output (the upsampler
//! trains on patches and runs on full frames).

use burn::config::Config;
use burn::module::Module;
use burn::nn::{GroupNorm, GroupNormConfig, LayerNorm, LayerNormConfig};
use burn::tensor::{Tensor, backend::Backend};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NormKind {
    /// Group norm with this many groups (statistics over channels × space).
    Group(usize),
    /// Layer norm over channels at each pixel (statistics never cross pixels).
    Channel,
}

#[derive(Config, Debug)]
pub struct NormConfig {
    pub kind: NormKind,
    pub channels: usize,
}

#[derive(Module, Debug)]
pub enum Norm<B: Backend> {
    Group(GroupNorm<B>),
    Channel(LayerNorm<B>),
}

impl NormConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> Norm<B> {
        match self.kind {
            // Groups must divide the channels; narrow tiers fall back to the gcd.
            NormKind::Group(g) => {
                Norm::Group(GroupNormConfig::new(gcd(g, self.channels), self.channels).with_epsilon(1e-6).init(device))
            }
            NormKind::Channel => Norm::Channel(LayerNormConfig::new(self.channels).with_epsilon(1e-6).init(device)),
        }
    }
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a.max(1) } else { gcd(b, a % b) }
}

impl<B: Backend> Norm<B> {
    /// `[n, c, …]` → `[n, c, …]` (images `[n, c, h, w]` or videos `[b, c, t, h, w]`).
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        match self {
            Norm::Group(g) => g.forward(x),
            // Layer norm normalises the last axis: bring channels there and back.
            Norm::Channel(ln) => ln.forward(x.swap_dims(1, D - 1)).swap_dims(1, D - 1),
        }
    }
}
