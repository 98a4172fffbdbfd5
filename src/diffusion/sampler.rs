//! The sampling loop: guidance and DDIM around any [`Denoiser`].
//!
//! The sampler sees the model only through [`Denoiser::predict`] and the condition only through
//! [`Condition`]'s dropped variants, so one loop serves the image, video, interpolation and
//! upsampling models alike.

use std::ops::ControlFlow;

use burn::tensor::{ElementConversion, Tensor, backend::Backend};
use rand::Rng;

use super::ddim::Ddim;
use super::guidance::{Branch, Guidance};
use super::noise::gaussian_like;

/// A condition that can produce its "dropped" variants, the inputs classifier-free guidance
/// compares against. A model trained with condition dropout (labels to a null class, context
/// mask to 0) implements this for its condition type.
///
/// A condition with nothing to drop (e.g. `()`) returns itself; guidance then has no effect.
pub trait Condition: Sized {
    /// `(∅, c)`: the labels replaced by their null variant, the context kept.
    fn without_labels(&self) -> Self;
    /// `(∅, ∅)`: labels and context both dropped.
    fn unconditional(&self) -> Self;
}

impl Condition for () {
    fn without_labels(&self) -> Self {}
    fn unconditional(&self) -> Self {}
}

/// A trained denoiser, as the sampler sees it.
pub trait Denoiser<B: Backend, const D: usize> {
    /// Everything besides `x_t` and `t` the model is conditioned on.
    type Cond: Condition;

    /// The model output at `x_t` (`[b, ...]`), noise level `t ∈ 0..train_steps` shared by the
    /// batch, under `cond` → `[b, ...]`: ε or v, as the model was trained (the [`Ddim`] it is
    /// sampled with must be built with the same [`Prediction`](super::Prediction)).
    fn predict(&self, x_t: Tensor<B, D>, t: usize, cond: &Self::Cond) -> Tensor<B, D>;
}

/// What the progress hook sees after each step.
#[derive(Debug)]
pub struct Progress<'a, B: Backend, const D: usize> {
    /// Index of the step just completed, `0..steps`.
    pub step: usize,
    /// Total number of steps.
    pub steps: usize,
    /// The timestep that step denoised at.
    pub t: usize,
    /// The sample after the step, `[b, ...]`.
    pub x: &'a Tensor<B, D>,
    /// The step's estimate of the final sample x̂_0, `[b, ...]` (for previews).
    pub x0: &'a Tensor<B, D>,
}

/// Sampling stopped by the progress hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("sampling cancelled after step {completed} of {steps}")]
pub struct Cancelled {
    /// Steps completed, including the one whose hook cancelled.
    pub completed: usize,
    pub steps: usize,
}

/// Entries of the sample that are known in advance (the context frames of a clip).
///
/// Before every step the sampler overwrites them in `x_t` with their clean `values` noised to
/// that step's level, `√ᾱ_t·values + √(1−ᾱ_t)·n`, and returns `values` there at the end. `n` is
/// the start noise at those entries, so with η = 0 the known entries follow the trajectory a
/// perfect model would give them. This is what a video model saw in training, where every frame
/// of a clip, its context frames included, is noised from the true latent; sampled freely they
/// follow the model's own trajectory instead (RePaint's replacement, Lugmayr et al. 2022,
/// without resampling).
#[derive(Debug, Clone)]
pub struct Known<B: Backend, const D: usize> {
    /// 1 at known entries, 0 elsewhere; the sample's shape.
    pub mask: Tensor<B, D>,
    /// The clean values at the known entries (and at the [`Guide`]'s, if any); like the sample.
    pub values: Tensor<B, D>,
    /// Entries that start from a guess in `values` instead of from noise.
    pub guide: Option<Guide<B, D>>,
}

/// Entries of the sample that start from a guess (SDEdit, Meng et al. 2022): for its first
/// `s` steps the sampler holds an entry like a known one, to `Known::values` noised to the
/// step's level with the start noise, and samples it freely from then on. With η = 0 that is
/// DDIM started at step `s` from the guess noised to that level. `s` may differ from entry
/// to entry (a guess trusted more in some places than in others, as in Levin & Fried 2023,
/// "Differential Diffusion").
#[derive(Debug, Clone)]
pub struct Guide<B: Backend, const D: usize> {
    /// How many first steps each entry is held for (whole numbers; 0 = not guided); the
    /// sample's shape.
    pub steps: Tensor<B, D>,
}

