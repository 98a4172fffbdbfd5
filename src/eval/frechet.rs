//! Fréchet distance between two feature sets, each summarised by a Gaussian (the FID /
//! FVD statistic, Heusel et al. 2017, computed on our own evaluators' features):
//!
//! `d² = |μ₁ − μ₂|² + tr Σ₁ + tr Σ₂ − 2 tr (Σ₁^½ Σ₂ Σ₁^½)^½`.
//!
//! The usual `sqrtm(Σ₁ Σ₂)` takes the square root of a non-symmetric matrix and turns
//! complex or NaN when the sets are small or nearly singular. `Σ₁^½ Σ₂ Σ₁^½` is
//! similar to `Σ₁ Σ₂` (same eigenvalues) but symmetric positive semi-definite, so both
//! square roots come from symmetric eigendecompositions, whose eigenvalues are real;
//! rounding can push tiny ones below zero, and those are clamped to 0.
//! Everything is computed in f64.

use std::ops::Range;

use nalgebra::{DMatrix, DVector, SymmetricEigen};

use super::error::{MetricError, check_finite};
use super::features::Features;

/// Mean and covariance of a feature set.
#[derive(Debug, Clone, PartialEq)]
pub struct Gaussian {
    mean: DVector<f64>,
    cov: DMatrix<f64>,
}

impl Gaussian {
    /// Sample mean and unbiased covariance (divided by `n − 1`, as numpy's `cov`).
    /// Needs more samples than dimensions: with `n ≤ d` the covariance is singular and
    /// the distance is dominated by estimation error, so it is refused.
    pub fn fit(features: &Features, what: &'static str) -> Result<Self, MetricError> {
        let (n, d) = (features.len(), features.dims());
        if n == 0 {
            return Err(MetricError::Empty { what });
        }
        if n <= d {
            return Err(MetricError::TooFewSamples { what, samples: n, dims: d });
        }
        let x = DMatrix::from_row_iterator(n, d, features.rows().flatten().map(|&v| v as f64));
        let mean = x.row_mean().transpose();
        let centred = DMatrix::from_fn(n, d, |i, j| x[(i, j)] - mean[j]);
        let cov = centred.tr_mul(&centred) / (n - 1) as f64;
        Ok(Gaussian { mean, cov })
    }

    /// A Gaussian given by its mean and row-major `d × d` covariance (symmetric,
    /// positive semi-definite; the symmetric part is used).
    pub fn new(mean: &[f64], cov: &[f64], what: &'static str) -> Result<Self, MetricError> {
        let d = mean.len();
        if d == 0 {
            return Err(MetricError::Empty { what });
        }
        if cov.len() != d * d {
            return Err(MetricError::Mismatch {
                what: "covariance entries vs squared mean width",
                left: cov.len(),
                right: d * d,
            });
        }
        check_finite(mean.iter().chain(cov).map(|&v| v as f32), what)?;
        let cov = DMatrix::from_row_slice(d, d, cov);
        let cov = (&cov + cov.transpose()) * 0.5;
        Ok(Gaussian { mean: DVector::from_column_slice(mean), cov })
    }

    pub fn dims(&self) -> usize {
        self.mean.len()
    }

    /// Squared Fréchet distance `d²` to `other` (FID reports this square).
    pub fn frechet_distance(&self, other: &Gaussian) -> Result<f64, MetricError> {
        if self.dims() != other.dims() {
            return Err(MetricError::Mismatch {
                what: "feature widths of the two sets",
                left: self.dims(),
                right: other.dims(),
            });
        }
        let mean_term = (&self.mean - &other.mean).norm_squared();
        let root = psd_sqrt(&self.cov)?;
        let inner = &root * &other.cov * &root;
        let inner = (&inner + inner.transpose()) * 0.5;
        let eigen = symmetric_eigen(inner)?;
        let cross: f64 = eigen.eigenvalues.iter().map(|&l| l.max(0.0).sqrt()).sum();
        let d2 = mean_term + self.cov.trace() + other.cov.trace() - 2.0 * cross;
        // Identical sets give a tiny negative number through rounding; the distance is ≥ 0.
        Ok(d2.max(0.0))
    }
}

