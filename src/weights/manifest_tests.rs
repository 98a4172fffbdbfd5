//! Tests of [`super`]: round trips, verification and malformed manifests.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::*;
use crate::model::ModelTier;

/// A stand-in for a model config: nested, with an enum, as real configs are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ToyConfig {
    channels: usize,
    levels: Vec<usize>,
    schedule: ToySchedule,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
enum ToySchedule {
    Linear,
    Cosine { offset: f32 },
}

fn toy() -> ToyConfig {
    ToyConfig { channels: 32, levels: vec![1, 2, 4], schedule: ToySchedule::Cosine { offset: 0.008 } }
}

/// A fresh folder under the system temp dir, removed on drop.
struct TestDir(PathBuf);

impl TestDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("latentdrive-manifest-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TestDir(dir)
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A folder with two small "weight" files and a manifest describing them.
fn folder(name: &str) -> (TestDir, Manifest) {
    let dir = TestDir::new(name);
    std::fs::write(dir.0.join("unet.safetensors"), b"spatial bytes").unwrap();
    std::fs::write(dir.0.join("unet.temporal.safetensors"), b"temporal bytes").unwrap();
    let files = vec![
        FileEntry::describe(&dir.0, "unet.safetensors", Part::Spatial).unwrap(),
        FileEntry::describe(&dir.0, "unet.temporal.safetensors", Part::Temporal).unwrap(),
    ];
    let mut unet = ModelEntry::new("unet", &toy(), files).unwrap();
    unet.training = Some(TrainingFacts {
        steps: 20_000,
        wall_time_s: 5400.5,
        hardware: "1× NVIDIA H100".into(),
        data: "seeds 0..4096, 64×64, 16 frames".into(),
        notes: String::new(),
        base: None,
    });
    let mut autoencoder = ModelEntry::new("autoencoder", &ToySchedule::Linear, vec![]).unwrap();
    autoencoder.latent_scale = Some(0.18215);
    let mut manifest = Manifest::new(ModelTier::Tiny);
    manifest.models = vec![unet, autoencoder];
    (dir, manifest)
}

#[test]
fn write_then_read_round_trips() {
    let (dir, manifest) = folder("round-trip");
    let path = manifest.write(&dir.0).unwrap();
    assert_eq!(path, dir.0.join(MANIFEST_FILE));
    let read = Manifest::read(&dir.0).unwrap();
    assert_eq!(read, manifest);
    // The config is stored inline as RON and reads back into its type.
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("config: ToyConfig(channels: 32,"), "{text}");
    assert_eq!(read.model("unet").unwrap().config::<ToyConfig>(&path).unwrap(), toy());
    // Writing what was read gives the same bytes.
    read.write(&dir.0).unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
}

#[test]
fn verify_accepts_an_untouched_folder() {
    let (dir, manifest) = folder("verify-ok");
    manifest.verify(&dir.0).unwrap();
    let entry = manifest.model("unet").unwrap();
    assert_eq!(entry.file_path(&dir.0, Part::Temporal).unwrap(), Some(dir.0.join("unet.temporal.safetensors")));
    assert_eq!(manifest.model("autoencoder").unwrap().file_path(&dir.0, Part::Spatial).unwrap(), None);
}

#[test]
fn verify_names_a_file_whose_hash_changed() {
    let (dir, manifest) = folder("hash");
    let changed = dir.0.join("unet.temporal.safetensors");
    std::fs::write(&changed, b"TEMPORAL BYTES").unwrap(); // same size, other bytes
    let error = manifest.verify(&dir.0).unwrap_err();
    assert!(matches!(error, WeightsError::HashMismatch { .. }), "{error:?}");
    let expected = &manifest.models[0].files[1].sha256;
    assert!(error.to_string().starts_with(&format!("{}: SHA-256 is ", changed.display())), "{error}");
    assert!(error.to_string().contains(&format!("the manifest's \"unet\" entry records {expected}")), "{error}");
}

#[test]
fn verify_names_a_file_whose_size_changed_or_that_is_gone() {
    let (dir, manifest) = folder("size");
    let spatial = dir.0.join("unet.safetensors");
    std::fs::write(&spatial, b"short").unwrap();
    assert_eq!(
        manifest.verify(&dir.0).unwrap_err().to_string(),
        format!("{}: file has 5 bytes, the manifest records 13", spatial.display())
    );
    std::fs::remove_file(&spatial).unwrap();
    assert!(matches!(
        manifest.verify(&dir.0),
        Err(WeightsError::MissingFile { path }) if path == spatial
    ));
}

#[test]
fn entries_may_not_leave_the_folder() {
    let (dir, mut manifest) = folder("escape");
    manifest.models[0].files[0].path = PathBuf::from("../elsewhere.safetensors");
    let error = manifest.verify(&dir.0).unwrap_err();
    assert!(matches!(error, WeightsError::EntryOutsideDir { .. }), "{error:?}");
    assert!(error.to_string().contains("\"../elsewhere.safetensors\""), "{error}");
}

