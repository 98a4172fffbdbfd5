//! `manifest.ron`: what a weights folder (`weights/<tier>/`) holds. One entry per model
//! with its config, its tensor files with sizes and SHA-256 hashes, and the facts of its
//! training, so a folder can be checked before it is loaded and described in its model
//! card.
//!
//! ```ron
//! Manifest(
//!     format_version: 1,
//!     tier: Tiny,
//!     models: [
//!         ModelEntry(
//!             name: "unet",
//!             config: UNetConfig(channels: 32, levels: 2),
//!             files: [
//!                 FileEntry(path: "unet.safetensors", role: Spatial, sha256: "…", bytes: 1234),
//!                 FileEntry(path: "unet.temporal.safetensors", role: Temporal, sha256: "…", bytes: 567),
//!             ],
//!             latent_scale: None,
//!             training: Some(TrainingFacts(steps: 20000, wall_time_s: 5400.0, hardware: "1× H100", data: "…", notes: "")),
//!         ),
//!     ],
//! )
//! ```
//!
//! A model's config is kept as raw RON ([`ron::value::RawValue`]) so this module does not
//! depend on model types: it reads back inline, and [`ModelEntry::config`] turns it into
//! the caller's config type. Every struct denies unknown fields, so a typo is an error
//! with its line and column rather than a silently ignored setting.

use std::path::{Component, Path, PathBuf};

use ron::value::RawValue;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::WeightsError;
use super::store::{Part, sha256_file};
use crate::model::ModelTier;

/// The manifest's file name inside a weights folder.
pub const MANIFEST_FILE: &str = "manifest.ron";

/// The lock file beside the manifest that [`Manifest::upsert`] holds while it updates it.
pub const LOCK_FILE: &str = ".manifest.lock";

/// The manifest format this build reads and writes. Bump it (and keep reading the old
/// one, or say why not) when a field or a tensor name changes meaning.
pub const FORMAT_VERSION: u32 = 1;

/// The contents of `manifest.ron`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`FORMAT_VERSION`] at the time of writing.
    pub format_version: u32,
    pub tier: ModelTier,
    pub models: Vec<ModelEntry>,
}

/// One model of a weights folder (`"autoencoder"`, `"unet"`, `"upsampler"`, ...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    pub name: String,
    /// The model's config as RON, read with [`ModelEntry::config`].
    pub config: Box<RawValue>,
    /// Its tensor files: one [`Part::Spatial`] file, and a [`Part::Temporal`] one for
    /// video models.
    pub files: Vec<FileEntry>,
    /// For an autoencoder: the factor latents are multiplied by so they have roughly unit
    /// variance (the LDM paper's scale factor, Rombach et al. 2022, Appendix G).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latent_scale: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training: Option<TrainingFacts>,
    /// For a latent denoiser: its noise schedule and output parameterisation. Absent in
    /// older manifests, meaning LDM's (`DiffusionConfig::default()`: ε on scaled-linear).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diffusion: Option<crate::diffusion::DiffusionConfig>,
    /// For a latent denoiser trained on per-channel normalised latents (`train image-ldm
    /// --latent-norm channel`): that normalisation; the video stages on its spatial layers
    /// record the same. Absent: every channel times the autoencoder's `latent_scale`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latent_norm: Option<crate::diffusion::LatentNorm>,
}

/// One tensor file of a model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Relative to the manifest's folder; may not leave it.
    pub path: PathBuf,
    pub role: Part,
    /// SHA-256 of the file, 64 lower-case hex digits.
    pub sha256: String,
    /// File size in bytes, checked before the (slower) hash.
    pub bytes: u64,
}

/// How a model was trained: the facts its model card reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingFacts {
    /// Optimiser steps.
    pub steps: u64,
    /// Wall-clock training time in seconds.
    pub wall_time_s: f64,
    /// E.g. `"1× NVIDIA H100 80GB"` or `"CPU, 16 cores"`.
    pub hardware: String,
    /// What it was trained on (generator seed range, clip count, resolution).
    pub data: String,
    #[serde(default)]
    pub notes: String,
    /// The training of the weights this one started from and kept in part (e.g. the
    /// autoencoder whose decoder was then fine-tuned with the encoder frozen).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<Box<TrainingFacts>>,
}

/// Just enough of a manifest to read its version before the full, strict parse, so a
/// manifest from a newer format reports its version rather than its first new field.
#[derive(Deserialize)]
#[serde(rename = "Manifest")]
struct VersionProbe {
    format_version: u32,
}

impl Manifest {
    /// An empty manifest of the current format.
    pub fn new(tier: ModelTier) -> Self {
        Manifest { format_version: FORMAT_VERSION, tier, models: Vec::new() }
    }

