//! Training losses: the "simple" objective of DDPM (Ho et al. 2020, eq. 14), i.e. the mean
//! squared error between the model output and [`NoiseSchedule::training_target`], optionally
//! weighted per sample. Plain tensor operations, so they differentiate under `Autodiff<_>`.

use burn::tensor::{Tensor, TensorData, backend::Backend};
use serde::{Deserialize, Serialize};

use super::schedule::{NoiseSchedule, Prediction};

/// Mean of `(pred − target)²` over all elements. `pred`, `target`: `[b, ...]` → `[1]`.
pub fn mse<B: Backend, const D: usize>(pred: Tensor<B, D>, target: Tensor<B, D>) -> Tensor<B, 1> {
    (pred - target).powi_scalar(2).mean()
}

/// Mean of `(pred − target)²` per sample (over every axis but the batch axis).
/// `pred`, `target`: `[b, ...]` → `[b]`. Useful to log the loss per timestep.
pub fn per_sample_mse<B: Backend, const D: usize>(pred: Tensor<B, D>, target: Tensor<B, D>) -> Tensor<B, 1> {
    let dims = pred.dims();
    let b = dims[0];
    let per_sample = dims[1..].iter().product::<usize>();
    (pred - target).powi_scalar(2).reshape([b, per_sample]).mean_dim(1).reshape([b])
}

/// `mean_i(w_i · mse_i)` with one weight per sample (`weights.len() == b`). With all weights 1
/// it equals [`mse`]. `pred`, `target`: `[b, ...]` → `[1]`.
///
/// # Panics
/// If `weights.len() != b`.
pub fn weighted_mse<B: Backend, const D: usize>(
    pred: Tensor<B, D>,
    target: Tensor<B, D>,
    weights: &[f64],
) -> Tensor<B, 1> {
    let b = pred.dims()[0];
    assert_eq!(weights.len(), b, "need one loss weight per sample");
    let w: Vec<f32> = weights.iter().map(|&w| w as f32).collect();
    let w = Tensor::<B, 1>::from_data(TensorData::new(w, [b]), &pred.device());
    (per_sample_mse(pred, target) * w).mean()
}

/// `Σ m·(pred − target)² / Σ m` with a weight per spatial cell: `pred`, `target` `[b, c, h, w]`,
/// `map` `[b, 1, h, w]` (broadcast over channels, positive somewhere) → `[1]`. Normalised by
/// the weights' sum, so a constant map gives [`mse`] and the loss keeps its scale while the map
/// moves the gradient towards the heavier cells (the image LDM's `--box-weight`).
pub fn spatially_weighted_mse<B: Backend>(pred: Tensor<B, 4>, target: Tensor<B, 4>, map: Tensor<B, 4>) -> Tensor<B, 1> {
    let [b, c, h, w] = pred.dims();
    let map = map.expand([b, c, h, w]);
    ((pred - target).powi_scalar(2) * map.clone()).sum() / map.sum()
}

/// The edge loss of a reconstruction: the mean absolute difference of the horizontal
/// neighbour differences of `pred` and `target`, plus that of the vertical ones
/// (`[n, c, h, w]` → `[1]`). It is zero for a prediction that differs from its target by a
/// constant, and it penalises blurred edges, which a squared error forgives near the
/// conditional mean.
pub fn edge_l1<B: Backend>(pred: Tensor<B, 4>, target: Tensor<B, 4>) -> Tensor<B, 1> {
    let [n, c, h, w] = pred.dims();
    let dx = |v: Tensor<B, 4>| v.clone().slice([0..n, 0..c, 0..h, 1..w]) - v.slice([0..n, 0..c, 0..h, 0..w - 1]);
    let dy = |v: Tensor<B, 4>| v.clone().slice([0..n, 0..c, 1..h, 0..w]) - v.slice([0..n, 0..c, 0..h - 1, 0..w]);
    (dx(pred.clone()) - dx(target.clone())).abs().mean() + (dy(pred) - dy(target)).abs().mean()
}

/// How samples at different noise levels are weighted in the loss.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub enum LossWeighting {
    /// Every sample weighs 1: DDPM's "simple" loss.
    #[default]
    Uniform,
    /// Min-SNR-γ (Hang et al. 2023, "Efficient Diffusion Training via Min-SNR Weighting
    /// Strategy", §3.4): caps the weight of low-noise timesteps, whose easy targets otherwise
    /// dominate the gradient. They recommend γ = 5.
    MinSnr { gamma: f64 },
}

