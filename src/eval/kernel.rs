//! Kernel distance between two feature sets (KID, Bińkowski et al. 2018, "Demystifying MMD
//! GANs"): an unbiased estimate of the squared maximum mean discrepancy with the cubic
//! polynomial kernel `k(x, y) = (x·y / d + 1)³`, `E k(a, a') + E k(b, b') − 2 E k(a, b)` for
//! independent draws.
//!
//! Where the Fréchet distance fits a Gaussian to each set, this compares the sets' mean
//! embeddings directly: it needs no covariance, so it takes every feature dimension and any
//! number of samples above one, and its estimate is unbiased (its expectation is 0 for two
//! sets drawn from one distribution, at any size; a single value may be below 0).
//!
//! Samples come in groups that are drawn independently while the samples of one group are
//! not (an evaluation's scenes: the frames of one video, and a generated frame and the world's
//! render of the same scene). So every mean above is taken over pairs of samples from two
//! *different* groups only (a U-statistic over the groups; with one sample per group and
//! equal sets, Gretton et al.'s 2012 `MMD²_u`), which keeps it unbiased however the samples
//! within a group depend on one another. A group both sets share exactly then adds nothing to
//! the estimate's numerator: it only dilutes it, by the share of pairs it takes — it cannot
//! hide a mismatch elsewhere, as an unusual scene did for a Fréchet distance on 12 scenes
//! (`docs/eval/tiny/frechet-scenes-2026-12-08/`).
//!
//! The kernel sums are kept per pair of groups, so a resample of the groups (a group drawn
//! twice is weighted twice; its copies, being one group, are never paired with each other) or
//! a group left out is a reweighting of those sums.

use nalgebra::DMatrix;

use super::error::MetricError;
use super::features::Features;
use super::frechet::{Groups, check_groups, group_draws};

/// The kernel sums of two grouped sets, per pair of groups.
#[derive(Debug, Clone)]
pub struct GroupedKernel {
    /// `Σ k(x, y)` over the rows `x` of group `g` and `y` of group `h`: within the first set,
    /// within the second, and across (the first set's group `g`, the second's `h`).
    within: [DMatrix<f64>; 2],
    across: DMatrix<f64>,
    /// The number of rows of each group in each set.
    rows: [Vec<f64>; 2],
}

/// The cubic polynomial kernel of KID on rows of width `d`.
fn kernel(x: &[f32], y: &[f32]) -> f64 {
    let dot: f64 = x.iter().zip(y).map(|(&a, &b)| a as f64 * b as f64).sum();
    (dot / x.len() as f64 + 1.0).powi(3)
}

impl GroupedKernel {
    /// The kernel sums of `a` and `b`, whose group `g` is rows `groups.0[g]` of `a` and
    /// `groups.1[g]` of `b`.
    pub fn new(a: &Features, b: &Features, groups: Groups<'_>) -> Result<Self, MetricError> {
        let n = check_groups(a, b, groups)?;
        if a.dims() != b.dims() {
            return Err(MetricError::Mismatch {
                what: "feature widths of the two sets",
                left: a.dims(),
                right: b.dims(),
            });
        }
        let block = |x: &Features, gx: &[std::ops::Range<usize>], y: &Features, gy: &[std::ops::Range<usize>]| {
            DMatrix::from_fn(n, n, |g, h| {
                gx[g].clone().map(|i| gy[h].clone().map(|j| kernel(x.row(i), y.row(j))).sum::<f64>()).sum()
            })
        };
        let count = |gx: &[std::ops::Range<usize>]| -> Vec<f64> { gx.iter().map(|g| g.len() as f64).collect() };
        Ok(GroupedKernel {
            within: [block(a, groups.0, a, groups.0), block(b, groups.1, b, groups.1)],
            across: block(a, groups.0, b, groups.1),
            rows: [count(groups.0), count(groups.1)],
        })
    }

    /// The distance with group `g` weighted `weights[g]` times in both sets (all 1: the sets
    /// as they are), over pairs from different groups; `None` where fewer than two groups
    /// with rows are left.
    pub fn weighted(&self, weights: &[f64]) -> Option<f64> {
        // Σ_{g≠h} w_g w_h m(g, h), and the number of row pairs it sums.
        let mean = |m: &DMatrix<f64>, rows: (&[f64], &[f64])| {
            let sum = quadratic(m, weights) - (0..weights.len()).map(|g| weights[g].powi(2) * m[(g, g)]).sum::<f64>();
            let total = |r: &[f64]| weights.iter().zip(r).map(|(w, n)| w * n).sum::<f64>();
            let pairs = total(rows.0) * total(rows.1)
                - weights.iter().zip(rows.0).zip(rows.1).map(|((w, x), y)| w * w * x * y).sum::<f64>();
            (pairs > 0.0).then(|| sum / pairs)
        };
        let [ra, rb] = [&self.rows[0][..], &self.rows[1][..]];
        Some(mean(&self.within[0], (ra, ra))? + mean(&self.within[1], (rb, rb))? - 2.0 * mean(&self.across, (ra, rb))?)
    }

