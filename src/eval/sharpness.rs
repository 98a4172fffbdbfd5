//! Sharpness: how much fine detail frames hold against the world's renders of the same
//! scenes, as the mean magnitude of the luma's 4-neighbour Laplacian. The evaluators' pooled
//! features do not see blur (a kernel distance of generated key frames indistinguishable
//! from 0 on 12 scenes, `docs/eval/tiny/frechet-scenes-2026-12-08/`); this reads it off the
//! pixels: 1 = as much detail as the world's renders, below 1 blurred, above 1 noisier.

use image::RgbImage;

use super::error::MetricError;
use super::frechet::group_draws;

/// The sum of |4-neighbour Laplacian| of `luma(y, x)` over the interior of an `h × w` image,
/// and the number of pixels summed. Any luma scale; the ratio of two such means is what counts.
pub fn laplacian_energy(h: usize, w: usize, luma: impl Fn(usize, usize) -> f32) -> (f64, usize) {
    let mut sum = 0.0f64;
    for y in 1..h.saturating_sub(1) {
        for x in 1..w.saturating_sub(1) {
            let l = 4.0 * luma(y, x) - luma(y - 1, x) - luma(y + 1, x) - luma(y, x - 1) - luma(y, x + 1);
            sum += f64::from(l.abs());
        }
    }
    (sum, h.saturating_sub(2) * w.saturating_sub(2))
}

/// [`laplacian_energy`] of an 8-bit image's luma (Rec. 601 weights).
fn image_energy(image: &RgbImage) -> (f64, usize) {
    let (w, h) = (image.width() as usize, image.height() as usize);
    laplacian_energy(h, w, |y, x| {
        let [r, g, b] = image.get_pixel(x as u32, y as u32).0;
        0.299 * f32::from(r) + 0.587 * f32::from(g) + 0.114 * f32::from(b)
    })
}

/// Laplacian sums per group of frames (an evaluation's scenes), of the frames and of the
/// reference frames they are compared with, so that a resample of the groups is a
/// reweighting ([`Self::weighted`]).
#[derive(Debug, Clone)]
pub struct GroupedSharpness {
    /// Per group: (sum, pixels) of the frames, then of the reference frames.
    groups: Vec<[(f64, usize); 2]>,
}

impl GroupedSharpness {
    /// Each group's frames and its reference frames (as many of each).
    pub fn new<'a, F, R>(groups: impl IntoIterator<Item = (F, R)>) -> Result<Self, MetricError>
    where
        F: IntoIterator<Item = &'a RgbImage>,
        R: IntoIterator<Item = &'a RgbImage>,
    {
        let sums = |images: &mut dyn Iterator<Item = &'a RgbImage>| {
            images.fold(((0.0, 0), 0usize), |((sum, pixels), count), image| {
                let (s, n) = image_energy(image);
                ((sum + s, pixels + n), count + 1)
            })
        };
        let mut out = vec![];
        for (frames, reference) in groups {
            let (generated, n) = sums(&mut frames.into_iter());
            let (world, m) = sums(&mut reference.into_iter());
            if n != m {
                return Err(MetricError::Mismatch { what: "frames vs reference frames", left: n, right: m });
            }
            out.push([generated, world]);
        }
        if out.iter().all(|[(_, pixels), _]| *pixels == 0) {
            return Err(MetricError::Empty { what: "frames for sharpness" });
        }
        Ok(GroupedSharpness { groups: out })
    }

    /// The frames' mean |Laplacian| over the reference's with group `g` weighted `weights[g]`
    /// times; `None` where the weighted reference has no detail (flat images).
    pub fn weighted(&self, weights: &[f64]) -> Option<f64> {
        let mean = |k: usize| {
            let (sum, pixels) = self
                .groups
                .iter()
                .zip(weights)
                .fold((0.0, 0.0), |(s, p), (g, w)| (s + w * g[k].0, p + w * g[k].1 as f64));
            sum / pixels.max(1.0)
        };
        // Flat renders: no detail to compare with (float rounding leaves a residue of ~1e-6 levels).
        let world = mean(1);
        (world >= 1e-3).then(|| mean(0) / world)
    }

    /// The ratio over all groups.
    pub fn ratio(&self) -> Result<f32, MetricError> {
        self.weighted(&vec![1.0; self.groups.len()]).map(|r| r as f32).ok_or(MetricError::TooFew {
            what: "detail in the reference frames (flat images)",
            needed: 1,
            got: 0,
        })
    }

    /// The ratio on `resamples` resamples of the groups with replacement: the draws of
    /// [`super::frechet::frechet_bootstrap`] with the same seed and number of groups.
    pub fn bootstrap(&self, resamples: usize, seed: u64) -> Vec<Option<f64>> {
        let n = self.groups.len();
        group_draws(n, resamples, seed)
            .into_iter()
            .map(|draw| {
                let mut weights = vec![0.0; n];
                draw.iter().for_each(|&g| weights[g] += 1.0);
                self.weighted(&weights)
            })
            .collect()
    }
}

/// The mean |Laplacian| of every frame of `frames` over that of `reference` (the same
/// number of frames; sizes may differ per frame, each is averaged over its own pixels).
pub fn sharpness_ratio<'a>(
    frames: impl IntoIterator<Item = &'a RgbImage>,
    reference: impl IntoIterator<Item = &'a RgbImage>,
) -> Result<f32, MetricError> {
    GroupedSharpness::new([(frames, reference)])?.ratio()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 32×48 checkerboard-and-gradient image, blurred by `passes` 3×3 box filters.
    fn pattern(passes: usize) -> RgbImage {
        let mut img = RgbImage::from_fn(48, 32, |x, y| {
            let v = if (x / 3 + y / 3) % 2 == 0 { 200 } else { 40 } as u8;
            image::Rgb([v, v.saturating_add((x * 2) as u8 / 4), v])
        });
        for _ in 0..passes {
            img = image::imageops::blur(&img, 1.0);
        }
        img
    }

    #[test]
    fn the_world_itself_is_1_blur_lowers_it_and_noise_raises_it() {
        let world = vec![pattern(0), pattern(0)];
        assert!((sharpness_ratio(&world, &world).unwrap() - 1.0).abs() < 1e-6);
        let blurred = vec![pattern(1), pattern(1)];
        let more = vec![pattern(3), pattern(3)];
        let (once, thrice) = (sharpness_ratio(&blurred, &world).unwrap(), sharpness_ratio(&more, &world).unwrap());
        assert!(thrice < once && once < 0.9, "{once} {thrice}");
        let mut noisy = pattern(0);
        noisy.pixels_mut().enumerate().for_each(|(i, p)| p.0[1] = p.0[1].wrapping_add(((i * 37) % 50) as u8));
        assert!(sharpness_ratio(&[noisy.clone(), noisy], &world).unwrap() > 1.0);
    }

    #[test]
    fn mismatched_empty_and_flat_inputs_are_errors() {
        let world = vec![pattern(0)];
        assert!(sharpness_ratio(&[pattern(0), pattern(0)], &world).is_err());
        assert_eq!(sharpness_ratio(&[], &[]), Err(MetricError::Empty { what: "frames for sharpness" }));
        let flat = RgbImage::from_pixel(16, 16, image::Rgb([90, 90, 90]));
        assert!(sharpness_ratio(&world, &[flat]).is_err());
        // A frame too small for an interior counts no pixel.
        assert_eq!(laplacian_energy(2, 5, |_, _| 1.0), (0.0, 0));
    }
}
