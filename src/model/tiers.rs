//! Every model's configuration per tier, in one place. Key frames are 128×256 in
//! the tiny and base tiers and the upsampler brings them to 512×1024; `micro` is
//! for tests only (16×32 frames, a few channels) so each test runs in seconds.

use serde::{Deserialize, Serialize};

use super::autoencoder::AutoencoderConfig;
use super::conditioning::BoxEncoderConfig;
use super::discriminator::Discriminator3dConfig;
use super::norm::NormKind;
use super::temporal::TemporalLayers;
use super::unet::{GlobalCondition, UNetConfig, VideoConfig};
use super::upsampler::UpsamplerConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ModelTier {
    /// Test-only: 16×32 frames, widths of a few channels.
    Micro,
    /// Narrow models that train on 2 CPU cores; weights ship in `weights/tiny`.
    Tiny,
    /// Wider models trained on a GPU.
    Base,
}

impl From<crate::scenario::Tier> for ModelTier {
    /// The tiers a scenario may ask for (`Micro` is test-only).
    fn from(tier: crate::scenario::Tier) -> Self {
        match tier {
            crate::scenario::Tier::Tiny => ModelTier::Tiny,
            crate::scenario::Tier::Base => ModelTier::Base,
        }
    }
}

impl ModelTier {
    /// Folder name under `weights/`.
    pub fn dir_name(self) -> &'static str {
        match self {
            ModelTier::Micro => "micro",
            ModelTier::Tiny => "tiny",
            ModelTier::Base => "base",
        }
    }
}

/// All model configurations of one tier.
#[derive(Debug, Clone)]
pub struct TierConfig {
    pub tier: ModelTier,
    /// Key-frame size `(height, width)`.
    pub frame_size: (usize, usize),
    /// Frames per prediction window `T`.
    pub window: usize,
    pub autoencoder: AutoencoderConfig,
    pub discriminator: Discriminator3dConfig,
    /// Box-conditioned image LDM (frame 0).
    pub image_ldm: UNetConfig,
    /// Prediction model: the image LDM with temporal layers and the context encoder.
    pub video_ldm: UNetConfig,
    /// Interpolator: the same design with the fps flag.
    pub interpolator: UNetConfig,
    pub upsampler: UpsamplerConfig,
    /// Crop `(height, width)` the autoencoder trains on (it is fully convolutional but
    /// for its mid attention); `None` trains on whole frames.
    pub autoencoder_crop: Option<(usize, usize)>,
    /// High-resolution patch `(height, width)` the upsampler trains on.
    pub upsampler_patch: (usize, usize),
}

impl TierConfig {
    /// Latent channels `z` of the autoencoder, which the latent stages denoise.
    pub fn latent_channels(&self) -> usize {
        self.autoencoder.latent_channels
    }

    /// The tier with this autoencoder (e.g. the one a weights folder holds, or one with a
    /// wider latent): the latent stages' input, output and context channels follow its `z`.
    pub fn with_autoencoder(mut self, autoencoder: AutoencoderConfig) -> Self {
        let z = autoencoder.latent_channels;
        self.autoencoder = autoencoder.with_temporal_decoder(false);
        for unet in [&mut self.image_ldm, &mut self.video_ldm, &mut self.interpolator] {
            unet.in_channels = z;
            unet.out_channels = z;
            if let Some(video) = unet.video.as_mut() {
                video.context_channels = Some(z);
            }
        }
        self
    }

    /// The tier with `z` latent channels (see [`TierConfig::with_autoencoder`]).
    pub fn with_latent_channels(self, z: usize) -> Self {
        let autoencoder = AutoencoderConfig { latent_channels: z, ..self.autoencoder.clone() };
        self.with_autoencoder(autoencoder)
    }
}

