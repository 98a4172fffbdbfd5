//! Saving and loading any burn [`Module`] as safetensors through burn-store, with the
//! temporal parameters in a file of their own.
//!
//! Tensor names are the module's hierarchical parameter paths as burn-store builds them
//! (`down.0.res.conv1.weight`, `mid.temporal.alpha`), so renaming a field renames a
//! tensor and is a format change (STYLE rule 5).
//!
//! **Temporal split.** A parameter whose path has a segment named exactly `temporal`
//! belongs to the [`Part::Temporal`] part, everything else to [`Part::Spatial`]. A video
//! model thus stores the image model it was built from in its spatial file, and an image
//! LDM's spatial file can seed a video model ([`TemporalInit::Keep`]), the Video LDM
//! recipe (Blattmann et al. 2023, §3.1: train temporal layers on top of frozen
//! spatial ones).
//!
//! **Checks.** Before any tensor is applied, [`load_parts`] compares every file's tensor
//! list with the module's parameters: each expected tensor must be present with the
//! same shape and dtype, and each tensor in a file must be used. The first mismatch is
//! reported with the file, the tensor and both shapes (STYLE rule 12). burn-store's own
//! `allow_partial`/unused reporting is not relied upon for this.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;

use burn::module::Module;
use burn::store::{ModuleSnapshot, ModuleStore, SafetensorsStore, SafetensorsStoreError, TensorSnapshot};
use burn::tensor::DType;
use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::WeightsError;
use crate::export::write_atomic_via_path;

/// The path segment that marks a parameter as temporal.
pub const TEMPORAL_SEGMENT: &str = "temporal";

/// Safetensors metadata key recording which part a file holds (informational; loading
/// checks the tensors themselves).
const PART_METADATA_KEY: &str = "latentdrive.part";

/// Which file a parameter is stored in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Part {
    /// Everything that is not temporal: the image model.
    Spatial,
    /// Parameters under a `temporal` path segment: the layers a video model adds.
    Temporal,
}

impl Part {
    /// The part a parameter path belongs to: [`Part::Temporal`] if any `.`-separated
    /// segment is exactly `temporal` (`mid.temporal.alpha`, but not `temporal_mix.weight`).
    pub fn of(path: &str) -> Part {
        if path.split('.').any(|segment| segment == TEMPORAL_SEGMENT) { Part::Temporal } else { Part::Spatial }
    }

    /// Lower-case name, as written in file metadata.
    pub fn name(self) -> &'static str {
        match self {
            Part::Spatial => "spatial",
            Part::Temporal => "temporal",
        }
    }
}

/// What [`load_parts`] does with temporal parameters when no temporal file is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TemporalInit {
    /// Temporal parameters must come from a file; without one, loading a model that has
    /// any is an error naming the first of them. The default, so partial loads are never
    /// silent.
    #[default]
    Require,
    /// Without a temporal file, temporal parameters keep their initialisation. Asked for
    /// explicitly when an image model's weights seed a new video model. With a temporal
    /// file this changes nothing: the file is loaded and checked in full.
    Keep,
}

/// Name, shape and element type of one tensor, in a module or in a file.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    /// Hierarchical path, e.g. `down.0.res.conv1.weight`.
    pub name: String,
    pub shape: Vec<usize>,
    pub dtype: DType,
}

/// The parameters of `module` in visiting order, named as they are stored.
pub fn module_tensors<B: Backend, M: Module<B>>(module: &M) -> Vec<TensorInfo> {
    module
        .collect(None, None, false)
        .iter()
        .map(|snapshot| TensorInfo {
            name: snapshot.full_path(),
            shape: snapshot.shape.to_vec(),
            dtype: snapshot.dtype,
        })
        .collect()
}

/// The tensors of a safetensors file, sorted by name. Reads the header only.
pub fn file_tensors(path: &Path) -> Result<Vec<TensorInfo>, WeightsError> {
    let mut store = open(path)?;
    Ok(read_snapshots(path, &mut store)?
        .iter()
        .map(|(name, snapshot)| TensorInfo {
            name: name.clone(),
            shape: snapshot.shape.to_vec(),
            dtype: snapshot.dtype,
        })
        .collect())
}