/// Squared Fréchet distance between the Gaussians fitted to two feature sets.
pub fn frechet_distance(a: &Features, b: &Features) -> Result<f64, MetricError> {
    if a.dims() != b.dims() {
        return Err(MetricError::Mismatch { what: "feature widths of the two sets", left: a.dims(), right: b.dims() });
    }
    Gaussian::fit(a, "first set")?.frechet_distance(&Gaussian::fit(b, "second set")?)
}

/// Which groups of two paired sets a grouped comparison uses: `groups.0[g]` and `groups.1[g]`
/// are the rows of group `g` in the first and the second set.
pub type Groups<'a> = (&'a [Range<usize>], &'a [Range<usize>]);

/// The squared Fréchet distance between two sets of grouped samples over `resamples`
/// resamples of the groups with replacement (the group bootstrap); `None` for a resample
/// whose distance cannot be measured (fewer rows than dimensions). Both sets take the same
/// draws, as the groups pair up (an evaluation's scenes: a scene's frames and its futures are
/// correlated, so they are resampled together). Deterministic in `seed` and the number of
/// groups, so two comparisons over the same groups draw the same resamples and their
/// distances pair up ([`bootstrap_sd`] of their differences).
pub fn frechet_bootstrap(
    a: &Features,
    b: &Features,
    groups: Groups<'_>,
    resamples: usize,
    seed: u64,
) -> Result<Vec<Option<f64>>, MetricError> {
    let n = check_groups(a, b, groups)?;
    group_draws(n, resamples, seed).iter().map(|draw| grouped_distance(a, b, groups, draw)).collect()
}

/// `resamples` draws of `n` groups with replacement, deterministic in `seed` and `n`: every
/// grouped distance resampled with one seed (Fréchet, [`super::kernel::GroupedKernel`]) draws these.
pub(crate) fn group_draws(n: usize, resamples: usize, seed: u64) -> Vec<Vec<usize>> {
    use rand::{RngExt, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..resamples).map(|_| (0..n).map(|_| rng.random_range(0..n)).collect()).collect()
}

/// The squared Fréchet distance with each group left out in turn (entry `g`: without group
/// `g`; `None` where the rest cannot be measured). Where one group moves the distance far more
/// than the others, the distance rests on that group.
pub fn frechet_leave_one_out(a: &Features, b: &Features, groups: Groups<'_>) -> Result<Vec<Option<f64>>, MetricError> {
    let n = check_groups(a, b, groups)?;
    (0..n)
        .map(|left_out| {
            let kept: Vec<usize> = (0..n).filter(|&g| g != left_out).collect();
            grouped_distance(a, b, groups, &kept)
        })
        .collect()
}

/// The number of groups, once both groupings are known to pair up and fit their sets.
pub(crate) fn check_groups(a: &Features, b: &Features, (a_groups, b_groups): Groups<'_>) -> Result<usize, MetricError> {
    if a_groups.len() != b_groups.len() {
        return Err(MetricError::Mismatch {
            what: "groups of the two sets",
            left: a_groups.len(),
            right: b_groups.len(),
        });
    }
    if a_groups.len() < 2 {
        return Err(MetricError::TooFew { what: "groups to resample or leave out", needed: 2, got: a_groups.len() });
    }
    for (groups, set) in [(a_groups, a), (b_groups, b)] {
        if groups.iter().any(|g| g.end > set.len() || g.start > g.end) {
            return Err(MetricError::Mismatch { what: "group rows vs set rows", left: groups.len(), right: set.len() });
        }
    }
    Ok(a_groups.len())
}

