//! The trained models of one weights folder, loaded as its manifest describes them.

use std::path::{Path, PathBuf};

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use serde::Serialize;

use super::PipelineError;
use crate::diffusion::{DiffusionConfig, LatentNorm};
use crate::model::autoencoder::Decoder;
use crate::model::{Autoencoder, AutoencoderConfig, ModelTier, UNet, UNetConfig, Upsampler, UpsamplerConfig};
use crate::weights::{Manifest, ModelEntry, Part, TemporalInit, WeightsError, load_parts};

/// A weights file the run used, as recorded in `metadata.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct WeightFile {
    pub model: String,
    pub path: PathBuf,
    pub sha256: String,
}

/// Everything the generator runs, on backend `B`.
#[derive(Debug)]
pub struct Models<B: Backend> {
    pub tier: ModelTier,
    /// Where they were loaded from (`None` for seeded test models).
    pub dir: Option<PathBuf>,
    pub autoencoder: Autoencoder<B>,
    /// Its configuration: latent channels and downsampling factor of the latents.
    pub autoencoder_config: AutoencoderConfig,
    /// The video-fine-tuned decoder (absent if that stage was not trained).
    pub temporal_decoder: Option<Decoder<B>>,
    /// The denoisers' latents are the posterior means normalised by this (the image LDM's
    /// per-channel normalisation, or the autoencoder's one scale).
    pub latent_norm: LatentNorm,
    pub image_ldm: UNet<B>,
    pub video_ldm: UNet<B>,
    pub interpolator: Option<UNet<B>>,
    /// Noise schedule and parameterisation the latent denoisers were trained with (one for
    /// all three: the video models are the image LDM's spatial layers plus temporal ones).
    pub diffusion: DiffusionConfig,
    pub upsampler: Option<Upsampler<B>>,
    /// Whether the upsampler carries video-fine-tuned temporal layers.
    pub upsampler_video: bool,
    /// Files and hashes, for metadata and replay.
    pub files: Vec<WeightFile>,
}

/// Which of the optional models to load (the image and video LDMs and the autoencoder
/// are always needed). A model left out is `None` in [`Models`], its files are neither
/// checked nor recorded, and a run that needs it fails with `MissingModel`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needs {
    pub interpolator: bool,
    pub temporal_decoder: bool,
    pub upsampler: bool,
}

impl Needs {
    pub const ALL: Needs = Needs { interpolator: true, temporal_decoder: true, upsampler: true };

    /// What a run with `opts` uses.
    pub fn of(opts: &super::GenerateOptions) -> Self {
        Needs {
            interpolator: opts.interpolate,
            temporal_decoder: opts.decoder == super::DecoderMode::Temporal,
            upsampler: opts.upsample != super::UpsampleMode::Off,
        }
    }

    /// Whether the model `name` of a manifest is loaded.
    pub fn wants(&self, name: &str) -> bool {
        match name {
            "interpolator" => self.interpolator,
            "temporal_decoder" => self.temporal_decoder,
            "upsampler" => self.upsampler,
            _ => true,
        }
    }
}

impl<B: Backend> Models<B> {
    /// Loads every model of `dir` (a folder with `manifest.ron`), checking each file's
    /// size and SHA-256 against the manifest first.
    pub fn load(dir: &Path, device: &B::Device) -> Result<Self, PipelineError> {
        Self::load_for(dir, device, Needs::ALL)
    }