/// Saves `module` as safetensors: spatial parameters to `spatial`, temporal ones to
/// `temporal`. Each file is written atomically (temporary name in the same folder, then
/// rename), replacing any file already there.
///
/// With `temporal` = `None` the module must have no temporal parameters (an image model,
/// an autoencoder), otherwise they would be dropped silently and this returns
/// [`WeightsError::UnsavedTemporal`]. A temporal file for a module without temporal
/// parameters holds no tensors, which [`load_parts`] accepts for the same module.
pub fn save_parts<B: Backend, M: Module<B>>(
    module: &M,
    spatial: &Path,
    temporal: Option<&Path>,
) -> Result<(), WeightsError> {
    if temporal.is_none()
        && let Some(first) = module_tensors(module).into_iter().find(|t| Part::of(&t.name) == Part::Temporal)
    {
        return Err(WeightsError::UnsavedTemporal { spatial: spatial.to_path_buf(), tensor: first.name });
    }
    if temporal == Some(spatial) {
        return Err(WeightsError::Store {
            path: spatial.to_path_buf(),
            message: "the spatial and temporal parts must go to different files".into(),
        });
    }
    write_part(module, spatial, Part::Spatial)?;
    if let Some(temporal) = temporal {
        write_part(module, temporal, Part::Temporal)?;
    }
    Ok(())
}

fn write_part<B: Backend, M: Module<B>>(module: &M, path: &Path, part: Part) -> Result<(), WeightsError> {
    // burn-store filters take plain function pointers, hence one per part.
    let keep: fn(&str, &str) -> bool = match part {
        Part::Spatial => |path, _| Part::of(path) == Part::Spatial,
        Part::Temporal => |path, _| Part::of(path) == Part::Temporal,
    };
    write_atomic_via_path(path, |temp| {
        let mut store = SafetensorsStore::from_file(temp)
            .with_predicate(keep)
            .metadata(PART_METADATA_KEY, part.name())
            // The temporary name may be left over from a crashed run of this process id.
            .overwrite(true);
        module.save_into(&mut store).map_err(|e| save_error(temp, e))?;
        // burn-store writes its metadata map in `HashMap` order, which differs between
        // runs; sorted, the same weights always give the same bytes and SHA-256.
        let bytes = std::fs::read(temp).map_err(|e| WeightsError::read(temp, e))?;
        let sorted =
            sorted_header(bytes).map_err(|message| WeightsError::Store { path: temp.to_path_buf(), message })?;
        std::fs::write(temp, sorted)
            .map_err(|e| WeightsError::Store { path: temp.to_path_buf(), message: e.to_string() })
    })
}

/// The JSON header of a safetensors file, keys sorted: `safetensors::serialize` writes
/// the metadata map in `HashMap` order, which differs from run to run.
#[derive(serde::Serialize, serde::Deserialize)]
struct Header {
    #[serde(rename = "__metadata__", default, skip_serializing_if = "Option::is_none")]
    metadata: Option<BTreeMap<String, String>>,
    #[serde(flatten)]
    tensors: BTreeMap<String, serde_json::Value>,
}

/// `file` (serialised safetensors) with its header's keys in sorted order, so the same
/// tensors and metadata always give the same bytes (and the same SHA-256).
pub(super) fn sorted_header(file: Vec<u8>) -> Result<Vec<u8>, String> {
    let truncated = || format!("a safetensors file of {} bytes is shorter than its header", file.len());
    let length: [u8; 8] = file.get(..8).and_then(|b| b.try_into().ok()).ok_or_else(truncated)?;
    let length = usize::try_from(u64::from_le_bytes(length)).map_err(|_| truncated())?;
    let json = file.get(8..).and_then(|rest| rest.get(..length)).ok_or_else(truncated)?;
    let header: Header = serde_json::from_slice(json).map_err(|e| e.to_string())?;
    let mut json = serde_json::to_vec(&header).map_err(|e| e.to_string())?;
    // Padded with spaces to a multiple of 8, as safetensors does, so the data stays aligned.
    json.resize(json.len().next_multiple_of(8), b' ');
    let mut out = Vec::with_capacity(8 + json.len() + file.len() - 8 - length);
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(&json);
    out.extend_from_slice(&file[8 + length..]);
    Ok(out)
}

