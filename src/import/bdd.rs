//! Reading BDD100K (Scalabel) label JSON: the tracking labels (one file per video, frames
//! with `videoName` and `frameIndex`) and the detection labels (one file of single images).
//!
//! Read leniently where the format varies between BDD100K's releases (unknown fields are
//! ignored; frame attributes, ids and label attributes may be missing), strictly where
//! the import needs a value: every frame has a `name`, every imported label a `category`
//! and a `box2d` of four numbers. A frame without a `labels` key was never labelled; it
//! ends its sequence, as a gap in `frameIndex` does.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::scenario::TimeOfDay;
use crate::world::labels::{Box2d, Box3d, Occlusion};

use super::clip::estimate;
use super::{ImportError, SourceFrame, SourceObject, SourceSequence};

/// The `*.json` files to read: `path` itself, or those in the folder `path`, sorted.
pub(super) fn label_files(path: &Path) -> Result<Vec<PathBuf>, ImportError> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let entries = std::fs::read_dir(path)
        .map_err(|e| ImportError::Source(format!("{}: not a label file or folder: {e}", path.display())))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(ImportError::Source(format!("{}: no label files (*.json)", path.display())));
    }
    Ok(files)
}

#[derive(Deserialize)]
struct Dataset {
    frames: Vec<Frame>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Frame {
    name: String,
    #[serde(default)]
    video_name: Option<String>,
    #[serde(default)]
    frame_index: Option<u32>,
    #[serde(default)]
    attributes: Option<FrameAttributes>,
    #[serde(default)]
    labels: Option<Vec<Label>>,
}

#[derive(Deserialize)]
struct FrameAttributes {
    #[serde(default)]
    timeofday: Option<String>,
}

#[derive(Deserialize)]
struct Label {
    #[serde(default)]
    id: Option<serde_json::Value>,
    category: String,
    #[serde(default)]
    attributes: Option<LabelAttributes>,
    /// Absent on lane and drivable-area labels (`poly2d`), which are not imported.
    #[serde(default)]
    box2d: Option<Corners>,
}

#[derive(Deserialize)]
struct LabelAttributes {
    #[serde(default)]
    occluded: bool,
    #[serde(default)]
    truncated: bool,
}

/// Scalabel's inclusive corners: `(x2, y2)` is the last pixel inside the box.
#[derive(Deserialize)]
struct Corners {
    x1: f32,
    y1: f32,
    x2: f32,
    y2: f32,
}

/// BDD100K's `timeofday`: `daytime` and `dawn/dusk` are day (the world has only day and
/// night), `night` is night, `undefined` says nothing.
fn time_of_day(frame: &Frame) -> Option<TimeOfDay> {
    match frame.attributes.as_ref()?.timeofday.as_deref()? {
        "night" => Some(TimeOfDay::Night),
        "daytime" | "dawn/dusk" => Some(TimeOfDay::Day),
        _ => None,
    }
}

/// Reads one file's frames: a JSON list, or an object with a `frames` list.
fn read_frames(file: &Path) -> Result<Vec<Frame>, ImportError> {
    let error = |e: &dyn std::fmt::Display| ImportError::Source(format!("{}: {e}", file.display()));
    let handle = std::fs::File::open(file).map_err(|e| error(&e))?;
    let mut reader = BufReader::new(handle);
    let first = reader.fill_buf().map_err(|e| error(&e))?.iter().find(|b| !b.is_ascii_whitespace()).copied();
    if first == Some(b'{') {
        serde_json::from_reader::<_, Dataset>(reader).map(|d| d.frames).map_err(|e| error(&e))
    } else {
        serde_json::from_reader(reader).map_err(|e| error(&e))
    }
}

/// The image of a frame: `<images>/<videoName>/<name>`, else `<images>/<name>`.
fn image_path(images: &Path, frame: &Frame, file: &Path) -> Result<PathBuf, ImportError> {
    let candidates: Vec<PathBuf> =
        frame.video_name.iter().map(|v| images.join(v).join(&frame.name)).chain([images.join(&frame.name)]).collect();
    candidates.iter().find(|p| p.is_file()).cloned().ok_or_else(|| {
        let tried: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
        ImportError::Source(format!(
            "{}: frame {:?} has no image (tried {})",
            file.display(),
            frame.name,
            tried.join(", ")
        ))
    })
}

fn object(label: &Label, b: &Corners, index: usize) -> SourceObject {
    let (occluded, truncated) = label.attributes.as_ref().map_or((false, false), |a| (a.occluded, a.truncated));
    let track = match &label.id {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        // Objects without an id are their own tracks.
        None => format!("#{index}"),
    };
    SourceObject {
        track,
        box2d: Box2d { x1: b.x1, y1: b.y1, x2: b.x2 + 1.0, y2: b.y2 + 1.0 },
        truncation: estimate::truncation(truncated as u8),
        occlusion: if occluded { Occlusion::PartlyOccluded } else { Occlusion::FullyVisible },
        box3d: Box3d::UNKNOWN,
    }
}

/// The sequences of one label file: its frames grouped by `videoName` (in order of first
/// appearance; a frame without one is a sequence of its own), ordered by `frameIndex`, and
/// split at gaps and unlabelled frames.
pub(super) fn read_sequences(
    file: &Path,
    images: &Path,
    cars: &dyn Fn(&str) -> bool,
) -> Result<Vec<SourceSequence>, ImportError> {
    let frames = read_frames(file)?;
    let mut videos: Vec<(String, Vec<Frame>)> = Vec::new();
    let mut by_name: HashMap<String, usize> = HashMap::new();
    for frame in frames {
        let Some(video) = frame.video_name.clone() else {
            let name = Path::new(&frame.name).file_stem().map_or(frame.name.clone(), |s| s.to_string_lossy().into());
            videos.push((name, vec![frame]));
            continue;
        };
        let k = *by_name.entry(video.clone()).or_insert_with(|| {
            videos.push((video, Vec::new()));
            videos.len() - 1
        });
        videos[k].1.push(frame);
    }
    let mut sequences = Vec::new();
    for (name, mut frames) in videos {
        // Stable: frames without an index keep the file's order.
        frames.sort_by_key(|f| f.frame_index);
        let mut current: Vec<SourceFrame> = Vec::new();
        let mut previous: Option<u32> = None;
        let mut next_object = 0;
        for (position, frame) in frames.iter().enumerate() {
            let number = frame.frame_index.unwrap_or(position as u32);
            let Some(labels) = &frame.labels else {
                close(&mut sequences, &name, &mut current);
                previous = None;
                continue;
            };
            if previous.is_some_and(|p| p + 1 != number) {
                close(&mut sequences, &name, &mut current);
            }
            previous = Some(number);
            let mut objects = Vec::new();
            for label in labels.iter().filter(|l| cars(&l.category)) {
                if let Some(b) = &label.box2d {
                    objects.push(object(label, b, next_object));
                    next_object += 1;
                }
            }
            current.push(SourceFrame {
                number,
                image: image_path(images, frame, file)?,
                objects,
                time_of_day: time_of_day(frame),
            });
        }
        close(&mut sequences, &name, &mut current);
    }
    Ok(sequences)
}

/// Ends the sequence being gathered, if it has frames.
fn close(sequences: &mut Vec<SourceSequence>, name: &str, frames: &mut Vec<SourceFrame>) {
    if !frames.is_empty() {
        sequences.push(SourceSequence { name: name.to_string(), frames: std::mem::take(frames) });
    }
}