    /// Where the manifest of the weights folder `dir` lives.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(MANIFEST_FILE)
    }

    /// Reads and parses `dir/manifest.ron`. Does not look at the tensor files; see
    /// [`Manifest::verify`].
    pub fn read(dir: &Path) -> Result<Manifest, WeightsError> {
        let path = Self::path(dir);
        let text = std::fs::read_to_string(&path).map_err(|e| WeightsError::read(&path, e))?;
        Self::parse(&text, &path)
    }

    /// Parses manifest text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<Manifest, WeightsError> {
        if let Ok(probe) = ron::from_str::<VersionProbe>(text)
            && probe.format_version != FORMAT_VERSION
        {
            return Err(WeightsError::UnsupportedFormatVersion {
                path: origin.to_path_buf(),
                found: probe.format_version,
                supported: FORMAT_VERSION,
            });
        }
        let manifest: Manifest = ron::from_str(text).map_err(|e| WeightsError::ManifestParse {
            path: origin.to_path_buf(),
            line: e.span.start.line,
            col: e.span.start.col,
            message: e.code.to_string(),
        })?;
        // Unreachable when the probe parsed; kept so the check does not hinge on the probe.
        if manifest.format_version != FORMAT_VERSION {
            return Err(WeightsError::UnsupportedFormatVersion {
                path: origin.to_path_buf(),
                found: manifest.format_version,
                supported: FORMAT_VERSION,
            });
        }
        Ok(manifest)
    }

    /// The manifest as pretty RON, as [`Manifest::write`] stores it. `origin` names the
    /// destination in errors.
    pub fn to_ron_string(&self, origin: &Path) -> Result<String, WeightsError> {
        let pretty = ron::ser::PrettyConfig::new().struct_names(true).indentor("    ".to_string());
        let mut text = ron::ser::to_string_pretty(self, pretty)
            .map_err(|e| WeightsError::ManifestSerialize { path: origin.to_path_buf(), message: e.to_string() })?;
        text.push('\n');
        Ok(text)
    }

    /// Puts `entry` into `dir/manifest.ron` in place of the model of the same name (a new
    /// manifest of `tier` if there is none yet) and returns the manifest's path. The read,
    /// change and write happen under an exclusive lock on `dir/.manifest.lock`, so stages
    /// trained side by side into one folder cannot drop each other's entries.
    pub fn upsert(dir: &Path, tier: ModelTier, entry: ModelEntry) -> Result<PathBuf, WeightsError> {
        let lock_path = dir.join(LOCK_FILE);
        let io = |action: &str| {
            let (path, action) = (lock_path.clone(), action.to_string());
            move |source| WeightsError::Io { path, action, source }
        };
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io("opening the manifest lock"))?;
        // Released when `lock` is dropped (or the process dies).
        lock.lock().map_err(io("locking the manifest"))?;
        let mut manifest = match Manifest::read(dir) {
            Ok(m) => m,
            Err(WeightsError::MissingFile { .. }) => Manifest::new(tier),
            Err(e) => return Err(e),
        };
        // Replace in place (dropping any other entry of that name), so a continued stage keeps
        // its position and the file's diff shows only what changed.
        let at = manifest.models.iter().position(|m| m.name == entry.name);
        manifest.models.retain(|m| m.name != entry.name);
        manifest.models.insert(at.unwrap_or(manifest.models.len()), entry);
        manifest.write(dir)
    }

    /// Writes `dir/manifest.ron` atomically and returns its path. `dir` must exist.
    pub fn write(&self, dir: &Path) -> Result<PathBuf, WeightsError> {
        let path = Self::path(dir);
        let text = self.to_ron_string(&path)?;
        crate::export::write_atomic(&path, text.as_bytes())?;
        Ok(path)
    }

    /// Checks that every listed file exists inside `dir` with the recorded size and
    /// SHA-256. Returns the first problem, naming the file.
    pub fn verify(&self, dir: &Path) -> Result<(), WeightsError> {
        self.verify_models(dir, |_| true)
    }

    /// [`Self::verify`] for the files of the models whose name passes `wanted`.
    pub fn verify_models(&self, dir: &Path, wanted: impl Fn(&str) -> bool) -> Result<(), WeightsError> {
        let manifest = Self::path(dir);
        // The video models' entries list the image LDM's file too: hash each file once.
        let mut hashed: std::collections::HashMap<PathBuf, String> = Default::default();
        for (model, file) in
            self.models.iter().filter(|m| wanted(&m.name)).flat_map(|m| m.files.iter().map(move |f| (m, f)))
        {
            let path = resolve(&manifest, dir, &file.path)?;
            let bytes = std::fs::metadata(&path).map_err(|e| WeightsError::read(&path, e))?.len();
            if bytes != file.bytes {
                return Err(WeightsError::SizeMismatch { path, found: bytes, expected: file.bytes });
            }
            let sha256 = match hashed.get(&path) {
                Some(sha256) => sha256.clone(),
                None => {
                    let sha256 = sha256_file(&path)?;
                    hashed.insert(path.clone(), sha256.clone());
                    sha256
                }
            };
            if !sha256.eq_ignore_ascii_case(&file.sha256) {
                return Err(WeightsError::HashMismatch {
                    path,
                    model: model.name.clone(),
                    found: sha256,
                    expected: file.sha256.clone(),
                });
            }
        }
        Ok(())
    }

    /// The model named `name`, if listed.
    pub fn model(&self, name: &str) -> Option<&ModelEntry> {
        self.models.iter().find(|m| m.name == name)
    }

    /// The normalisation between the autoencoder's latents and those of the latent denoiser
    /// `denoiser`, for a latent of `channels` channels: the denoiser's own per-channel one
    /// where its entry records it, else the `autoencoder` entry's scale on every channel.
    /// `dir` names the manifest in errors.
    pub fn latent_norm(
        &self,
        dir: &Path,
        denoiser: &str,
        autoencoder: &str,
        channels: usize,
    ) -> Result<crate::diffusion::LatentNorm, WeightsError> {
        let own = self.model(denoiser).and_then(|e| e.latent_norm.clone());
        let (model, norm) = match own {
            Some(norm) => (denoiser, norm),
            None => {
                let scale = self.model(autoencoder).and_then(|e| e.latent_scale).unwrap_or(1.0);
                (autoencoder, crate::diffusion::LatentNorm::uniform(scale, channels))
            }
        };
        norm.check(channels).map_err(|message| WeightsError::LatentNorm {
            manifest: Self::path(dir),
            model: model.to_string(),
            message,
        })?;
        Ok(norm)
    }
}

