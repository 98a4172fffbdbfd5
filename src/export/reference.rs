//! `render`: a scenario's reference video from the procedural world, streamed to
//! disk frame by frame, with labels in every format and a metadata record.
//!
//! ```text
//! OUT/scenario.ron  OUT/metadata.json  OUT/frames/000000.png …  OUT/labels/…
//! ```

use std::path::Path;

use serde_json::json;

use super::error::{AtPath, ExportError};
use super::sequence::{SequenceInfo, write_sequence_labels};
use super::{atomic, frames};
use crate::scenario::{self, Scenario};
use crate::world::{Renderer, World};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReferenceOptions {
    pub seconds: f32,
    pub fps: f32,
    pub width: u32,
    pub height: u32,
    /// Seed of the traffic's decisions; `None` uses the scenario's own stream.
    pub behaviour_seed: Option<u64>,
}

/// What was written.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReferenceSummary {
    pub frames: u32,
    /// Labelled objects over all frames.
    pub objects: usize,
}

/// Renders `scenario` into `out` (which must exist); `progress(frames_done)` after each frame.
pub fn render_reference(
    scenario: &Scenario,
    opts: &ReferenceOptions,
    out: &Path,
    mut progress: impl FnMut(u32),
) -> Result<ReferenceSummary, ExportError> {
    let mut world =
        World::from_scenario(scenario).map_err(|e| ExportError::io(out, std::io::Error::other(e.to_string())))?;
    if let Some(seed) = opts.behaviour_seed {
        world.reseed_behaviour(seed);
    }
    let mut renderer = Renderer::new(opts.width, opts.height);
    let frames_dir = out.join("frames");
    std::fs::create_dir_all(&frames_dir).map_err(|e| ExportError::io(&frames_dir, e))?;
    let count = (opts.seconds * opts.fps).round().max(1.0) as u32;
    let (mut labels, mut names) = (Vec::with_capacity(count as usize), Vec::with_capacity(count as usize));
    for i in 0..count {
        world.advance_to(i as f32 / opts.fps);
        let (img, lab) = renderer.render(&world, i);
        let name = frames::frame_file_name(i);
        atomic::save_png_atomic(&frames_dir.join(&name), &img)?;
        names.push(format!("frames/{name}"));
        labels.push(lab);
        progress(i + 1);
    }
    let objects = labels.iter().map(|l| l.objects.len()).sum();
    let meta = json!({
        "generator": format!("latentdrive {}", env!("CARGO_PKG_VERSION")),
        "kind": "reference render (procedural world)",
        "scenario": scenario.name,
        "layout_seed": scenario.seed,
        "behaviour_seed": opts.behaviour_seed,
        "fps": opts.fps,
        "seconds": opts.seconds,
        "frames": count,
        "width": opts.width,
        "height": opts.height,
        "time_of_day": scenario.conditions.time_of_day.bdd_name(),
        "crowdedness": scenario.conditions.crowdedness,
        "scenario_track_ids": world.scenario_tracks,
    });
    let info = SequenceInfo {
        name: scenario.name.clone(),
        time_of_day: scenario.conditions.time_of_day,
        fps: opts.fps,
        metadata: meta.clone(),
    };
    write_sequence_labels(&out.join("labels"), &info, &names, &labels)?;
    atomic::write_atomic(&out.join("scenario.ron"), scenario::to_ron_string(scenario).as_bytes())?;
    let path = out.join("metadata.json");
    let bytes = serde_json::to_vec_pretty(&meta).map_err(|e| e.at_path(&path))?;
    atomic::write_atomic(&path, &bytes)?;
    Ok(ReferenceSummary { frames: count, objects })
}
