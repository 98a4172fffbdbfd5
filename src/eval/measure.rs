//! Every metric of one generation setting, from its frames and the world's reference
//! frames of the same scenes, read through the evaluators.

use burn::tensor::{Tensor, backend::Backend};
use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::data::image_to_tensor;
use crate::scenario::Conditions;
use crate::world::Box2d;

use super::classifier::ConditionClassifier;
use super::clip_encoder::ClipEncoder;
use super::conditions::condition_accuracy;
use super::crowd::{CountCrowdedness, car_count};
use super::detection::{AP50_IOU, Detection, ImageDetections, evaluate_detections};
use super::detector::Detector;
use super::diversity::mean_pairwise_distance;
use super::error::MetricError;
use super::features::Features;
use super::frechet::{
    Groups, bootstrap_range, bootstrap_sd, frechet_bootstrap, frechet_distance, frechet_leave_one_out,
};
use super::kernel::GroupedKernel;
use super::projection::Projection;
use super::scenes::EvalScene;
use super::sharpness::GroupedSharpness;
use super::tasks::DETECTIONS_PER_IMAGE;
use super::temporal::{StaticMask, TRACK_IOU, static_flicker, track_continuity};

/// Frames per evaluator forward pass.
const CHUNK: usize = 8;

/// Scene resamples behind the Fréchet distances' spread ([`SettingMetrics::frechet_frames_sd`]),
/// and the seed of their draws (fixed, so reports are deterministic).
pub const BOOTSTRAP_RESAMPLES: usize = 200;
pub const BOOTSTRAP_SEED: u64 = 0xb007;

/// Detections below this score are not tracked (track continuity): about where the
/// tiny detector's precision and recall cross on held-out renders.
pub const TRACK_SCORE: f32 = 0.3;

/// A pixel is static when no reference frame moves it by more than this (0..=255):
/// JPEG-free renders are exact, so this only absorbs the sky gradient's dithering.
pub const STATIC_TOLERANCE: u8 = 6;

/// Frames of one setting: `frames[scene][future][i]` at key-frame size, frame 0 first.
pub type SceneFrames = Vec<Vec<Vec<RgbImage>>>;

/// The evaluator networks, borrowed.
pub struct Judges<'a, B: Backend> {
    pub detector: &'a Detector<B>,
    pub classifier: &'a ConditionClassifier<B>,
    /// Clip features from a trained clip encoder; without one, [`clip_feature`] of the
    /// classifier's frame features. Videos must be at least its window long.
    pub clip_encoder: Option<&'a ClipEncoder<B>>,
    /// Crowdedness from the detector's car count (see `crowd`), where calibrated.
    pub crowd: Option<&'a CountCrowdedness>,
    /// Frames between the clip encoder's window frames when it reads the ego's speed: the
    /// videos' frame rate over the key-frame rate (1 for key frames, 4 for 10 Hz).
    pub motion_spacing: usize,
    pub device: &'a B::Device,
}

/// What the evaluators read off a set of videos.
pub struct Readout {
    /// Classifier features of every frame, scene-major then future then frame.
    pub frame_features: Vec<Vec<f32>>,
    /// One feature per (scene, future) video: the clip encoder's
    /// ([`ClipEncoder::video_feature`]) or [`clip_feature`].
    pub clip_features: Vec<Vec<f32>>,
    /// Predicted conditions of every frame (same order as `frame_features`).
    pub conditions: Vec<Conditions>,
    /// Detections of every frame, `[scene][future][frame]`.
    pub detections: Vec<Vec<Vec<Vec<Detection>>>>,
}

impl<B: Backend> Judges<'_, B> {
    /// Runs the evaluators over every frame (and the clip encoder over every video).
    pub fn read(&self, frames: &SceneFrames) -> Readout {
        let mut out = Readout { frame_features: vec![], clip_features: vec![], conditions: vec![], detections: vec![] };
        for scene in frames {
            let mut scene_detections = Vec::with_capacity(scene.len());
            for video in scene {
                let mut video_features = Vec::with_capacity(video.len());
                let mut video_detections = Vec::with_capacity(video.len());
                for chunk in video.chunks(CHUNK) {
                    let images = Tensor::stack(chunk.iter().map(|f| image_to_tensor::<B>(f, self.device)).collect(), 0);
                    let c = self.classifier.forward(images.clone());
                    out.conditions.extend(c.conditions());
                    let [n, d] = c.features.dims();
                    let flat = c.features.into_data().convert::<f32>().to_vec::<f32>().unwrap_or_default();
                    video_features.extend((0..n).map(|i| flat[i * d..(i + 1) * d].to_vec()));
                    video_detections.extend(self.detector.detect(images, DETECTIONS_PER_IMAGE));
                }
                // Too short for the encoder's window: an empty row, which the Fréchet
                // distance reports as unavailable (`eval` checks lengths up front).
                let clip = match self.clip_encoder {
                    Some(encoder) => encoder.video_feature(video, self.device).unwrap_or_default(),
                    None => clip_feature(&video_features),
                };
                out.clip_features.push(clip);
                out.frame_features.extend(video_features);
                scene_detections.push(video_detections);
            }
            out.detections.push(scene_detections);
        }
        out
    }

    /// Per (scene, future) video: the mean ego speed the clip encoder reads off it, m/s
    /// (`None` without a clip encoder or for a video shorter than one window).
    pub fn ego_speeds(&self, frames: &SceneFrames) -> Vec<Option<f32>> {
        frames
            .iter()
            .flatten()
            .map(|video| {
                let motion = self.clip_encoder?.video_motion(video, self.motion_spacing, self.device);
                (!motion.is_empty()).then(|| motion.iter().map(|m| m.speed_mps).sum::<f32>() / motion.len() as f32)
            })
            .collect()
    }
}

