//! Storage precision of weight files: a weights folder may keep its float tensors as F32
//! (what training writes) or as F16 (what the shipped tiers use: half the bytes).
//!
//! Models always compute in the backend's float type. [`load_parts`](super::load_parts)
//! widens an F16 tensor to the parameter's dtype as it is applied, so a folder converted
//! with [`convert_folder`] loads wherever the F32 one did. The conversion is a storage
//! rounding (IEEE binary16, round to nearest even: a relative error ≤ 2⁻¹¹ for normal
//! values); it refuses a value that F16 cannot hold (|x| > 65504) rather than store an
//! infinity. Integer and boolean tensors, and the files' metadata, are copied unchanged.
//!
//! Training checkpoints stay F32 (`--resume` continues bit-exactly); converting is a
//! packaging step for a finished folder (`latentdrive weights convert`).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use half::f16;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use super::store::sorted_header;
use super::{FileEntry, Manifest, WeightsError};
use crate::export::write_atomic;

/// How a weights file stores its float tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageDtype {
    /// 32-bit floats, as training writes them.
    F32,
    /// 16-bit IEEE floats: half the bytes.
    F16,
}

impl StorageDtype {
    /// Lower-case name, as in `--dtype`.
    pub fn name(self) -> &'static str {
        match self {
            StorageDtype::F32 => "f32",
            StorageDtype::F16 => "f16",
        }
    }
}

/// What converting one file did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FileConversion {
    /// Tensors in the file.
    pub tensors: usize,
    /// Tensors whose storage type changed.
    pub converted: usize,
    pub bytes_before: u64,
    pub bytes_after: u64,
    /// The largest |stored − original| over all converted values (0 when widening).
    pub max_abs_error: f32,
}

