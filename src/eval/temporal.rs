//! Temporal consistency of a generated video: flicker on regions that should not
//! change, and whether the detector can follow each car from frame to frame.

use image::RgbImage;

use crate::world::Box2d;

use super::error::{MetricError, check_finite};

/// IoU a detection needs with a track's last box to continue it.
pub const TRACK_IOU: f32 = 0.5;

/// Pixels the caller marks as static (`true`), row-major, one per pixel.
#[derive(Debug, Clone, PartialEq)]
pub struct StaticMask {
    pub width: u32,
    pub height: u32,
    pub pixels: Vec<bool>,
}

impl StaticMask {
    /// The pixels whose every channel stays within `tolerance` of frame 0 in all of
    /// `reference` (e.g. the world's own render of the same scene: sky, a standing ego's
    /// road); `None` for no frames or frames of different sizes.
    pub fn unchanged(reference: &[RgbImage], tolerance: u8) -> Option<StaticMask> {
        let first = reference.first()?;
        if reference.iter().any(|f| f.dimensions() != first.dimensions()) {
            return None;
        }
        let pixels = first
            .pixels()
            .enumerate()
            .map(|(i, p)| {
                reference.iter().all(|f| {
                    let q = f.as_raw()[3 * i..3 * i + 3].iter();
                    p.0.iter().zip(q).all(|(a, b)| a.abs_diff(*b) <= tolerance)
                })
            })
            .collect();
        Some(StaticMask { width: first.width(), height: first.height(), pixels })
    }
}

/// Mean absolute frame-to-frame change on the static pixels, in units of the full
/// 0..=255 range (0 = perfectly steady, 1 = black/white alternation), averaged over
/// channels, pixels and consecutive pairs.
pub fn static_flicker(frames: &[RgbImage], mask: &StaticMask) -> Result<f32, MetricError> {
    if frames.len() < 2 {
        return Err(MetricError::TooFew { what: "frames for flicker", needed: 2, got: frames.len() });
    }
    if mask.pixels.len() != (mask.width * mask.height) as usize {
        return Err(MetricError::Mismatch {
            what: "static mask entries vs its width × height",
            left: mask.pixels.len(),
            right: (mask.width * mask.height) as usize,
        });
    }
    for f in frames {
        if f.dimensions() != (mask.width, mask.height) {
            return Err(MetricError::Mismatch {
                what: "frame pixels vs static mask pixels",
                left: (f.width() * f.height()) as usize,
                right: mask.pixels.len(),
            });
        }
    }
    let count = mask.pixels.iter().filter(|&&m| m).count();
    if count == 0 {
        return Err(MetricError::EmptyMask);
    }
    let mut sum = 0u64;
    for pair in frames.windows(2) {
        let (a, b) = (pair[0].as_raw(), pair[1].as_raw());
        for (i, _) in mask.pixels.iter().enumerate().filter(|(_, m)| **m) {
            sum += (0..3).map(|c| a[3 * i + c].abs_diff(b[3 * i + c]) as u64).sum::<u64>();
        }
    }
    Ok((sum as f64 / (255.0 * 3.0 * count as f64 * (frames.len() - 1) as f64)) as f32)
}

/// Link counts of [`track_continuity`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Continuity {
    /// Track steps where the track found its car again in the next frame.
    pub links: usize,
    /// Track steps attempted: every live track at every frame but the last.
    pub opportunities: usize,
}

impl Continuity {
    /// Fraction of track steps that continued, 0..=1.
    pub fn fraction(&self) -> f32 {
        self.links as f32 / self.opportunities as f32
    }
}

/// Follows the boxes of each frame (detections above a score threshold) with IoU
/// tracking: every track alive in frame `t − 1` tries to continue with a box of frame
/// `t` at IoU ≥ `iou_threshold` (pairs taken greedily by falling IoU, each box used
/// once); a track that finds none ends, and unclaimed boxes start new tracks. A
/// temporally consistent video keeps its cars, so nearly every step links; flicker,
/// vanishing cars and jumps break tracks.
pub fn track_continuity(frames: &[Vec<Box2d>], iou_threshold: f32) -> Result<Continuity, MetricError> {
    if !(iou_threshold > 0.0 && iou_threshold <= 1.0) {
        return Err(MetricError::OutOfRange { what: "IoU threshold", value: iou_threshold, range: "(0, 1]" });
    }
    if frames.len() < 2 {
        return Err(MetricError::TooFew { what: "frames for track continuity", needed: 2, got: frames.len() });
    }
    check_finite(frames.iter().flatten().flat_map(|b| [b.x1, b.y1, b.x2, b.y2]), "box coordinates")?;
    let (mut links, mut opportunities) = (0, 0);
    // The last box of every live track.
    let mut live: Vec<Box2d> = frames[0].clone();
    for boxes in &frames[1..] {
        opportunities += live.len();
        let pairs = greedy_pairs(&live, boxes, iou_threshold);
        links += pairs.len();
        // Continued tracks and new ones alike end at this frame's boxes.
        live = boxes.clone();
    }
    if opportunities == 0 {
        return Err(MetricError::NothingToTrack);
    }
    Ok(Continuity { links, opportunities })
}