    /// The distance between the two sets.
    pub fn distance(&self) -> Result<f64, MetricError> {
        let n = self.rows[0].len();
        self.weighted(&vec![1.0; n]).ok_or_else(|| {
            let got = (0..n).filter(|&g| self.rows[0][g] > 0.0 && self.rows[1][g] > 0.0).count();
            MetricError::TooFew { what: "groups with rows in both sets", needed: 2, got }
        })
    }

    /// The distance on `resamples` resamples of the groups with replacement: the same draws
    /// as [`super::frechet::frechet_bootstrap`] with the same seed and number of groups, so
    /// the two distances' resamples pair up.
    pub fn bootstrap(&self, resamples: usize, seed: u64) -> Vec<Option<f64>> {
        let n = self.rows[0].len();
        group_draws(n, resamples, seed)
            .into_iter()
            .map(|draw| {
                let mut weights = vec![0.0; n];
                draw.iter().for_each(|&g| weights[g] += 1.0);
                self.weighted(&weights)
            })
            .collect()
    }

    /// The distance with each group left out in turn.
    pub fn leave_one_out(&self) -> Vec<Option<f64>> {
        let n = self.rows[0].len();
        (0..n)
            .map(|g| {
                let mut weights = vec![1.0; n];
                weights[g] = 0.0;
                self.weighted(&weights)
            })
            .collect()
    }
}

/// `wᵀ M w`.
fn quadratic(m: &DMatrix<f64>, w: &[f64]) -> f64 {
    (0..m.nrows()).map(|g| w[g] * (0..m.ncols()).map(|h| m[(g, h)] * w[h]).sum::<f64>()).sum()
}