impl<B: Backend, const D: usize> Guide<B, D> {
    /// The entries of `mask` (1 or 0) held for the same `steps`.
    pub fn uniform(mask: Tensor<B, D>, steps: usize) -> Self {
        Guide { steps: mask.mul_scalar(steps as f32) }
    }
}

impl<B: Backend, const D: usize> Known<B, D> {
    /// Entries known in advance, no guide.
    pub fn new(mask: Tensor<B, D>, values: Tensor<B, D>) -> Self {
        Known { mask, values, guide: None }
    }

    /// How many first steps need no denoiser call: those followed by a step that holds every
    /// entry again (with the known entries, a guide held for at least `s` steps on every other
    /// entry: `s − 1`; otherwise none).
    fn steps_without_effect(&self) -> usize {
        let Some(g) = &self.guide else { return 0 };
        // Known entries count as held for ever.
        let fewest: f32 = (g.steps.clone() + self.mask.clone().mul_scalar(f32::MAX / 2.0)).min().into_scalar().elem();
        (fewest.round() as usize).saturating_sub(1)
    }

    /// The mask of the entries held before step `i`: the known ones, and the guided ones
    /// during their steps.
    fn held_at(&self, i: usize) -> Tensor<B, D> {
        match &self.guide {
            Some(g) => (self.mask.clone() + g.steps.clone().greater_elem(i as f32 + 0.5).float()).clamp_max(1.0),
            None => self.mask.clone(),
        }
    }
}

/// `x` with the entries of `mask` replaced by `with`.
fn put<B: Backend, const D: usize>(x: Tensor<B, D>, mask: Tensor<B, D>, with: Tensor<B, D>) -> Tensor<B, D> {
    x * (mask.clone().neg() + 1.0) + with * mask
}

/// A DDIM sampler with guidance weights, built ready.
#[derive(Debug, Clone, PartialEq)]
pub struct Sampler {
    pub ddim: Ddim,
    pub guidance: Guidance,
}

impl Sampler {
    pub fn new(ddim: Ddim, guidance: Guidance) -> Self {
        Sampler { ddim, guidance }
    }

    /// Denoiser evaluations a full run makes: steps × evaluations per step.
    pub fn evaluations(&self) -> usize {
        self.ddim.len() * self.guidance.evaluations()
    }

    /// Runs every step from `x_start` (`[b, ...]`, usually [`gaussian`](super::gaussian) noise)
    /// to the sample `x_0` (`[b, ...]`).
    ///
    /// `rng` is drawn from only for the steps with σ > 0 (η > 0), one standard normal tensor
    /// like `x_start` per such step; with η = 0 the result depends on `x_start` alone.
    pub fn sample<B, const D: usize, M, R>(
        &self,
        denoiser: &M,
        x_start: Tensor<B, D>,
        cond: &M::Cond,
        rng: &mut R,
    ) -> Tensor<B, D>
    where
        B: Backend,
        M: Denoiser<B, D>,
        R: Rng + ?Sized,
    {
        match self.sample_with_progress(denoiser, x_start, cond, rng, |_| ControlFlow::Continue(())) {
            Ok(x) => x,
            Err(Cancelled { .. }) => unreachable!("the hook never cancels"),
        }
    }