    /// Loads the models of `dir` that `needs` asks for (see [`Needs`]): a preview
    /// without upsampling neither reads nor checks the upsampler's files.
    pub fn load_for(dir: &Path, device: &B::Device, needs: Needs) -> Result<Self, PipelineError> {
        let manifest = match Manifest::read(dir) {
            Ok(m) => m,
            Err(WeightsError::MissingFile { .. }) => {
                return Err(PipelineError::NoWeights { dir: dir.to_path_buf() });
            }
            Err(e) => return Err(e.into()),
        };
        manifest.verify_models(dir, |name| needs.wants(name))?;
        let mpath = Manifest::path(dir);
        let tier = manifest.tier;
        let require = |name: &'static str, stage: &'static str| {
            manifest.model(name).ok_or_else(|| PipelineError::MissingModel {
                dir: dir.to_path_buf(),
                model: name,
                stage,
                tier: tier.dir_name(),
                hint: String::new(),
            })
        };
        let file =
            |e: &ModelEntry, part: Part| -> Result<Option<PathBuf>, PipelineError> { Ok(e.file_path(dir, part)?) };
        let spatial = |e: &ModelEntry| -> Result<PathBuf, PipelineError> {
            file(e, Part::Spatial)?
                .ok_or_else(|| PipelineError::Weights(WeightsError::MissingFile { path: mpath.clone() }))
        };
        let mut files = Vec::new();
        let mut record = |e: &ModelEntry| {
            for f in &e.files {
                files.push(WeightFile { model: e.name.clone(), path: f.path.clone(), sha256: f.sha256.clone() });
            }
        };

        let ae_entry = require("autoencoder", "autoencoder")?;
        let ae_cfg: AutoencoderConfig = ae_entry.config(&mpath)?;
        let autoencoder = load_parts(ae_cfg.init::<B>(device), &spatial(ae_entry)?, None, TemporalInit::Require)?;
        record(ae_entry);

        let optional = |name: &str| manifest.model(name).filter(|_| needs.wants(name));
        let temporal_decoder = match optional("temporal_decoder") {
            Some(e) => {
                let cfg: AutoencoderConfig = e.config(&mpath)?;
                let decoder = cfg.init::<B>(device).decoder;
                let temporal = file(e, Part::Temporal)?;
                record(e);
                Some(load_parts(decoder, &spatial(e)?, temporal.as_deref(), TemporalInit::Require)?)
            }
            None => None,
        };

        let image_entry = require("image_ldm", "image-ldm")?;
        let image_cfg: UNetConfig = image_entry.config(&mpath)?;
        let diffusion = image_entry.diffusion.unwrap_or_default();
        let video_cfgs = [Some(require("video_ldm", "video-ldm")?), optional("interpolator")];
        // The latent denoisers must fit the folder's autoencoder and the image LDM they build on.
        for e in std::iter::once(image_entry).chain(video_cfgs.into_iter().flatten()) {
            let cfg: UNetConfig = e.config(&mpath)?;
            let trained = e.diffusion.unwrap_or_default();
            let mismatch = if trained != diffusion {
                format!(
                    "it was trained with {trained:?} but the image LDM, whose spatial layers it uses, with {diffusion:?}"
                )
            } else if e.latent_norm != image_entry.latent_norm {
                "it was trained on latents normalised otherwise than the image LDM, whose spatial layers it uses \
                 (train it again on this image LDM)"
                    .to_string()
            } else if cfg.in_channels != ae_cfg.latent_channels {
                format!(
                    "it denoises {}-channel latents but the folder's autoencoder makes {}-channel ones \
                     (train the latent stages again on this autoencoder)",
                    cfg.in_channels, ae_cfg.latent_channels
                )
            } else {
                continue;
            };
            return Err(WeightsError::ModelConfig {
                manifest: mpath.clone(),
                model: e.name.clone(),
                message: mismatch,
            }
            .into());
        }
        let latent_norm = manifest.latent_norm(dir, "image_ldm", "autoencoder", ae_cfg.latent_channels)?;
        let image_ldm = load_parts(image_cfg.init::<B>(device), &spatial(image_entry)?, None, TemporalInit::Require)?;
        record(image_entry);

        let load_video = |e: &ModelEntry| -> Result<UNet<B>, PipelineError> {
            let cfg: UNetConfig = e.config(&mpath)?;
            let temporal = file(e, Part::Temporal)?;
            Ok(load_parts(cfg.init::<B>(device), &spatial(e)?, temporal.as_deref(), TemporalInit::Require)?)
        };
        let video_entry = require("video_ldm", "video-ldm")?;
        let video_ldm = load_video(video_entry)?;
        record(video_entry);
        let interpolator = match optional("interpolator") {
            Some(e) => {
                record(e);
                Some(load_video(e)?)
            }
            None => None,
        };

        let (upsampler, upsampler_video) = match optional("upsampler") {
            Some(e) => {
                let mut cfg: UpsamplerConfig = e.config(&mpath)?;
                let temporal = file(e, Part::Temporal)?;
                if temporal.is_none() {
                    cfg.unet = cfg.unet.image_config();
                }
                record(e);
                let model =
                    load_parts(cfg.init::<B>(device), &spatial(e)?, temporal.as_deref(), TemporalInit::Require)?;
                (Some(model), temporal.is_some())
            }
            None => (None, false),
        };

        Ok(Models {
            tier,
            dir: Some(dir.to_path_buf()),
            autoencoder,
            autoencoder_config: ae_cfg,
            temporal_decoder,
            latent_norm,
            image_ldm,
            video_ldm,
            interpolator,
            diffusion,
            upsampler,
            upsampler_video,
            files,
        })
    }