impl ModelTier {
    pub fn config(self) -> TierConfig {
        match self {
            ModelTier::Micro => build(
                self,
                (16, 32),
                4,
                Widths {
                    latent: 4,
                    ae: 8,
                    ae_patch: 2,
                    ae_mult: vec![2, 2],
                    unet: 8,
                    unet_mult: vec![1, 2],
                    heads: 2,
                    attn: vec![1],
                    tokens: 8,
                    slots: 4,
                    up: 8,
                    up_mult: vec![1, 2],
                    groups: 4,
                    disc: 4,
                    unshuffle: 2,
                },
            ),
            ModelTier::Tiny => build(
                self,
                (128, 256),
                8,
                Widths {
                    latent: 4,
                    ae: 16,
                    ae_patch: 2,
                    ae_mult: vec![2, 4, 4],
                    unet: 48,
                    unet_mult: vec![1, 2, 2],
                    heads: 4,
                    attn: vec![1, 2],
                    tokens: 48,
                    slots: 16,
                    up: 32,
                    up_mult: vec![1, 2, 2],
                    groups: 8,
                    disc: 16,
                    unshuffle: 4,
                },
            ),
            ModelTier::Base => build(
                self,
                (128, 256),
                16,
                Widths {
                    latent: 4,
                    ae: 64,
                    ae_patch: 2,
                    ae_mult: vec![2, 4, 4],
                    unet: 128,
                    unet_mult: vec![1, 2, 4],
                    heads: 8,
                    attn: vec![1, 2],
                    tokens: 256,
                    slots: 16,
                    up: 128,
                    up_mult: vec![1, 1, 2, 4],
                    groups: 32,
                    disc: 64,
                    unshuffle: 4,
                },
            ),
        }
    }
}

struct Widths {
    /// Latent channels `z` of the autoencoder (LDM's f=8, z=4).
    latent: usize,
    ae: usize,
    /// Autoencoder stem block size (its `f` is `ae_patch · 2^(levels−1)`).
    ae_patch: usize,
    ae_mult: Vec<usize>,
    unet: usize,
    unet_mult: Vec<usize>,
    heads: usize,
    attn: Vec<usize>,
    tokens: usize,
    slots: usize,
    up: usize,
    up_mult: Vec<usize>,
    groups: usize,
    disc: usize,
    /// Upsampler space-to-depth block size.
    unshuffle: usize,
}

fn build(tier: ModelTier, frame_size: (usize, usize), window: usize, w: Widths) -> TierConfig {
    let norm = NormKind::Group(w.groups);
    let z = w.latent;
    // A space-to-depth stem and residual shortcuts (DC-AE); measured in docs/autoencoder.md.
    let autoencoder = AutoencoderConfig::new(z, w.ae, w.ae_mult, 1)
        .with_norm(norm)
        .with_shortcuts(Some(true))
        .with_patch(Some(w.ae_patch));
    let image_ldm = UNetConfig::new(z, z, w.unet, w.unet_mult, 1, w.attn, w.heads)
        .with_boxes(Some(BoxEncoderConfig::new(w.tokens, w.slots)))
        .with_norm(norm)
        .with_global(GlobalCondition::DrivingLabels);
    let mut video_ldm = image_ldm.clone();
    video_ldm.video = Some(VideoConfig::new(TemporalLayers::ConvAndAttention).with_context_channels(Some(z)));
    let mut interpolator = video_ldm.clone();
    interpolator.video =
        Some(VideoConfig::new(TemporalLayers::ConvAndAttention).with_context_channels(Some(z)).with_fps_flag(true));
    // The upsampler's UNet works on r×r pixel blocks as channels (see upsampler.rs).
    let rr = 3 * w.unshuffle * w.unshuffle;
    let upsampler_unet = UNetConfig::new(rr, rr, w.up, w.up_mult, 1, vec![], w.heads)
        .with_video(Some(VideoConfig::new(TemporalLayers::ConvAndAttention)))
        .with_extra_in_channels(rr)
        .with_norm(NormKind::Channel)
        .with_global(GlobalCondition::NoiseLevel);
    TierConfig {
        tier,
        frame_size,
        window,
        autoencoder,
        discriminator: Discriminator3dConfig::new(w.disc, 2),
        image_ldm,
        video_ldm,
        interpolator,
        upsampler: UpsamplerConfig::new(upsampler_unet)
            .with_unshuffle(w.unshuffle)
            .with_prediction(crate::diffusion::Prediction::Sample),
        // Whole frames: the autoencoder's group norms take statistics over the whole map, so
        // a network trained on quarter-frame crops (a crop of sky, a crop of road) meets other
        // statistics on the frames it encodes. Measured on the tiny tier (one core, z = 8,
        // shortcuts): whole frames at batch 1 reached held-out L1 0.1027 at step 300, quarter
        // crops at batch 4 (the same pixels per step) 0.1065, at 1.76 vs 1.55 s per step.
        autoencoder_crop: None,
        // A quarter of the 512×1024 frame for tiny (CPU), a half otherwise.
        upsampler_patch: match tier {
            ModelTier::Tiny => (frame_size.0, frame_size.1),
            _ => (2 * frame_size.0, 2 * frame_size.1),
        },
    }
}
