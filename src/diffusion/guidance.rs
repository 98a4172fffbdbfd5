//! Classifier-free guidance (Ho & Salimans 2022, eq. 6 in the `ε_uncond + w·(ε_cond − ε_uncond)`
//! form of LDM and diffusers), and its composition over two conditions, labels `l` and
//! context `c` (as InstructPix2Pix, Brooks et al. 2023, eq. 3, composes image and text):
//!
//! `ε̃ = ε(∅,∅) + w_ctx · (ε(∅,c) − ε(∅,∅)) + w_lab · (ε(l,c) − ε(∅,c))`.
//!
//! A weight of 1 reduces to the conditional prediction and 0 to the unconditional one; weights
//! above 1 extrapolate away from the dropped condition. Rewritten as
//!
//! `ε̃ = (1 − w_ctx) · ε(∅,∅) + (w_ctx − w_lab) · ε(∅,c) + w_lab · ε(l,c)`,
//!
//! the coefficients sum to 1, so the combination is affine: guiding v-predictions equals
//! guiding ε-predictions at the same `x_t`, and each branch whose coefficient is 0 need not be
//! evaluated at all. Denoiser evaluations per step:
//!
//! | weights                        | branches evaluated           | evaluations |
//! |--------------------------------|------------------------------|-------------|
//! | `w_ctx = w_lab = 1`            | ε(l,c)                       | 1           |
//! | `w_ctx = w_lab = 0`            | ε(∅,∅)                       | 1           |
//! | `w_ctx = 1`, `w_lab ≠ 1`       | ε(∅,c), ε(l,c) (label CFG)   | 2 (1 if `w_lab = 0`) |
//! | `w_ctx = w_lab ∉ {0, 1}`       | ε(∅,∅), ε(l,c) (joint CFG)   | 2           |
//! | `w_lab = 0`, `w_ctx ∉ {0, 1}`  | ε(∅,∅), ε(∅,c)               | 2           |
//! | otherwise                      | all three                    | 3           |
//!
//! Operations are linear in the predictions, so all of this works on any rank and under
//! autodiff.

use burn::tensor::{Tensor, backend::Backend};
use serde::{Deserialize, Serialize};

/// `uncond + w · (cond − uncond)`: single-condition classifier-free guidance.
///
/// `w = 1` returns `cond` and `w = 0` returns `uncond` unchanged (bit for bit).
/// `uncond`, `cond`: same shape → same shape.
pub fn guide<B: Backend, const D: usize>(uncond: Tensor<B, D>, cond: Tensor<B, D>, w: f64) -> Tensor<B, D> {
    combine([(1.0 - w, uncond), (w, cond)])
}

/// One of the three ways to evaluate the denoiser for two-condition guidance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Branch {
    /// ε(∅,∅): labels and context dropped.
    Unconditional,
    /// ε(∅,c): labels dropped, context kept.
    ContextOnly,
    /// ε(l,c): the full condition.
    Full,
}

/// Guidance weights for labels and context. 1 means "no guidance" for that condition.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Guidance {
    /// `w_lab`: scale of the labels' effect (given the context).
    pub labels: f64,
    /// `w_ctx`: scale of the context's effect (without labels).
    pub context: f64,
}

impl Default for Guidance {
    fn default() -> Self {
        Guidance::NONE
    }
}

impl Guidance {
    /// Both weights 1: the plain conditional prediction, one evaluation per step.
    pub const NONE: Guidance = Guidance { labels: 1.0, context: 1.0 };

    pub fn new(labels: f64, context: f64) -> Self {
        Guidance { labels, context }
    }

    /// The coefficients of ε(∅,∅), ε(∅,c), ε(l,c), in that order; they sum to 1.
    pub fn coefficients(&self) -> [(Branch, f64); 3] {
        [
            (Branch::Unconditional, 1.0 - self.context),
            (Branch::ContextOnly, self.context - self.labels),
            (Branch::Full, self.labels),
        ]
    }

    /// The branches that must be evaluated (non-zero coefficient), in the order above.
    pub fn branches(&self) -> Vec<Branch> {
        self.coefficients().into_iter().filter(|&(_, c)| c != 0.0).map(|(b, _)| b).collect()
    }

    /// Number of denoiser evaluations per step: `branches().len()`, 1 to 3.
    pub fn evaluations(&self) -> usize {
        self.branches().len()
    }

    /// The guided prediction, calling `eval` once for each branch in [`Self::branches`] and
    /// never for the others. A single branch with coefficient 1 is returned unchanged.
    pub fn combine<B: Backend, const D: usize>(&self, mut eval: impl FnMut(Branch) -> Tensor<B, D>) -> Tensor<B, D> {
        combine(self.coefficients().into_iter().filter(|&(_, c)| c != 0.0).map(|(b, c)| (c, eval(b))))
    }

