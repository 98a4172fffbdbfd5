//! Reading KITTI folders: tracking (`label_02/<seq>.txt`, `image_02/<seq>/<frame>.png`) and
//! object detection (`label_2/<id>.txt`, `image_2/<id>.png`). The label files are parsed
//! strictly by [`crate::export::kitti`]; a frame without label lines has no objects (KITTI
//! labels every frame of a sequence).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::export::kitti::{self, KittiGeometry};
use crate::world::labels::Occlusion;

use super::clip::estimate;
use super::{ImportError, SourceFrame, SourceObject, SourceSequence};

/// Image file extensions read, without case.
const IMAGE_EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

fn source_error(path: &Path, what: impl std::fmt::Display) -> ImportError {
    ImportError::Source(format!("{}: {what}", path.display()))
}

/// The `*.txt` files of `src/<labels>`, sorted, after checking `src/<images>` exists.
pub(super) fn label_files(src: &Path, labels: &str, images: &str) -> Result<Vec<PathBuf>, ImportError> {
    for sub in [labels, images] {
        if !src.join(sub).is_dir() {
            return Err(source_error(
                src,
                format!("no {sub}/ folder (a KITTI folder such as `training/` holds {labels}/ and {images}/)"),
            ));
        }
    }
    let dir = src.join(labels);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| source_error(&dir, e))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(source_error(&dir, "no label files (*.txt)"));
    }
    Ok(files)
}

/// KITTI's occlusion column: 0 fully visible, 1 partly, 2 largely occluded, 3 unknown
/// (taken as partly).
fn occlusion(level: i8) -> Occlusion {
    match level {
        0 => Occlusion::FullyVisible,
        2 => Occlusion::LargelyOccluded,
        _ => Occlusion::PartlyOccluded,
    }
}

fn object(track: String, truncation: f32, occluded: i8, geometry: &KittiGeometry) -> SourceObject {
    SourceObject { track, box2d: geometry.box2d, truncation, occlusion: occlusion(occluded), box3d: geometry.box3d }
}

/// The images of one folder by frame number (file stems that are numbers).
fn numbered_images(dir: &Path) -> Result<BTreeMap<u32, PathBuf>, ImportError> {
    let entries = std::fs::read_dir(dir).map_err(|e| source_error(dir, e))?;
    let mut out = BTreeMap::new();
    for path in entries.filter_map(|entry| entry.ok().map(|e| e.path())) {
        let image = path
            .extension()
            .and_then(|x| x.to_str())
            .is_some_and(|x| IMAGE_EXTENSIONS.iter().any(|e| e.eq_ignore_ascii_case(x)));
        if let Some(n) = path.file_stem().and_then(|s| s.to_str()).and_then(|s| s.parse::<u32>().ok()).filter(|_| image)
        {
            out.insert(n, path);
        }
    }
    Ok(out)
}

/// The sequences of one tracking label file: its images split where a frame number is
/// missing, each frame with its imported objects.
pub(super) fn read_tracking_sequences(
    file: &Path,
    cars: &dyn Fn(&str) -> bool,
) -> Result<Vec<SourceSequence>, ImportError> {
    let rows = kitti::read_tracking(file).map_err(|e| ImportError::Source(e.to_string()))?;
    let name = file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let images_dir = file.parent().and_then(Path::parent).unwrap_or(Path::new(".")).join("image_02").join(&name);
    let images = numbered_images(&images_dir)?;
    let mut objects: BTreeMap<u32, Vec<SourceObject>> = BTreeMap::new();
    for row in rows.iter().filter(|r| cars(&r.object_type)) {
        if !images.contains_key(&row.frame) {
            return Err(source_error(
                file,
                format!("frame {} has labels but no image in {}", row.frame, images_dir.display()),
            ));
        }
        let truncation = estimate::truncation(row.truncated.max(0) as u8);
        objects.entry(row.frame).or_default().push(object(
            row.track_id.to_string(),
            truncation,
            row.occluded,
            &row.geometry,
        ));
    }
    let mut sequences: Vec<SourceSequence> = Vec::new();
    let mut previous = None;
    for (&n, image) in &images {
        if previous.is_none_or(|p: u32| p + 1 != n) {
            sequences.push(SourceSequence { name: name.clone(), frames: Vec::new() });
        }
        previous = Some(n);
        let objects = objects.remove(&n).unwrap_or_default();
        let frame = SourceFrame { number: n, image: image.clone(), objects, time_of_day: None };
        if let Some(sequence) = sequences.last_mut() {
            sequence.frames.push(frame);
        }
    }
    Ok(sequences)
}

/// The one-frame sequence of one object label file.
pub(super) fn read_object_frame(file: &Path, cars: &dyn Fn(&str) -> bool) -> Result<Vec<SourceSequence>, ImportError> {
    let rows = kitti::read_object(file).map_err(|e| ImportError::Source(e.to_string()))?;
    let name = file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let images_dir = file.parent().and_then(Path::parent).unwrap_or(Path::new(".")).join("image_2");
    let image = IMAGE_EXTENSIONS
        .iter()
        .map(|x| images_dir.join(format!("{name}.{x}")))
        .find(|p| p.is_file())
        .ok_or_else(|| source_error(file, format!("no image {name}.png (or .jpg) in {}", images_dir.display())))?;
    let objects = rows
        .iter()
        .enumerate()
        .filter(|(_, r)| cars(&r.object_type))
        .map(|(i, r)| object(i.to_string(), r.truncated, r.occluded, &r.geometry))
        .collect();
    Ok(vec![SourceSequence { name, frames: vec![SourceFrame { number: 0, image, objects, time_of_day: None }] }])
}
