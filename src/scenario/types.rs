//! The scenario a user composes: conditions, car boxes, rollout, sampling, model.
//! Serialised as RON (see `scenario::load`); every field is checked by `scenario::validate`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use crate::world::labels::ObjectClass;

/// A whole scene request. Field order is the order users see in files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Used as the output folder name: letters, digits, `_`, `-`, `.`.
    pub name: String,
    /// Seed of everything random in the run (world layout, sampling noise).
    pub seed: u64,
    pub conditions: Conditions,
    #[serde(default)]
    pub boxes: Vec<BoxSpec>,
    #[serde(default)]
    pub rollout: Rollout,
    #[serde(default)]
    pub sampling: Sampling,
    #[serde(default)]
    pub model: ModelSpec,
}

/// Global scene conditions, the labels the diffusion models are conditioned on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Conditions {
    pub time_of_day: TimeOfDay,
    /// Traffic density, 0 (empty) ..= 3 (dense).
    pub crowdedness: u8,
}

impl Default for Conditions {
    fn default() -> Self {
        Conditions { time_of_day: TimeOfDay::Day, crowdedness: 1 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TimeOfDay {
    Day,
    Night,
}

impl TimeOfDay {
    /// BDD100K `attributes.timeofday` value.
    pub fn bdd_name(self) -> &'static str {
        match self {
            TimeOfDay::Day => "daytime",
            TimeOfDay::Night => "night",
        }
    }
    /// Class index used by conditioning embeddings and classifiers.
    pub fn index(self) -> usize {
        match self {
            TimeOfDay::Day => 0,
            TimeOfDay::Night => 1,
        }
    }
}

/// Largest crowdedness value.
pub const MAX_CROWDEDNESS: u8 = 3;

/// One requested car: placed either in the image or on the road, never both.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoxSpec {
    pub class: ObjectClass,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageBox>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub road: Option<RoadPlacement>,
}

/// A box in normalised image coordinates (0..1, origin top-left), so one scenario
/// works at every resolution.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageBox {
    pub x1: f32,
    pub y1: f32,
    pub x2: f32,
    pub y2: f32,
}

/// A car placed on the road; the world's camera projects it into the image.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoadPlacement {
    /// 0 is the ego lane, −1 its left neighbour, +1 its right; at most ±3.
    pub lane: i8,
    /// Distance ahead of the camera along the road, metres, in (0, 150].
    pub ahead_m: f32,
}

/// How far and how many ways the future is rolled out.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rollout {
    /// Number of independent futures, 1..=64.
    pub futures: u32,
    /// Real-time length of each future in seconds, (0, 600].
    pub seconds: f32,
    /// Frames each prediction window takes from the previous one, 0..=2.
    pub context_frames: u8,
}

impl Default for Rollout {
    fn default() -> Self {
        Rollout { futures: 4, seconds: 8.0, context_frames: 2 }
    }
}