/// A video's feature without a clip encoder: the mean of its frame features (appearance)
/// followed by the mean absolute change between consecutive frame features (motion),
/// `2d` values. Shuffled or flickering frames move the second half.
pub fn clip_feature(frames: &[Vec<f32>]) -> Vec<f32> {
    let d = frames.first().map_or(0, Vec::len);
    let n = frames.len().max(1) as f32;
    let mut out = vec![0.0; 2 * d];
    for f in frames {
        for (o, v) in out[..d].iter_mut().zip(f) {
            *o += v / n;
        }
    }
    let pairs = frames.len().saturating_sub(1).max(1) as f32;
    for w in frames.windows(2) {
        for ((o, a), b) in out[d..].iter_mut().zip(&w[0]).zip(&w[1]) {
            *o += (b - a).abs() / pairs;
        }
    }
    out
}

/// The world's side of a comparison: reference frames, their readout and the
/// principal subspaces the Fréchet distances are measured in.
pub struct Reference {
    pub frames: SceneFrames,
    pub readout: Readout,
    /// [`Judges::ego_speeds`] of the frames.
    pub ego_speeds: Vec<Option<f32>>,
    pub frame_projection: Result<Projection, MetricError>,
    pub clip_projection: Result<Projection, MetricError>,
}

impl Reference {
    pub fn new<B: Backend>(
        judges: &Judges<B>,
        frames: SceneFrames,
        components: (usize, usize),
    ) -> Result<Self, MetricError> {
        let readout = judges.read(&frames);
        let frame_projection =
            Projection::fit(&Features::from_rows(&readout.frame_features, "reference frames")?, components.0);
        let clip_projection =
            Projection::fit(&Features::from_rows(&readout.clip_features, "reference clips")?, components.1);
        let ego_speeds = judges.ego_speeds(&frames);
        Ok(Reference { frames, readout, frame_projection, clip_projection, ego_speeds })
    }
}

