//! DDIM sampling (Song, Meng & Ermon 2021, "Denoising Diffusion Implicit Models", eq. 12):
//!
//! `x_prev = √ᾱ_prev · x̂_0 + √(1 − ᾱ_prev − σ²) · ε̂ + σ · z`,
//! `σ = η · √((1 − ᾱ_prev)/(1 − ᾱ_t)) · √(1 − ᾱ_t/ᾱ_prev)` (eq. 16).
//!
//! η = 0 is the deterministic DDIM sampler (an ODE solver); η = 1 matches DDPM's ancestral
//! sampler on the same timesteps. [`Ddim`] is built ready for a fixed number of steps and holds
//! no state between steps: step `i` depends only on its arguments.

use burn::tensor::{Tensor, backend::Backend};
use serde::{Deserialize, Serialize};

use super::DiffusionError;
use super::schedule::{DiffusionConfig, NoiseSchedule, Prediction, estimate_at};

/// Which of the `train_steps` noise levels a `steps`-step sampler visits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum TimestepSpacing {
    /// diffusers' `"leading"` (its DDIM default): `t_k = k · ⌊T/n⌋` for `k = n−1 … 0`. Starts
    /// below the noisiest level (950 of 999 for 20 steps; 0 for a single step).
    #[default]
    Leading,
    /// diffusers' `"trailing"`: `t_k = round(T·k/n) − 1` for `k = n … 1`. Always starts at
    /// `T − 1`, which Lin et al. 2024 ("Common Diffusion Noise Schedules and Sample Steps are
    /// Flawed", §3.3) recommend for few steps.
    Trailing,
}

impl TimestepSpacing {
    /// `steps` timesteps in `0..train_steps`, strictly decreasing. Needs
    /// `1 ≤ steps ≤ train_steps` (checked by [`Ddim::new`]).
    fn timesteps(self, train_steps: usize, steps: usize) -> Vec<usize> {
        match self {
            TimestepSpacing::Leading => {
                // Integer division on purpose: timesteps are indices, a stride of ⌊T/n⌋ ≥ 1.
                let stride = train_steps / steps;
                (0..steps).rev().map(|k| k * stride).collect()
            }
            TimestepSpacing::Trailing => {
                let ratio = train_steps as f64 / steps as f64;
                // Consecutive values differ by ratio ≥ 1, so the rounded values stay distinct.
                (1..=steps).rev().map(|k| (k as f64 * ratio).round() as usize - 1).collect()
            }
        }
    }
}

/// DDIM settings, as they appear in a sampling config.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DdimConfig {
    /// Number of denoising steps, `1..=train_steps`.
    pub steps: usize,
    /// Stochasticity η ∈ [0, 1]; 0 is deterministic.
    pub eta: f64,
    pub spacing: TimestepSpacing,
}

impl Default for DdimConfig {
    /// 50 deterministic steps with leading spacing, as LDM and diffusers sample by default.
    fn default() -> Self {
        DdimConfig { steps: 50, eta: 0.0, spacing: TimestepSpacing::Leading }
    }
}

/// One DDIM step's results.
#[derive(Debug, Clone)]
pub struct DdimOutput<B: Backend, const D: usize> {
    /// The next, less noisy sample `x_prev`.
    pub prev: Tensor<B, D>,
    /// The step's estimate of the clean sample x̂_0 (a preview of the final result).
    pub x0: Tensor<B, D>,
}

/// A DDIM sampler for one schedule, prediction type, step count and η.
#[derive(Debug, Clone, PartialEq)]
pub struct Ddim {
    prediction: Prediction,
    eta: f64,
    timesteps: Vec<usize>,
    /// ᾱ at `timesteps[i]`.
    alpha_bar: Vec<f64>,
    /// ᾱ at `timesteps[i + 1]`, and 1 after the last step, so that the last step returns its
    /// x̂_0 (diffusers' `set_alpha_to_one`).
    alpha_bar_prev: Vec<f64>,
    sigma: Vec<f64>,
}

impl Ddim {
    /// `steps` steps with η = `eta` and [`TimestepSpacing::Leading`].
    pub fn new(
        schedule: &NoiseSchedule,
        prediction: Prediction,
        steps: usize,
        eta: f64,
    ) -> Result<Self, DiffusionError> {
        Ddim::from_config(schedule, prediction, &DdimConfig { steps, eta, spacing: TimestepSpacing::Leading })
    }

    /// `steps` steps with η = `eta` for a model trained with `diffusion`: its schedule,
    /// its prediction and the spacing that schedule wants ([`DiffusionConfig::spacing`]).
    pub fn for_model(diffusion: &DiffusionConfig, steps: usize, eta: f64) -> Result<Self, DiffusionError> {
        let schedule = diffusion.schedule()?;
        Ddim::from_config(&schedule, diffusion.prediction, &DdimConfig { steps, eta, spacing: diffusion.spacing() })
    }