/// One-to-one pairs `(i, j)` of `a[i]` and `b[j]` with IoU ≥ `threshold`, taken by falling IoU.
pub fn greedy_pairs(a: &[Box2d], b: &[Box2d], threshold: f32) -> Vec<(usize, usize)> {
    let mut candidates: Vec<(usize, usize, f32)> = a
        .iter()
        .enumerate()
        .flat_map(|(i, x)| b.iter().enumerate().map(move |(j, y)| (i, j, x.iou(y))))
        .filter(|c| c.2 >= threshold)
        .collect();
    candidates.sort_by(|x, y| y.2.total_cmp(&x.2));
    let (mut used_a, mut used_b) = (vec![false; a.len()], vec![false; b.len()]);
    let mut pairs = Vec::new();
    for (i, j, _) in candidates {
        if !used_a[i] && !used_b[j] {
            used_a[i] = true;
            used_b[j] = true;
            pairs.push((i, j));
        }
    }
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::seq::SliceRandom;
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn bx(x1: f32, y1: f32, x2: f32, y2: f32) -> Box2d {
        Box2d { x1, y1, x2, y2 }
    }

    /// Two cars moving 4 px a frame in opposite directions: IoU 2/3 and 3/5 between
    /// neighbouring frames, below 1/2 two frames apart.
    fn moving_cars(frames: usize) -> Vec<Vec<Box2d>> {
        (0..frames)
            .map(|t| {
                let x = 4.0 * t as f32;
                vec![bx(x, 40.0, x + 20.0, 55.0), bx(150.0 - x, 30.0, 166.0 - x, 42.0)]
            })
            .collect()
    }

    #[test]
    fn steady_cars_link_every_step_and_shuffled_frames_break_tracks() {
        let frames = moving_cars(16);
        let c = track_continuity(&frames, TRACK_IOU).unwrap();
        assert_eq!(c, Continuity { links: 30, opportunities: 30 });
        let mut shuffled = frames.clone();
        shuffled.shuffle(&mut ChaCha8Rng::seed_from_u64(1));
        let s = track_continuity(&shuffled, TRACK_IOU).unwrap();
        assert!(s.fraction() < 0.3, "{s:?}");
        // A car missing in one frame costs its two links.
        let mut gap = frames.clone();
        gap[5].remove(0);
        assert_eq!(track_continuity(&gap, TRACK_IOU).unwrap(), Continuity { links: 28, opportunities: 29 });
    }

    #[test]
    fn greedy_pairs_prefer_the_best_overlap() {
        let a = [bx(0.0, 0.0, 10.0, 10.0)];
        let b = [bx(2.0, 0.0, 12.0, 10.0), bx(1.0, 0.0, 11.0, 10.0)];
        assert_eq!(greedy_pairs(&a, &b, 0.5), vec![(0, 1)]);
        assert!(greedy_pairs(&a, &[bx(8.0, 0.0, 18.0, 10.0)], 0.5).is_empty());
    }

    fn frame(seed: u64, noise: u8) -> RgbImage {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        RgbImage::from_fn(16, 8, |x, y| {
            let base = (x * 10 + y * 5) as u8;
            let n = if noise > 0 { rng.random_range(0..=noise) } else { 0 };
            image::Rgb([base.saturating_add(n), base, 200])
        })
    }

    #[test]
    fn flicker_is_zero_when_steady_and_grows_with_noise() {
        let all = StaticMask { width: 16, height: 8, pixels: vec![true; 128] };
        let steady: Vec<RgbImage> = (0..4).map(|_| frame(0, 0)).collect();
        assert_eq!(static_flicker(&steady, &all).unwrap(), 0.0);
        let noisy = |n: u8| -> f32 {
            let frames: Vec<RgbImage> = (0..4).map(|k| frame(k, n)).collect();
            static_flicker(&frames, &all).unwrap()
        };
        let (a, b) = (noisy(10), noisy(60));
        assert!(0.0 < a && a < b, "{a} {b}");
        // Black/white alternation on one channel of every pixel: a third of the range.
        let bw = |v: u8| RgbImage::from_pixel(16, 8, image::Rgb([v, 0, 0]));
        assert!((static_flicker(&[bw(0), bw(255), bw(0)], &all).unwrap() - 1.0 / 3.0).abs() < 1e-6);
    }

    #[test]
    fn flicker_only_counts_masked_pixels() {
        // The moving part (x < 8) changes; the static mask covers the rest.
        let frames: Vec<RgbImage> = (0..3u32)
            .map(|t| RgbImage::from_fn(16, 8, |x, _| image::Rgb([if x < 8 { (t * 50) as u8 } else { 90 }; 3])))
            .collect();
        let mask = StaticMask::unchanged(&frames, 0).unwrap();
        assert_eq!(mask.pixels.iter().filter(|&&m| m).count(), 64);
        assert_eq!(static_flicker(&frames, &mask).unwrap(), 0.0);
        let everything = StaticMask { pixels: vec![true; 128], ..mask.clone() };
        assert!(static_flicker(&frames, &everything).unwrap() > 0.0);
    }

    #[test]
    fn degenerate_temporal_inputs_are_clear_errors() {
        let mask = StaticMask { width: 16, height: 8, pixels: vec![false; 128] };
        let frames = vec![frame(0, 0), frame(1, 0)];
        assert_eq!(static_flicker(&frames, &mask), Err(MetricError::EmptyMask));
        assert_eq!(
            static_flicker(&frames[..1], &mask).unwrap_err().to_string(),
            "frames for flicker: needs at least 2, got 1"
        );
        let small = StaticMask { width: 4, height: 4, pixels: vec![true; 16] };
        assert_eq!(
            static_flicker(&frames, &small).unwrap_err().to_string(),
            "frame pixels vs static mask pixels: 128 vs 16"
        );
        let empty = vec![vec![]; 4];
        assert_eq!(track_continuity(&empty, TRACK_IOU), Err(MetricError::NothingToTrack));
        assert!(track_continuity(&moving_cars(1), TRACK_IOU).is_err());
    }
}
