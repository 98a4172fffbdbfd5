//! Diffusion: noise schedule, training losses, DDIM sampling, guidance. Knows nothing of driving.
//!
//! Everything here is generic over the burn [`Backend`](burn::tensor::backend::Backend) and over
//! the tensor rank `D`; axis 0 is always the batch axis `b`, the rest (`t, c, h, w` for video
//! latents, `c, h, w` for images) is broadcast over and never interpreted.
//!
//! - [`schedule`]: the forward process `q(x_t | x_0)` of DDPM (Ho et al. 2020) on a
//!   [`BetaSchedule`], the training target for ε- or v-[`Prediction`], and the conversion of a
//!   model output back to `(x̂_0, ε̂)`.
//! - [`noise`]: seeded Gaussian noise and training timesteps. Every draw takes an explicit RNG;
//!   burn's global backend RNG is never used.
//! - [`loss`]: (weighted) mean squared error, differentiable under `Autodiff<_>`.
//! - [`ddim`]: the DDIM sampler (Song et al. 2021), built ready for a number of steps and η.
//! - [`latent`]: the [`LatentNorm`] between an autoencoder's latents and the denoisers' (one
//!   scale, or a shift and scale per channel).
//! - [`guidance`]: classifier-free guidance (Ho & Salimans 2022) and its two-condition
//!   composition for labels and context.
//! - [`sampler`]: the [`Denoiser`] trait the model implements, and the sampling loop that
//!   combines guidance and DDIM with a progress/cancel hook. The sampler never sees the model.
//!
//! Training in one line per sample batch: draw `t` with [`sample_timesteps`] and `ε` with
//! [`gaussian`], form `x_t` with [`NoiseSchedule::add_noise`], regress the model output onto
//! [`NoiseSchedule::training_target`] with [`mse`] or [`weighted_mse`].

pub mod ddim;
pub mod guidance;
pub mod latent;
pub mod loss;
pub mod noise;
pub mod sampler;
pub mod schedule;

pub use ddim::{Ddim, DdimConfig, DdimOutput, TimestepSpacing};
pub use guidance::{Branch, Guidance, guide};
pub use latent::LatentNorm;
pub use loss::{LossWeighting, edge_l1, mse, per_sample_mse, spatially_weighted_mse, weighted_mse};
pub use noise::{gaussian, gaussian_like, sample_timesteps, sample_timesteps_biased, standard_normals};
pub use sampler::{Cancelled, Condition, Denoiser, Guide, Known, Progress, Sampler};
pub use schedule::{BetaSchedule, DiffusionConfig, Estimate, NoiseSchedule, Prediction};

/// Invalid diffusion settings, as they come from a config file or the command line.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DiffusionError {
    /// A schedule needs at least one training step.
    #[error("a noise schedule needs at least 1 training step, got 0")]
    NoTrainSteps,
    /// Every β_t must lie in the open interval (0, 1).
    #[error("β must lie in (0, 1), but step {step} of {schedule:?} has β = {beta}")]
    BetaOutOfRange { schedule: BetaSchedule, step: usize, beta: f64 },
    /// DDIM takes between 1 and `train_steps` sampling steps.
    #[error("DDIM needs 1..={train_steps} sampling steps, got {steps}")]
    SamplingSteps { steps: usize, train_steps: usize },
    /// DDIM's η interpolates between deterministic DDIM (0) and DDPM-like sampling (1).
    #[error("DDIM η must lie in [0, 1], got {0}")]
    Eta(f64),
    /// ε-prediction cannot recover x̂_0 where ᾱ = 0.
    #[error("a zero-terminal-SNR schedule needs v- or x_0-prediction, not ε (x̂_0 is undefined where ᾱ = 0)")]
    ZeroSnrEpsilon,
}