    /// The sampler a [`DdimConfig`] describes. Fails on a step count outside
    /// `1..=train_steps` or η outside [0, 1].
    pub fn from_config(
        schedule: &NoiseSchedule,
        prediction: Prediction,
        config: &DdimConfig,
    ) -> Result<Self, DiffusionError> {
        let train_steps = schedule.train_steps();
        if config.steps == 0 || config.steps > train_steps {
            return Err(DiffusionError::SamplingSteps { steps: config.steps, train_steps });
        }
        if !(0.0..=1.0).contains(&config.eta) {
            return Err(DiffusionError::Eta(config.eta));
        }
        let timesteps = config.spacing.timesteps(train_steps, config.steps);
        let alpha_bar: Vec<f64> = timesteps.iter().map(|&t| schedule.alpha_bar(t)).collect();
        let alpha_bar_prev: Vec<f64> = alpha_bar[1..].iter().copied().chain([1.0]).collect();
        let sigma = alpha_bar
            .iter()
            .zip(&alpha_bar_prev)
            .map(|(&a, &ap)| config.eta * ((1.0 - ap) / (1.0 - a) * (1.0 - a / ap)).sqrt())
            .collect();
        Ok(Ddim { prediction, eta: config.eta, timesteps, alpha_bar, alpha_bar_prev, sigma })
    }

    /// The timesteps visited, noisiest first: step `i` denoises at `timesteps()[i]`.
    pub fn timesteps(&self) -> &[usize] {
        &self.timesteps
    }

    /// Number of steps.
    pub fn len(&self) -> usize {
        self.timesteps.len()
    }

    /// Never true: a sampler has at least one step.
    pub fn is_empty(&self) -> bool {
        self.timesteps.is_empty()
    }

    pub fn prediction(&self) -> Prediction {
        self.prediction
    }

    pub fn eta(&self) -> f64 {
        self.eta
    }

    /// The noise scale σ of step `i` (eq. 16); 0 for every step when η = 0, and 0 at the last
    /// step whatever η. Panics if `i ≥ len()`.
    pub fn sigma(&self, i: usize) -> f64 {
        self.sigma[i]
    }

    /// ᾱ at step `i`'s timestep, `timesteps()[i]`.
    pub fn alpha_bar(&self, i: usize) -> f64 {
        self.alpha_bar[i]
    }

    /// Whether step `i` consumes fresh noise (σ_i > 0).
    pub fn needs_noise(&self, i: usize) -> bool {
        self.sigma[i] > 0.0
    }

    /// Step `i`: from `x_t` at `timesteps()[i]` and the model's `output` there (ε or v, per
    /// [`Self::prediction`]) to `x_prev` at the next timestep (or the clean sample after the
    /// last step). `x_t`, `output`, `noise`: `[b, ...]` → `[b, ...]`.
    ///
    /// `noise` (standard normal, like `x_t`) is used when σ_i > 0 and ignored otherwise.
    ///
    /// # Panics
    /// If `i ≥ len()`, or σ_i > 0 and `noise` is `None`.
    pub fn step<B: Backend, const D: usize>(
        &self,
        x_t: Tensor<B, D>,
        output: Tensor<B, D>,
        i: usize,
        noise: Option<Tensor<B, D>>,
    ) -> Tensor<B, D> {
        self.step_output(x_t, output, i, noise).prev
    }

