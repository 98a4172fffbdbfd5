//! The forward (noising) process of DDPM (Ho et al. 2020, §2):
//! `x_t = √ᾱ_t · x_0 + √(1 − ᾱ_t) · ε`, `ᾱ_t = Π_{s ≤ t} (1 − β_s)`, and the two ways a
//! model may parameterise its output: ε (the noise, Ho et al. 2020 eq. 11) or
//! `v = √ᾱ_t · ε − √(1 − ᾱ_t) · x_0` (Salimans & Ho 2022, "Progressive Distillation", §4).
//!
//! Timesteps are 0-based: `t = 0` is the least noisy level, `t = train_steps − 1` the noisiest.
//! Schedule values are computed in f64 and only rounded to the tensor's float type when they
//! multiply a tensor.

use burn::tensor::{Tensor, TensorData, backend::Backend};
use serde::{Deserialize, Serialize};

use super::DiffusionError;

/// How β_t grows over the training steps.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum BetaSchedule {
    /// `β_t = (√start + t/(T−1) · (√end − √start))²`: linear in √β. LDM's and Stable
    /// Diffusion's `scaled_linear`, with `0.00085 → 0.012` ([`BetaSchedule::LDM`]).
    ScaledLinear { beta_start: f64, beta_end: f64 },
    /// `β_t = start + t/(T−1) · (end − start)`: DDPM's linear schedule (Ho et al. use
    /// `1e-4 → 0.02` over 1000 steps).
    Linear { beta_start: f64, beta_end: f64 },
}

impl BetaSchedule {
    /// The LDM schedule (Rombach et al. 2022, `configs/latent-diffusion/*.yaml`:
    /// `linear_start: 0.00085, linear_end: 0.012`, which their code squares from √-space).
    pub const LDM: Self = BetaSchedule::ScaledLinear { beta_start: 0.00085, beta_end: 0.012 };

    /// The `steps` values β_0..β_{steps−1}, in f64.
    pub fn betas(&self, steps: usize) -> Vec<f64> {
        // Position along the schedule in [0, 1]; float division on purpose (an integer
        // `t / (steps - 1)` would be 0 for every t but the last).
        let frac = |t: usize| {
            if steps > 1 { t as f64 / (steps - 1) as f64 } else { 0.0 }
        };
        (0..steps)
            .map(|t| match *self {
                BetaSchedule::ScaledLinear { beta_start, beta_end } => {
                    let (a, b) = (beta_start.sqrt(), beta_end.sqrt());
                    let r = a + frac(t) * (b - a);
                    r * r
                }
                BetaSchedule::Linear { beta_start, beta_end } => beta_start + frac(t) * (beta_end - beta_start),
            })
            .collect()
    }
}

impl Default for BetaSchedule {
    fn default() -> Self {
        BetaSchedule::LDM
    }
}

/// What the denoiser outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Prediction {
    /// The noise ε that was added (DDPM, LDM).
    #[default]
    Epsilon,
    /// The velocity `v = √ᾱ · ε − √(1 − ᾱ) · x_0` (Salimans & Ho 2022; SVD, Video LDM notes §5).
    V,
    /// The clean sample x_0 itself (DDPM's "x_0-parameterisation"): the error of x̂_0 is the
    /// model's error at every noise level. The pixel-space upsampler uses it, see
    /// `model::UpsamplerConfig::prediction`.
    Sample,
}

/// Everything a trained model's diffusion needs, as one record for the weights manifest.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DiffusionConfig {
    pub betas: BetaSchedule,
    /// Number of discrete noise levels the model was trained on (1000 in DDPM and LDM).
    pub train_steps: usize,
    pub prediction: Prediction,
    /// The schedule rescaled to zero terminal SNR (Lin et al. 2024, "Common Diffusion Noise
    /// Schedules and Sample Steps are Flawed", Alg. 1): the noisiest level holds no signal,
    /// so sampling from pure noise is what training saw. Needs v-prediction; sampled with
    /// trailing timesteps (their §3.3).
    #[serde(default)]
    pub zero_terminal_snr: bool,
}

