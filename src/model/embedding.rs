//! Sinusoidal embeddings of scalars (diffusion timestep, frame index, noise level)
//! and the timestep MLP of the UNet.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::silu;
use burn::tensor::{Tensor, backend::Backend};

/// Sinusoidal features of `values` (`[n]`) → `[n, dim]`: `[cos(v·f_k), sin(v·f_k)]`
/// with `f_k = 10000^(−k/(dim/2))`, as in DDPM / "Attention is all you need".
pub fn sinusoidal<B: Backend>(values: Tensor<B, 1>, dim: usize) -> Tensor<B, 2> {
    let half = dim / 2;
    let device = values.device();
    let freqs: Vec<f32> = (0..half).map(|k| (-(10000f64.ln()) * k as f64 / half as f64).exp() as f32).collect();
    let freqs = Tensor::<B, 1>::from_floats(freqs.as_slice(), &device).unsqueeze_dim::<2>(0);
    let args = values.unsqueeze_dim::<2>(1) * freqs;
    Tensor::cat(vec![args.clone().cos(), args.sin()], 1)
}

/// `sinusoidal(t) → Linear → SiLU → Linear`: the embedding every ResBlock receives.
#[derive(Config, Debug)]
pub struct TimestepEmbeddingConfig {
    /// Width of the sinusoidal features (the UNet's base channels).
    pub freq_dim: usize,
    /// Output width (4× base channels in LDM).
    pub dim: usize,
}

#[derive(Module, Debug)]
pub struct TimestepEmbedding<B: Backend> {
    pub linear_1: Linear<B>,
    pub linear_2: Linear<B>,
    freq_dim: usize,
}

impl TimestepEmbeddingConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> TimestepEmbedding<B> {
        TimestepEmbedding {
            linear_1: LinearConfig::new(self.freq_dim, self.dim).init(device),
            linear_2: LinearConfig::new(self.dim, self.dim).init(device),
            freq_dim: self.freq_dim,
        }
    }
}

impl<B: Backend> TimestepEmbedding<B> {
    /// `t`: `[n]` (timesteps as floats) → `[n, dim]`.
    pub fn forward(&self, t: Tensor<B, 1>) -> Tensor<B, 2> {
        self.linear_2.forward(silu(self.linear_1.forward(sinusoidal(t, self.freq_dim))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;

    #[test]
    fn sinusoidal_golden_values() {
        let e = sinusoidal::<Flex>(Tensor::from_floats([0.0, 1.0], &Default::default()), 4)
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        // dim 4: frequencies 1 and 0.01.
        let want = [1.0, 1.0, 0.0, 0.0, 1f32.cos(), 0.01f32.cos(), 1f32.sin(), 0.01f32.sin()];
        for (a, b) in e.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{e:?}");
        }
    }
}
