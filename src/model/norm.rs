//! Normalisation of feature maps `[n, c, …]`: group norm (LDM's default) or a
//! per-pixel channel norm, which keeps a network fully convolutional: a patch's
//! output then equals the matching crop of the full frame's output (the upsampler
//! trains on patches and runs on full frames).

use burn::config::Config;
use burn::module::Module;
use burn::nn::{GroupNorm, GroupNormConfig, LayerNorm, LayerNormConfig};
use burn::tensor::{Tensor, backend::Backend};
use serde::{Deserialize, Serialize};

use super::layout::transpose_last;

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

/// burn's group norm with the affine step on `[n·c, …]` rows: burn-flex's fast
/// broadcast kernels take a per-row scalar, while the `[1, c, 1, 1]` parameters of
/// burn's own `GroupNorm::forward` fall to an element-by-element strided loop (a sixth
/// of the generator's CPU time). The same operations in the same order: the results
/// are bit-identical.
fn group_norm<B: Backend, const D: usize>(g: &GroupNorm<B>, x: Tensor<B, D>) -> Tensor<B, D> {
    let shape = x.shape();
    let (n, c) = (shape[0], shape[1]);
    assert_eq!(c, g.num_channels, "group norm over {} channels got {c}", g.num_channels);
    let per_sample = shape.num_elements() / n;
    let hidden = per_sample / g.num_groups;
    let x = x.reshape([n, g.num_groups, hidden]);
    let mean = x.clone().sum_dim(2) / hidden as f64;
    let x = x.sub(mean);
    let var = x.clone().square().sum_dim(2) / hidden as f64;
    let x = x.div(var.add_scalar(g.epsilon).sqrt()).reshape([n * c, per_sample / c]);
    let rows = |p: &Option<burn::module::Param<Tensor<B, 1>>>| {
        p.as_ref().map(|p| p.val().reshape([1, c]).repeat_dim(0, n).reshape([n * c, 1]))
    };
    let x = match (rows(&g.gamma), rows(&g.beta)) {
        (Some(gamma), Some(beta)) => x.mul(gamma).add(beta),
        _ => x,
    };
    x.reshape(shape)
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a.max(1) } else { gcd(b, a % b) }
}

impl<B: Backend> Norm<B> {
    /// `[n, c, …]` → `[n, c, …]` (images `[n, c, h, w]` or videos `[b, c, t, h, w]`).
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        match self {
            Norm::Group(g) => group_norm(g, x),
            // Layer norm normalises the last axis: bring channels there and back.
            Norm::Channel(ln) => {
                let shape = x.shape();
                let (n, c) = (shape[0], shape[1]);
                let rows = transpose_last(x.reshape([n, c, shape.num_elements() / (n * c)]));
                transpose_last(ln.forward(rows)).reshape(shape)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diffusion::gaussian;
    use burn::backend::Flex;
    use burn::module::Param;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn group_norm_matches_burns_bit_for_bit() {
        let device = Default::default();
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let Norm::Group(mut g) = NormConfig::new(NormKind::Group(4), 12).init::<Flex>(&device) else {
            unreachable!("a group norm config gives a group norm")
        };
        g.gamma = Some(Param::from_tensor(gaussian::<Flex, 1, _>([12], &mut rng, &device)));
        g.beta = Some(Param::from_tensor(gaussian::<Flex, 1, _>([12], &mut rng, &device)));
        let x = gaussian::<Flex, 4, _>([3, 12, 5, 7], &mut rng, &device) * 3.0 + 1.0;
        let ours = Norm::Group(g.clone()).forward(x.clone()).into_data();
        let burns = g.forward(x).into_data();
        assert_eq!(ours.as_slice::<f32>().unwrap(), burns.as_slice::<f32>().unwrap());
        let video = gaussian::<Flex, 5, _>([2, 12, 3, 4, 5], &mut rng, &device);
        let ours = Norm::Group(g.clone()).forward(video.clone()).into_data();
        assert_eq!(ours.as_slice::<f32>().unwrap(), g.forward(video).into_data().as_slice::<f32>().unwrap());
    }

    #[test]
    fn channel_norm_normalises_each_pixel_like_a_swapped_layer_norm() {
        let device = Default::default();
        let mut rng = ChaCha8Rng::seed_from_u64(8);
        let Norm::Channel(mut ln) = NormConfig::new(NormKind::Channel, 6).init::<Flex>(&device) else {
            unreachable!("a channel norm config gives a layer norm")
        };
        ln.gamma = Param::from_tensor(gaussian::<Flex, 1, _>([6], &mut rng, &device));
        let x = gaussian::<Flex, 5, _>([2, 6, 3, 4, 5], &mut rng, &device) * 2.0 - 0.5;
        let ours = Norm::Channel(ln.clone()).forward(x.clone()).into_data();
        let swapped = ln.forward(x.swap_dims(1, 4)).swap_dims(1, 4).into_data();
        assert_eq!(ours.as_slice::<f32>().unwrap(), swapped.as_slice::<f32>().unwrap());
    }
}