impl Default for DiffusionConfig {
    /// LDM's: ε-prediction on the scaled-linear schedule, whose last level keeps
    /// √ᾱ ≈ 0.068 of the signal.
    fn default() -> Self {
        DiffusionConfig {
            betas: BetaSchedule::LDM,
            train_steps: 1000,
            prediction: Prediction::Epsilon,
            zero_terminal_snr: false,
        }
    }
}

impl DiffusionConfig {
    /// LDM's schedule rescaled to zero terminal SNR, with v-prediction.
    pub fn v_zero_snr() -> Self {
        DiffusionConfig { prediction: Prediction::V, zero_terminal_snr: true, ..Default::default() }
    }

    /// The schedule this config describes. Fails for invalid β, and for zero terminal SNR
    /// with ε-prediction (x̂_0 = (x_t − √(1−ᾱ)·ε̂)/√ᾱ is undefined where ᾱ = 0).
    pub fn schedule(&self) -> Result<NoiseSchedule, DiffusionError> {
        let schedule = NoiseSchedule::new(self.betas, self.train_steps)?;
        if !self.zero_terminal_snr {
            return Ok(schedule);
        }
        if self.prediction == Prediction::Epsilon {
            return Err(DiffusionError::ZeroSnrEpsilon);
        }
        Ok(schedule.with_zero_terminal_snr())
    }

    /// How DDIM spaces its timesteps for this model: trailing (starting at the noisiest
    /// level) with zero terminal SNR, LDM's leading spacing otherwise.
    pub fn spacing(&self) -> super::TimestepSpacing {
        if self.zero_terminal_snr { super::TimestepSpacing::Trailing } else { super::TimestepSpacing::Leading }
    }
}

/// A model output split into its two readings at the same `x_t`.
#[derive(Debug, Clone)]
pub struct Estimate<B: Backend, const D: usize> {
    /// Predicted clean sample x̂_0, shaped like `x_t`.
    pub x0: Tensor<B, D>,
    /// Predicted noise ε̂, shaped like `x_t`.
    pub eps: Tensor<B, D>,
}

/// The discrete forward process: ᾱ_t for `t ∈ 0..train_steps`.
#[derive(Debug, Clone, PartialEq)]
pub struct NoiseSchedule {
    kind: BetaSchedule,
    zero_terminal_snr: bool,
    alphas_cumprod: Vec<f64>,
}

impl NoiseSchedule {
    /// Builds the schedule of `kind` over `train_steps` levels.
    ///
    /// Fails when `train_steps` is 0 or some β_t falls outside (0, 1).
    pub fn new(kind: BetaSchedule, train_steps: usize) -> Result<Self, DiffusionError> {
        if train_steps == 0 {
            return Err(DiffusionError::NoTrainSteps);
        }
        let betas = kind.betas(train_steps);
        if let Some((step, &beta)) = betas.iter().enumerate().find(|&(_, &b)| !(b > 0.0 && b < 1.0)) {
            return Err(DiffusionError::BetaOutOfRange { schedule: kind, step, beta });
        }
        let alphas_cumprod = betas
            .iter()
            .scan(1.0_f64, |acc, beta| {
                *acc *= 1.0 - beta;
                Some(*acc)
            })
            .collect();
        Ok(NoiseSchedule { kind, zero_terminal_snr: false, alphas_cumprod })
    }

    /// This schedule rescaled so that its last level has ᾱ = 0 (no signal) and its first
    /// keeps its ᾱ: `√ᾱ_t ← (√ᾱ_t − √ᾱ_T) · √ᾱ_0 / (√ᾱ_0 − √ᾱ_T)` (Lin et al. 2024, Alg. 1).
    /// A one-level schedule is returned as it is.
    pub fn with_zero_terminal_snr(mut self) -> Self {
        let (Some(&first), Some(&last)) = (self.alphas_cumprod.first(), self.alphas_cumprod.last()) else {
            return self;
        };
        let (a0, at) = (first.sqrt(), last.sqrt());
        if self.alphas_cumprod.len() < 2 || a0 <= at {
            return self;
        }
        for a in &mut self.alphas_cumprod {
            let r = (a.sqrt() - at) * a0 / (a0 - at);
            *a = r * r;
        }
        self.zero_terminal_snr = true;
        self
    }