/// Every metric of one setting; a metric that cannot be computed is `None` and its
/// reason is in `unavailable`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SettingMetrics {
    /// Detector AP50 on frame 0 against the requested boxes.
    pub layout_ap50: Option<f32>,
    /// Mean IoU of the requested boxes matched at IoU ≥ 0.5.
    pub layout_mean_iou: Option<f32>,
    pub layout_recall: Option<f32>,
    /// Classifier accuracy on every frame against the requested conditions.
    pub day_night: Option<f32>,
    pub crowdedness_exact: Option<f32>,
    pub crowdedness_within_one: Option<f32>,
    /// Crowdedness read from the detected car count, exact and within one level.
    pub crowdedness_count_exact: Option<f32>,
    pub crowdedness_count_within_one: Option<f32>,
    /// Squared Fréchet distance of frame features to the reference (principal subspace).
    pub frechet_frames: Option<f64>,
    /// Squared Fréchet distance of clip features to the reference (principal subspace).
    pub frechet_clips: Option<f64>,
    /// How much `frechet_frames` moves with the draw of scenes: its standard deviation over
    /// [`BOOTSTRAP_RESAMPLES`] resamples of the scenes with replacement, each bringing its
    /// generated and reference frames ([`frechet_bootstrap`]). `None` where it could not be
    /// measured (the reason is in `unavailable`) and in reports made before it existed.
    #[serde(default)]
    pub frechet_frames_sd: Option<f64>,
    /// The same for `frechet_clips` (a scene brings its futures' clips).
    #[serde(default)]
    pub frechet_clips_sd: Option<f64>,
    /// Where the resamples behind `frechet_frames_sd` lie and which scene the distance rests
    /// on most ([`SceneSpread`]); `None` as `frechet_frames_sd`.
    #[serde(default)]
    pub frechet_frames_spread: Option<SceneSpread>,
    /// The same for `frechet_clips`.
    #[serde(default)]
    pub frechet_clips_spread: Option<SceneSpread>,
    /// Kernel distance (KID, [`super::kernel`]) of frame features to the reference, on every
    /// feature dimension, with its spread over the same scene resamples (`None` in reports
    /// made before it existed; the reason is in `unavailable` where it could not be measured).
    #[serde(default)]
    pub kid_frames: Option<KernelDistance>,
    /// The same for clip features.
    #[serde(default)]
    pub kid_clips: Option<KernelDistance>,
    /// The frame and clip distances of every scene resample behind the two spreads (`None`: not
    /// measurable). Every setting of one evaluation draws the same resamples, so these pair up
    /// between settings ([`PairedDelta`]); not written to `metrics.json`.
    #[serde(skip)]
    pub frechet_resamples: [Vec<Option<f64>>; 2],
    /// The same for the kernel distances.
    #[serde(skip)]
    pub kid_resamples: [Vec<Option<f64>>; 2],
    /// Fine detail against the world's renders of the same scenes and futures: the frames' mean
    /// |Laplacian| of the luma over the renders' ([`GroupedSharpness`]; 1 = as detailed, below 1
    /// blurred, above 1 noisier). `None` in reports made before it existed.
    #[serde(default)]
    pub sharpness: Option<f32>,
    /// Its standard deviation over the scene resamples of the distances' spreads.
    #[serde(default)]
    pub sharpness_sd: Option<f32>,
    /// Its value on each of those resamples, paired between settings as the distances' are.
    #[serde(skip)]
    pub sharpness_resamples: Vec<Option<f64>>,
    /// Mean absolute frame-to-frame change on the reference's static pixels (0..1).
    pub flicker_static: Option<f32>,
    /// Fraction of pixels that are static in the reference (where flicker is measured).
    pub static_fraction: Option<f32>,
    /// Fraction of detector track steps that continue into the next frame.
    pub track_continuity: Option<f32>,
    /// Mean pairwise distance of the clip features of one scene's futures.
    pub diversity: Option<f64>,
    /// The ego's speed as the clip encoder reads it off the videos (key frames 0.4 s apart),
    /// m/s, mean over videos: below the world's when the frames do not move as the ego does.
    #[serde(default)]
    pub ego_speed_mps: Option<f32>,
    /// Mean over videos of |the speed read off a generated future − the speed read off the
    /// world's render of the same scene and future|, m/s (0 for the world itself).
    #[serde(default)]
    pub ego_speed_error_mps: Option<f32>,
    /// Wall time spent generating this setting's frames.
    pub generation_s: f64,
    pub unavailable: Vec<String>,
}

impl SettingMetrics {
    fn note<T>(&mut self, what: &str, r: Result<T, MetricError>) -> Option<T> {
        r.map_err(|e| self.unavailable.push(format!("{what}: {e}"))).ok()
    }
}

/// How a distance measured on a set of scenes depends on the scenes, beyond its standard
/// deviation over scene resamples: a squared distance near 0 spreads mostly upwards, so its
/// resamples are skewed, and one scene can hold it down or up.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SceneSpread {
    /// The 5th and 95th percentiles of the distance over the scene resamples. A distance
    /// outside this range rests on few scenes.
    pub resample_range: [f64; 2],
    /// The scene whose leaving out moves the distance most (`None` where no scene could be
    /// left out and measured).
    pub most_influential: Option<SceneInfluence>,
}

/// One scene's hold on a distance: the distance measured without it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SceneInfluence {
    /// Its index in the evaluation's scene set and its world seed.
    pub scene: usize,
    pub seed: u64,
    /// The distance on the other scenes.
    pub without: f64,
}

/// A kernel distance with its spread over scene resamples.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct KernelDistance {
    pub value: f64,
    /// Its standard deviation over the scene resamples (`None`: too few measured).
    pub sd: Option<f64>,
    pub spread: Option<SceneSpread>,
}

/// A distance between two grouped sets and how it depends on the groups.
pub(crate) struct GroupedDistance {
    pub distance: Result<f64, MetricError>,
    pub sd: Result<f64, MetricError>,
    pub spread: Option<SceneSpread>,
    /// The distance on each of the [`BOOTSTRAP_RESAMPLES`] resamples (`None`: not measurable).
    pub resamples: Vec<Option<f64>>,
}