/// Rewrites the safetensors file `src` as `dst` with its F32 and F16 tensors stored as
/// `to`; other tensors and the metadata are copied. `dst` is written atomically.
pub fn convert_file(src: &Path, dst: &Path, to: StorageDtype) -> Result<FileConversion, WeightsError> {
    let bytes = std::fs::read(src).map_err(|e| WeightsError::read(src, e))?;
    let corrupt =
        |e: safetensors::SafeTensorError| WeightsError::Corrupt { path: src.to_path_buf(), reason: e.to_string() };
    let (_, header) = SafeTensors::read_metadata(&bytes).map_err(corrupt)?;
    let file = SafeTensors::deserialize(&bytes).map_err(corrupt)?;

    let mut report = FileConversion { bytes_before: bytes.len() as u64, ..FileConversion::default() };
    // Sorted by name, so the output does not depend on the header's order.
    let mut tensors = BTreeMap::new();
    for (name, view) in file.iter() {
        report.tensors += 1;
        let (dtype, data) = match (view.dtype(), to) {
            (Dtype::F32, StorageDtype::F16) => {
                report.converted += 1;
                let (data, error) = narrow(view.data()).map_err(|value| WeightsError::Store {
                    path: src.to_path_buf(),
                    message: format!("tensor \"{name}\" holds {value}, which F16 cannot store (|x| > 65504)"),
                })?;
                report.max_abs_error = report.max_abs_error.max(error);
                (Dtype::F16, data)
            }
            (Dtype::F16, StorageDtype::F32) => {
                report.converted += 1;
                (Dtype::F32, widen(view.data()))
            }
            (dtype, _) => (dtype, view.data().to_vec()),
        };
        tensors.insert(name.to_string(), (dtype, view.shape().to_vec(), data));
    }
    let views = tensors
        .iter()
        .map(|(name, (dtype, shape, data))| {
            TensorView::new(*dtype, shape.clone(), data).map(|view| (name.clone(), view)).map_err(corrupt)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let metadata: Option<HashMap<String, String>> = header.metadata().clone();
    let store_error = |message: String| WeightsError::Store { path: dst.to_path_buf(), message };
    let out = safetensors::serialize(views, metadata).map_err(|e| store_error(e.to_string()))?;
    let out = sorted_header(out).map_err(store_error)?;
    write_atomic(dst, &out)?;
    report.bytes_after = out.len() as u64;
    Ok(report)
}

/// Little-endian F32 bytes as F16 bytes, and the largest rounding error; the first value
/// F16 cannot hold is the error.
fn narrow(data: &[u8]) -> Result<(Vec<u8>, f32), f32> {
    let mut out = Vec::with_capacity(data.len() / 2);
    let mut max_error = 0.0f32;
    for chunk in data.chunks_exact(4) {
        let value = f32::from_le_bytes(chunk.try_into().expect("chunks of 4"));
        let half = f16::from_f32(value);
        if value.is_finite() && !half.is_finite() {
            return Err(value);
        }
        if value.is_finite() {
            max_error = max_error.max((half.to_f32() - value).abs());
        }
        out.extend_from_slice(&half.to_le_bytes());
    }
    Ok((out, max_error))
}

/// Little-endian F16 bytes as F32 bytes (exact).
fn widen(data: &[u8]) -> Vec<u8> {
    data.chunks_exact(2).flat_map(|chunk| f16::from_le_bytes([chunk[0], chunk[1]]).to_f32().to_le_bytes()).collect()
}

/// What [`convert_folder`] did.
#[derive(Debug, Clone, Default)]
pub struct FolderConversion {
    /// Each tensor file of the manifest, by its path in the folder.
    pub files: Vec<(PathBuf, FileConversion)>,
    /// Other top-level files copied as they are (model card, notes).
    pub copied: Vec<PathBuf>,
}

impl FolderConversion {
    pub fn bytes_before(&self) -> u64 {
        self.files.iter().map(|(_, f)| f.bytes_before).sum()
    }

    pub fn bytes_after(&self) -> u64 {
        self.files.iter().map(|(_, f)| f.bytes_after).sum()
    }
}

/// Writes the weights folder `src` to the new folder `dst` with every tensor file
/// converted to `to` ([`convert_file`]) and a manifest whose sizes and hashes describe
/// the new files. `src` is verified first; `dst` must not hold a manifest already (it is
/// created if missing). Other regular files at the top of `src` are copied, except hidden ones. The manifest
/// is written last, so an interrupted conversion never leaves a folder that loads.
pub fn convert_folder(src: &Path, dst: &Path, to: StorageDtype) -> Result<FolderConversion, WeightsError> {
    let mut manifest = Manifest::read(src)?;
    manifest.verify(src)?;
    let target = Manifest::path(dst);
    if target.exists() {
        return Err(WeightsError::Store {
            path: target,
            message: "already exists; convert into a new folder (nothing was written)".into(),
        });
    }
    std::fs::create_dir_all(dst).map_err(|e| WeightsError::Io {
        path: dst.to_path_buf(),
        action: "creating".into(),
        source: e,
    })?;

    let mut report = FolderConversion::default();
    // A file shared by several models (an image LDM under its video models) is
    // converted once and described once.
    let mut described: BTreeMap<PathBuf, FileEntry> = BTreeMap::new();
    for entry in &mut manifest.models {
        for file in &mut entry.files {
            if let Some(done) = described.get(&file.path) {
                *file = FileEntry { role: file.role, ..done.clone() };
                continue;
            }
            let source = entry_path(src, &file.path)?;
            let conversion = convert_file(&source, &entry_path(dst, &file.path)?, to)?;
            *file = FileEntry::describe(dst, file.path.clone(), file.role)?;
            described.insert(file.path.clone(), file.clone());
            report.files.push((file.path.clone(), conversion));
        }
    }

    let listed: Vec<&PathBuf> = described.keys().collect();
    let read_dir = std::fs::read_dir(src).map_err(|e| WeightsError::read(src, e))?;
    let mut others: Vec<PathBuf> = Vec::new();
    for item in read_dir {
        let item = item.map_err(|e| WeightsError::read(src, e))?;
        let name = PathBuf::from(item.file_name());
        let is_file = item.file_type().map_err(|e| WeightsError::read(item.path(), e))?.is_file();
        // Hidden files (the manifest's `.manifest.lock`) belong to the source folder.
        let hidden = name.to_string_lossy().starts_with('.');
        if is_file && !hidden && name != Path::new(super::MANIFEST_FILE) && !listed.contains(&&name) {
            others.push(name);
        }
    }
    others.sort();
    for name in others {
        let bytes = std::fs::read(src.join(&name)).map_err(|e| WeightsError::read(src.join(&name), e))?;
        write_atomic(&dst.join(&name), &bytes)?;
        report.copied.push(name);
    }
    manifest.write(dst)?;
    Ok(report)
}

/// `dir/path` for a manifest entry (entries never leave their folder; [`Manifest::verify`]
/// checked the source's, and the same relative paths are used in `dst`).
fn entry_path(dir: &Path, path: &Path) -> Result<PathBuf, WeightsError> {
    let full = dir.join(path);
    if let Some(parent) = full.parent() {
        std::fs::create_dir_all(parent).map_err(|e| WeightsError::Io {
            path: parent.to_path_buf(),
            action: "creating".into(),
            source: e,
        })?;
    }
    Ok(full)
}