    /// Whether the last level holds no signal (see [`Self::with_zero_terminal_snr`]).
    pub fn zero_terminal_snr(&self) -> bool {
        self.zero_terminal_snr
    }

    /// LDM's schedule: scaled-linear `0.00085 → 0.012` over 1000 steps.
    pub fn ldm() -> Self {
        NoiseSchedule::new(BetaSchedule::LDM, 1000).expect("the LDM constants form a valid schedule")
    }

    pub fn kind(&self) -> BetaSchedule {
        self.kind
    }

    /// Number of noise levels T; valid timesteps are `0..T`.
    pub fn train_steps(&self) -> usize {
        self.alphas_cumprod.len()
    }

    /// ᾱ_t for every `t`, decreasing from ≈ 1 to ≈ 0.
    pub fn alphas_cumprod(&self) -> &[f64] {
        &self.alphas_cumprod
    }

    /// ᾱ_t. Panics if `t ≥ train_steps`.
    pub fn alpha_bar(&self, t: usize) -> f64 {
        self.alphas_cumprod[t]
    }

    /// Signal-to-noise ratio `ᾱ_t / (1 − ᾱ_t)`.
    pub fn snr(&self, t: usize) -> f64 {
        let a = self.alpha_bar(t);
        a / (1.0 - a)
    }

    fn alpha_bars(&self, t: &[usize]) -> Vec<f64> {
        t.iter().map(|&t| self.alpha_bar(t)).collect()
    }

    /// Samples `q(x_t | x_0)`: `√ᾱ_t · x_0 + √(1 − ᾱ_t) · noise`.
    ///
    /// `x0`, `noise`: `[b, ...]`; `t`: one timestep per sample (`b` entries) or one shared
    /// by the batch. Returns `x_t`, `[b, ...]`.
    ///
    /// # Panics
    /// If `t.len()` is neither 1 nor `b`, or some `t ≥ train_steps`.
    pub fn add_noise<B: Backend, const D: usize>(
        &self,
        x0: Tensor<B, D>,
        noise: Tensor<B, D>,
        t: &[usize],
    ) -> Tensor<B, D> {
        let a = self.alpha_bars(t);
        scale(x0, &sqrt_of(&a)) + scale(noise, &sqrt_of(&one_minus(&a)))
    }

    /// What the model should output for `x_t = add_noise(x0, noise, t)`: `noise` for ε,
    /// `√ᾱ_t · noise − √(1 − ᾱ_t) · x0` for v. Shapes and panics as [`Self::add_noise`].
    ///
    /// This is also the inverse of [`Self::estimate`]: from `(x̂_0, ε̂)` back to a model output.
    pub fn training_target<B: Backend, const D: usize>(
        &self,
        x0: Tensor<B, D>,
        noise: Tensor<B, D>,
        t: &[usize],
        prediction: Prediction,
    ) -> Tensor<B, D> {
        match prediction {
            Prediction::Epsilon => noise,
            Prediction::V => {
                let a = self.alpha_bars(t);
                scale(noise, &sqrt_of(&a)) - scale(x0, &sqrt_of(&one_minus(&a)))
            }
            Prediction::Sample => x0,
        }
    }

    /// Reads a model `output` at `x_t` as `(x̂_0, ε̂)`. Shapes and panics as [`Self::add_noise`].
    pub fn estimate<B: Backend, const D: usize>(
        &self,
        x_t: Tensor<B, D>,
        output: Tensor<B, D>,
        t: &[usize],
        prediction: Prediction,
    ) -> Estimate<B, D> {
        estimate_at(&self.alpha_bars(t), x_t, output, prediction)
    }
}