/// Loads `module`'s parameters from `spatial` and, if given, `temporal` (files written by
/// [`save_parts`]) and returns the loaded module.
///
/// Every tensor the module expects must be in the file of its [`Part`] with the same
/// shape and dtype, and every tensor in each file must be used; the first violation is
/// returned (module order for missing or mismatched tensors, then name order for unused
/// ones). Without a temporal file, temporal parameters are an error unless `init` is
/// [`TemporalInit::Keep`]. Nothing is applied unless all checks pass.
pub fn load_parts<B: Backend, M: Module<B>>(
    mut module: M,
    spatial: &Path,
    temporal: Option<&Path>,
    init: TemporalInit,
) -> Result<M, WeightsError> {
    let (expected_temporal, expected_spatial): (Vec<_>, Vec<_>) =
        module_tensors(&module).into_iter().partition(|t| Part::of(&t.name) == Part::Temporal);

    let mut snapshots = read_checked(spatial, &expected_spatial)?;
    match temporal {
        Some(path) => snapshots.extend(read_checked(path, &expected_temporal)?),
        None => {
            if init == TemporalInit::Require
                && let Some(first) = expected_temporal.first()
            {
                return Err(WeightsError::MissingTemporalFile {
                    spatial: spatial.to_path_buf(),
                    tensor: first.name.clone(),
                    expected: first.shape.clone(),
                });
            }
        }
    }

    let file_of = |tensor: &str| match (Part::of(tensor), temporal) {
        (Part::Temporal, Some(path)) => path,
        _ => spatial,
    };
    let offered = snapshots.len();
    let result = module.apply(snapshots, None, None, false);
    // The checks above make these unreachable for files read here; they guard against
    // burn-store building paths differently on apply than on collect.
    if let Some(error) = result.errors.first() {
        let (tensor, message) = match error {
            burn::store::ApplyError::ShapeMismatch { path, .. }
            | burn::store::ApplyError::DTypeMismatch { path, .. }
            | burn::store::ApplyError::AdapterError { path, .. }
            | burn::store::ApplyError::LoadError { path, .. } => (path.clone(), error.to_string()),
        };
        return Err(WeightsError::Store { path: file_of(&tensor).to_path_buf(), message });
    }
    if let Some(unused) = result.unused.first() {
        return Err(WeightsError::Store {
            path: file_of(unused).to_path_buf(),
            message: format!("tensor \"{unused}\" passed the name check but was not applied"),
        });
    }
    if result.applied.len() != offered {
        return Err(WeightsError::Store {
            path: spatial.to_path_buf(),
            message: format!("{} of {offered} tensors were applied", result.applied.len()),
        });
    }
    Ok(module)
}

/// SHA-256 of a file's bytes as 64 lower-case hex digits, read in a streaming fashion.
pub fn sha256_file(path: &Path) -> Result<String, WeightsError> {
    let mut file = std::fs::File::open(path).map_err(|e| WeightsError::read(path, e))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buffer).map_err(|e| WeightsError::read(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// A file-backed store, after checking the file exists (so a missing file is reported as
/// such rather than as an mmap error).
fn open(path: &Path) -> Result<SafetensorsStore, WeightsError> {
    std::fs::metadata(path).map_err(|e| WeightsError::read(path, e))?;
    Ok(SafetensorsStore::from_file(path))
}

/// Parses the file's header into lazy snapshots (tensor data stays on disk, memory-mapped).
fn read_snapshots<'a>(
    path: &Path,
    store: &'a mut SafetensorsStore,
) -> Result<&'a BTreeMap<String, TensorSnapshot>, WeightsError> {
    store.get_all_snapshots().map_err(|e| read_error(path, e))
}