impl GroupedDistance {
    /// The Fréchet distance of projected sets whose group `g` is the scene of world seed
    /// `seeds[g]`.
    pub(crate) fn frechet(sets: Result<(Features, Features), MetricError>, groups: Groups<'_>, seeds: &[u64]) -> Self {
        let sets = sets.as_ref();
        Self::summarise(
            sets.map_err(Clone::clone).and_then(|(g, r)| frechet_distance(g, r)),
            sets.map_err(Clone::clone)
                .and_then(|(g, r)| frechet_bootstrap(g, r, groups, BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED)),
            || frechet_leave_one_out(&sets.ok()?.0, &sets.ok()?.1, groups).ok(),
            seeds,
        )
    }

    /// The kernel distance of (unprojected) sets grouped as in [`Self::frechet`], over the
    /// same resamples.
    pub(crate) fn kernel(sets: Result<(Features, Features), MetricError>, groups: Groups<'_>, seeds: &[u64]) -> Self {
        let kernel = sets.and_then(|(g, r)| GroupedKernel::new(&g, &r, groups));
        let k = kernel.as_ref();
        Self::summarise(
            k.map_err(Clone::clone).and_then(GroupedKernel::distance),
            k.map(|k| k.bootstrap(BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED)).map_err(Clone::clone),
            || Some(k.ok()?.leave_one_out()),
            seeds,
        )
    }

    fn summarise(
        distance: Result<f64, MetricError>,
        resamples: Result<Vec<Option<f64>>, MetricError>,
        leave_one_out: impl FnOnce() -> Option<Vec<Option<f64>>>,
        seeds: &[u64],
    ) -> Self {
        let sd = resamples.as_ref().map_err(Clone::clone).and_then(|r| bootstrap_sd(r));
        let spread = match (&distance, &resamples) {
            (Ok(d), Ok(r)) => bootstrap_range(r).ok().map(|resample_range| SceneSpread {
                resample_range,
                most_influential: leave_one_out().and_then(|without| {
                    without
                        .iter()
                        .enumerate()
                        .filter_map(|(scene, w)| Some((scene, (*w)?)))
                        .max_by(|x, y| (x.1 - d).abs().total_cmp(&(y.1 - d).abs()))
                        .map(|(scene, without)| SceneInfluence { scene, seed: seeds[scene], without })
                }),
            }),
            _ => None,
        };
        GroupedDistance { distance, sd, spread, resamples: resamples.unwrap_or_default() }
    }

    /// The kernel distance for `metrics.json`, and why it or its spread is missing.
    pub(crate) fn kernel_result(&self, what: &str) -> (Option<KernelDistance>, Option<String>) {
        match (&self.distance, &self.sd) {
            (Ok(value), sd) => (
                Some(KernelDistance { value: *value, sd: sd.as_ref().ok().copied(), spread: self.spread }),
                sd.as_ref().err().map(|e| format!("kernel distance ({what}) scene bootstrap: {e}")),
            ),
            (Err(e), _) => (None, Some(format!("kernel distance ({what}): {e}"))),
        }
    }
}

/// A setting's Fréchet distances against another's measured on the same scenes (an ablation
/// row against the main setting): `(Δ, s)` with `Δ` this setting's distance minus the other's
/// and `s` the standard deviation of that difference over the scene resamples both drew
/// alike. `None` where either distance or too many resamples were not measured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PairedDelta {
    pub frames: Option<(f64, f64)>,
    pub clips: Option<(f64, f64)>,
    /// The same for the kernel distances.
    #[serde(default)]
    pub kid_frames: Option<(f64, f64)>,
    #[serde(default)]
    pub kid_clips: Option<(f64, f64)>,
    /// The same for the sharpness.
    #[serde(default)]
    pub sharpness: Option<(f64, f64)>,
}

impl PairedDelta {
    pub fn between(this: &SettingMetrics, other: &SettingMetrics) -> Self {
        let delta = |ra: &[Option<f64>], rb: &[Option<f64>], a: Option<f64>, b: Option<f64>| {
            if ra.len() != rb.len() {
                return None;
            }
            let diffs: Vec<Option<f64>> = ra.iter().zip(rb).map(|(x, y)| Some((*x)? - (*y)?)).collect();
            Some((a? - b?, bootstrap_sd(&diffs).ok()?))
        };
        let (t, o) = (this, other);
        let kid = |k: Option<KernelDistance>| k.map(|k| k.value);
        PairedDelta {
            frames: delta(&t.frechet_resamples[0], &o.frechet_resamples[0], t.frechet_frames, o.frechet_frames),
            clips: delta(&t.frechet_resamples[1], &o.frechet_resamples[1], t.frechet_clips, o.frechet_clips),
            kid_frames: delta(&t.kid_resamples[0], &o.kid_resamples[0], kid(t.kid_frames), kid(o.kid_frames)),
            kid_clips: delta(&t.kid_resamples[1], &o.kid_resamples[1], kid(t.kid_clips), kid(o.kid_clips)),
            sharpness: delta(
                &t.sharpness_resamples,
                &o.sharpness_resamples,
                t.sharpness.map(f64::from),
                o.sharpness.map(f64::from),
            ),
        }
    }
}