/// Diffusion sampling settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sampling {
    /// DDIM steps, 1..=1000.
    pub steps: u32,
    /// DDIM η in [0, 1]: 0 is deterministic given the initial noise.
    pub eta: f32,
    /// Classifier-free guidance scale on the conditions (day/night, crowdedness), ≥ 0; also on
    /// the boxes unless `box_guidance` is given.
    pub label_guidance: f32,
    /// Classifier-free guidance scale on the car boxes apart from the conditions, ≥ 0 (the first
    /// frame's image LDM). Optional in files; absent, the boxes are guided together with the
    /// conditions at `label_guidance`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub box_guidance: Option<f32>,
    /// Guidance scale on the context frames, ≥ 0.
    pub context_guidance: f32,
    /// Share of the interpolator's DDIM steps, 0 to 1, for which each in-between frame is held
    /// to the straight line between its two keys' latents, so that sampling starts from that
    /// blend (SDEdit); 0 samples as the paper does. Optional in files
    /// ([`DEFAULT_INTERPOLATION_GUIDE`]).
    #[serde(default = "default_interpolation_guide")]
    pub interpolation_guide: f32,
    /// What the interpolation guide holds the in-between frames to: `Blend` (the straight line
    /// between the keys' latents) or `Ego` (the two keys moved towards each other by the ego
    /// car's travel, blended). Optional in files ([`DEFAULT_INTERPOLATION_GUESS`]).
    #[serde(default = "default_interpolation_guess", skip_serializing_if = "is_default_interpolation_guess")]
    pub interpolation_guess: InterpolationGuess,
    /// Share of the prediction model's DDIM steps, 0 to 1, for which each new frame of a window
    /// is held to the window's last context frame moved on by the ego car's travel, so that
    /// sampling starts from that guess (SDEdit); 0 samples as the paper does. Optional in files
    /// ([`DEFAULT_PREDICTION_GUIDE`]).
    #[serde(default = "default_prediction_guide")]
    pub prediction_guide: f32,
    /// How the prediction guide's hold falls off where its guess is poor, ≥ 0 (at most 4): each
    /// latent cell of a new frame is held for `seen · min(1, J)^falloff` of the guide's steps,
    /// where `J` is the area of the last context frame the warp pulls the cell from (below 1
    /// where it magnifies that frame, so that the guess there is its blur) and `seen` whether
    /// that frame saw it; the model draws the rest from noise. 0 holds every cell for all
    /// the guide's steps. Optional in files ([`DEFAULT_PREDICTION_GUIDE_FALLOFF`]).
    #[serde(default = "default_prediction_guide_falloff", skip_serializing_if = "is_default_prediction_guide_falloff")]
    pub prediction_guide_falloff: f32,
    /// Share, 0 to 1, of each new frame's start noise in a prediction window that is the last
    /// context frame's noise moved on with the scene by the ego car's travel, so that the
    /// details drawn from it move with the road; 0 draws every frame's noise on its own, as the
    /// paper does. Optional in files ([`DEFAULT_PREDICTION_NOISE`]).
    #[serde(default = "default_prediction_noise", skip_serializing_if = "is_default_prediction_noise")]
    pub prediction_noise: f32,
    /// Share, 0 to 1, of each interpolated in-between frame's start noise that is the noise of
    /// the key before it moved on with the scene by the ego car's travel, so that the details
    /// the interpolator draws move with the road; 0 draws every frame's noise on its own.
    /// Optional in files ([`DEFAULT_INTERPOLATION_NOISE`]).
    #[serde(default = "default_interpolation_noise", skip_serializing_if = "is_default_interpolation_noise")]
    pub interpolation_noise: f32,
}

/// The interpolation guide of a scenario that names none. Measured on the shipped tiny weights
/// (README, "Interpolation guide"), whose interpolator fills in frames worse than the blend of
/// its keys; weights with a better interpolator may want 0, the paper's sampling.
pub const DEFAULT_INTERPOLATION_GUIDE: f32 = 1.0;

fn default_interpolation_guide() -> f32 {
    DEFAULT_INTERPOLATION_GUIDE
}

/// What the interpolation guide holds the in-between frames to
/// ([`Sampling::interpolation_guess`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum InterpolationGuess {
    /// The straight line between the two keys' latents. Also what runs made before the
    /// choice existed used (their recorded options lack it).
    #[default]
    Blend,
    /// The straight line plus the motion of the two keys moved towards each other by the ego
    /// car's travel, as the prediction guide moves a frame (road plane, roadside walls, the
    /// requested boxes held), the travel fitted to the keys
    /// ([`crate::pipeline::ego::EgoMotion::between_latents`]).
    Ego,
}

impl InterpolationGuess {
    pub const NAMES: [&'static str; 2] = ["blend", "ego"];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            InterpolationGuess::Blend => "blend",
            InterpolationGuess::Ego => "ego",
        }
    }
}

impl std::str::FromStr for InterpolationGuess {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "blend" => Ok(InterpolationGuess::Blend),
            "ego" => Ok(InterpolationGuess::Ego),
            _ => Err(format!("expected one of {}, not {s:?}", Self::NAMES.join(", "))),
        }
    }
}

/// The interpolation guess of a scenario that names none. Measured on the shipped tiny weights
/// (README, "Interpolation guess"): the ego guess fills in the world's own clips better, but
/// the keys the tiny video LDM generates do not follow the camera model's warp closely enough
/// (their texture changes from key to key), and on generated video the straight line measures
/// better.
pub const DEFAULT_INTERPOLATION_GUESS: InterpolationGuess = InterpolationGuess::Blend;

fn default_interpolation_guess() -> InterpolationGuess {
    DEFAULT_INTERPOLATION_GUESS
}

/// Written out only when not the default, so that scenario files saved before the option
/// (and runs' copies of them, which `replay` compares) stay as they were.
fn is_default_interpolation_guess(guess: &InterpolationGuess) -> bool {
    *guess == DEFAULT_INTERPOLATION_GUESS
}