impl LossWeighting {
    /// One weight per sample for timesteps `t`, for a model trained with `prediction`.
    ///
    /// Min-SNR-γ wants the x_0-error weighted by `min(SNR, γ)`; an ε-loss already carries a
    /// factor SNR and a v-loss a factor SNR + 1 relative to that, hence the divisions (an
    /// x_0-loss is the x_0-error itself).
    pub fn weights(&self, schedule: &NoiseSchedule, t: &[usize], prediction: Prediction) -> Vec<f64> {
        match *self {
            LossWeighting::Uniform => vec![1.0; t.len()],
            LossWeighting::MinSnr { gamma } => t
                .iter()
                .map(|&t| {
                    let snr = schedule.snr(t);
                    let capped = snr.min(gamma);
                    match prediction {
                        Prediction::Epsilon => capped / snr,
                        Prediction::V => capped / (snr + 1.0),
                        Prediction::Sample => capped,
                    }
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};

    type B = Flex;

    fn t2<Bk: Backend>(v: &[f32], shape: [usize; 2]) -> Tensor<Bk, 2> {
        Tensor::from_data(TensorData::new(v.to_vec(), shape), &Default::default())
    }

    fn scalar<Bk: Backend>(x: Tensor<Bk, 1>) -> f32 {
        x.into_data().to_vec::<f32>().unwrap()[0]
    }

    #[test]
    fn the_edge_loss_compares_neighbour_differences() {
        let img = |v: &[f32]| Tensor::<B, 4>::from_data(TensorData::new(v.to_vec(), [1, 1, 2, 2]), &Default::default());
        let target = img(&[0.0, 1.0, 0.0, 1.0]);
        // A constant offset keeps every edge: no loss (a squared error would count it).
        assert_eq!(scalar(edge_l1(img(&[0.5, 1.5, 0.5, 1.5]), target.clone())), 0.0);
        // A flat prediction misses the step of 1 in both rows (mean 1 over the 2 horizontal
        // differences) and has the target's vertical differences (0).
        assert_eq!(scalar(edge_l1(img(&[0.5; 4]), target.clone())), 1.0);
        // A vertical step of 2 in one column: |2 − 0| and |0 − 0| → mean 1 vertically; the
        // rows' horizontal differences 1 − 0 and −1 − 0 against 1 and 1 → (0 + 2) / 2.
        assert_eq!(scalar(edge_l1(img(&[0.0, 1.0, 2.0, 1.0]), target)), 2.0);
    }

    #[test]
    fn mse_values() {
        let pred = t2::<B>(&[1.0, 2.0, 3.0, 4.0], [2, 2]);
        let target = t2::<B>(&[1.0, 0.0, 0.0, 4.0], [2, 2]);
        // Squared errors: [0, 4 | 9, 0].
        assert_eq!(scalar(mse(pred.clone(), target.clone())), 13.0 / 4.0);
        let per = per_sample_mse(pred.clone(), target.clone()).into_data().to_vec::<f32>().unwrap();
        assert_eq!(per, vec![2.0, 4.5]);
        assert_eq!(scalar(weighted_mse(pred.clone(), target.clone(), &[1.0, 1.0])), 13.0 / 4.0);
        // (0·2 + 2·4.5) / 2.
        assert_eq!(scalar(weighted_mse(pred, target, &[0.0, 2.0])), 4.5);
    }

    #[test]
    fn mse_gradient_under_autodiff() {
        type A = Autodiff<Flex>;
        let pred = t2::<A>(&[1.0, 2.0, 3.0, 4.0], [2, 2]).require_grad();
        let target = t2::<A>(&[1.0, 0.0, 0.0, 4.0], [2, 2]);
        let grads = weighted_mse(pred.clone(), target, &[1.0, 3.0]).backward();
        let g = pred.grad(&grads).unwrap().into_data().to_vec::<f32>().unwrap();
        // d/dp of (1/b)·Σ_i w_i·(1/n)·Σ_j (p−y)² = 2·w_i·(p−y)/(b·n), b = n = 2.
        assert_eq!(g, vec![0.0, 1.0, 4.5, 0.0]);
    }

    #[test]
    fn spatially_weighted_mse_values_and_gradient() {
        type A = Autodiff<Flex>;
        let t4 = |v: &[f32], shape: [usize; 4]| {
            Tensor::<A, 4>::from_data(TensorData::new(v.to_vec(), shape), &Default::default())
        };
        // One sample, 2 channels, 1 × 2 cells; squared errors [1, 4 | 9, 16].
        let pred = t4(&[1.0, 2.0, 3.0, 4.0], [1, 2, 1, 2]).require_grad();
        let target = t4(&[0.0; 4], [1, 2, 1, 2]);
        let even = t4(&[3.0, 3.0], [1, 1, 1, 2]);
        assert_eq!(scalar(spatially_weighted_mse(pred.clone(), target.clone(), even)), 30.0 / 4.0);
        // Weight 3 on the second cell: (1 + 9 + 3·(4 + 16)) / (2·(1 + 3)).
        let heavy = t4(&[1.0, 3.0], [1, 1, 1, 2]);
        let loss = spatially_weighted_mse(pred.clone(), target, heavy);
        assert_eq!(scalar(loss.clone()), 70.0 / 8.0);
        let g = pred.grad(&loss.backward()).unwrap().into_data().to_vec::<f32>().unwrap();
        // d/dp = 2·m·p / Σm with Σm = 8.
        assert_eq!(g, vec![0.25, 1.5, 0.75, 3.0]);
    }

    #[test]
    fn min_snr_weights() {
        let s = NoiseSchedule::ldm();
        let t = [0, 999];
        assert_eq!(LossWeighting::Uniform.weights(&s, &t, Prediction::Epsilon), vec![1.0, 1.0]);
        let w = LossWeighting::MinSnr { gamma: 5.0 }.weights(&s, &t, Prediction::Epsilon);
        // t = 0: SNR ≈ 1175 ≫ 5, capped; t = 999: SNR ≈ 0.0047 < 5, weight 1.
        assert!((w[0] - 5.0 / s.snr(0)).abs() < 1e-12 && w[0] < 0.01);
        assert_eq!(w[1], 1.0);
        let v = LossWeighting::MinSnr { gamma: 5.0 }.weights(&s, &t, Prediction::V);
        assert!((v[1] - s.snr(999) / (s.snr(999) + 1.0)).abs() < 1e-12);
    }
}