/// The kernel distance between two sets of as many rows, each row (with the other set's row
/// of the same index) a group of its own: Gretton et al.'s `MMD²_u`.
pub fn kernel_distance(a: &Features, b: &Features) -> Result<f64, MetricError> {
    if a.len() != b.len() {
        return Err(MetricError::Mismatch { what: "rows of the two sets", left: a.len(), right: b.len() });
    }
    let groups: Vec<std::ops::Range<usize>> = (0..a.len()).map(|i| i..i + 1).collect();
    GroupedKernel::new(a, b, (&groups, &groups))?.distance()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::frechet::frechet_distance;
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use std::ops::Range;

    fn normal_rows(n: usize, d: usize, shift: f32, rng: &mut ChaCha8Rng) -> Vec<Vec<f32>> {
        (0..n)
            .map(|_| {
                (0..d)
                    .map(|_| {
                        let (u, v) = (rng.random::<f32>().max(1e-7), rng.random::<f32>());
                        (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos() + shift
                    })
                    .collect()
            })
            .collect()
    }

    fn set(rows: &[Vec<f32>]) -> Features {
        Features::from_rows(rows, "test").unwrap()
    }

    /// The estimator written out on the rows of the drawn groups (a group drawn twice brings its
    /// rows twice): every pair of rows from two different draws of different groups.
    fn brute_force(a: &[Vec<f32>], b: &[Vec<f32>], groups: &[Range<usize>], draw: &[usize]) -> f64 {
        let rows: Vec<(usize, usize)> = draw.iter().flat_map(|&g| groups[g].clone().map(move |i| (g, i))).collect();
        let mean = |x: &[Vec<f32>], y: &[Vec<f32>]| {
            let (mut sum, mut pairs) = (0.0, 0.0);
            for &(g, i) in &rows {
                for &(h, j) in &rows {
                    if g != h {
                        (sum, pairs) = (sum + kernel(&x[i], &y[j]), pairs + 1.0);
                    }
                }
            }
            sum / pairs
        };
        mean(a, a) + mean(b, b) - 2.0 * mean(a, b)
    }

    #[test]
    fn grouped_sums_give_the_textbook_estimator_for_every_draw() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let (a, b) = (normal_rows(12, 3, 0.0, &mut rng), normal_rows(12, 3, 0.5, &mut rng));
        let groups: Vec<Range<usize>> = vec![0..3, 3..4, 4..9, 9..12];
        let k = GroupedKernel::new(&set(&a), &set(&b), (&groups, &groups)).unwrap();
        let close = |x: f64, y: f64| (x - y).abs() < 1e-9 * (1.0 + y.abs());
        assert!(close(k.distance().unwrap(), brute_force(&a, &b, &groups, &[0, 1, 2, 3])));
        // Ungrouped: one row per group.
        let singles: Vec<Range<usize>> = (0..12).map(|i| i..i + 1).collect();
        let all: Vec<usize> = (0..12).collect();
        assert!(close(kernel_distance(&set(&a), &set(&b)).unwrap(), brute_force(&a, &b, &singles, &all)));
        // A resample with a group drawn three times and one left out, and a group left out.
        assert!(close(k.weighted(&[3.0, 0.0, 1.0, 0.0]).unwrap(), brute_force(&a, &b, &groups, &[0, 0, 0, 2])));
        assert!(close(k.leave_one_out()[2].unwrap(), brute_force(&a, &b, &groups, &[0, 1, 3])));
        // The bootstrap draws the Fréchet bootstrap's resamples.
        let draws = group_draws(4, 5, 9);
        for (draw, value) in draws.iter().zip(k.bootstrap(5, 9)) {
            assert!(close(value.unwrap(), brute_force(&a, &b, &groups, draw)), "{draw:?}");
        }
        // One group left (drawn twice or not): no pair of groups to average, not a number.
        assert_eq!(k.weighted(&[0.0, 2.0, 0.0, 0.0]), None);
        assert!(GroupedKernel::new(&set(&a), &set(&b), (&groups, &groups[..3])).is_err());
        assert!(kernel_distance(&set(&a), &set(&normal_rows(5, 3, 0.0, &mut rng))).is_err());
        assert!(kernel_distance(&set(&a), &set(&normal_rows(12, 2, 0.0, &mut rng))).is_err());
    }

    #[test]
    fn it_is_unbiased_where_the_frechet_distance_is_not() {
        // Two sets of 24 samples from one distribution, 200 times: the kernel distance averages
        // 0, the Fréchet distance a clearly positive number (its small-sample bias).
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let (mut kid, mut fd) = (vec![], vec![]);
        for _ in 0..200 {
            let (a, b) = (set(&normal_rows(24, 4, 0.0, &mut rng)), set(&normal_rows(24, 4, 0.0, &mut rng)));
            kid.push(kernel_distance(&a, &b).unwrap());
            fd.push(frechet_distance(&a, &b).unwrap());
        }
        let mean_and_se = |v: &[f64]| {
            let n = v.len() as f64;
            let m = v.iter().sum::<f64>() / n;
            (m, (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0) / n).sqrt())
        };
        let ((km, kse), (fm, fse)) = (mean_and_se(&kid), mean_and_se(&fd));
        assert!(km.abs() < 3.0 * kse, "kernel {km} ± {kse}");
        assert!(fm > 10.0 * fse, "Fréchet {fm} ± {fse}");
        // And a real shift is far above the noise.
        let (a, b) = (set(&normal_rows(24, 4, 0.0, &mut rng)), set(&normal_rows(24, 4, 1.0, &mut rng)));
        assert!(kernel_distance(&a, &b).unwrap() > 20.0 * kse);
    }

    #[test]
    fn a_group_both_sets_share_only_dilutes_the_estimate() {
        // Eight groups shifted in `b`, and a far-off ninth group both sets share exactly: its
        // pairs cancel, so the estimate keeps its numerator and gains only the pairs the
        // ninth group takes (72 ordered pairs of groups instead of 56).
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let (mut a, mut b) = (normal_rows(80, 3, 0.0, &mut rng), normal_rows(80, 3, 1.0, &mut rng));
        let far = normal_rows(10, 3, 6.0, &mut rng);
        a.extend(far.iter().cloned());
        b.extend(far);
        let groups: Vec<Range<usize>> = (0..9).map(|g| g * 10..(g + 1) * 10).collect();
        let k = GroupedKernel::new(&set(&a), &set(&b), (&groups, &groups)).unwrap();
        let (with, without) = (k.distance().unwrap(), k.leave_one_out()[8].unwrap());
        assert!(without > 0.1, "{without}");
        assert!((with / without - 56.0 / 72.0).abs() < 1e-9, "{with} / {without}");
    }
}
