//! Condition accuracy: does a generated scene show the requested time of day and
//! traffic density, as judged by the condition classifier?

use crate::scenario::Conditions;

use super::error::MetricError;

/// Accuracies over a set of (requested, predicted) conditions, each 0..=1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConditionAccuracy {
    pub samples: usize,
    pub time_of_day: f32,
    /// Crowdedness predicted exactly.
    pub crowdedness_exact: f32,
    /// Crowdedness within one level (density levels are ordered; a neighbour is a near miss).
    pub crowdedness_within_one: f32,
}

/// Accuracies of `predicted[i]` against `requested[i]`.
pub fn condition_accuracy(
    requested: &[Conditions],
    predicted: &[Conditions],
) -> Result<ConditionAccuracy, MetricError> {
    if requested.len() != predicted.len() {
        return Err(MetricError::Mismatch {
            what: "requested vs predicted conditions",
            left: requested.len(),
            right: predicted.len(),
        });
    }
    if requested.is_empty() {
        return Err(MetricError::Empty { what: "conditions" });
    }
    let pairs = || requested.iter().zip(predicted);
    let fraction = |hits: usize| hits as f32 / requested.len() as f32;
    Ok(ConditionAccuracy {
        samples: requested.len(),
        time_of_day: fraction(pairs().filter(|(r, p)| r.time_of_day == p.time_of_day).count()),
        crowdedness_exact: fraction(pairs().filter(|(r, p)| r.crowdedness == p.crowdedness).count()),
        crowdedness_within_one: fraction(pairs().filter(|(r, p)| r.crowdedness.abs_diff(p.crowdedness) <= 1).count()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::TimeOfDay::{Day, Night};

    fn c(time_of_day: crate::scenario::TimeOfDay, crowdedness: u8) -> Conditions {
        Conditions { time_of_day, crowdedness }
    }

    #[test]
    fn right_conditions_score_one_and_wrong_ones_less() {
        let requested = [c(Day, 0), c(Night, 1), c(Day, 2), c(Night, 3)];
        let right = condition_accuracy(&requested, &requested).unwrap();
        assert_eq!((right.time_of_day, right.crowdedness_exact, right.crowdedness_within_one), (1.0, 1.0, 1.0));
        // One night flipped to day; crowdedness off by one twice and by two once.
        let wrong = [c(Day, 1), c(Day, 1), c(Day, 0), c(Night, 2)];
        let s = condition_accuracy(&requested, &wrong).unwrap();
        assert_eq!((s.time_of_day, s.crowdedness_exact, s.crowdedness_within_one), (0.75, 0.25, 0.75));
    }

    #[test]
    fn mismatched_or_empty_inputs_are_errors() {
        let err = condition_accuracy(&[c(Day, 0)], &[]).unwrap_err();
        assert_eq!(err.to_string(), "requested vs predicted conditions: 1 vs 0");
        assert_eq!(condition_accuracy(&[], &[]), Err(MetricError::Empty { what: "conditions" }));
    }
}
