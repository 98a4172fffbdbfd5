//! Feature sets: one evaluator feature vector per sample (frame or clip), the input of
//! the Fréchet distance and of multi-future diversity.

use burn::tensor::{Tensor, backend::Backend};

use super::error::{MetricError, check_finite};

/// `n` feature vectors of width `d`, row-major (`[n, d]`), all values finite.
#[derive(Debug, Clone, PartialEq)]
pub struct Features {
    data: Vec<f32>,
    dims: usize,
}

impl Features {
    /// Rows of `dims` values each, concatenated. `what` names the set in errors.
    pub fn new(data: Vec<f32>, dims: usize, what: &'static str) -> Result<Self, MetricError> {
        if dims == 0 {
            return Err(MetricError::Empty { what });
        }
        if !data.len().is_multiple_of(dims) {
            return Err(MetricError::Ragged { what, len: data.len(), dims });
        }
        check_finite(data.iter().copied(), what)?;
        Ok(Features { data, dims })
    }

    /// One vector per sample; all must have the same width.
    pub fn from_rows(rows: &[Vec<f32>], what: &'static str) -> Result<Self, MetricError> {
        let dims = rows.first().ok_or(MetricError::Empty { what })?.len();
        if let Some((row, r)) = rows.iter().enumerate().find(|(_, r)| r.len() != dims) {
            return Err(MetricError::RowWidth { what, row, width: r.len(), expected: dims });
        }
        Features::new(rows.concat(), dims, what)
    }

    /// Features `[n, d]` computed by an evaluator.
    pub fn from_tensor<B: Backend>(features: Tensor<B, 2>, what: &'static str) -> Result<Self, MetricError> {
        let [_, dims] = features.dims();
        let data = features.into_data().convert::<f32>().to_vec::<f32>().unwrap_or_default();
        Features::new(data, dims, what)
    }

    /// Number of samples `n`.
    pub fn len(&self) -> usize {
        self.data.len() / self.dims
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Width `d` of each vector.
    pub fn dims(&self) -> usize {
        self.dims
    }

    /// Sample `i`'s vector.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dims..(i + 1) * self.dims]
    }

    pub fn rows(&self) -> impl Iterator<Item = &[f32]> {
        self.data.chunks_exact(self.dims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;

    #[test]
    fn rows_and_tensors_give_the_same_set() {
        let rows = vec![vec![1.0, 2.0, 3.0], vec![4.0, 5.0, 6.0]];
        let a = Features::from_rows(&rows, "a").unwrap();
        let t = Tensor::<Flex, 2>::from_floats([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], &Default::default());
        let b = Features::from_tensor(t, "a").unwrap();
        assert_eq!(a, b);
        assert_eq!((a.len(), a.dims()), (2, 3));
        assert_eq!(a.row(1), &[4.0, 5.0, 6.0]);
    }

    #[test]
    fn malformed_sets_are_errors() {
        assert_eq!(Features::from_rows(&[], "gen"), Err(MetricError::Empty { what: "gen" }));
        let ragged = Features::from_rows(&[vec![1.0, 2.0], vec![1.0]], "gen").unwrap_err();
        assert_eq!(ragged.to_string(), "gen: row 1 has 1 values, row 0 has 2");
        let flat = Features::new(vec![1.0; 5], 2, "gen").unwrap_err();
        assert_eq!(flat.to_string(), "gen: 5 values are not whole rows of 2");
        let nan = Features::new(vec![0.0, f32::NAN], 1, "ref").unwrap_err();
        assert_eq!(nan.to_string(), "ref: value 1 is not finite");
        assert_eq!(Features::new(vec![], 0, "ref"), Err(MetricError::Empty { what: "ref" }));
    }
}
