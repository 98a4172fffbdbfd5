//! Multi-future diversity: how far apart the futures generated from one scene are, as
//! the mean pairwise Euclidean distance of their evaluator features. 0 means every
//! future is the same; a model that ignores its noise collapses towards it.

use super::error::MetricError;
use super::features::Features;

/// Mean Euclidean distance over all unordered pairs of rows (needs at least 2).
pub fn mean_pairwise_distance(futures: &Features) -> Result<f64, MetricError> {
    let n = futures.len();
    if n < 2 {
        return Err(MetricError::TooFew { what: "futures for diversity", needed: 2, got: n });
    }
    let mut sum = 0.0f64;
    for i in 0..n {
        for j in i + 1..n {
            let d2: f64 = futures.row(i).iter().zip(futures.row(j)).map(|(a, b)| (*a as f64 - *b as f64).powi(2)).sum();
            sum += d2.sqrt();
        }
    }
    Ok(sum / (n * (n - 1) / 2) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(rows: &[Vec<f32>]) -> Features {
        Features::from_rows(rows, "futures").unwrap()
    }

    #[test]
    fn identical_futures_have_no_diversity_and_spread_ones_have_more() {
        let same = set(&[vec![1.0, 2.0], vec![1.0, 2.0], vec![1.0, 2.0]]);
        assert_eq!(mean_pairwise_distance(&same).unwrap(), 0.0);
        // Corners of a 3-4-5 right triangle: (3 + 4 + 5) / 3.
        let triangle = set(&[vec![0.0, 0.0], vec![3.0, 0.0], vec![0.0, 4.0]]);
        assert!((mean_pairwise_distance(&triangle).unwrap() - 4.0).abs() < 1e-12);
        let wider = set(&[vec![0.0, 0.0], vec![6.0, 0.0], vec![0.0, 8.0]]);
        assert!((mean_pairwise_distance(&wider).unwrap() - 8.0).abs() < 1e-12);
    }

    #[test]
    fn one_future_is_an_error() {
        let err = mean_pairwise_distance(&set(&[vec![1.0]])).unwrap_err();
        assert_eq!(err.to_string(), "futures for diversity: needs at least 2, got 1");
    }
}
