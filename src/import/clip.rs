//! One clip of source frames into the dataset: frames cropped and scaled, boxes mapped,
//! what the source does not say estimated, labels written in every format.

use std::collections::HashMap;
use std::path::Path;

use image::RgbImage;

use crate::data::IndexEntry;
use crate::export::{self, ExportError, SequenceInfo};
use crate::world::labels::{Box2d, FrameLabels, ObjectClass, ObjectLabel};

use super::crowd::{Crowdedness, counted_cars};
use super::{ImportError, ImportOptions, SourceFrame};

/// Estimates for what the source labels leave out.
pub(super) mod estimate {
    use crate::world::labels::Occlusion;

    /// The hidden fraction taken for an occlusion level: the middle of the level's
    /// range (under 10 %, 10–50 %, over 50 %; see [`Occlusion`]).
    pub fn occluded_fraction(occlusion: Occlusion) -> f32 {
        match occlusion {
            Occlusion::FullyVisible => 0.0,
            Occlusion::PartlyOccluded => 0.3,
            Occlusion::LargelyOccluded => 0.75,
            Occlusion::FullyOccluded => 1.0,
        }
    }

    /// The truncated fraction taken for a level 0 (not), 1 (partly, up to half) or
    /// 2 (more than half): the middle of its range, so our exporters give the level back.
    pub fn truncation(level: u8) -> f32 {
        match level {
            0 => 0.0,
            1 => 0.25,
            _ => 0.75,
        }
    }
}

/// Where a source frame's output comes from: the centre crop with the output's aspect.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Crop {
    pub(super) x0: u32,
    pub(super) y0: u32,
    pub(super) width: u32,
    pub(super) height: u32,
}

impl Crop {
    /// The largest `out_w : out_h` window centred in a `w × h` frame.
    pub(super) fn centre(w: u32, h: u32, out_w: u32, out_h: u32) -> Crop {
        let (w64, h64, ow, oh) = (w as u64, h as u64, out_w as u64, out_h as u64);
        if w64 * oh > h64 * ow {
            let cw = ((h64 * ow + oh / 2) / oh) as u32;
            Crop { x0: (w - cw) / 2, y0: 0, width: cw, height: h }
        } else {
            let ch = ((w64 * oh + ow / 2) / ow) as u32;
            Crop { x0: 0, y0: (h - ch) / 2, width: w, height: ch }
        }
    }

    /// `b` (source pixels) in an `out_w × out_h` output of this crop, clipped to it, and the
    /// fraction of its area kept. `None` when less than a pixel is left in either direction.
    pub(super) fn map_box(&self, b: &Box2d, out_w: u32, out_h: u32) -> Option<(Box2d, f32)> {
        let s = out_w as f32 / self.width as f32;
        let (x0, y0) = (self.x0 as f32, self.y0 as f32);
        let full = Box2d { x1: (b.x1 - x0) * s, y1: (b.y1 - y0) * s, x2: (b.x2 - x0) * s, y2: (b.y2 - y0) * s };
        let kept = Box2d {
            x1: full.x1.clamp(0.0, out_w as f32),
            y1: full.y1.clamp(0.0, out_h as f32),
            x2: full.x2.clamp(0.0, out_w as f32),
            y2: full.y2.clamp(0.0, out_h as f32),
        };
        (kept.width() >= 1.0 && kept.height() >= 1.0).then(|| (kept, kept.area() / full.area()))
    }
}

/// A written clip.
pub(super) struct WrittenClip {
    pub(super) entry: IndexEntry,
    pub(super) cars: usize,
    pub(super) cars_outside_crop: usize,
}

/// Writes clips into a dataset folder.
pub(super) struct ClipWriter<'a> {
    pub(super) dir: &'a Path,
    pub(super) opts: &'a ImportOptions,
    pub(super) crowdedness: &'a Crowdedness,
}

impl ClipWriter<'_> {
    /// Writes the frames of one clip and their labels (all formats) under `clips/<id>/`.
    pub(super) fn write(&self, id: &str, source: &str, frames: &[SourceFrame]) -> Result<WrittenClip, ImportError> {
        let (w, h) = (self.opts.width, self.opts.height);
        let clip_dir = self.dir.join("clips").join(id);
        let frames_dir = clip_dir.join("frames");
        std::fs::create_dir_all(&frames_dir).map_err(|e| ExportError::io(&frames_dir, e))?;
        // Track ids are numbered per clip in order of appearance.
        let mut tracks: HashMap<&str, u32> = HashMap::new();
        let (mut names, mut labels) = (Vec::with_capacity(frames.len()), Vec::with_capacity(frames.len()));
        let mut outside = 0;
        for (i, frame) in frames.iter().enumerate() {
            let img = image::open(&frame.image)
                .map_err(|e| ImportError::Source(format!("{}: cannot read the image: {e}", frame.image.display())))?
                .into_rgb8();
            let crop = Crop::centre(img.width(), img.height(), w, h);
            if crop.width < w || crop.height < h {
                return Err(ImportError::Source(format!(
                    "{}: the {}x{} frame's {w}:{h} centre crop is {}x{}, smaller than the output size {w}x{h} \
                     (frames are only scaled down; choose a smaller --size)",
                    frame.image.display(),
                    img.width(),
                    img.height(),
                    crop.width,
                    crop.height
                )));
            }
            let cropped = image::imageops::crop_imm(&img, crop.x0, crop.y0, crop.width, crop.height).to_image();
            let out: RgbImage = image::imageops::resize(&cropped, w, h, image::imageops::FilterType::Triangle);
            let name = export::frame_file_name(i as u32);
            export::save_png_atomic(&frames_dir.join(&name), &out)?;
            names.push(format!("frames/{name}"));

            let mut objects = Vec::with_capacity(frame.objects.len());
            for object in &frame.objects {
                let Some((box2d, kept)) = crop.map_box(&object.box2d, w, h) else {
                    outside += 1;
                    continue;
                };
                let next = tracks.len() as u32;
                let occluded_fraction = estimate::occluded_fraction(object.occlusion);
                objects.push(ObjectLabel {
                    track_id: *tracks.entry(object.track.as_str()).or_insert(next),
                    class: ObjectClass::Car,
                    box2d,
                    box3d: object.box3d,
                    truncation: 1.0 - (1.0 - object.truncation.clamp(0.0, 1.0)) * kept,
                    occluded_fraction,
                    occlusion: object.occlusion,
                    visible_pixels: (box2d.area() * (1.0 - occluded_fraction)).round().max(1.0) as u32,
                });
            }
            let time_s = i as f32 / self.opts.fps;
            labels.push(FrameLabels { frame: i as u32, time_s, width: w, height: h, objects });
        }
        let time_of_day = frames.iter().find_map(|f| f.time_of_day).unwrap_or(self.opts.time_of_day);
        let crowdedness = self.crowdedness.level(&labels.iter().map(counted_cars).collect::<Vec<_>>());
        let counts: Vec<usize> = labels.iter().map(|l| l.objects.len()).collect();
        let info = SequenceInfo {
            name: id.to_string(),
            time_of_day,
            fps: self.opts.fps,
            metadata: serde_json::json!({ "source": source, "crowdedness": crowdedness }),
        };
        export::write_sequence_labels(&clip_dir.join("labels"), &info, &names, &labels)?;
        let entry = IndexEntry {
            id: id.to_string(),
            seed: id.parse().unwrap_or(0),
            time_of_day,
            crowdedness,
            cars_first_frame: counts[0],
            source: Some(source.to_string()),
        };
        Ok(WrittenClip { entry, cars: counts.iter().sum(), cars_outside_crop: outside })
    }
}
