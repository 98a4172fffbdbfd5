//! Crowdedness read from the detector's car count, a second judge beside the
//! classifier's crowdedness head.
//!
//! Why: crowdedness sets the traffic density, so the number of cars in view separates
//! its levels well (level 0 has none), but the tiny classifier's globally pooled,
//! group-normalised features did not learn it in a 10-minute run (held-out accuracy at
//! chance), while its day/night head did. Counting detections is a calibrated,
//! transparent alternative: the thresholds between levels are fitted on renders of
//! *training*-range worlds and its accuracy is measured on held-out ones.

use burn::tensor::{Tensor, backend::Backend};
use serde::{Deserialize, Serialize};

use crate::scenario::{Conditions, MAX_CROWDEDNESS};
use crate::train::FrameSource;

use super::conditions::{ConditionAccuracy, condition_accuracy};
use super::detection::Detection;
use super::detector::Detector;
use super::error::MetricError;
use super::measure::TRACK_SCORE;
use super::tasks::DETECTIONS_PER_IMAGE;

/// Renders of training-range worlds the thresholds are fitted on.
pub const CALIBRATION_WORLDS: usize = 96;

/// Run seed of the calibration renders (any training-range seeds do).
const CALIBRATION_SEED: u64 = 0xC0A7;

const CHUNK: usize = 8;

/// Level = how many thresholds the detected car count reaches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CountCrowdedness {
    /// Between levels 0|1, 1|2 and 2|3: midpoints of the mean counts of neighbouring levels.
    pub thresholds: Vec<f32>,
    /// Mean detected count per level on the calibration renders.
    pub mean_counts: Vec<f32>,
}

/// Detections at or above the tracking score.
pub fn car_count(detections: &[Detection]) -> usize {
    detections.iter().filter(|d| d.score >= TRACK_SCORE).count()
}

/// Detected car counts and true conditions of the renders of worlds `seeds`.
fn counts<B: Backend>(
    detector: &Detector<B>,
    frames: &FrameSource,
    seeds: &[u64],
    device: &B::Device,
) -> (Vec<usize>, Vec<Conditions>) {
    let (mut counts, mut truth) = (Vec::new(), Vec::new());
    for chunk in seeds.chunks(CHUNK) {
        let (images, conditions): (Vec<_>, Vec<_>) =
            chunk.iter().map(|&s| frames.labelled_frame::<B>(s, device)).map(|(f, c, _)| (f, c)).unzip();
        counts.extend(detector.detect(Tensor::stack(images, 0), DETECTIONS_PER_IMAGE).iter().map(|d| car_count(d)));
        truth.extend(conditions);
    }
    (counts, truth)
}

impl CountCrowdedness {
    /// Fits the thresholds on [`CALIBRATION_WORLDS`] training-range renders at `frames`' size.
    pub fn fit<B: Backend>(
        detector: &Detector<B>,
        (h, w): (usize, usize),
        device: &B::Device,
    ) -> Result<Self, MetricError> {
        let frames = FrameSource::new(h, w, CALIBRATION_SEED);
        let seeds = frames.train_seeds(0, CALIBRATION_WORLDS);
        let (counts, truth) = counts(detector, &frames, &seeds, device);
        Self::from_counts(&counts, &truth)
    }

    /// Thresholds from counts and the true levels of the same frames (each level needed).
    pub fn from_counts(counts: &[usize], truth: &[Conditions]) -> Result<Self, MetricError> {
        let levels = MAX_CROWDEDNESS as usize + 1;
        let mut mean_counts = Vec::with_capacity(levels);
        for level in 0..levels {
            let of_level: Vec<f32> = counts
                .iter()
                .zip(truth)
                .filter(|(_, t)| t.crowdedness as usize == level)
                .map(|(&c, _)| c as f32)
                .collect();
            if of_level.is_empty() {
                return Err(MetricError::TooFew {
                    what: "calibration frames of every crowdedness level",
                    needed: 1,
                    got: 0,
                });
            }
            mean_counts.push(of_level.iter().sum::<f32>() / of_level.len() as f32);
        }
        let mut thresholds: Vec<f32> = mean_counts.windows(2).map(|m| (m[0] + m[1]) / 2.0).collect();
        thresholds.sort_by(f32::total_cmp);
        Ok(CountCrowdedness { thresholds, mean_counts })
    }

    /// The crowdedness level of a frame with `count` detected cars.
    pub fn level(&self, count: usize) -> u8 {
        self.thresholds.iter().filter(|&&t| count as f32 >= t).count() as u8
    }

    /// Accuracy on the renders of held-out worlds `seeds` (the time of day is taken as
    /// right, so only the crowdedness fields mean anything).
    pub fn accuracy<B: Backend>(
        &self,
        detector: &Detector<B>,
        frames: &FrameSource,
        seeds: &[u64],
        device: &B::Device,
    ) -> Result<ConditionAccuracy, MetricError> {
        if let Some(&seed) = seeds.iter().find(|&&s| s < crate::data::EVAL_SEED_BASE) {
            return Err(MetricError::TrainingSeed { seed });
        }
        let (counts, truth) = counts(detector, frames, seeds, device);
        let predicted: Vec<Conditions> =
            counts.iter().zip(&truth).map(|(&c, t)| Conditions { crowdedness: self.level(c), ..*t }).collect();
        condition_accuracy(&truth, &predicted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::TimeOfDay;

    fn at(crowdedness: u8) -> Conditions {
        Conditions { time_of_day: TimeOfDay::Day, crowdedness }
    }

    #[test]
    fn thresholds_sit_between_the_levels_mean_counts() {
        let counts = [0, 0, 4, 6, 10, 14, 20, 24];
        let truth: Vec<_> = [0, 0, 1, 1, 2, 2, 3, 3].into_iter().map(at).collect();
        let c = CountCrowdedness::from_counts(&counts, &truth).unwrap();
        assert_eq!(c.mean_counts, vec![0.0, 5.0, 12.0, 22.0]);
        assert_eq!(c.thresholds, vec![2.5, 8.5, 17.0]);
        assert_eq!([c.level(0), c.level(3), c.level(9), c.level(17), c.level(40)], [0, 1, 2, 3, 3]);
        let missing = CountCrowdedness::from_counts(&counts[..4], &truth[..4]).unwrap_err();
        assert!(missing.to_string().contains("every crowdedness level"), "{missing}");
    }
}
