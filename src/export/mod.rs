//! Output writers: label files (KITTI tracking and object, COCO, BDD100K), frame
//! images and GIF previews, all written atomically.
//!
//! ```text
//! FrameLabels ──select (drop fully occluded, reject NaN)──▶ kitti / coco / bdd ──▶ write_atomic
//! RgbImage ─────────────────────────────────────────────▶ save_png_atomic / write_gif_atomic
//! ```
//!
//! Every format sees the same objects ([`exported_objects`]) and the same
//! truncation threshold ([`TRUNCATION_EPS`]), so the label files of one clip agree.
//! Unlabelled frames: COCO marks the image `"unlabeled": true`, BDD100K omits the
//! frame's `labels` key and sets `attributes.unlabeled`; KITTI has no such notion,
//! so callers leave those frames out of KITTI sequences (see
//! [`kitti::tracking_text`]).

mod atomic;
mod bdd;
mod coco;
mod error;
#[cfg(test)]
mod fixtures;
mod frames;
pub mod kitti;
mod reference;
mod select;
mod sequence;

pub use atomic::{save_png_atomic, write_atomic, write_atomic_via_path, write_atomic_with};
pub use bdd::{BddBox2d, BddBuilder, BddClip, BddDataset, BddFrame, BddFrameAttributes, BddLabel, BddLabelAttributes};
pub use coco::{CocoAnnotation, CocoBuilder, CocoCategory, CocoDataset, CocoImage};
pub use error::{AtPath, ExportError};
pub use frames::{frame_file_name, write_gif_atomic};
pub use kitti::{KittiGeometry, KittiObjectRow, KittiTrackingRow};
pub use reference::{ReferenceOptions, ReferenceSummary, render_reference};
pub use select::{TRUNCATION_EPS, exported_objects};
pub use sequence::{NATIVE_LABELS_FILE, SequenceInfo, write_sequence_labels};