/// The distance between the rows of the `picked` groups (a group may repeat) of both sets;
/// `None` where it cannot be measured.
fn grouped_distance(
    a: &Features,
    b: &Features,
    groups: Groups<'_>,
    picked: &[usize],
) -> Result<Option<f64>, MetricError> {
    let gather = |set: &Features, groups: &[Range<usize>]| {
        let data: Vec<f32> = picked.iter().flat_map(|&g| groups[g].clone().flat_map(|i| set.row(i).to_vec())).collect();
        Features::new(data, set.dims(), "resample")
    };
    Ok(frechet_distance(&gather(a, groups.0)?, &gather(b, groups.1)?).ok())
}

/// The measured bootstrap values (`None`: a resample that could not be measured, skipped);
/// an error when fewer than 90% of them (or fewer than 2) were measured.
fn measured(values: &[Option<f64>]) -> Result<Vec<f64>, MetricError> {
    let measured: Vec<f64> = values.iter().flatten().copied().collect();
    let needed = (values.len() * 9).div_ceil(10).max(2);
    if measured.len() < needed {
        return Err(MetricError::TooFew { what: "measurable bootstrap resamples", needed, got: measured.len() });
    }
    Ok(measured)
}

/// The standard deviation of bootstrap values, skipping those not measured; an error when
/// fewer than 90% of them (or fewer than 2) were measured.
pub fn bootstrap_sd(values: &[Option<f64>]) -> Result<f64, MetricError> {
    let measured = measured(values)?;
    let n = measured.len() as f64;
    let mean = measured.iter().sum::<f64>() / n;
    Ok((measured.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt())
}

/// The 5th and 95th percentiles of bootstrap values (nearest rank), under the same rule as
/// [`bootstrap_sd`]. A squared distance near 0 cannot spread below 0, so its resamples are
/// skewed and this range says more than the standard deviation; a value outside its own
/// resamples' range rests on few groups ([`frechet_leave_one_out`]).
pub fn bootstrap_range(values: &[Option<f64>]) -> Result<[f64; 2], MetricError> {
    let mut measured = measured(values)?;
    measured.sort_by(f64::total_cmp);
    let at = |p: f64| measured[((measured.len() - 1) as f64 * p).round() as usize];
    Ok([at(0.05), at(0.95)])
}

/// Square root of a symmetric positive semi-definite matrix: `V √max(Λ, 0) Vᵀ`.
fn psd_sqrt(m: &DMatrix<f64>) -> Result<DMatrix<f64>, MetricError> {
    let eigen = symmetric_eigen(m.clone())?;
    let roots = eigen.eigenvalues.map(|l| l.max(0.0).sqrt());
    let v = &eigen.eigenvectors;
    Ok(v * DMatrix::from_diagonal(&roots) * v.transpose())
}

fn symmetric_eigen(m: DMatrix<f64>) -> Result<SymmetricEigen<f64, nalgebra::Dyn>, MetricError> {
    // nalgebra's defaults (machine epsilon, no iteration cap) with a cap, so a
    // pathological input ends in an error instead of spinning.
    SymmetricEigen::try_new(m, f64::EPSILON, 10_000).ok_or(MetricError::Eigen { what: "covariance" })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// `n` correlated samples of width `d`: standard normals mixed by a fixed random matrix.
    fn samples(n: usize, d: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mix: Vec<f32> = (0..d * d).map(|_| rng.random::<f32>() * 2.0 - 1.0).collect();
        (0..n)
            .map(|_| {
                let z: Vec<f32> = (0..d).map(|_| normal(&mut rng)).collect();
                (0..d).map(|i| (0..d).map(|j| mix[i * d + j] * z[j]).sum::<f32>() + i as f32).collect()
            })
            .collect()
    }

    fn normal(rng: &mut ChaCha8Rng) -> f32 {
        // Box–Muller: enough for test data.
        let (u, v) = (rng.random::<f32>().max(1e-7), rng.random::<f32>());
        (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
    }

    fn set(rows: &[Vec<f32>]) -> Features {
        Features::from_rows(rows, "test").unwrap()
    }

    #[test]
    fn identical_sets_are_at_distance_zero() {
        let x = set(&samples(300, 8, 1));
        let g = Gaussian::fit(&x, "x").unwrap();
        let d2 = frechet_distance(&x, &x).unwrap();
        assert!(d2 <= 1e-6 * g.cov.trace(), "d² = {d2}");
    }

    #[test]
    fn one_dimension_matches_the_closed_form() {
        // N(1, 2²) vs N(3, 3²): (1 − 3)² + (2 − 3)² = 5.
        let a = Gaussian::new(&[1.0], &[4.0], "a").unwrap();
        let b = Gaussian::new(&[3.0], &[9.0], "b").unwrap();
        assert!((a.frechet_distance(&b).unwrap() - 5.0).abs() < 1e-12);
    }

    #[test]
    fn diagonal_gaussians_match_the_closed_form() {
        // d² = Σ (μ₁ᵢ − μ₂ᵢ)² + Σ (σ₁ᵢ − σ₂ᵢ)².
        let (m1, s1) = ([0.0, 1.0, -2.0], [1.0, 0.5, 3.0]);
        let (m2, s2) = ([0.5, 1.0, 0.0], [2.0, 0.5, 1.0]);
        let diag = |s: &[f64; 3]| {
            let mut c = vec![0.0; 9];
            (0..3).for_each(|i| c[i * 4] = s[i] * s[i]);
            c
        };
        let a = Gaussian::new(&m1, &diag(&s1), "a").unwrap();
        let b = Gaussian::new(&m2, &diag(&s2), "b").unwrap();
        let expected: f64 = (0..3).map(|i| (m1[i] - m2[i]).powi(2) + (s1[i] - s2[i]).powi(2)).sum();
        assert!((a.frechet_distance(&b).unwrap() - expected).abs() < 1e-12, "expected {expected}");
    }

    #[test]
    fn non_commuting_covariances_match_the_two_dimensional_closed_form() {
        // For 2×2 PSD M, tr √M = √(tr M + 2√det M); Σ₁^½Σ₂Σ₁^½ has tr = tr(Σ₁Σ₂) and
        // det = det Σ₁ det Σ₂, so d² needs no matrix root at all.
        let c1 = [2.0, 0.8, 0.8, 1.0];
        let c2 = [1.0, -0.5, -0.5, 3.0];
        let a = Gaussian::new(&[0.0, 0.0], &c1, "a").unwrap();
        let b = Gaussian::new(&[1.0, -1.0], &c2, "b").unwrap();
        let tr_prod = c1[0] * c2[0] + c1[1] * c2[2] + c1[2] * c2[1] + c1[3] * c2[3];
        let det = |c: &[f64; 4]| c[0] * c[3] - c[1] * c[2];
        let cross = (tr_prod + 2.0 * (det(&c1) * det(&c2)).sqrt()).sqrt();
        let expected = 2.0 + (c1[0] + c1[3]) + (c2[0] + c2[3]) - 2.0 * cross;
        let (ab, ba) = (a.frechet_distance(&b).unwrap(), b.frechet_distance(&a).unwrap());
        assert!((ab - expected).abs() < 1e-12, "{ab} vs {expected}");
        assert!((ab - ba).abs() < 1e-12);
    }

    #[test]
    fn shifted_and_scaled_samples_give_the_closed_form() {
        // y = k·x + c has mean k·μ + c and covariance k²Σ exactly (sample statistics), so
        // d² = |(k − 1)μ + c|² + (k − 1)² tr Σ.
        let rows = samples(200, 4, 2);
        let (k, c) = (2.0f32, [0.5f32, -1.0, 0.0, 2.0]);
        let moved: Vec<Vec<f32>> = rows.iter().map(|r| r.iter().zip(c).map(|(v, c)| k * v + c).collect()).collect();
        let g = Gaussian::fit(&set(&rows), "x").unwrap();
        let shift: f64 = (0..4).map(|i| ((k as f64 - 1.0) * g.mean[i] + c[i] as f64).powi(2)).sum();
        let expected = shift + (k as f64 - 1.0).powi(2) * g.cov.trace();
        let d2 = frechet_distance(&set(&rows), &set(&moved)).unwrap();
        assert!((d2 - expected).abs() < 1e-4 * expected, "{d2} vs {expected}");
    }

    #[test]
    fn more_noise_means_a_larger_distance() {
        let rows = samples(400, 6, 3);
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let noisy = |scale: f32, rng: &mut ChaCha8Rng| -> Features {
            set(&rows.iter().map(|r| r.iter().map(|v| v + scale * normal(rng)).collect()).collect::<Vec<_>>())
        };
        let clean = set(&rows);
        let d: Vec<f64> =
            [0.1, 0.5, 2.0].iter().map(|&s| frechet_distance(&clean, &noisy(s, &mut rng)).unwrap()).collect();
        assert!(0.0 < d[0] && d[0] < d[1] && d[1] < d[2], "{d:?}");
    }

    #[test]
    fn singular_covariances_stay_finite() {
        // A point mass (zero covariance) against N(μ, Σ): |μ|² + tr Σ.
        let a = Gaussian::new(&[0.0, 0.0], &[0.0; 4], "a").unwrap();
        let b = Gaussian::new(&[3.0, 4.0], &[1.0, 1.0, 1.0, 1.0], "b").unwrap();
        for d2 in [a.frechet_distance(&b).unwrap(), b.frechet_distance(&a).unwrap()] {
            assert!((d2 - 27.0).abs() < 1e-9, "{d2}");
        }
    }

    #[test]
    fn the_bootstrap_spread_follows_how_much_the_groups_differ() {
        // 10 groups of 20 rows each; `b` is `a` shifted by a constant in every group, or
        // by an amount that differs from group to group.
        let rows = samples(200, 3, 7);
        let groups: Vec<Range<usize>> = (0..10).map(|g| g * 20..(g + 1) * 20).collect();
        let shift = |per_group: &dyn Fn(usize) -> f32| -> Features {
            set(&rows
                .iter()
                .enumerate()
                .map(|(i, r)| r.iter().map(|v| v + per_group(i / 20)).collect())
                .collect::<Vec<_>>())
        };
        let a = set(&rows);
        let resamples = |b: &Features, seed| frechet_bootstrap(&a, b, (&groups, &groups), 200, seed).unwrap();
        let sd = |b: &Features| bootstrap_sd(&resamples(b, 1)).unwrap();
        // The same set: every resample is at distance 0.
        assert!(sd(&a) < 1e-9, "{}", sd(&a));
        // A constant shift c: every resample's distance is 3c² (each axis moves by c) exactly.
        assert!(sd(&shift(&|_| 1.0)) < 1e-6, "{}", sd(&shift(&|_| 1.0)));
        // Shifts that differ by group: the distance depends on which groups are drawn.
        let uneven = sd(&shift(&|g| g as f32 * 0.5));
        assert!(uneven > 0.1, "{uneven}");
        // Deterministic in the seed, and another seed draws other resamples.
        let b = shift(&|g| g as f32 * 0.5);
        assert_eq!(bootstrap_sd(&resamples(&b, 1)).unwrap(), uneven);
        assert_ne!(bootstrap_sd(&resamples(&b, 2)).unwrap(), uneven);
        // The same draws pair up: `c` is `b` moved by a constant, so on each resample the two
        // distances move together, and their differences vary far less than either.
        let c = shift(&|g| g as f32 * 0.5 + 0.1);
        let (rb, rc) = (resamples(&b, 1), resamples(&c, 1));
        let diffs: Vec<Option<f64>> = rb.iter().zip(&rc).map(|(x, y)| Some(y.unwrap() - x.unwrap())).collect();
        assert!(bootstrap_sd(&diffs).unwrap() < 0.5 * uneven, "{} vs {uneven}", bootstrap_sd(&diffs).unwrap());
        // Groups too small to measure (a resample of 2 one-row groups has 2 rows of width 3)
        // and mismatched groupings are errors, not numbers.
        let tiny: Vec<Range<usize>> = (0..2).map(|g| g..g + 1).collect();
        let unmeasured = frechet_bootstrap(&a, &a, (&tiny, &tiny), 50, 1).unwrap();
        assert!(unmeasured.iter().all(Option::is_none));
        assert!(bootstrap_sd(&unmeasured).is_err());
        assert!(frechet_bootstrap(&a, &a, (&groups, &groups[..9]), 50, 1).is_err());
    }

    #[test]
    fn leaving_out_a_group_and_the_resample_range_show_a_distance_that_rests_on_one_group() {
        // 8 groups of 25 rows; `b` equals `a` but for group 5, which is moved far off.
        let rows = samples(200, 2, 11);
        let groups: Vec<Range<usize>> = (0..8).map(|g| g * 25..(g + 1) * 25).collect();
        let moved: Vec<Vec<f32>> = rows
            .iter()
            .enumerate()
            .map(|(i, r)| r.iter().map(|v| v + if i / 25 == 5 { 4.0 } else { 0.0 }).collect())
            .collect();
        let (a, b) = (set(&rows), set(&moved));
        let loo = frechet_leave_one_out(&a, &b, (&groups, &groups)).unwrap();
        assert_eq!(loo.len(), 8);
        // Without group 5 the sets are identical; without any other the distance stays.
        assert!(loo[5].unwrap() < 1e-9, "{loo:?}");
        let full = frechet_distance(&a, &b).unwrap();
        assert!(
            loo.iter().enumerate().filter(|(g, _)| *g != 5).all(|(_, d)| (d.unwrap() - full).abs() < 0.5 * full),
            "{loo:?} vs {full}"
        );
        // The resamples without group 5 are at 0, those drawing it twice far above `full`:
        // the range spans both and is ordered.
        let resamples = frechet_bootstrap(&a, &b, (&groups, &groups), 200, 3).unwrap();
        let [low, high] = bootstrap_range(&resamples).unwrap();
        assert!(low < 1e-9 && high > full && low <= high, "{low} {high} {full}");
        // The same set: everything is 0. Unmeasurable groups and mismatches are errors.
        let same = frechet_bootstrap(&a, &a, (&groups, &groups), 50, 3).unwrap();
        assert!(bootstrap_range(&same).unwrap().iter().all(|v| *v < 1e-9));
        let tiny: Vec<Range<usize>> = (0..3).map(|g| g..g + 1).collect();
        assert!(frechet_leave_one_out(&a, &a, (&tiny, &tiny)).unwrap().iter().all(Option::is_none));
        assert!(bootstrap_range(&[None, None, Some(1.0)]).is_err());
        assert!(frechet_leave_one_out(&a, &a, (&groups[..1], &groups[..1])).is_err());
        assert!(frechet_leave_one_out(&a, &a, (&groups, &groups[..7])).is_err());
    }

    #[test]
    fn degenerate_sets_are_clear_errors() {
        let x = set(&samples(10, 4, 4));
        let few = set(&samples(4, 4, 5));
        let err = frechet_distance(&x, &few).unwrap_err();
        assert_eq!(
            err.to_string(),
            "second set: 4 samples of 4-dimensional features; a full-rank covariance needs at least 5 samples"
        );
        let empty = Features::new(vec![], 4, "gen").unwrap();
        assert_eq!(frechet_distance(&empty, &x), Err(MetricError::Empty { what: "first set" }));
        let narrow = set(&samples(10, 3, 6));
        assert_eq!(frechet_distance(&x, &narrow).unwrap_err().to_string(), "feature widths of the two sets: 4 vs 3");
        assert_eq!(
            Gaussian::new(&[0.0, 0.0], &[1.0], "ref").unwrap_err().to_string(),
            "covariance entries vs squared mean width: 1 vs 4",
        );
    }
}
