//! Why a metric cannot be computed. Every degenerate input (empty sets, too few samples,
//! mismatched sizes, non-finite values) is reported here instead of panicking or
//! returning NaN.

/// A metric's input that has no meaningful value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MetricError {
    #[error("{what}: empty set")]
    Empty { what: &'static str },
    #[error(
        "{what}: {samples} samples of {dims}-dimensional features; a full-rank covariance needs at least {} samples",
        dims + 1
    )]
    TooFewSamples { what: &'static str, samples: usize, dims: usize },
    #[error("{what}: needs at least {needed}, got {got}")]
    TooFew { what: &'static str, needed: usize, got: usize },
    #[error("{what}: {len} values are not whole rows of {dims}")]
    Ragged { what: &'static str, len: usize, dims: usize },
    #[error("{what}: row {row} has {width} values, row 0 has {expected}")]
    RowWidth { what: &'static str, row: usize, width: usize, expected: usize },
    /// Two inputs that must agree in size do not (`what` says which).
    #[error("{what}: {left} vs {right}")]
    Mismatch { what: &'static str, left: usize, right: usize },
    #[error("{what}: value {index} is not finite")]
    NonFinite { what: &'static str, index: usize },
    #[error("{what}: {value} is outside {range}")]
    OutOfRange { what: &'static str, value: f32, range: &'static str },
    #[error("no ground-truth boxes in any image: average precision is undefined")]
    NoGroundTruth,
    #[error("no track to follow: no frame before the last has a box")]
    NothingToTrack,
    #[error("the static-region mask marks no pixel")]
    EmptyMask,
    #[error("world seed {seed} is in the training range (below 2^40); held-out accuracy needs evaluation seeds")]
    TrainingSeed { seed: u64 },
    #[error("{what}: symmetric eigendecomposition did not converge")]
    Eigen { what: &'static str },
}

/// Checks that every value is finite; `what` names the input in the error.
pub(crate) fn check_finite(values: impl IntoIterator<Item = f32>, what: &'static str) -> Result<(), MetricError> {
    match values.into_iter().position(|v| !v.is_finite()) {
        Some(index) => Err(MetricError::NonFinite { what, index }),
        None => Ok(()),
    }
}
