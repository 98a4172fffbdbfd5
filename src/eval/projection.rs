//! Principal-component projection of feature sets before the Fréchet distance.
//!
//! A full-rank covariance needs more samples than feature dimensions (see
//! [`super::frechet::Gaussian::fit`]); a CPU evaluation has tens to hundreds of frames
//! against 96 classifier features and fewer clips still. Both sets are therefore
//! projected onto the top `k` principal components of the *reference* set (the world's
//! renders), so the two Gaussians live in the same, fixed subspace and the distance is
//! comparable across settings that share the reference. The same is done by small-sample
//! FID variants; the report states `k`.

use nalgebra::{DMatrix, SymmetricEigen};

use super::error::MetricError;
use super::features::Features;

/// The reference set's mean and its top principal directions.
#[derive(Debug, Clone, PartialEq)]
pub struct Projection {
    mean: Vec<f64>,
    /// `k` unit rows of width `d`, by falling variance.
    components: Vec<Vec<f64>>,
}

impl Projection {
    /// The top `k` principal components of `reference` (at least `k + 1` samples, so the
    /// projected covariance can be full rank).
    pub fn fit(reference: &Features, k: usize) -> Result<Self, MetricError> {
        let (n, d) = (reference.len(), reference.dims());
        if k == 0 || k > d {
            return Err(MetricError::OutOfRange { what: "principal components", value: k as f32, range: "1..=dims" });
        }
        if n <= k {
            return Err(MetricError::TooFewSamples { what: "reference features", samples: n, dims: k });
        }
        let x = DMatrix::from_row_iterator(n, d, reference.rows().flatten().map(|&v| v as f64));
        let mean: Vec<f64> = x.row_mean().iter().copied().collect();
        let centred = DMatrix::from_fn(n, d, |i, j| x[(i, j)] - mean[j]);
        let cov = centred.tr_mul(&centred) / (n - 1) as f64;
        let eigen = SymmetricEigen::try_new(cov, f64::EPSILON, 10_000)
            .ok_or(MetricError::Eigen { what: "reference covariance" })?;
        let mut order: Vec<usize> = (0..d).collect();
        order.sort_by(|&a, &b| eigen.eigenvalues[b].total_cmp(&eigen.eigenvalues[a]));
        let components = order[..k].iter().map(|&c| eigen.eigenvectors.column(c).iter().copied().collect()).collect();
        Ok(Projection { mean, components })
    }

    /// Width of the projected features.
    pub fn dims(&self) -> usize {
        self.components.len()
    }

    /// `features` in the reference's principal coordinates, `[n, k]`.
    pub fn apply(&self, features: &Features, what: &'static str) -> Result<Features, MetricError> {
        if features.dims() != self.mean.len() {
            return Err(MetricError::Mismatch {
                what: "feature width vs projection width",
                left: features.dims(),
                right: self.mean.len(),
            });
        }
        let data = features
            .rows()
            .flat_map(|row| {
                self.components.iter().map(move |c| {
                    row.iter().zip(&self.mean).zip(c).map(|((&v, m), w)| (v as f64 - m) * w).sum::<f64>() as f32
                })
            })
            .collect();
        Features::new(data, self.dims(), what)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::frechet_distance;

    #[test]
    fn the_top_component_follows_the_largest_variance() {
        // Variance along x is 100× that along y: the first component is ±x.
        let rows: Vec<Vec<f32>> = (0..20).map(|i| vec![(i as f32 - 9.5) * 10.0, ((i % 3) as f32 - 1.0)]).collect();
        let set = Features::from_rows(&rows, "ref").unwrap();
        let p = Projection::fit(&set, 1).unwrap();
        assert!((p.components[0][0].abs() - 1.0).abs() < 1e-3, "{:?}", p.components);
        let projected = p.apply(&set, "ref").unwrap();
        assert_eq!((projected.len(), projected.dims()), (20, 1));
        // Centred on the reference mean.
        let mean: f32 = projected.rows().map(|r| r[0]).sum::<f32>() / 20.0;
        assert!(mean.abs() < 1e-3);
    }

    #[test]
    fn projected_identical_sets_are_at_distance_zero_and_shifts_are_not() {
        let rows: Vec<Vec<f32>> = (0..40)
            .map(|i| (0..6).map(|j| ((i * 7 + j * 3) % 11) as f32 + (i % 5) as f32 * j as f32).collect())
            .collect();
        let set = Features::from_rows(&rows, "ref").unwrap();
        let p = Projection::fit(&set, 3).unwrap();
        let a = p.apply(&set, "a").unwrap();
        assert!(frechet_distance(&a, &a).unwrap() < 1e-6);
        let shifted: Vec<Vec<f32>> = rows.iter().map(|r| r.iter().map(|v| v + 2.0).collect()).collect();
        let b = p.apply(&Features::from_rows(&shifted, "b").unwrap(), "b").unwrap();
        assert!(frechet_distance(&a, &b).unwrap() > 1.0);
    }

    #[test]
    fn too_few_reference_samples_are_refused() {
        let set = Features::from_rows(&[vec![1.0, 2.0], vec![2.0, 1.0]], "ref").unwrap();
        assert_eq!(
            Projection::fit(&set, 2),
            Err(MetricError::TooFewSamples { what: "reference features", samples: 2, dims: 2 })
        );
    }
}