    /// [`Self::sample`], calling `on_step` after every step; returning
    /// `ControlFlow::Break(())` stops sampling with [`Cancelled`].
    pub fn sample_with_progress<B, const D: usize, M, R>(
        &self,
        denoiser: &M,
        x_start: Tensor<B, D>,
        cond: &M::Cond,
        rng: &mut R,
        on_step: impl FnMut(&Progress<'_, B, D>) -> ControlFlow<()>,
    ) -> Result<Tensor<B, D>, Cancelled>
    where
        B: Backend,
        M: Denoiser<B, D>,
        R: Rng + ?Sized,
    {
        self.sample_known_with_progress(denoiser, x_start, None, cond, rng, on_step)
    }

    /// [`Self::sample_with_progress`] with the `known` entries held to their values (see
    /// [`Known`]); `None` samples every entry freely.
    pub fn sample_known_with_progress<B, const D: usize, M, R>(
        &self,
        denoiser: &M,
        x_start: Tensor<B, D>,
        known: Option<&Known<B, D>>,
        cond: &M::Cond,
        rng: &mut R,
        mut on_step: impl FnMut(&Progress<'_, B, D>) -> ControlFlow<()>,
    ) -> Result<Tensor<B, D>, Cancelled>
    where
        B: Backend,
        M: Denoiser<B, D>,
        R: Rng + ?Sized,
    {
        // The dropped conditions are built once, and only if a weight needs them.
        let branches = self.guidance.branches();
        let context_only = branches.contains(&Branch::ContextOnly).then(|| cond.without_labels());
        let uncond = branches.contains(&Branch::Unconditional).then(|| cond.unconditional());
        let cond_of = |b: Branch| match b {
            Branch::Full => cond,
            Branch::ContextOnly => context_only.as_ref().expect("built above"),
            Branch::Unconditional => uncond.as_ref().expect("built above"),
        };

        let steps = self.ddim.len();
        // The known entries' noise: the start noise there (consumes no randomness).
        let start_noise = known.map(|_| x_start.clone());
        // Steps whose every entry the next step holds again need no denoiser: their result is
        // overwritten (a guide over all free entries; its last step still runs).
        let skipped = known.map_or(0, |k| k.steps_without_effect().min(steps.saturating_sub(1)));
        let mut x = x_start;
        for (i, &t) in self.ddim.timesteps().iter().enumerate() {
            if let (Some(k), Some(n)) = (known, &start_noise) {
                let a = self.ddim.alpha_bar(i);
                x = put(
                    x,
                    k.held_at(i),
                    k.values.clone().mul_scalar(a.sqrt()) + n.clone().mul_scalar((1.0 - a).sqrt()),
                );
                if i < skipped {
                    let progress = Progress { step: i, steps, t, x: &x, x0: &k.values };
                    if on_step(&progress).is_break() {
                        return Err(Cancelled { completed: i + 1, steps });
                    }
                    continue;
                }
            }
            let output = self.guidance.combine(|b| denoiser.predict(x.clone(), t, cond_of(b)));
            let noise = self.ddim.needs_noise(i).then(|| gaussian_like(&x, rng));
            let out = self.ddim.step_output(x, output, i, noise);
            x = out.prev;
            if let (Some(k), true) = (known, i + 1 == steps) {
                x = put(x, k.mask.clone(), k.values.clone());
            }
            let progress = Progress { step: i, steps, t, x: &x, x0: &out.x0 };
            if on_step(&progress).is_break() {
                return Err(Cancelled { completed: i + 1, steps });
            }
        }
        Ok(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diffusion::noise::gaussian;
    use crate::diffusion::schedule::{NoiseSchedule, Prediction};
    use burn::backend::Flex;
    use burn::tensor::TensorData;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use std::cell::Cell;

    type B = Flex;

    /// Which parts of a test condition are present; the mean of the data depends on it.
    #[derive(Debug, Clone, Copy)]
    struct Cond {
        labels: bool,
        context: bool,
    }

    impl Condition for Cond {
        fn without_labels(&self) -> Self {
            Cond { labels: false, ..*self }
        }
        fn unconditional(&self) -> Self {
            Cond { labels: false, context: false }
        }
    }

    /// The exact denoiser for data x_0 ~ N(μ, σ²) (independent per element), with μ chosen by
    /// which parts of the condition are present. Its posterior-mean noise at x_t is
    /// `E[ε | x_t] = √(1−ᾱ) · (x_t − √ᾱ·μ) / (ᾱσ² + 1 − ᾱ)`; v-output is converted from it.
    struct GaussianOracle {
        schedule: NoiseSchedule,
        prediction: Prediction,
        sigma: f64,
        /// μ for (∅,∅), (∅,c), (l,c).
        means: [f64; 3],
        calls: Cell<usize>,
    }

    impl GaussianOracle {
        fn new(prediction: Prediction, sigma: f64, means: [f64; 3]) -> Self {
            GaussianOracle { schedule: NoiseSchedule::ldm(), prediction, sigma, means, calls: Cell::new(0) }
        }
    }

    impl Denoiser<B, 2> for GaussianOracle {
        type Cond = Cond;

        fn predict(&self, x_t: Tensor<B, 2>, t: usize, cond: &Cond) -> Tensor<B, 2> {
            self.calls.set(self.calls.get() + 1);
            let mu = match (cond.labels, cond.context) {
                (false, false) => self.means[0],
                (false, true) => self.means[1],
                (true, true) => self.means[2],
                (true, false) => panic!("the sampler never drops only the context"),
            };
            let a = self.schedule.alpha_bar(t);
            let var = a * self.sigma * self.sigma + 1.0 - a;
            let eps = x_t.clone().sub_scalar(a.sqrt() * mu).mul_scalar((1.0 - a).sqrt() / var);
            match self.prediction {
                Prediction::Epsilon => eps,
                prediction => {
                    let x0 = self.schedule.estimate(x_t, eps.clone(), &[t], Prediction::Epsilon).x0;
                    self.schedule.training_target(x0, eps, &[t], prediction)
                }
            }
        }
    }

    const FULL: Cond = Cond { labels: true, context: true };

    /// Predicts ε = 0 everywhere (so each entry's trajectory depends on itself alone) and
    /// records every `x_t` it is given.
    struct Recorder(std::cell::RefCell<Vec<Vec<f32>>>);

    impl Denoiser<B, 2> for Recorder {
        type Cond = ();

        fn predict(&self, x_t: Tensor<B, 2>, _t: usize, _cond: &()) -> Tensor<B, 2> {
            self.0.borrow_mut().push(x_t.to_data().to_vec::<f32>().unwrap());
            x_t.zeros_like()
        }
    }

    /// The known entries reach the denoiser as `√ᾱ·value + √(1−ᾱ)·start noise` at every step
    /// and come out as their values; the free entries are sampled as without them.
    #[test]
    fn known_entries_are_fed_noised_and_returned_clean() {
        let device = Default::default();
        let s = sampler(Prediction::Epsilon, 4, 0.0, Guidance::NONE);
        let start = start_noise(9).slice([0..6, 0..1]);
        let start_v = start.to_data().to_vec::<f32>().unwrap();
        let values = [3.0f32, -2.0, 0.0, 0.0, 0.0, 0.0];
        let known = Known::new(
            Tensor::<B, 1>::from_floats([1.0, 1.0, 0.0, 0.0, 0.0, 0.0], &device).reshape([6, 1]),
            Tensor::<B, 1>::from_floats(values, &device).reshape([6, 1]),
        );
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let rec = Recorder(Default::default());
        let out = s
            .sample_known_with_progress(&rec, start.clone(), Some(&known), &(), &mut rng, |_| ControlFlow::Continue(()))
            .unwrap()
            .to_data()
            .to_vec::<f32>()
            .unwrap();
        let free = Recorder(Default::default());
        let plain = s.sample(&free, start, &(), &mut rng).to_data().to_vec::<f32>().unwrap();
        let seen = rec.0.borrow();
        assert_eq!(seen.len(), 4);
        for (i, x_t) in seen.iter().enumerate() {
            let a = s.ddim.alpha_bar(i);
            for k in 0..2 {
                let want = a.sqrt() * values[k] as f64 + (1.0 - a).sqrt() * start_v[k] as f64;
                assert!((x_t[k] as f64 - want).abs() < 1e-5, "step {i} entry {k}: {} vs {want}", x_t[k]);
            }
            assert_eq!(&x_t[2..], &free.0.borrow()[i][2..], "step {i}: free entries");
        }
        assert_eq!(&out[..2], &values[..2]);
        assert_eq!(&out[2..], &plain[2..]);
        assert_ne!(&plain[..2], &values[..2], "the test must not pass without replacement");
    }

    /// Guided entries are held like known ones for the guide's steps, then follow DDIM from
    /// there: with ε = 0 predicted, the first free step sees the held input of the step
    /// before scaled to its own level, `√ᾱ_2·(v + √((1−ᾱ_1)/ᾱ_1)·n)`. Known entries stay known.
    #[test]
    fn guided_entries_start_from_their_guess_then_go_free() {
        let device = Default::default();
        let s = sampler(Prediction::Epsilon, 4, 0.0, Guidance::NONE);
        let start = start_noise(9).slice([0..4, 0..1]);
        let n = start.to_data().to_vec::<f32>().unwrap();
        let values = [3.0f32, -2.0, 0.0, 0.0];
        let column = |v: [f32; 4]| Tensor::<B, 1>::from_floats(v, &device).reshape([4, 1]);
        let known = Known {
            guide: Some(Guide::uniform(column([0.0, 1.0, 0.0, 0.0]), 2)),
            ..Known::new(column([1.0, 0.0, 0.0, 0.0]), column(values))
        };
        let rec = Recorder(Default::default());
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let out = s
            .sample_known_with_progress(&rec, start, Some(&known), &(), &mut rng, |_| ControlFlow::Continue(()))
            .unwrap()
            .to_data()
            .to_vec::<f32>()
            .unwrap();
        let seen = rec.0.borrow();
        let held = |i: usize, k: usize| {
            let a = s.ddim.alpha_bar(i);
            a.sqrt() * values[k] as f64 + (1.0 - a).sqrt() * n[k] as f64
        };
        for i in 0..4 {
            assert!((seen[i][0] as f64 - held(i, 0)).abs() < 1e-5, "step {i}: known entry");
        }
        for i in 0..2 {
            assert!((seen[i][1] as f64 - held(i, 1)).abs() < 1e-5, "step {i}: guided entry not held");
        }
        let (a1, a2) = (s.ddim.alpha_bar(1), s.ddim.alpha_bar(2));
        let free = a2.sqrt() * (values[1] as f64 + ((1.0 - a1) / a1).sqrt() * n[1] as f64);
        assert!((seen[2][1] as f64 - free).abs() < 1e-4, "step 2: {} vs {free}", seen[2][1]);
        assert!((seen[2][1] as f64 - held(2, 1)).abs() > 1e-2, "step 2: the guided entry is still held");
        assert_eq!(out[0], values[0]);
    }

    /// A guide that with the known entries covers the sample skips the denoiser on every
    /// guided step but the last, and the result is what the full run gives: compared, entry by
    /// entry (the recorder denoises each entry alone), with the same guide leaving one entry free.
    #[test]
    fn a_guide_over_every_free_entry_skips_the_steps_it_overwrites() {
        let device = Default::default();
        let s = sampler(Prediction::Epsilon, 5, 0.0, Guidance::NONE);
        let start = start_noise(4).slice([0..4, 0..1]);
        let column = |v: [f32; 4]| Tensor::<B, 1>::from_floats(v, &device).reshape([4, 1]);
        let known = |guided: [f32; 4]| Known {
            guide: Some(Guide::uniform(column(guided), 3)),
            ..Known::new(column([1.0, 0.0, 0.0, 0.0]), column([3.0, -2.0, 1.0, 0.5]))
        };
        let run = |k: &Known<B, 2>| {
            let rec = Recorder(Default::default());
            let mut rng = ChaCha8Rng::seed_from_u64(0);
            let mut reported = 0;
            let out = s
                .sample_known_with_progress(&rec, start.clone(), Some(k), &(), &mut rng, |_| {
                    reported += 1;
                    ControlFlow::Continue(())
                })
                .unwrap();
            let calls = rec.0.borrow().len();
            (out.to_data().to_vec::<f32>().unwrap(), calls, reported)
        };
        let (covered, calls, reported) = run(&known([0.0, 1.0, 1.0, 1.0]));
        let (partial, all_calls, _) = run(&known([0.0, 1.0, 1.0, 0.0]));
        assert_eq!((calls, reported, all_calls), (3, 5, 5), "steps 0 and 1 are overwritten by steps 1 and 2");
        assert_eq!(&covered[..3], &partial[..3]);
        assert_eq!(covered[0], 3.0);
    }

    /// Entries guided for different numbers of steps are each held for their own: with the
    /// known entry, the steps every entry is held for (the fewest of the guided ones, 2) but
    /// the last skip the denoiser; the entry guided for 3 steps is still held at step 2, the
    /// one guided for 2 is not; an entry guided for 0 steps is free from the start.
    #[test]
    fn each_guided_entry_is_held_for_its_own_steps() {
        let device = Default::default();
        let s = sampler(Prediction::Epsilon, 5, 0.0, Guidance::NONE);
        let start = start_noise(5).slice([0..4, 0..1]);
        let n = start.to_data().to_vec::<f32>().unwrap();
        let values = [3.0f32, -2.0, 1.0, 0.5];
        let column = |v: [f32; 4]| Tensor::<B, 1>::from_floats(v, &device).reshape([4, 1]);
        let known = |steps: [f32; 4]| Known {
            guide: Some(Guide { steps: column(steps) }),
            ..Known::new(column([1.0, 0.0, 0.0, 0.0]), column(values))
        };
        let held = |i: usize, k: usize| {
            let a = s.ddim.alpha_bar(i);
            a.sqrt() * values[k] as f64 + (1.0 - a).sqrt() * n[k] as f64
        };
        let run = |k: &Known<B, 2>| {
            let rec = Recorder(Default::default());
            let mut rng = ChaCha8Rng::seed_from_u64(0);
            s.sample_known_with_progress(&rec, start.clone(), Some(k), &(), &mut rng, |_| ControlFlow::Continue(()))
                .unwrap();
            rec.0.into_inner()
        };
        let seen = run(&known([0.0, 2.0, 3.0, 2.0]));
        // Step 0 is overwritten by step 1 on every entry: four denoiser calls of five steps.
        assert_eq!(seen.len(), 4);
        // `seen[j]` is step j + 1's input.
        assert!((seen[0][1] as f64 - held(1, 1)).abs() < 1e-5, "step 1: entry 1 held");
        assert!((seen[1][2] as f64 - held(2, 2)).abs() < 1e-5, "step 2: entry 2 still held");
        assert!((seen[1][1] as f64 - held(2, 1)).abs() > 1e-2, "step 2: entry 1 is free");
        let seen = run(&known([0.0, 0.0, 3.0, 2.0]));
        assert_eq!(seen.len(), 5, "an entry free from the start needs every step");
        assert!((seen[0][1] as f64 - held(0, 1)).abs() > 1e-2, "entry 1 not held");
        assert!((seen[0][2] as f64 - held(0, 2)).abs() < 1e-5 && (seen[2][2] as f64 - held(2, 2)).abs() < 1e-5);
    }

    fn moments(x: &Tensor<B, 2>) -> (f64, f64) {
        let v = x.to_data().to_vec::<f32>().unwrap();
        let n = v.len() as f64;
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
        let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
        (mean, var)
    }

    fn start_noise(seed: u64) -> Tensor<B, 2> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        gaussian::<B, 2, _>([4000, 1], &mut rng, &Default::default())
    }

    /// 4000 draws from the true marginal of x_t for data N(μ, σ²) at the sampler's first
    /// timestep, N(√ᾱ·μ, ᾱσ² + 1 − ᾱ), from noise standardised to exact sample mean 0 and
    /// variance 1. The schedule's terminal SNR is not zero (ᾱ_999 ≈ 0.0047), so N(0, 1) would
    /// shift the result by about σ·√ᾱ·μ; and since the exact flow is affine, standardising
    /// leaves only the sampler's own error in the result's moments.
    fn marginal_start(seed: u64, s: &Sampler, mu: f64, sigma: f64) -> Tensor<B, 2> {
        let z = start_noise(seed);
        let (m, v) = moments(&z);
        let a = NoiseSchedule::ldm().alpha_bar(s.ddim.timesteps()[0]);
        z.sub_scalar(m).mul_scalar((a * sigma * sigma + 1.0 - a).sqrt() / v.sqrt()).add_scalar(a.sqrt() * mu)
    }

    fn sampler(prediction: Prediction, steps: usize, eta: f64, guidance: Guidance) -> Sampler {
        let ddim = Ddim::new(&NoiseSchedule::ldm(), prediction, steps, eta).unwrap();
        Sampler::new(ddim, guidance)
    }

    /// The variance DDIM must produce from the marginal start for data N(μ, σ²) with the exact
    /// oracle, by the scalar recursion of eqs. 12 and 16 in f64: the oracle is affine in x_t,
    /// so each step maps the variance V to `k²·V + σ_i²` with `k` the step's slope.
    fn ddim_variance(s: &Sampler, sigma: f64) -> f64 {
        let sched = NoiseSchedule::ldm();
        let ts = s.ddim.timesteps();
        let a0 = sched.alpha_bar(ts[0]);
        let mut v = a0 * sigma * sigma + 1.0 - a0;
        for (i, &t) in ts.iter().enumerate() {
            let a = sched.alpha_bar(t);
            let ap = ts.get(i + 1).map_or(1.0, |&t| sched.alpha_bar(t));
            let noise = s.ddim.eta() * ((1.0 - ap) / (1.0 - a) * (1.0 - a / ap)).sqrt();
            let eps_slope = (1.0 - a).sqrt() / (a * sigma * sigma + 1.0 - a);
            let x0_slope = (1.0 - (1.0 - a).sqrt() * eps_slope) / a.sqrt();
            let k = ap.sqrt() * x0_slope + (1.0 - ap - noise * noise).sqrt() * eps_slope;
            v = k * k * v + noise * noise;
        }
        v
    }

    /// DDIM (η = 0) integrates the probability-flow ODE, which carries the marginal at the
    /// first timestep onto the data N(μ, σ²). With the exact oracle the batch keeps the data's
    /// mean exactly; its variance falls short by DDIM's first-order discretisation error
    /// (about 5 % at 50 steps for σ = 1, 10 % for σ = 0.5, on this schedule) and must match
    /// that error as predicted by [`ddim_variance`].
    #[test]
    fn ddim_with_exact_oracle_recovers_the_gaussian() {
        let (sigma, mu) = (1.0, 1.5);
        for prediction in [Prediction::Epsilon, Prediction::V, Prediction::Sample] {
            let oracle = GaussianOracle::new(prediction, sigma, [mu; 3]);
            let s = sampler(prediction, 50, 0.0, Guidance::NONE);
            let mut rng = ChaCha8Rng::seed_from_u64(0);
            let x0 = s.sample(&oracle, marginal_start(1, &s, mu, sigma), &FULL, &mut rng);
            assert_eq!(oracle.calls.get(), 50);
            let (mean, var) = moments(&x0);
            let want_var = sigma * sigma;
            assert!((mean - mu).abs() < 0.01 * mu, "{prediction:?}: mean {mean}, want {mu}");
            assert!((var - want_var).abs() < 0.07 * want_var, "{prediction:?}: variance {var}, want {want_var}");
            let predicted = ddim_variance(&s, sigma);
            assert!(
                (var - predicted).abs() < 1e-3 * predicted,
                "{prediction:?}: variance {var}, eq. 12 predicts {predicted}"
            );
        }
    }

    /// With all 1000 steps DDIM follows the exact flow: each sample started from N(0, 1)
    /// lands on μ + σ·(x_T − √ᾱμ)/√(ᾱσ² + 1 − ᾱ), the monotone affine map between the marginal
    /// at t = 999 and the data.
    #[test]
    fn ddim_converges_to_the_exact_flow() {
        let (sigma, mu) = (0.5, 1.5);
        let oracle = GaussianOracle::new(Prediction::Epsilon, sigma, [mu; 3]);
        let s = sampler(Prediction::Epsilon, 1000, 0.0, Guidance::NONE);
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let x0 = s.sample(&oracle, marginal_start(1, &s, mu, sigma), &FULL, &mut rng);
        let (mean, var) = moments(&x0);
        assert!((mean - mu).abs() < 0.005 * mu, "mean {mean}");
        assert!((var - sigma * sigma).abs() < 0.015 * sigma * sigma, "variance {var}");

        let x_t = start_noise(1);
        let x0 = s.sample(&oracle, x_t.clone(), &FULL, &mut rng);
        let a = NoiseSchedule::ldm().alpha_bar(999);
        let flow =
            x_t.sub_scalar(a.sqrt() * mu).mul_scalar(sigma / (a * sigma * sigma + 1.0 - a).sqrt()).add_scalar(mu);
        let err: f32 = (x0 - flow).abs().max().into_scalar();
        assert!(err < 0.02, "max deviation from the exact flow {err}");
    }

    /// η = 1 over all 1000 steps is DDPM's ancestral sampler: fresh noise each step, and the
    /// data distribution at the end.
    #[test]
    fn stochastic_ddim_recovers_the_gaussian() {
        let (sigma, mu) = (1.0, 1.5);
        let oracle = GaussianOracle::new(Prediction::Epsilon, sigma, [mu; 3]);
        let s = sampler(Prediction::Epsilon, 1000, 1.0, Guidance::NONE);
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let x0 = s.sample(&oracle, marginal_start(2, &s, mu, sigma), &FULL, &mut rng);
        let (mean, var) = moments(&x0);
        // Standard errors over 4000 samples: mean 0.016, variance 2.2 %.
        assert!((mean - mu).abs() < 0.05, "mean {mean}");
        assert!((var - sigma * sigma).abs() < 0.06, "variance {var}");
        let predicted = ddim_variance(&s, sigma);
        assert!((var - predicted).abs() < 0.06, "variance {var}, predicted {predicted}");
    }

    /// For equal variances, guiding between oracles of means μ_u and μ_c is exactly the oracle
    /// of mean μ_u + w·(μ_c − μ_u) (ε is affine in μ), so the samples' mean moves by the
    /// composed formula while their spread stays that of the unguided sampler.
    #[test]
    fn composed_guidance_moves_the_mean_by_the_formula() {
        let sigma = 0.5;
        let means = [0.0, 1.0, 1.5]; // (∅,∅), (∅,c), (l,c)
        let cases = [(1.0, 1.0, 1), (2.0, 1.0, 2), (2.0, 2.0, 2), (2.0, 1.5, 3), (0.0, 0.0, 1)];
        for (w_lab, w_ctx, evals) in cases {
            let oracle = GaussianOracle::new(Prediction::V, sigma, means);
            let s = sampler(Prediction::V, 20, 0.0, Guidance::new(w_lab, w_ctx));
            let want = means[0] + w_ctx * (means[1] - means[0]) + w_lab * (means[2] - means[1]);
            let mut rng = ChaCha8Rng::seed_from_u64(0);
            let x0 = s.sample(&oracle, marginal_start(3, &s, want, sigma), &FULL, &mut rng);
            assert_eq!(oracle.calls.get(), 20 * evals, "w_lab {w_lab}, w_ctx {w_ctx}");
            assert_eq!(s.evaluations(), 20 * evals);
            let (mean, var) = moments(&x0);
            assert!((mean - want).abs() < 1e-3, "w_lab {w_lab}, w_ctx {w_ctx}: mean {mean}, want {want}");
            let predicted = ddim_variance(&s, sigma);
            assert!(
                (var - predicted).abs() < 1e-3 * predicted,
                "w_lab {w_lab}, w_ctx {w_ctx}: variance {var}, want {predicted}"
            );
        }
    }

    #[test]
    fn deterministic_sampling_gives_the_same_bytes() {
        let oracle = GaussianOracle::new(Prediction::Epsilon, 0.7, [0.3; 3]);
        let s = sampler(Prediction::Epsilon, 10, 0.0, Guidance::new(2.0, 1.5));
        let run = |rng_seed| {
            let mut rng = ChaCha8Rng::seed_from_u64(rng_seed);
            s.sample(&oracle, start_noise(5), &FULL, &mut rng).into_data()
        };
        // With η = 0 the RNG is not drawn from: even another RNG seed gives the same bytes.
        assert_eq!(run(0).as_bytes(), run(0).as_bytes());
        assert_eq!(run(0).as_bytes(), run(99).as_bytes());
    }

    #[test]
    fn stochastic_sampling_is_reproducible_per_seed() {
        let oracle = GaussianOracle::new(Prediction::Epsilon, 0.7, [0.3; 3]);
        let s = sampler(Prediction::Epsilon, 10, 0.5, Guidance::NONE);
        let run = |rng_seed| {
            let mut rng = ChaCha8Rng::seed_from_u64(rng_seed);
            s.sample(&oracle, start_noise(5), &FULL, &mut rng).into_data()
        };
        assert_eq!(run(7).as_bytes(), run(7).as_bytes());
        assert_ne!(run(7).as_bytes(), run(8).as_bytes());
    }

    #[test]
    fn progress_hook_sees_every_step_and_can_cancel() {
        let oracle = GaussianOracle::new(Prediction::Epsilon, 0.7, [0.3; 3]);
        let s = sampler(Prediction::Epsilon, 8, 0.0, Guidance::NONE);
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let mut seen = Vec::new();
        let x = s
            .sample_with_progress(&oracle, start_noise(6), &FULL, &mut rng, |p| {
                seen.push((p.step, p.steps, p.t));
                ControlFlow::Continue(())
            })
            .unwrap();
        let want: Vec<_> = s.ddim.timesteps().iter().enumerate().map(|(i, &t)| (i, 8, t)).collect();
        assert_eq!(seen, want);
        assert_eq!(x.dims(), [4000, 1]);

        oracle.calls.set(0);
        let result = s.sample_with_progress(&oracle, start_noise(6), &FULL, &mut rng, |p| {
            if p.step == 2 { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
        });
        assert_eq!(result.unwrap_err(), Cancelled { completed: 3, steps: 8 });
        assert_eq!(oracle.calls.get(), 3, "no evaluation after cancelling");
    }

    /// The last step's preview x̂_0 is the result (the last step lands on ᾱ = 1).
    #[test]
    fn last_preview_is_the_result() {
        let oracle = GaussianOracle::new(Prediction::Epsilon, 0.7, [0.3; 3]);
        let s = sampler(Prediction::Epsilon, 4, 0.0, Guidance::NONE);
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let mut last = None;
        let x = s
            .sample_with_progress(&oracle, start_noise(6), &FULL, &mut rng, |p| {
                last = Some(p.x0.to_data());
                ControlFlow::Continue(())
            })
            .unwrap();
        assert_eq!(last.unwrap(), x.into_data());
    }

    /// `()` works as the condition of an unconditional model, on any rank.
    #[test]
    fn unit_condition_and_rank_four() {
        struct Shrink;
        impl Denoiser<B, 4> for Shrink {
            type Cond = ();
            fn predict(&self, x_t: Tensor<B, 4>, _t: usize, _: &()) -> Tensor<B, 4> {
                x_t.mul_scalar(0.5)
            }
        }
        let s = sampler(Prediction::Epsilon, 3, 0.0, Guidance::new(3.0, 2.0));
        let dev = Default::default();
        let x = Tensor::<B, 4>::from_data(TensorData::new(vec![1.0f32; 16], [2, 2, 2, 2]), &dev);
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        // Guidance between identical branches is the identity, whatever the weights.
        let guided = s.sample(&Shrink, x.clone(), &(), &mut rng);
        let plain = sampler(Prediction::Epsilon, 3, 0.0, Guidance::NONE).sample(&Shrink, x, &(), &mut rng);
        assert_eq!(guided.dims(), [2, 2, 2, 2]);
        let diff: f32 = (guided - plain).abs().max().into_scalar();
        assert!(diff < 1e-5, "{diff}");
    }
}