/// The prediction guide of a scenario that names none. Measured on the shipped tiny weights
/// (README, "Prediction guide"): every video measure of the evaluation improves over 0, the
/// paper's sampling; higher shares trade frame realism and diversity for steadier motion.
pub const DEFAULT_PREDICTION_GUIDE: f32 = 0.5;

fn default_prediction_guide() -> f32 {
    DEFAULT_PREDICTION_GUIDE
}

/// The prediction guide's falloff of a scenario that names none
/// ([`Sampling::prediction_guide_falloff`]). Measured on the shipped tiny weights (README,
/// "Prediction guide falloff"): 0.25 brings generated frames nearer the world's (10 Hz: about
/// half the Fréchet distance) and keeps 8 s rollouts from drifting (their later segments 5 to 7
/// times nearer), with the 10 Hz clip distance level and the key frames' worse. Scenario files
/// that name none and were written before this default read 0.25; runs made from them replay
/// as they were (`replay` takes the falloff from the run's metadata).
pub const DEFAULT_PREDICTION_GUIDE_FALLOFF: f32 = 0.25;

/// The largest prediction guide falloff a scenario or `generate` takes: at 4 a cell the warp
/// magnifies 2× in each direction (`J` = ¼) is held for 1/256 of the steps, nothing.
pub const MAX_PREDICTION_GUIDE_FALLOFF: f32 = 4.0;

fn default_prediction_guide_falloff() -> f32 {
    DEFAULT_PREDICTION_GUIDE_FALLOFF
}

/// Written out only when not the default, as [`is_default_prediction_noise`].
fn is_default_prediction_guide_falloff(falloff: &f32) -> bool {
    *falloff == DEFAULT_PREDICTION_GUIDE_FALLOFF
}

/// The prediction noise of a scenario that names none. Measured on the shipped tiny weights
/// (README, "Prediction noise"): 0.9 makes key-frame video steadier (clip distance, flicker,
/// track continuity) at a small cost in frame distance, but at 10 Hz, behind the
/// interpolation guide, the difference is mixed.
pub const DEFAULT_PREDICTION_NOISE: f32 = 0.0;

fn default_prediction_noise() -> f32 {
    DEFAULT_PREDICTION_NOISE
}

/// Written out only when not the default, so that scenario files saved before the option
/// (and runs' copies of them, which `replay` compares) stay as they were.
fn is_default_prediction_noise(share: &f32) -> bool {
    *share == DEFAULT_PREDICTION_NOISE
}

/// The interpolation noise of a scenario that names none. Measured on the shipped tiny weights
/// (README, "Interpolation noise"): 0.9 made 10 Hz video steadier on 12 and 24 scenes, left
/// 8 s rollouts' drift level and held with the upsampler. Scenario files that name none and
/// were written before this default read 0.9 now; runs made from them replay as they were
/// (`replay` takes the share from the run's metadata).
pub const DEFAULT_INTERPOLATION_NOISE: f32 = 0.9;

fn default_interpolation_noise() -> f32 {
    DEFAULT_INTERPOLATION_NOISE
}

/// Written out only when not the default, as [`is_default_prediction_noise`].
fn is_default_interpolation_noise(share: &f32) -> bool {
    *share == DEFAULT_INTERPOLATION_NOISE
}

impl Default for Sampling {
    fn default() -> Self {
        Sampling {
            steps: 50,
            eta: 0.0,
            label_guidance: 2.0,
            box_guidance: None,
            context_guidance: 1.5,
            interpolation_guide: DEFAULT_INTERPOLATION_GUIDE,
            interpolation_guess: DEFAULT_INTERPOLATION_GUESS,
            prediction_guide: DEFAULT_PREDICTION_GUIDE,
            prediction_guide_falloff: DEFAULT_PREDICTION_GUIDE_FALLOFF,
            prediction_noise: DEFAULT_PREDICTION_NOISE,
            interpolation_noise: DEFAULT_INTERPOLATION_NOISE,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    #[serde(default)]
    pub tier: Tier,
    /// Weights folder; defaults to `weights/<tier>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Tier {
    /// Narrow models that run on any laptop CPU; weights ship in `weights/tiny`.
    #[default]
    Tiny,
    /// Wider models trained on a GPU.
    Base,
}

impl Tier {
    pub fn dir_name(self) -> &'static str {
        match self {
            Tier::Tiny => "tiny",
            Tier::Base => "base",
        }
    }
}