impl ModelEntry {
    /// An entry for `config` (serialised as RON) and `files`, without training facts.
    pub fn new<C: Serialize>(name: &str, config: &C, files: Vec<FileEntry>) -> Result<Self, WeightsError> {
        // One line, so the config sits inline in the manifest's own layout.
        let pretty = ron::ser::PrettyConfig::new()
            .struct_names(true)
            .compact_structs(true)
            .compact_arrays(true)
            .compact_maps(true);
        let config_error = |message: String| WeightsError::ManifestSerialize {
            path: PathBuf::from(MANIFEST_FILE),
            message: format!("model \"{name}\": config: {message}"),
        };
        let text = ron::ser::to_string_pretty(config, pretty).map_err(|e| config_error(e.to_string()))?;
        let config = RawValue::from_boxed_ron(text.into_boxed_str()).map_err(|e| config_error(e.to_string()))?;
        Ok(ModelEntry {
            name: name.to_string(),
            config,
            files,
            latent_scale: None,
            training: None,
            diffusion: None,
            latent_norm: None,
        })
    }

    /// The config parsed as `C`. `manifest` (the manifest's path) names it in errors.
    pub fn config<C: DeserializeOwned>(&self, manifest: &Path) -> Result<C, WeightsError> {
        self.config.into_rust::<C>().map_err(|e| WeightsError::ModelConfig {
            manifest: manifest.to_path_buf(),
            model: self.name.clone(),
            message: e.to_string(),
        })
    }

    /// The entry of this model's file holding `part`, if any.
    pub fn file(&self, part: Part) -> Option<&FileEntry> {
        self.files.iter().find(|f| f.role == part)
    }

    /// The full path of this model's `part` file inside the weights folder `dir`.
    pub fn file_path(&self, dir: &Path, part: Part) -> Result<Option<PathBuf>, WeightsError> {
        self.file(part).map(|f| resolve(&Manifest::path(dir), dir, &f.path)).transpose()
    }
}

impl FileEntry {
    /// Describes the file `dir/path` (size and SHA-256) for a manifest.
    pub fn describe(dir: &Path, path: impl Into<PathBuf>, role: Part) -> Result<Self, WeightsError> {
        let path = path.into();
        let full = resolve(&Manifest::path(dir), dir, &path)?;
        let bytes = std::fs::metadata(&full).map_err(|e| WeightsError::read(&full, e))?.len();
        Ok(FileEntry { sha256: sha256_file(&full)?, path, role, bytes })
    }
}

/// `dir/entry`, refusing entries that are absolute or climb out of `dir` (a manifest
/// must describe its own folder, whatever it is copied to).
fn resolve(manifest: &Path, dir: &Path, entry: &Path) -> Result<PathBuf, WeightsError> {
    let inside = entry.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if !inside || entry.as_os_str().is_empty() {
        return Err(WeightsError::EntryOutsideDir { manifest: manifest.to_path_buf(), entry: entry.to_path_buf() });
    }
    Ok(dir.join(entry))
}

#[cfg(test)]
#[path = "manifest_tests.rs"]
mod tests;
