//! Streaming clips from the procedural world.

use image::RgbImage;

use crate::scenario::{Conditions, MAX_CROWDEDNESS, TimeOfDay};
use crate::world::{FrameLabels, Renderer, World, WorldError};

/// Shape of the clips a stage trains on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClipSpec {
    pub frames: usize,
    /// Frame rate in Hz (the world ticks at 40 Hz; rates that divide 40 are exact).
    pub fps: f32,
    pub width: u32,
    pub height: u32,
    /// Seconds simulated before the first frame, so traffic is not in its start layout.
    pub warmup_s: f32,
}

impl ClipSpec {
    /// Key frames as the prediction model sees them: 8 frames at 2.5 Hz, 128×256.
    pub fn keyframes() -> Self {
        ClipSpec { frames: 8, fps: 2.5, width: 256, height: 128, warmup_s: 2.0 }
    }
}

/// A rendered clip and its ground truth.
#[derive(Debug, Clone)]
pub struct Clip {
    /// Layout seed of the world the clip was rendered from.
    pub seed: u64,
    pub conditions: Conditions,
    pub fps: f32,
    pub frames: Vec<RgbImage>,
    pub labels: Vec<FrameLabels>,
}

/// Renders `spec.frames` frames of `world` starting after its warm-up.
pub fn render_clip(world: &mut World, renderer: &mut Renderer, spec: &ClipSpec) -> Clip {
    let start = world.time_s + spec.warmup_s;
    let (mut frames, mut labels) = (Vec::with_capacity(spec.frames), Vec::with_capacity(spec.frames));
    for i in 0..spec.frames {
        world.advance_to(start + i as f32 / spec.fps);
        let (img, mut lab) = renderer.render(world, i as u32);
        lab.time_s -= start;
        frames.push(img);
        labels.push(lab);
    }
    Clip { seed: world.seed(), conditions: world.conditions, fps: spec.fps, frames, labels }
}

/// Conditions drawn uniformly from the seed: day or night, crowdedness 0..=3.
pub fn random_conditions(seed: u64) -> Conditions {
    let x = crate::world::mix(seed ^ 0xC0_4D17_1045);
    Conditions {
        time_of_day: if x & 1 == 0 { TimeOfDay::Day } else { TimeOfDay::Night },
        crowdedness: ((x >> 8) % (MAX_CROWDEDNESS as u64 + 1)) as u8,
    }
}

/// An endless, deterministic stream of clips with seeds `first_seed, first_seed + 1, …`.
/// Training iterates it directly; nothing touches the disk.
pub struct ClipStream {
    spec: ClipSpec,
    next_seed: u64,
    renderer: Renderer,
}

impl ClipStream {
    pub fn new(spec: ClipSpec, first_seed: u64) -> Self {
        ClipStream { spec, next_seed: first_seed, renderer: Renderer::new(spec.width, spec.height) }
    }

    /// The clip for one seed (the same clip the stream yields for that seed).
    pub fn clip(&mut self, seed: u64) -> Result<Clip, WorldError> {
        let mut world = World::new(seed, random_conditions(seed), &[])?;
        Ok(render_clip(&mut world, &mut self.renderer, &self.spec))
    }
}

impl Iterator for ClipStream {
    type Item = Clip;

    fn next(&mut self) -> Option<Clip> {
        let seed = self.next_seed;
        self.next_seed += 1;
        // A world without requested boxes always builds.
        self.clip(seed).ok()
    }
}