    /// The formula of the module docs on three given predictions (each `[b, ...]`). Branches
    /// with zero coefficient are ignored, so any tensor of the right shape may stand in for them.
    pub fn apply<B: Backend, const D: usize>(
        &self,
        uncond: Tensor<B, D>,
        context_only: Tensor<B, D>,
        full: Tensor<B, D>,
    ) -> Tensor<B, D> {
        let mut slots = [Some(uncond), Some(context_only), Some(full)];
        self.combine(|b| {
            let slot = match b {
                Branch::Unconditional => 0,
                Branch::ContextOnly => 1,
                Branch::Full => 2,
            };
            slots[slot].take().expect("each branch is evaluated once")
        })
    }
}

/// `Σ c_k · x_k` over the given terms, skipping zero coefficients and not multiplying by 1.
/// Needs at least one term with a non-zero coefficient.
fn combine<B: Backend, const D: usize>(terms: impl IntoIterator<Item = (f64, Tensor<B, D>)>) -> Tensor<B, D> {
    let scaled = |c: f64, x: Tensor<B, D>| if c == 1.0 { x } else { x.mul_scalar(c) };
    terms
        .into_iter()
        .filter(|&(c, _)| c != 0.0)
        .map(|(c, x)| scaled(c, x))
        .reduce(|acc, x| acc + x)
        .expect("guidance coefficients sum to 1, so one is non-zero")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diffusion::noise::gaussian;
    use burn::backend::Flex;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    type B = Flex;

    fn three() -> [Tensor<B, 3>; 3] {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let dev = Default::default();
        [(); 3].map(|_| gaussian::<B, 3, _>([2, 3, 4], &mut rng, &dev))
    }

    fn bytes(x: Tensor<B, 3>) -> Vec<u8> {
        x.into_data().as_bytes().to_vec()
    }

    #[test]
    fn weight_one_is_conditional_and_zero_unconditional_exactly() {
        let [u, c, _] = three();
        assert_eq!(bytes(guide(u.clone(), c.clone(), 1.0)), bytes(c.clone()));
        assert_eq!(bytes(guide(u.clone(), c.clone(), 0.0)), bytes(u.clone()));
        let [uu, uc, lc] = three();
        let g = |l, c| Guidance::new(l, c).apply(uu.clone(), uc.clone(), lc.clone());
        assert_eq!(bytes(g(1.0, 1.0)), bytes(lc.clone()));
        assert_eq!(bytes(g(0.0, 0.0)), bytes(uu.clone()));
        assert_eq!(bytes(g(0.0, 1.0)), bytes(uc.clone()));
    }

    #[test]
    fn guide_matches_formula() {
        let [u, c, _] = three();
        let want = u.clone() + (c.clone() - u.clone()).mul_scalar(2.5);
        let diff: f32 = (guide(u, c, 2.5) - want).abs().max().into_scalar();
        assert!(diff < 1e-5, "{diff}");
    }

    #[test]
    fn composed_guidance_matches_formula() {
        let [uu, uc, lc] = three();
        for (w_lab, w_ctx) in [(2.0, 1.5), (3.0, 1.0), (2.0, 2.0), (0.0, 1.7), (-0.5, 0.3)] {
            let want =
                uu.clone() + (uc.clone() - uu.clone()).mul_scalar(w_ctx) + (lc.clone() - uc.clone()).mul_scalar(w_lab);
            let got = Guidance::new(w_lab, w_ctx).apply(uu.clone(), uc.clone(), lc.clone());
            let diff: f32 = (got - want).abs().max().into_scalar();
            assert!(diff < 1e-5, "w_lab {w_lab}, w_ctx {w_ctx}: {diff}");
        }
    }

    #[test]
    fn only_needed_branches_are_evaluated() {
        use Branch::*;
        let cases = [
            ((1.0, 1.0), vec![Full]),
            ((0.0, 0.0), vec![Unconditional]),
            ((0.0, 1.0), vec![ContextOnly]),
            ((3.0, 1.0), vec![ContextOnly, Full]),
            ((2.0, 2.0), vec![Unconditional, Full]),
            ((0.0, 2.0), vec![Unconditional, ContextOnly]),
            ((3.0, 2.0), vec![Unconditional, ContextOnly, Full]),
        ];
        let [x, _, _] = three();
        for ((l, c), want) in cases {
            let g = Guidance::new(l, c);
            assert_eq!(g.branches(), want, "w_lab {l}, w_ctx {c}");
            assert_eq!(g.evaluations(), want.len());
            let mut called = Vec::new();
            let _ = g.combine(|b| {
                called.push(b);
                x.clone()
            });
            assert_eq!(called, want, "w_lab {l}, w_ctx {c}");
        }
    }

    #[test]
    fn guidance_serialises() {
        let g = Guidance::new(2.5, 1.5);
        let back: Guidance = ron::from_str(&ron::to_string(&g).unwrap()).unwrap();
        assert_eq!(back, g);
    }
}