#[test]
fn unknown_field_is_reported_with_line_and_column() {
    let text = "Manifest(\n    format_version: 1,\n    tier: Tiny,\n    modles: [],\n)\n";
    let error = Manifest::parse(text, Path::new("weights/tiny/manifest.ron")).unwrap_err();
    let WeightsError::ManifestParse { line, col, ref message, .. } = error else {
        panic!("{error:?}");
    };
    assert_eq!((line, col), (4, 5), "{message}");
    assert!(error.to_string().starts_with("weights/tiny/manifest.ron:4:5: "), "{error}");
    assert!(message.contains("modles"), "{message}");
}

#[test]
fn other_format_version_is_refused_by_number() {
    // A newer format may have fields this build does not know; the version is reported first.
    let text = "Manifest(format_version: 2, tier: Tiny, models: [], signatures: [])";
    let error = Manifest::parse(text, Path::new("m.ron")).unwrap_err();
    assert_eq!(error.to_string(), "m.ron: manifest format version 2 is not supported; this build reads version 1");
}

#[test]
fn missing_manifest_says_how_to_get_weights() {
    let dir = TestDir::new("absent");
    let error = Manifest::read(&dir.0).unwrap_err();
    assert!(matches!(error, WeightsError::MissingFile { ref path } if *path == dir.0.join(MANIFEST_FILE)));
    assert!(error.to_string().contains("latentdrive train"), "{error}");
}

#[test]
fn config_of_another_type_is_an_error_naming_the_model() {
    let (dir, manifest) = folder("config-type");
    let path = dir.0.join(MANIFEST_FILE);
    let error = manifest.model("unet").unwrap().config::<ToySchedule>(&path).unwrap_err();
    assert!(error.to_string().starts_with(&format!("{}: model \"unet\": ", path.display())), "{error}");
}

/// A toy model's entry with no files, for the `upsert` tests.
fn toy_entry(name: &str, channels: usize) -> ModelEntry {
    ModelEntry::new(name, &ToyConfig { channels, ..toy() }, vec![]).unwrap()
}

#[test]
fn upsert_replaces_by_name_and_side_by_side_writers_keep_every_entry() {
    let dir = TestDir::new("upsert");
    // Eight writers at once, as stages trained side by side into one folder: each
    // read-change-write must see the others' entries.
    std::thread::scope(|s| {
        for w in 0..8 {
            let dir = &dir.0;
            s.spawn(move || {
                for round in 0..10 {
                    Manifest::upsert(dir, ModelTier::Tiny, toy_entry(&format!("stage{w}"), round)).unwrap();
                }
            });
        }
    });
    let read = Manifest::read(&dir.0).unwrap();
    assert_eq!(read.tier, ModelTier::Tiny);
    let mut names: Vec<&str> = read.models.iter().map(|m| m.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, (0..8).map(|w| format!("stage{w}")).collect::<Vec<_>>());
    // Each writer's last round replaced its earlier ones.
    let path = Manifest::path(&dir.0);
    for m in &read.models {
        assert_eq!(m.config::<ToyConfig>(&path).unwrap().channels, 9, "{}", m.name);
    }
}

#[test]
fn upsert_keeps_a_replaced_entry_in_its_place() {
    let dir = TestDir::new("upsert-order");
    for name in ["first", "second", "third"] {
        Manifest::upsert(&dir.0, ModelTier::Tiny, toy_entry(name, 1)).unwrap();
    }
    Manifest::upsert(&dir.0, ModelTier::Tiny, toy_entry("first", 2)).unwrap();
    let read = Manifest::read(&dir.0).unwrap();
    let names: Vec<&str> = read.models.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["first", "second", "third"]);
    let path = Manifest::path(&dir.0);
    assert_eq!(read.model("first").unwrap().config::<ToyConfig>(&path).unwrap().channels, 2);
}

#[test]
fn a_denoisers_latent_norm_round_trips_and_one_of_another_width_is_an_error_naming_it() {
    use crate::diffusion::LatentNorm;
    let (dir, mut manifest) = folder("latent-norm");
    // Without its own, a denoiser's latents are the autoencoder's scale on every channel.
    assert_eq!(manifest.latent_norm(&dir.0, "unet", "autoencoder", 4).unwrap(), LatentNorm::uniform(0.18215, 4));
    let norm = LatentNorm { shift: vec![0.5, -1.0], scale: vec![2.0, 0.25] };
    manifest.models[0].latent_norm = Some(norm.clone());
    manifest.write(&dir.0).unwrap();
    let read = Manifest::read(&dir.0).unwrap();
    assert_eq!(read.latent_norm(&dir.0, "unet", "autoencoder", 2).unwrap(), norm);
    let err = read.latent_norm(&dir.0, "unet", "autoencoder", 4).unwrap_err().to_string();
    assert!(err.contains("\"unet\"") && err.contains("latent of 4 channels"), "{err}");
}