/// [`NoiseSchedule::estimate`] for given ᾱ values (one per sample or one shared).
pub(crate) fn estimate_at<B: Backend, const D: usize>(
    alpha_bar: &[f64],
    x_t: Tensor<B, D>,
    output: Tensor<B, D>,
    prediction: Prediction,
) -> Estimate<B, D> {
    let sqrt_a = sqrt_of(alpha_bar);
    let sqrt_1ma = sqrt_of(&one_minus(alpha_bar));
    match prediction {
        // x_t = √ᾱ x_0 + √(1−ᾱ) ε  ⇒  x_0 = (x_t − √(1−ᾱ) ε) / √ᾱ.
        Prediction::Epsilon => {
            let inv_sqrt_a: Vec<f64> = sqrt_a.iter().map(|s| 1.0 / s).collect();
            let x0 = scale(x_t - scale(output.clone(), &sqrt_1ma), &inv_sqrt_a);
            Estimate { x0, eps: output }
        }
        // With v = √ᾱ ε − √(1−ᾱ) x_0 and √ᾱ² + √(1−ᾱ)² = 1 (a rotation):
        // x_0 = √ᾱ x_t − √(1−ᾱ) v,  ε = √(1−ᾱ) x_t + √ᾱ v.
        Prediction::V => {
            let x0 = scale(x_t.clone(), &sqrt_a) - scale(output.clone(), &sqrt_1ma);
            let eps = scale(x_t, &sqrt_1ma) + scale(output, &sqrt_a);
            Estimate { x0, eps }
        }
        // ε = (x_t − √ᾱ x_0) / √(1−ᾱ).
        Prediction::Sample => {
            let inv_sqrt_1ma: Vec<f64> = sqrt_1ma.iter().map(|s| 1.0 / s).collect();
            let eps = scale(x_t - scale(output.clone(), &sqrt_a), &inv_sqrt_1ma);
            Estimate { x0: output, eps }
        }
    }
}

fn sqrt_of(v: &[f64]) -> Vec<f64> {
    v.iter().map(|x| x.sqrt()).collect()
}

fn one_minus(v: &[f64]) -> Vec<f64> {
    v.iter().map(|x| 1.0 - x).collect()
}

