//! A clip's crowdedness from its car count, with thresholds fitted on the world's labels.

use crate::data::{ClipSpec, ClipStream};
use crate::eval::crowd::CountCrowdedness;
use crate::scenario::Conditions;
use crate::world::labels::FrameLabels;

use super::ImportError;

/// The crowdedness of a clip.
pub(super) enum Crowdedness {
    Fixed(u8),
    FromCount(CountCrowdedness),
}

impl Crowdedness {
    /// The level of a clip whose frames show `counts` cars.
    pub(super) fn level(&self, counts: &[usize]) -> u8 {
        match self {
            Crowdedness::Fixed(level) => *level,
            Crowdedness::FromCount(thresholds) => {
                let mean = counts.iter().sum::<usize>() as f32 / counts.len().max(1) as f32;
                thresholds.level(mean.round() as usize)
            }
        }
    }
}

/// World renders the crowdedness thresholds are fitted on (24 per level on average).
pub const CALIBRATION_WORLDS: usize = 96;

/// Cars are counted for crowdedness when their box is at least this share of the frame's
/// height (2 pixels at 128): far cars that a larger frame resolves and a smaller one loses
/// would otherwise make the count depend on the frame size.
const COUNTED_HEIGHT: f32 = 1.0 / 64.0;

/// The cars of `labels` that count for crowdedness.
pub(super) fn counted_cars(labels: &FrameLabels) -> usize {
    let min = labels.height as f32 * COUNTED_HEIGHT;
    labels.objects.iter().filter(|o| o.visible_pixels > 0 && o.box2d.height() >= min).count()
}

/// First world seed of the calibration renders (training range; any would do).
const CALIBRATION_SEED: u64 = 0xC0A7;

/// Thresholds between crowdedness levels from the world's own labels: the cars visible in
/// the first frames of `worlds` training-range worlds at 256×128 (those at least
/// `COUNTED_HEIGHT` of the frame high), averaged per level, with
/// a threshold halfway between neighbouring levels' means (as `eval` reads crowdedness off
/// a detector's count, [`CountCrowdedness`]). A real frame with that many cars in view is
/// as crowded as the world's frames of that level; the world's camera is not KITTI's or
/// BDD100K's, so this is a calibration by counts, not by traffic density.
pub fn world_crowdedness(worlds: usize) -> Result<CountCrowdedness, ImportError> {
    let spec = ClipSpec { frames: 1, fps: 10.0, width: 256, height: 128, warmup_s: 2.0 };
    let (counts, truth): (Vec<usize>, Vec<Conditions>) = ClipStream::new(spec, CALIBRATION_SEED)
        .take(worlds)
        .map(|clip| (counted_cars(&clip.labels[0]), clip.conditions))
        .unzip();
    CountCrowdedness::from_counts(&counts, &truth).map_err(|e| ImportError::Calibration(e.to_string()))
}