    /// Every model of `tier` with seeded random weights (tests and benches of the
    /// pipeline's plumbing; the pictures are noise).
    pub fn seeded(tier: ModelTier, seed: u64, device: &B::Device) -> Self {
        Self::seeded_from(tier.config(), seed, device)
    }

    /// [`Models::seeded`] for a tier configuration (e.g. one with a wider latent).
    pub fn seeded_from(cfg: crate::model::TierConfig, seed: u64, device: &B::Device) -> Self {
        use crate::train::init::seeded_init;
        let tier = cfg.tier;
        let td = cfg.autoencoder.clone().with_temporal_decoder(true);
        Models {
            tier,
            dir: None,
            autoencoder: seeded_init(cfg.autoencoder.init(device), seed),
            autoencoder_config: cfg.autoencoder.clone(),
            temporal_decoder: Some(seeded_init(td.init::<B>(device).decoder, seed ^ 1)),
            latent_norm: LatentNorm::uniform(1.0, cfg.autoencoder.latent_channels),
            image_ldm: seeded_init(cfg.image_ldm.init(device), seed ^ 2),
            video_ldm: seeded_init(cfg.video_ldm.init(device), seed ^ 3),
            interpolator: Some(seeded_init(cfg.interpolator.init(device), seed ^ 4)),
            diffusion: DiffusionConfig::default(),
            upsampler: Some(seeded_init(cfg.upsampler.init(device), seed ^ 5)),
            upsampler_video: true,
            files: Vec::new(),
        }
    }

    /// Key-frame size `(height, width)`.
    pub fn frame_size(&self) -> (usize, usize) {
        self.tier.config().frame_size
    }

    /// Latent shape `(channels, height, width)` of one key frame.
    pub fn latent_shape(&self) -> (usize, usize, usize) {
        let (h, w) = self.frame_size();
        let f = self.autoencoder_config.factor();
        (self.autoencoder_config.latent_channels, h / f, w / f)
    }

    /// Frames per prediction window `T`.
    pub fn window(&self) -> usize {
        self.tier.config().window
    }

    /// [`decode_latents`] with these models.
    pub fn decode_frames(&self, latents: Tensor<B, 4>) -> Tensor<B, 4> {
        decode_latents(&self.autoencoder, &self.latent_norm, latents)
    }

    /// [`encode_frames`] with these models.
    pub fn encode_frames(&self, frames: Tensor<B, 4>) -> Tensor<B, 4> {
        encode_frames(&self.autoencoder, &self.latent_norm, frames)
    }
}

/// Latents `[n, z, h, w]`, normalised by `norm`, → their frames `[n, 3, H, W]` on [-1, 1]
/// through `ae`'s per-frame image decoder.
pub fn decode_latents<B: Backend>(ae: &Autoencoder<B>, norm: &LatentNorm, latents: Tensor<B, 4>) -> Tensor<B, 4> {
    ae.decoder.forward(norm.denormalize(latents), 1).clamp(-1.0, 1.0)
}

/// Frames `[n, 3, H, W]` on [-1, 1] → their latents (`ae`'s posterior means) normalised by
/// `norm`.
pub fn encode_frames<B: Backend>(ae: &Autoencoder<B>, norm: &LatentNorm, frames: Tensor<B, 4>) -> Tensor<B, 4> {
    let (mean, _) = ae.encoder.forward(frames);
    norm.normalize(mean)
}
