//! How an autoencoder's latents are normalised before a latent denoiser sees them:
//! per channel, `x = (z − shift) · scale`, and back with `z = x / scale + shift`.
//!
//! LDM multiplies every channel by one factor, `1 / std` of the latents (Rombach et al.
//! 2022, Appendix G: [`LatentNorm::uniform`]). That keeps the total variance at one but
//! not each channel's: a wide latent whose variance sits in a few channels leaves the
//! others far below the noise from the middle of the schedule on, so the denoiser resolves
//! them only in its last steps. [`LatentNorm::per_channel`] gives every channel zero mean
//! and unit variance instead (EDM2's channel-wise latent normalisation, Karras et al. 2024,
//! §5 / `dataset_tool.py`: mean and std per channel of the encoded dataset).

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use serde::{Deserialize, Serialize};

/// Per-channel shift and scale between autoencoder latents `z` and denoiser latents `x`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatentNorm {
    /// Subtracted from each channel (its mean).
    pub shift: Vec<f32>,
    /// Multiplies each shifted channel (`1 / std`).
    pub scale: Vec<f32>,
}

impl LatentNorm {
    /// One scale for all `channels`, no shift: LDM's scale factor.
    pub fn uniform(scale: f32, channels: usize) -> Self {
        LatentNorm { shift: vec![0.0; channels], scale: vec![scale; channels] }
    }

    /// The mean and `1 / std` of each channel of `z` `[n, c, h, w]` over samples and
    /// positions. A channel with no variance keeps scale 1.
    pub fn per_channel<B: Backend>(z: Tensor<B, 4>) -> Self {
        let [n, c, h, w] = z.dims();
        let per_channel = z.swap_dims(0, 1).reshape([c, n * h * w]);
        let mean = per_channel.clone().mean_dim(1);
        let var = (per_channel - mean.clone()).square().mean_dim(1);
        let values = |t: Tensor<B, 2>| t.into_data().convert::<f32>().to_vec::<f32>().unwrap_or_default();
        let scale = values(var).into_iter().map(|v| if v.is_finite() && v > 1e-12 { v.sqrt().recip() } else { 1.0 });
        LatentNorm { shift: values(mean), scale: scale.collect() }
    }

    pub fn channels(&self) -> usize {
        self.scale.len()
    }

    /// Whether this is a single scale without shift (what manifests without a per-channel
    /// normalisation describe). It then computes exactly LDM's `z · scale` and `x / scale`
    /// with scalar operations, bit-identical to outputs made before this type existed.
    pub fn is_uniform(&self) -> bool {
        self.shift.iter().all(|&s| s == 0.0) && self.scale.windows(2).all(|p| p[0] == p[1])
    }

    /// Why this normalisation cannot serve a latent of `channels` channels, if it cannot.
    pub fn check(&self, channels: usize) -> Result<(), String> {
        if self.shift.len() != channels || self.scale.len() != channels {
            return Err(format!(
                "the latent normalisation has {} shifts and {} scales for a latent of {channels} channels",
                self.shift.len(),
                self.scale.len()
            ));
        }
        if let Some(i) = self.shift.iter().position(|s| !s.is_finite()) {
            return Err(format!("the latent normalisation's shift of channel {i} is {}", self.shift[i]));
        }
        if let Some(i) = self.scale.iter().position(|s| !(s.is_finite() && *s > 0.0)) {
            return Err(format!("the latent normalisation's scale of channel {i} is {} (must be > 0)", self.scale[i]));
        }
        Ok(())
    }

    /// Autoencoder latents `[n, c, h, w]` → denoiser latents.
    pub fn normalize<B: Backend>(&self, z: Tensor<B, 4>) -> Tensor<B, 4> {
        if self.is_uniform() {
            return z * self.scale.first().copied().unwrap_or(1.0);
        }
        let device = z.device();
        (z - column(&self.shift, &device)) * column(&self.scale, &device)
    }

    /// Denoiser latents `[n, c, h, w]` → autoencoder latents (what the decoder reads).
    pub fn denormalize<B: Backend>(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        if self.is_uniform() {
            return x / self.scale.first().copied().unwrap_or(1.0);
        }
        let device = x.device();
        x / column(&self.scale, &device) + column(&self.shift, &device)
    }
}

/// `values` as a `[1, c, 1, 1]` tensor, broadcast over samples and positions.
fn column<B: Backend>(values: &[f32], device: &B::Device) -> Tensor<B, 4> {
    let c = values.len();
    Tensor::<B, 1>::from_data(TensorData::new(values.to_vec(), [c]), device).reshape([1, c, 1, 1])
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use burn::tensor::Distribution;

    type B = Flex;

    #[test]
    fn per_channel_normalisation_gives_each_channel_zero_mean_and_unit_variance_and_inverts() {
        let device = Default::default();
        // Channels with means 3, −1, 0 and stds 5, 0.2, 1.
        let raw = Tensor::<B, 4>::random([8, 3, 4, 6], Distribution::Normal(0.0, 1.0), &device);
        let stretch = Tensor::<B, 1>::from_floats([5.0, 0.2, 1.0], &device).reshape([1, 3, 1, 1]);
        let offset = Tensor::<B, 1>::from_floats([3.0, -1.0, 0.0], &device).reshape([1, 3, 1, 1]);
        let z = raw * stretch + offset;
        let norm = LatentNorm::per_channel(z.clone());
        assert!(norm.check(3).is_ok());
        assert!(!norm.is_uniform());
        let x = norm.normalize(z.clone());
        let check = LatentNorm::per_channel(x.clone());
        for c in 0..3 {
            assert!(check.shift[c].abs() < 1e-4, "channel {c} mean {}", check.shift[c]);
            assert!((check.scale[c] - 1.0).abs() < 1e-3, "channel {c} 1/std {}", check.scale[c]);
        }
        let back: f32 = (norm.denormalize(x) - z).abs().max().into_scalar();
        assert!(back < 1e-4, "round trip error {back}");
    }

    #[test]
    fn the_uniform_normalisation_is_lds_scale_factor() {
        let device = Default::default();
        let z = Tensor::<B, 4>::random([2, 4, 3, 3], Distribution::Normal(0.0, 2.0), &device);
        let norm = LatentNorm::uniform(0.25, 4);
        assert!(norm.is_uniform());
        let diff: f32 = (norm.normalize(z.clone()) - z * 0.25).abs().max().into_scalar();
        assert_eq!(diff, 0.0);
    }

    #[test]
    fn a_normalisation_for_another_latent_width_or_with_a_zero_scale_is_refused() {
        assert!(LatentNorm::uniform(1.0, 4).check(16).unwrap_err().contains("16 channels"));
        let mut bad = LatentNorm::uniform(1.0, 2);
        bad.scale[1] = 0.0;
        assert!(bad.check(2).unwrap_err().contains("channel 1"));
    }
}