    /// [`Self::step`], also returning the step's x̂_0.
    pub fn step_output<B: Backend, const D: usize>(
        &self,
        x_t: Tensor<B, D>,
        output: Tensor<B, D>,
        i: usize,
        noise: Option<Tensor<B, D>>,
    ) -> DdimOutput<B, D> {
        let (a_prev, sigma) = (self.alpha_bar_prev[i], self.sigma[i]);
        let est = estimate_at(&[self.alpha_bar[i]], x_t, output, self.prediction);
        // Direction pointing to x_t (eq. 12); clamp rounding below zero.
        let dir = (1.0 - a_prev - sigma * sigma).max(0.0).sqrt();
        let mut prev = est.x0.clone().mul_scalar(a_prev.sqrt()) + est.eps.mul_scalar(dir);
        if sigma > 0.0 {
            let z =
                noise.unwrap_or_else(|| panic!("DDIM step {i} has σ = {sigma} > 0 (η = {}) and needs noise", self.eta));
            prev = prev + z.mul_scalar(sigma);
        }
        DdimOutput { prev, x0: est.x0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diffusion::noise::gaussian;
    use burn::backend::Flex;
    use burn::tensor::TensorData;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    type B = Flex;

    #[test]
    fn timesteps_are_decreasing_in_range_and_of_requested_length() {
        let s = NoiseSchedule::ldm();
        for spacing in [TimestepSpacing::Leading, TimestepSpacing::Trailing] {
            for steps in [1, 2, 3, 7, 20, 50, 333, 999, 1000] {
                let cfg = DdimConfig { steps, eta: 0.0, spacing };
                let d = Ddim::from_config(&s, Prediction::Epsilon, &cfg).unwrap();
                let ts = d.timesteps();
                assert_eq!(ts.len(), steps, "{spacing:?} {steps}");
                assert!(ts.iter().all(|&t| t <= 999), "{spacing:?} {steps}: {ts:?}");
                assert!(ts.windows(2).all(|w| w[0] > w[1]), "{spacing:?} {steps}: {ts:?}");
            }
        }
        let lead = |n| Ddim::new(&s, Prediction::Epsilon, n, 0.0).unwrap().timesteps().to_vec();
        assert_eq!(lead(4), vec![750, 500, 250, 0]);
        assert_eq!(lead(3), vec![666, 333, 0]);
        assert_eq!(lead(1000), (0..1000).rev().collect::<Vec<_>>());
        let trail = |n| {
            let cfg = DdimConfig { steps: n, eta: 0.0, spacing: TimestepSpacing::Trailing };
            Ddim::from_config(&s, Prediction::Epsilon, &cfg).unwrap().timesteps().to_vec()
        };
        // diffusers: np.round(np.arange(1000, 0, -1000/3)) - 1 = [999, 666, 332].
        assert_eq!(trail(3), vec![999, 666, 332]);
        assert_eq!(trail(1), vec![999]);
    }

    #[test]
    fn invalid_settings_are_errors() {
        let s = NoiseSchedule::ldm();
        assert_eq!(
            Ddim::new(&s, Prediction::Epsilon, 0, 0.0).unwrap_err().to_string(),
            "DDIM needs 1..=1000 sampling steps, got 0"
        );
        assert!(Ddim::new(&s, Prediction::Epsilon, 1001, 0.0).is_err());
        assert_eq!(
            Ddim::new(&s, Prediction::Epsilon, 10, 1.5).unwrap_err().to_string(),
            "DDIM η must lie in [0, 1], got 1.5"
        );
        assert!(Ddim::new(&s, Prediction::Epsilon, 10, f64::NAN).is_err());
    }

    #[test]
    fn sigma_follows_eq_16() {
        let s = NoiseSchedule::ldm();
        let d = Ddim::new(&s, Prediction::Epsilon, 10, 0.5).unwrap();
        // Step 0: t = 900 → 800.
        let (a, ap) = (s.alpha_bar(900), s.alpha_bar(800));
        let want = 0.5 * ((1.0 - ap) / (1.0 - a)).sqrt() * (1.0 - a / ap).sqrt();
        assert!((d.sigma(0) - want).abs() < 1e-15);
        assert!(d.needs_noise(0));
        assert_eq!(d.sigma(9), 0.0, "the last step lands on ᾱ = 1 and adds no noise");
        let det = Ddim::new(&s, Prediction::Epsilon, 10, 0.0).unwrap();
        assert!((0..10).all(|i| det.sigma(i) == 0.0));
    }

    /// With the true ε, one deterministic step lands exactly on the forward process at the
    /// next timestep with the same noise (DDIM's defining property, eq. 7 with σ = 0).
    #[test]
    fn exact_epsilon_step_follows_the_forward_process() {
        let s = NoiseSchedule::ldm();
        let d = Ddim::new(&s, Prediction::V, 20, 0.0).unwrap();
        let dev = Default::default();
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let x0 = gaussian::<B, 2, _>([4, 8], &mut rng, &dev);
        let eps = gaussian::<B, 2, _>([4, 8], &mut rng, &dev);
        let (t, t_next) = (d.timesteps()[3], d.timesteps()[4]);
        let x_t = s.add_noise(x0.clone(), eps.clone(), &[t]);
        let v = s.training_target(x0.clone(), eps.clone(), &[t], Prediction::V);
        let out = d.step_output(x_t, v, 3, None);
        let want = s.add_noise(x0.clone(), eps, &[t_next]);
        let diff: f32 = (out.prev - want).abs().max().into_scalar();
        assert!(diff < 1e-5, "{diff}");
        let diff0: f32 = (out.x0 - x0).abs().max().into_scalar();
        assert!(diff0 < 1e-5, "{diff0}");
    }

    #[test]
    fn last_step_returns_the_clean_estimate() {
        let s = NoiseSchedule::ldm();
        let d = Ddim::new(&s, Prediction::Epsilon, 5, 1.0).unwrap();
        let dev = Default::default();
        let x = Tensor::<B, 1>::from_data(TensorData::new(vec![0.5f32, -1.0], [2]), &dev);
        let e = Tensor::<B, 1>::from_data(TensorData::new(vec![0.1f32, 0.2], [2]), &dev);
        // σ = 0 at the last step, so no noise is required even with η = 1.
        let out = d.step_output(x.clone(), e.clone(), 4, None);
        let want = s.estimate(x, e, &[d.timesteps()[4]], Prediction::Epsilon).x0;
        assert_eq!(out.prev.into_data(), want.into_data());
    }

    #[test]
    #[should_panic(expected = "needs noise")]
    fn stochastic_step_without_noise_panics() {
        let s = NoiseSchedule::ldm();
        let d = Ddim::new(&s, Prediction::Epsilon, 5, 1.0).unwrap();
        let x = Tensor::<B, 1>::zeros([2], &Default::default());
        let _ = d.step(x.clone(), x, 0, None);
    }
}