/// Reads `path` and checks its tensors against `expected` (see [`load_parts`]).
fn read_checked(path: &Path, expected: &[TensorInfo]) -> Result<Vec<TensorSnapshot>, WeightsError> {
    let mut store = open(path)?;
    let found = read_snapshots(path, &mut store)?;
    for want in expected {
        let Some(have) = found.get(&want.name) else {
            return Err(WeightsError::MissingTensor {
                path: path.to_path_buf(),
                tensor: want.name.clone(),
                expected: want.shape.clone(),
            });
        };
        if have.shape.as_slice() != want.shape.as_slice() {
            return Err(WeightsError::ShapeMismatch {
                path: path.to_path_buf(),
                tensor: want.name.clone(),
                found: have.shape.to_vec(),
                expected: want.shape.clone(),
            });
        }
        if storage_dtype(have.dtype) != storage_dtype(want.dtype) && !widens(have.dtype, want.dtype) {
            return Err(WeightsError::DtypeMismatch {
                path: path.to_path_buf(),
                tensor: want.name.clone(),
                found: format!("{:?}", have.dtype),
                expected: format!("{:?}", want.dtype),
            });
        }
    }
    let wanted: BTreeSet<&str> = expected.iter().map(|t| t.name.as_str()).collect();
    if let Some((name, snapshot)) = found.iter().find(|(name, _)| !wanted.contains(name.as_str())) {
        return Err(WeightsError::UnexpectedTensor {
            path: path.to_path_buf(),
            tensor: name.clone(),
            shape: snapshot.shape.to_vec(),
        });
    }
    let dtypes: BTreeMap<&str, DType> = expected.iter().map(|t| (t.name.as_str(), t.dtype)).collect();
    Ok(found.iter().map(|(name, snapshot)| widened(snapshot, dtypes[name.as_str()])).collect())
}

/// Whether a tensor stored as `stored` loads into a parameter of dtype `param` by
/// widening: F16 storage ([`super::StorageDtype::F16`]) into a 32-bit float parameter.
fn widens(stored: DType, param: DType) -> bool {
    stored == DType::F16 && storage_dtype(param) == DType::F32
}

/// `snapshot` with its data converted to `param` when it [`widens`], else as it is.
fn widened(snapshot: &TensorSnapshot, param: DType) -> TensorSnapshot {
    if !widens(snapshot.dtype, param) {
        return snapshot.clone();
    }
    let read = snapshot.clone_data_fn();
    TensorSnapshot::from_closure(
        std::rc::Rc::new(move || Ok(read()?.convert_dtype(param))),
        param,
        snapshot.shape.clone(),
        snapshot.path_stack.clone().unwrap_or_default(),
        snapshot.container_stack.clone().unwrap_or_default(),
        snapshot.tensor_id.unwrap_or_default(),
    )
}

/// The dtype a tensor has on disk: burn's `Flex32` is stored as `F32`.
fn storage_dtype(dtype: DType) -> DType {
    match dtype {
        DType::Flex32 => DType::F32,
        other => other,
    }
}

fn read_error(path: &Path, error: SafetensorsStoreError) -> WeightsError {
    match error {
        SafetensorsStoreError::Io(source) => WeightsError::read(path, source),
        SafetensorsStoreError::Safetensors(e) => {
            WeightsError::Corrupt { path: path.to_path_buf(), reason: e.to_string() }
        }
        // `Other` is how burn-store reports an unsupported dtype in a file's header.
        SafetensorsStoreError::Other(reason) => WeightsError::Corrupt { path: path.to_path_buf(), reason },
        other => WeightsError::Store { path: path.to_path_buf(), message: other.to_string() },
    }
}

fn save_error(path: &Path, error: SafetensorsStoreError) -> WeightsError {
    match error {
        SafetensorsStoreError::Io(source) => {
            WeightsError::Io { path: path.to_path_buf(), action: "writing".into(), source }
        }
        other => WeightsError::Store { path: path.to_path_buf(), message: other.to_string() },
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