/// The rows of each scene in a scene-major list with `rows_of(video)` rows per video
/// (the frames' features: one per frame; the clips': one per video).
fn scene_rows(frames: &SceneFrames, rows_of: impl Fn(&Vec<RgbImage>) -> usize) -> Vec<std::ops::Range<usize>> {
    let mut start = 0;
    frames
        .iter()
        .map(|videos| {
            let n: usize = videos.iter().map(&rows_of).sum();
            start += n;
            start - n..start
        })
        .collect()
}

/// Measures `frames` (generated, or the reference itself when `frames` is `None`)
/// against `reference`.
pub fn measure<B: Backend>(
    judges: &Judges<B>,
    scenes: &[EvalScene],
    reference: &Reference,
    generated: Option<&SceneFrames>,
) -> SettingMetrics {
    let own;
    let (frames, readout) = match generated {
        Some(g) => {
            own = judges.read(g);
            (g, &own)
        }
        None => (&reference.frames, &reference.readout),
    };
    let mut m = SettingMetrics::default();

    // Layout fidelity: frame 0 (shared by every future) against the requested boxes.
    let images: Vec<ImageDetections> = scenes
        .iter()
        .zip(&readout.detections)
        .map(|(s, d)| ImageDetections { detections: d[0][0].clone(), ground_truth: s.requested.clone() })
        .collect();
    if let Some(s) = m.note("layout", evaluate_detections(&images, AP50_IOU)) {
        (m.layout_ap50, m.layout_mean_iou, m.layout_recall) = (Some(s.ap), s.mean_iou, Some(s.recall));
    }

    // Conditions: every frame should show the requested ones.
    let requested: Vec<Conditions> = scenes
        .iter()
        .zip(frames)
        .flat_map(|(s, videos)| std::iter::repeat_n(s.conditions, videos.iter().map(Vec::len).sum()))
        .collect();
    if let Some(a) = m.note("conditions", condition_accuracy(&requested, &readout.conditions)) {
        (m.day_night, m.crowdedness_exact, m.crowdedness_within_one) =
            (Some(a.time_of_day), Some(a.crowdedness_exact), Some(a.crowdedness_within_one));
    }
    if let Some(crowd) = judges.crowd {
        let predicted: Vec<Conditions> = readout
            .detections
            .iter()
            .flatten()
            .flatten()
            .zip(&requested)
            .map(|(d, r)| Conditions { crowdedness: crowd.level(car_count(d)), ..*r })
            .collect();
        if let Some(a) = m.note("crowdedness from car count", condition_accuracy(&requested, &predicted)) {
            (m.crowdedness_count_exact, m.crowdedness_count_within_one) =
                (Some(a.crowdedness_exact), Some(a.crowdedness_within_one));
        }
    }

    // Fréchet distances in the reference's principal subspaces.
    if generated.is_some() {
        let project = |projection: &Result<Projection, MetricError>, generated: &[Vec<f32>], reference: &[Vec<f32>]| {
            let p = projection.as_ref().map_err(Clone::clone)?;
            let g = p.apply(&Features::from_rows(generated, "generated")?, "generated")?;
            let r = p.apply(&Features::from_rows(reference, "reference")?, "reference")?;
            Ok::<_, MetricError>((g, r))
        };
        let r = &reference.readout;
        let frames_rows = (scene_rows(frames, Vec::len), scene_rows(&reference.frames, Vec::len));
        let clips_rows = (scene_rows(frames, |_| 1), scene_rows(&reference.frames, |_| 1));
        let seeds: Vec<u64> = scenes.iter().map(|s| s.seed).collect();
        let [frame_resamples, clip_resamples] = &mut m.frechet_resamples;
        for (what, projection, (generated, reference), rows, (value, sd, spread, kept)) in [
            (
                "frames",
                &reference.frame_projection,
                (&readout.frame_features, &r.frame_features),
                &frames_rows,
                (&mut m.frechet_frames, &mut m.frechet_frames_sd, &mut m.frechet_frames_spread, frame_resamples),
            ),
            (
                "clips",
                &reference.clip_projection,
                (&readout.clip_features, &r.clip_features),
                &clips_rows,
                (&mut m.frechet_clips, &mut m.frechet_clips_sd, &mut m.frechet_clips_spread, clip_resamples),
            ),
        ] {
            let f = GroupedDistance::frechet(project(projection, generated, reference), (&rows.0, &rows.1), &seeds);
            (*kept, *spread) = (f.resamples, f.spread);
            match (f.distance, f.sd) {
                (Ok(d), Ok(s)) => (*value, *sd) = (Some(d), Some(s)),
                (Ok(d), Err(e)) => {
                    *value = Some(d);
                    m.unavailable.push(format!("Fréchet ({what}) scene bootstrap: {e}"));
                }
                (Err(e), _) => m.unavailable.push(format!("Fréchet ({what}): {e}")),
            }
        }
        // Kernel distances on the whole features, over the same scene resamples.
        let [frame_resamples, clip_resamples] = &mut m.kid_resamples;
        for (what, (generated, reference), rows, (value, kept)) in [
            (
                "frames",
                (&readout.frame_features, &r.frame_features),
                &frames_rows,
                (&mut m.kid_frames, frame_resamples),
            ),
            ("clips", (&readout.clip_features, &r.clip_features), &clips_rows, (&mut m.kid_clips, clip_resamples)),
        ] {
            let sets = Features::from_rows(generated, "generated")
                .and_then(|g| Ok((g, Features::from_rows(reference, "reference")?)));
            let f = GroupedDistance::kernel(sets, (&rows.0, &rows.1), &seeds);
            let why;
            (*value, why) = f.kernel_result(what);
            *kept = f.resamples;
            m.unavailable.extend(why);
        }
    }

    // Fine detail against the world's renders of the same frames.
    let by_scene = frames.iter().zip(&reference.frames).map(|(f, r)| (f.iter().flatten(), r.iter().flatten()));
    if let Some(sharpness) = m.note("sharpness", GroupedSharpness::new(by_scene)) {
        m.sharpness = m.note("sharpness", sharpness.ratio());
        m.sharpness_resamples = sharpness.bootstrap(BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED);
        m.sharpness_sd = m.note("sharpness scene bootstrap", bootstrap_sd(&m.sharpness_resamples)).map(|s| s as f32);
    }

    // Flicker on the pixels the world keeps still, and detector tracks.
    let (mut flicker, mut static_px, mut links, mut chances) = (vec![], vec![], 0, 0);
    let mut first_error = None;
    for (s, (videos, refs)) in frames.iter().zip(&reference.frames).enumerate() {
        for (f, (video, reference)) in videos.iter().zip(refs).enumerate() {
            if let Some(mask) = StaticMask::unchanged(reference, STATIC_TOLERANCE) {
                let share = mask.pixels.iter().filter(|&&p| p).count() as f32 / mask.pixels.len().max(1) as f32;
                static_px.push(share);
                match static_flicker(video, &mask) {
                    Ok(v) => flicker.push(v),
                    Err(e) => first_error = first_error.or(Some(e)),
                }
            }
            let boxes: Vec<Vec<Box2d>> = readout.detections[s][f]
                .iter()
                .map(|d| d.iter().filter(|d| d.score >= TRACK_SCORE).map(|d| d.box2d).collect())
                .collect();
            match track_continuity(&boxes, TRACK_IOU) {
                Ok(c) => (links, chances) = (links + c.links, chances + c.opportunities),
                Err(MetricError::NothingToTrack) => {}
                Err(e) => first_error = first_error.or(Some(e)),
            }
        }
    }
    let mean = |v: &[f32]| (!v.is_empty()).then(|| v.iter().sum::<f32>() / v.len() as f32);
    m.flicker_static = mean(&flicker);
    m.static_fraction = mean(&static_px);
    if m.flicker_static.is_none() {
        m.unavailable.push(format!(
            "flicker: {}",
            first_error.clone().map_or_else(|| "no static pixel in any reference video".into(), |e| e.to_string())
        ));
    }
    m.track_continuity = (chances > 0).then(|| links as f32 / chances as f32);
    if m.track_continuity.is_none() {
        m.unavailable.push(format!("track continuity: {}", MetricError::NothingToTrack));
    }

    // Diversity: futures of one scene, averaged over scenes.
    let mut k = 0;
    let mut div = vec![];
    for videos in frames {
        let rows = &readout.clip_features[k..k + videos.len()];
        k += videos.len();
        if let Ok(set) = Features::from_rows(rows, "futures")
            && let Ok(d) = mean_pairwise_distance(&set)
        {
            div.push(d);
        }
    }
    m.diversity = (!div.is_empty()).then(|| div.iter().sum::<f64>() / div.len() as f64);
    if m.diversity.is_none() {
        m.unavailable.push("diversity: needs at least 2 futures per scene".into());
    }

    // Ego speed: the clip encoder's reading of each video, against the world's of the same one.
    let speeds = match generated {
        Some(g) => judges.ego_speeds(g),
        None => reference.ego_speeds.clone(),
    };
    let pairs: Vec<(f32, f32)> = speeds.iter().zip(&reference.ego_speeds).filter_map(|(g, r)| g.zip(*r)).collect();
    if pairs.is_empty() || pairs.len() < speeds.len() {
        let why = if judges.clip_encoder.is_none() { "no clip encoder" } else { "a video is shorter than one window" };
        m.unavailable.push(format!("ego speed: {why}"));
    } else {
        let n = pairs.len() as f32;
        m.ego_speed_mps = Some(pairs.iter().map(|p| p.0).sum::<f32>() / n);
        m.ego_speed_error_mps = Some(pairs.iter().map(|(g, r)| (g - r).abs()).sum::<f32>() / n);
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::clip_encoder::ClipEncoderConfig;
    use crate::eval::{ClassifierConfig, DetectorConfig};
    use crate::train::init::seeded_init;
    use burn::backend::Flex;
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Reference frames of 4 micro scenes × 2 futures × 4 frames, and judges to read them.
    fn fixture() -> (Vec<EvalScene>, SceneFrames) {
        let size = (32, 64);
        let scenes: Vec<EvalScene> = (0..4).map(|i| EvalScene::new(i, size, 8)).collect();
        let frames = scenes.iter().map(|s| (0..2).map(|k| s.reference(k, 4, 2.5, size)).collect()).collect();
        (scenes, frames)
    }

    fn map_videos(frames: &SceneFrames, f: &mut dyn FnMut(&[RgbImage]) -> Vec<RgbImage>) -> SceneFrames {
        frames.iter().map(|scene| scene.iter().map(|v| f(v)).collect()).collect()
    }

    #[test]
    fn the_reference_itself_is_ideal_and_degradations_worsen_each_metric() {
        let dev = Default::default();
        // Seeded: a plain `init` draws from the backend's global generator, which tests running
        // beside this one also draw from, so the judges (and the margins below) would change
        // from run to run (the frame distance of noisy frames once fell to 0.0009).
        let detector = seeded_init(DetectorConfig::micro().init::<Flex>(&dev), 1);
        let classifier = seeded_init(ClassifierConfig::micro().init::<Flex>(&dev), 2);
        let encoder = seeded_init(ClipEncoderConfig::micro().init::<Flex>(&dev), 3);
        // Clip features from the frame features, then from the clip encoder.
        for clip_encoder in [None, Some(&encoder)] {
            let judges = Judges {
                detector: &detector,
                classifier: &classifier,
                clip_encoder,
                crowd: None,
                motion_spacing: 1,
                device: &dev,
            };
            ideal_and_degraded(&judges);
        }
    }

    fn ideal_and_degraded(judges: &Judges<Flex>) {
        let (scenes, frames) = fixture();
        let reference = Reference::new(judges, frames.clone(), (4, 2)).unwrap();
        let ideal = measure(judges, &scenes, &reference, None);
        let same = measure(judges, &scenes, &reference, Some(&frames));
        // Identical sets: Fréchet 0, and every other metric equals the reference's own.
        assert!(same.frechet_frames.unwrap() < 1e-6 && same.frechet_clips.unwrap() < 1e-6, "{same:?}");
        // Every scene resample of identical sets is at distance 0 too.
        assert!(same.frechet_frames_sd.unwrap() < 1e-6 && same.frechet_clips_sd.unwrap() < 1e-6, "{same:?}");
        assert!(ideal.frechet_frames_sd.is_none(), "the reference is not compared with itself");
        assert_eq!(
            (same.day_night, same.flicker_static, same.diversity, same.ego_speed_mps),
            (ideal.day_night, ideal.flicker_static, ideal.diversity, ideal.ego_speed_mps)
        );
        if judges.clip_encoder.is_some() {
            assert_eq!((same.ego_speed_error_mps, ideal.ego_speed_error_mps), (Some(0.0), Some(0.0)));
            // Frozen videos (frame 0 held): read as another speed than the world's moving ones.
            let frozen = map_videos(&frames, &mut |v| vec![v[0].clone(); v.len()]);
            let frozen = measure(judges, &scenes, &reference, Some(&frozen));
            assert!(frozen.ego_speed_error_mps.unwrap() > 1e-3, "{frozen:?}");
        } else {
            assert!(same.ego_speed_mps.is_none() && same.unavailable.iter().any(|u| u.starts_with("ego speed")));
        }

        // Noise on every frame: more flicker on static pixels, frames further away.
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let noisy = map_videos(&frames, &mut |v| {
            v.iter()
                .map(|f| {
                    let mut f = f.clone();
                    f.pixels_mut()
                        .for_each(|p| p.0.iter_mut().for_each(|c| *c = c.saturating_add(rng.random_range(0..60))));
                    f
                })
                .collect()
        });
        let noisy = measure(judges, &scenes, &reference, Some(&noisy));
        assert!(noisy.flicker_static.unwrap() > 5.0 * same.flicker_static.unwrap().max(1e-3), "{noisy:?}");
        assert!(noisy.frechet_frames.unwrap() > 1e-3, "{noisy:?}");
        // Per-pixel noise is detail the world does not have; the world and identical frames are 1.
        assert!(noisy.sharpness.unwrap() > 1.0, "{noisy:?}");
        assert_eq!((same.sharpness, ideal.sharpness), (Some(1.0), Some(1.0)));
        assert!(same.sharpness_sd.unwrap() < 1e-6 && noisy.sharpness_sd.unwrap() > 0.0, "{noisy:?}");
        let sharper = PairedDelta::between(&noisy, &same).sharpness.unwrap();
        assert!((sharper.0 - f64::from(noisy.sharpness.unwrap() - 1.0)).abs() < 1e-6, "{sharper:?}");
        // Scenes differ, so the distance moves with their draw.
        assert!(noisy.frechet_frames_sd.unwrap() > 0.0, "{noisy:?}");
        // Its resamples lie in an ordered range, and the scene it rests on most is one of the
        // fixture's, named by its seed, with the distance measured on the other three.
        let spread = noisy.frechet_frames_spread.unwrap();
        assert!(spread.resample_range[0] <= spread.resample_range[1], "{spread:?}");
        if let Some(i) = spread.most_influential {
            assert_eq!(i.seed, scenes[i.scene].seed);
            assert!(i.without.is_finite() && i.without >= 0.0, "{i:?}");
        }
        let same_spread = same.frechet_frames_spread.unwrap();
        assert!(same_spread.resample_range[1] < 1e-6, "{same_spread:?}");
        // The kernel distance: exactly 0 for identical sets (every within-set and cross sum is the
        // same), above 0 for noisy frames, with a spread, and paired like the Fréchet distance.
        for k in [same.kid_frames.unwrap(), same.kid_clips.unwrap()] {
            assert!(k.value.abs() < 1e-9 && k.sd.unwrap() < 1e-9, "{k:?}");
        }
        let kid = noisy.kid_frames.unwrap();
        assert!(kid.value > 0.0 && kid.sd.unwrap() > 0.0 && kid.spread.is_some(), "{kid:?}");
        let kid_delta = PairedDelta::between(&noisy, &same).kid_frames.unwrap();
        assert!((kid_delta.0 - (kid.value - same.kid_frames.unwrap().value)).abs() < 1e-12, "{kid_delta:?}");
        assert!(ideal.kid_frames.is_none(), "the reference is not compared with itself");
        // Paired with the identical setting on the same resamples: the whole distance, and
        // no difference at all against itself.
        let delta = PairedDelta::between(&noisy, &same).frames.unwrap();
        assert!((delta.0 - (noisy.frechet_frames.unwrap() - same.frechet_frames.unwrap())).abs() < 1e-12, "{delta:?}");
        assert!(delta.1 > 0.0, "{delta:?}");
        assert_eq!(PairedDelta::between(&noisy, &noisy).frames, Some((0.0, 0.0)));
        assert_eq!(PairedDelta::between(&noisy, &ideal).frames, None, "the reference has no distance");

        // Shuffled frames: the same frames (frame Fréchet unchanged), wrong order (clip Fréchet grows).
        let shuffled = map_videos(&frames, &mut |v| vec![v[0].clone(), v[3].clone(), v[1].clone(), v[2].clone()]);
        let shuffled = measure(judges, &scenes, &reference, Some(&shuffled));
        assert!(shuffled.frechet_frames.unwrap() < 1e-6);
        assert!(shuffled.frechet_clips.unwrap() > 1e-6, "{shuffled:?}");

        // Futures that do not differ: no diversity.
        let collapsed: SceneFrames = frames.iter().map(|scene| vec![scene[0].clone(), scene[0].clone()]).collect();
        assert_eq!(measure(judges, &scenes, &reference, Some(&collapsed)).diversity, Some(0.0));
    }

    #[test]
    fn clip_features_hold_appearance_and_motion() {
        let still = clip_feature(&[vec![1.0, 2.0], vec![1.0, 2.0], vec![1.0, 2.0]]);
        assert_eq!(still, vec![1.0, 2.0, 0.0, 0.0]);
        let moving = clip_feature(&[vec![0.0, 2.0], vec![2.0, 2.0]]);
        assert_eq!(moving, vec![1.0, 2.0, 2.0, 0.0]);
        assert!(clip_feature(&[]).is_empty());
    }
}