/// Multiplies `x` (`[b, ...]`) by one coefficient shared by the batch (`coef.len() == 1`) or
/// one per sample along axis 0 (`coef.len() == b`), broadcast over the other axes.
pub(crate) fn scale<B: Backend, const D: usize>(x: Tensor<B, D>, coef: &[f64]) -> Tensor<B, D> {
    let b = x.dims()[0];
    match coef {
        [c] => x.mul_scalar(*c),
        _ => {
            assert_eq!(coef.len(), b, "need one timestep per sample ({b}) or one for the batch, got {}", coef.len());
            let mut shape = [1usize; D];
            shape[0] = b;
            let values: Vec<f32> = coef.iter().map(|&c| c as f32).collect();
            let c = Tensor::<B, 1>::from_data(TensorData::new(values, [b]), &x.device());
            x * c.reshape(shape)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;

    type B = Flex;

    fn vec_of<const D: usize>(x: Tensor<B, D>) -> Vec<f32> {
        x.into_data().to_vec::<f32>().unwrap()
    }

    fn tensor(values: &[f32], shape: [usize; 3]) -> Tensor<B, 3> {
        Tensor::from_data(TensorData::new(values.to_vec(), shape), &Default::default())
    }

    fn assert_close(a: &[f32], b: &[f32], tol: f32) {
        assert_eq!(a.len(), b.len());
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!((x - y).abs() <= tol, "element {i}: {x} vs {y}");
        }
    }

    /// ᾱ_t = Π_{s≤t} (1 − (√β₀ + s/999 · (√β₁ − √β₀))²), recomputed here from the formula.
    #[test]
    fn scaled_linear_golden_values() {
        let s = NoiseSchedule::ldm();
        assert_eq!(s.train_steps(), 1000);
        let (a, b) = (0.00085_f64.sqrt(), 0.012_f64.sqrt());
        let mut expected = Vec::new();
        let mut acc = 1.0_f64;
        for t in 0..1000 {
            let r = a + (t as f64) * (b - a) / 999.0;
            acc *= 1.0 - r * r;
            expected.push(acc);
        }
        for t in [0, 499, 999] {
            let got = s.alpha_bar(t);
            assert!((got - expected[t]).abs() < 1e-12, "ᾱ_{t}: {got} vs {}", expected[t]);
        }
        // Independent anchors: ᾱ_0 = 1 − β_0, and the well-known ≈ 0.0047 at t = 999
        // (Stable Diffusion's terminal ᾱ; non-zero terminal SNR).
        assert!((s.alpha_bar(0) - (1.0 - 0.00085)).abs() < 1e-15);
        assert!((s.alpha_bar(999) - 0.004_660).abs() < 1e-5, "{}", s.alpha_bar(999));
        // Strictly decreasing, all in (0, 1).
        assert!(s.alphas_cumprod().windows(2).all(|w| w[1] < w[0]));
    }

    #[test]
    fn linear_schedule_endpoints_and_validation() {
        let kind = BetaSchedule::Linear { beta_start: 1e-4, beta_end: 0.02 };
        let betas = kind.betas(1000);
        assert_eq!(betas[0], 1e-4);
        assert!((betas[999] - 0.02).abs() < 1e-15);
        assert!((betas[500] - (1e-4 + 500.0 / 999.0 * (0.02 - 1e-4))).abs() < 1e-15);
        assert_eq!(NoiseSchedule::new(kind, 0), Err(DiffusionError::NoTrainSteps));
        let bad = BetaSchedule::Linear { beta_start: 0.5, beta_end: 1.5 };
        assert_eq!(
            NoiseSchedule::new(bad, 3).unwrap_err().to_string(),
            "β must lie in (0, 1), but step 1 of Linear { beta_start: 0.5, beta_end: 1.5 } has β = 1"
        );
    }

    #[test]
    fn add_noise_uses_per_sample_timesteps() {
        let s = NoiseSchedule::ldm();
        let x0 = tensor(&[1.0, 2.0, -1.0, 0.5], [2, 1, 2]);
        let noise = tensor(&[0.3, -0.7, 1.1, 0.2], [2, 1, 2]);
        let t = [10, 900];
        let got = vec_of(s.add_noise(x0, noise, &t));
        let (a0, a1) = (s.alpha_bar(10), s.alpha_bar(900));
        let f = |a: f64, x: f64, e: f64| (a.sqrt() * x + (1.0 - a).sqrt() * e) as f32;
        let want = [f(a0, 1.0, 0.3), f(a0, 2.0, -0.7), f(a1, -1.0, 1.1), f(a1, 0.5, 0.2)];
        assert_close(&got, &want, 1e-6);
        // One shared timestep broadcasts over the batch.
        let x0 = tensor(&[1.0, 2.0, -1.0, 0.5], [2, 1, 2]);
        let noise = tensor(&[0.3, -0.7, 1.1, 0.2], [2, 1, 2]);
        let shared = vec_of(s.add_noise(x0.clone(), noise.clone(), &[10]));
        let per = vec_of(s.add_noise(x0, noise, &[10, 10]));
        assert_close(&shared, &per, 1e-7);
    }

    #[test]
    fn targets_and_estimates_round_trip_for_every_prediction() {
        let s = NoiseSchedule::ldm();
        let x0 = tensor(&[1.0, 2.0, -1.0, 0.5, 0.0, -2.0], [3, 1, 2]);
        let noise = tensor(&[0.3, -0.7, 1.1, 0.2, -1.5, 0.9], [3, 1, 2]);
        let t = [0, 500, 999];
        let x_t = s.add_noise(x0.clone(), noise.clone(), &t);
        for prediction in [Prediction::Epsilon, Prediction::V, Prediction::Sample] {
            let target = s.training_target(x0.clone(), noise.clone(), &t, prediction);
            let est = s.estimate(x_t.clone(), target.clone(), &t, prediction);
            // x̂_0 at t = 999 divides by √ᾱ ≈ 0.07 for ε: f32 error grows by ~15×.
            assert_close(&vec_of(est.x0.clone()), &vec_of(x0.clone()), 2e-5);
            assert_close(&vec_of(est.eps.clone()), &vec_of(noise.clone()), 2e-5);
            // And back: the target is the model output that reads as (x̂_0, ε̂).
            let again = s.training_target(est.x0, est.eps, &t, prediction);
            assert_close(&vec_of(again), &vec_of(target), 2e-5);
        }
        // v differs from ε (so the test above exercised two different conversions).
        let v = vec_of(s.training_target(x0, noise.clone(), &t, Prediction::V));
        assert!((v[0] - 0.3).abs() > 1e-3 || (v[4] + 1.5).abs() > 1e-3);
    }

    #[test]
    fn v_target_matches_its_definition() {
        let s = NoiseSchedule::ldm();
        let x0 = tensor(&[1.0, -2.0], [1, 1, 2]);
        let noise = tensor(&[0.5, 0.25], [1, 1, 2]);
        let a = s.alpha_bar(300);
        let got = vec_of(s.training_target(x0, noise, &[300], Prediction::V));
        let want =
            [(a.sqrt() * 0.5 - (1.0 - a).sqrt() * 1.0) as f32, (a.sqrt() * 0.25 + (1.0 - a).sqrt() * 2.0) as f32];
        assert_close(&got, &want, 1e-6);
    }

    #[test]
    #[should_panic(expected = "need one timestep per sample")]
    fn wrong_timestep_count_panics() {
        let s = NoiseSchedule::ldm();
        let x = tensor(&[0.0; 6], [3, 1, 2]);
        let _ = s.add_noise(x.clone(), x, &[1, 2]);
    }

    #[test]
    fn config_serialises_as_ron_enums() {
        let cfg = DiffusionConfig { prediction: Prediction::V, ..Default::default() };
        let text = ron::to_string(&cfg).unwrap();
        assert!(text.contains("ScaledLinear"), "{text}");
        let back: DiffusionConfig = ron::from_str(&text).unwrap();
        assert_eq!(back, cfg);
        assert_eq!(cfg.schedule().unwrap(), NoiseSchedule::ldm());
    }

    /// Lin et al.'s rescaling: the first level keeps its ᾱ, the last has none, the levels
    /// between keep their order; the v-reading at ᾱ = 0 is finite (x̂_0 = −v, ε̂ = x_t).
    #[test]
    fn zero_terminal_snr_rescales_the_ends_and_reads_v() {
        let base = NoiseSchedule::ldm();
        let z = DiffusionConfig::v_zero_snr().schedule().unwrap();
        assert!(z.zero_terminal_snr() && !base.zero_terminal_snr());
        assert!((z.alpha_bar(0) - base.alpha_bar(0)).abs() < 1e-12);
        assert_eq!(z.alpha_bar(999), 0.0);
        assert!(base.alpha_bar(999) > 0.004, "LDM's last level keeps signal: {}", base.alpha_bar(999));
        assert!(z.alphas_cumprod().windows(2).all(|w| w[0] > w[1]));
        assert_eq!(z.snr(999), 0.0);
        let (x, v) = (tensor(&[0.3, -1.2], [1, 1, 2]), tensor(&[0.5, 2.0], [1, 1, 2]));
        let e = z.estimate(x.clone(), v.clone(), &[999], Prediction::V);
        assert_close(&vec_of(e.x0), &[-0.5, -2.0], 1e-6);
        assert_close(&vec_of(e.eps), &vec_of(x), 1e-6);
        // ε-prediction cannot be read there: refused up front.
        let eps = DiffusionConfig { zero_terminal_snr: true, ..Default::default() };
        assert_eq!(eps.schedule().unwrap_err(), DiffusionError::ZeroSnrEpsilon);
        // Older manifests have no `zero_terminal_snr`: they read as LDM's schedule.
        let old: DiffusionConfig = ron::from_str(
            "(betas: ScaledLinear(beta_start: 0.00085, beta_end: 0.012), train_steps: 1000, prediction: V)",
        )
        .unwrap();
        assert!(!old.zero_terminal_snr);
        assert_eq!(DiffusionConfig::v_zero_snr().spacing(), crate::diffusion::TimestepSpacing::Trailing);
    }
}
