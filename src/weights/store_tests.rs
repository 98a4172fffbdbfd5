//! Tests of [`super`]: round trips, the temporal split and every load error, on a
//! module small enough that each test runs in milliseconds.

use std::path::{Path, PathBuf};

use burn::backend::Flex;
use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Linear, LinearConfig};
use burn::store::{ModuleSnapshot, SafetensorsStore};
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor};

use super::*;

type TB = Flex;

/// The layers a video model adds; stored apart because the field is named `temporal`.
#[derive(Module, Debug)]
struct Temporal<B: Backend> {
    linear: Linear<B>,
    alpha: Param<Tensor<B, 1>>,
}

#[derive(Module, Debug)]
struct Net<B: Backend> {
    linear: Linear<B>,
    conv: Conv2d<B>,
    temporal: Temporal<B>,
}

/// `Net` plus one layer, to produce a file with a tensor `Net` does not have.
#[derive(Module, Debug)]
struct NetWithHead<B: Backend> {
    linear: Linear<B>,
    conv: Conv2d<B>,
    temporal: Temporal<B>,
    head: Linear<B>,
}

/// A `Net` whose layers are `width` wide (2 → width linear, width → width conv).
fn net(width: usize) -> Net<TB> {
    let device = Default::default();
    Net {
        linear: LinearConfig::new(2, width).init(&device),
        conv: Conv2dConfig::new([width, width], [3, 3]).init(&device),
        temporal: Temporal {
            linear: LinearConfig::new(width, width).init(&device),
            alpha: Param::from_tensor(Tensor::random([1], Distribution::Uniform(0.0, 1.0), &device)),
        },
    }
}

/// A fresh folder under the system temp dir, removed on drop.
struct TestDir(PathBuf);

impl TestDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("latentdrive-weights-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TestDir(dir)
    }

    fn join(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Every parameter as (path, raw bytes), for bit-exact comparisons.
fn raw<M: Module<TB>>(module: &M) -> Vec<(String, Vec<u8>)> {
    module
        .collect(None, None, false)
        .iter()
        .map(|s| (s.full_path(), s.to_data().unwrap().as_bytes().to_vec()))
        .collect()
}

/// Only the parameters of `part`.
fn raw_part<M: Module<TB>>(module: &M, part: Part) -> Vec<(String, Vec<u8>)> {
    raw(module).into_iter().filter(|(name, _)| Part::of(name) == part).collect()
}

fn names(path: &Path) -> Vec<String> {
    file_tensors(path).unwrap().into_iter().map(|t| t.name).collect()
}

/// Saves `net(4)` into `dir` as spatial + temporal files and returns it with the paths.
fn saved(dir: &TestDir) -> (Net<TB>, PathBuf, PathBuf) {
    let module = net(4);
    let (spatial, temporal) = (dir.join("net.safetensors"), dir.join("net.temporal.safetensors"));
    save_parts(&module, &spatial, Some(&temporal)).unwrap();
    (module, spatial, temporal)
}

#[test]
fn part_is_decided_by_an_exact_temporal_segment() {
    assert_eq!(Part::of("down.0.temporal.conv.weight"), Part::Temporal);
    assert_eq!(Part::of("mid.temporal.alpha"), Part::Temporal);
    assert_eq!(Part::of("temporal.linear.weight"), Part::Temporal);
    assert_eq!(Part::of("temporal_mix.weight"), Part::Spatial);
    assert_eq!(Part::of("down.0.res.conv1.weight"), Part::Spatial);
}

#[test]
fn round_trip_is_bit_exact() {
    let dir = TestDir::new("round-trip");
    let (original, spatial, temporal) = saved(&dir);
    let fresh = net(4);
    assert_ne!(raw(&original), raw(&fresh), "the fresh module must start from other values");

    let loaded = load_parts(fresh, &spatial, Some(&temporal), TemporalInit::Require).unwrap();
    assert_eq!(raw(&loaded), raw(&original));
}

#[test]
fn temporal_tensors_go_only_to_the_temporal_file() {
    let dir = TestDir::new("split");
    let (_, spatial, temporal) = saved(&dir);
    assert_eq!(names(&spatial), ["conv.bias", "conv.weight", "linear.bias", "linear.weight"]);
    assert_eq!(names(&temporal), ["temporal.alpha", "temporal.linear.bias", "temporal.linear.weight"]);
}

#[test]
fn spatial_only_load_keeps_temporal_init_when_asked() {
    let dir = TestDir::new("keep");
    let (original, spatial, _) = saved(&dir);
    let fresh = net(4);
    let fresh_temporal = raw_part(&fresh, Part::Temporal);
    assert_ne!(fresh_temporal, raw_part(&original, Part::Temporal));

    let loaded = load_parts(fresh, &spatial, None, TemporalInit::Keep).unwrap();
    assert_eq!(raw_part(&loaded, Part::Spatial), raw_part(&original, Part::Spatial));
    assert_eq!(raw_part(&loaded, Part::Temporal), fresh_temporal);
}

#[test]
fn spatial_only_load_without_keep_names_a_missing_temporal_tensor() {
    let dir = TestDir::new("require");
    let (_, spatial, _) = saved(&dir);
    let error = load_parts(net(4), &spatial, None, TemporalInit::Require).unwrap_err();
    assert!(matches!(error, WeightsError::MissingTemporalFile { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.starts_with(&format!("{}: ", spatial.display())), "{message}");
    assert!(message.contains("\"temporal.linear.weight\" (shape [4, 4])"), "{message}");
}

#[test]
fn saving_temporal_parameters_without_a_temporal_file_is_refused() {
    let dir = TestDir::new("unsaved");
    let spatial = dir.join("net.safetensors");
    let error = save_parts(&net(4), &spatial, None).unwrap_err();
    assert!(error.to_string().contains("\"temporal.linear.weight\""), "{error}");
    assert!(!spatial.exists(), "nothing may be written");
}

#[test]
fn missing_file_says_how_to_get_weights() {
    let dir = TestDir::new("missing");
    let spatial = dir.join("absent.safetensors");
    let error = load_parts(net(4), &spatial, None, TemporalInit::Keep).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "{}: file not found; run `latentdrive train ...` to produce weights, or use the shipped weights/tiny",
            spatial.display()
        )
    );
}

#[test]
fn truncated_file_is_reported_as_corrupt() {
    let dir = TestDir::new("truncated");
    let (_, spatial, temporal) = saved(&dir);
    let bytes = std::fs::read(&spatial).unwrap();
    std::fs::write(&spatial, &bytes[..bytes.len() / 2]).unwrap();

    let error = load_parts(net(4), &spatial, Some(&temporal), TemporalInit::Require).unwrap_err();
    assert!(matches!(error, WeightsError::Corrupt { .. }), "{error:?}");
    assert!(error.to_string().starts_with(&format!("{}: not a valid safetensors file", spatial.display())));
}

#[test]
fn wrong_shape_names_file_tensor_and_both_shapes() {
    let dir = TestDir::new("shape");
    let (spatial, temporal) = (dir.join("net.safetensors"), dir.join("net.temporal.safetensors"));
    save_parts(&net(3), &spatial, Some(&temporal)).unwrap();

    let error = load_parts(net(4), &spatial, Some(&temporal), TemporalInit::Require).unwrap_err();
    // `linear` is the module's first parameter; burn stores Linear weights as [in, out].
    assert_eq!(
        error.to_string(),
        format!("{}: tensor \"linear.weight\" has shape [2, 3], the model expects [2, 4]", spatial.display())
    );
}

#[test]
fn wrong_shape_in_the_temporal_file_names_that_file() {
    let dir = TestDir::new("shape-temporal");
    let (_, spatial, _) = saved(&dir);
    let temporal = dir.join("narrow.temporal.safetensors");
    save_parts(&net(3), &dir.join("narrow.safetensors"), Some(&temporal)).unwrap();

    let error = load_parts(net(4), &spatial, Some(&temporal), TemporalInit::Require).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("{}: tensor \"temporal.linear.weight\" has shape [3, 3], the model expects [4, 4]", temporal.display())
    );
}

#[test]
fn extra_tensor_in_a_file_is_an_error() {
    let dir = TestDir::new("extra");
    let device = Default::default();
    let n = net(4);
    let bigger = NetWithHead::<TB> {
        linear: n.linear,
        conv: n.conv,
        temporal: n.temporal,
        head: LinearConfig::new(4, 5).init(&device),
    };
    let (spatial, temporal) = (dir.join("net.safetensors"), dir.join("net.temporal.safetensors"));
    save_parts(&bigger, &spatial, Some(&temporal)).unwrap();

    let error = load_parts(net(4), &spatial, Some(&temporal), TemporalInit::Require).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "{}: tensor \"head.bias\" (shape [5]) is not used by the model; every tensor in a weight file must be used",
            spatial.display()
        )
    );
}

#[test]
fn temporal_tensors_in_the_spatial_file_are_not_accepted() {
    let dir = TestDir::new("mixed");
    let (module, _, temporal) = saved(&dir);
    // One file with everything, as burn-store writes it without our split.
    let everything = dir.join("everything.safetensors");
    module.save_into(&mut SafetensorsStore::from_file(&everything)).unwrap();

    let error = load_parts(net(4), &everything, Some(&temporal), TemporalInit::Require).unwrap_err();
    assert!(matches!(&error, WeightsError::UnexpectedTensor { tensor, .. } if tensor == "temporal.alpha"), "{error}");
}

#[test]
fn missing_tensor_is_named_with_its_shape() {
    let dir = TestDir::new("missing-tensor");
    let module = net(4);
    // A spatial file without `conv`: saved from a module that lacks it.
    #[derive(Module, Debug)]
    struct NoConv<B: Backend> {
        linear: Linear<B>,
    }
    let spatial = dir.join("net.safetensors");
    save_parts(&NoConv { linear: module.linear.clone() }, &spatial, None).unwrap();

    let error = load_parts(module, &spatial, None, TemporalInit::Keep).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "{}: tensor \"conv.weight\" (shape [4, 4, 3, 3]) is expected by the model but missing from the file",
            spatial.display()
        )
    );
}

#[test]
fn save_replaces_an_existing_file_and_leaves_no_temporaries() {
    let dir = TestDir::new("replace");
    let (_, spatial, temporal) = saved(&dir);
    let second = net(4);
    save_parts(&second, &spatial, Some(&temporal)).unwrap();
    let loaded = load_parts(net(4), &spatial, Some(&temporal), TemporalInit::Require).unwrap();
    assert_eq!(raw(&loaded), raw(&second));
    let mut files: Vec<String> =
        std::fs::read_dir(&dir.0).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    files.sort();
    assert_eq!(files, ["net.safetensors", "net.temporal.safetensors"]);
}

#[test]
fn saving_the_same_weights_again_writes_the_same_bytes() {
    // burn-store's metadata (four keys) comes out in `HashMap` order, which differs
    // between maps; of eight saves at least two would almost surely differ unsorted.
    let dir = TestDir::new("same-bytes");
    let module = net(4);
    let path = dir.join("net.safetensors");
    let temporal = dir.join("net.temporal.safetensors");
    let mut files = Vec::new();
    for _ in 0..8 {
        save_parts(&module, &path, Some(&temporal)).unwrap();
        files.push((std::fs::read(&path).unwrap(), std::fs::read(&temporal).unwrap()));
    }
    assert!(files.windows(2).all(|pair| pair[0] == pair[1]), "two saves of one module differ");
    let loaded = load_parts(net(4), &path, Some(&temporal), TemporalInit::Require).unwrap();
    assert_eq!(raw(&loaded), raw(&module));
}

#[test]
fn a_file_shorter_than_its_header_is_an_error_not_a_panic() {
    assert!(sorted_header(vec![1, 2, 3]).is_err());
    let mut file = 64u64.to_le_bytes().to_vec();
    file.extend_from_slice(b"{}");
    assert!(sorted_header(file).is_err());
}

#[test]
fn sha256_matches_the_standard_test_vector() {
    let dir = TestDir::new("sha");
    let path = dir.join("abc.txt");
    std::fs::write(&path, b"abc").unwrap();
    // FIPS 180-2, appendix B.1.
    assert_eq!(sha256_file(&path).unwrap(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert!(matches!(sha256_file(&dir.join("nope")), Err(WeightsError::MissingFile { .. })));
}

/// Every parameter as F32 values, for comparisons with a tolerance.
fn values<M: Module<TB>>(module: &M) -> Vec<(String, Vec<f32>)> {
    module
        .collect(None, None, false)
        .iter()
        .map(|s| (s.full_path(), s.to_data().unwrap().convert::<f32>().to_vec::<f32>().unwrap()))
        .collect()
}

#[test]
fn an_f16_file_loads_as_the_rounded_values_and_back_to_f32_exactly() {
    use crate::weights::{StorageDtype, convert_file};
    let dir = TestDir::new("f16");
    let (original, spatial, temporal) = saved(&dir);
    let (half_spatial, half_temporal) = (dir.join("half.safetensors"), dir.join("half.temporal.safetensors"));
    let report = convert_file(&spatial, &half_spatial, StorageDtype::F16).unwrap();
    assert_eq!((report.tensors, report.converted), (4, 4));
    let spatial_values: usize =
        values(&original).iter().filter(|(name, _)| Part::of(name) == Part::Spatial).map(|(_, v)| v.len()).sum();
    assert!(
        report.bytes_before - report.bytes_after >= 2 * spatial_values as u64,
        "two bytes saved per value: {report:?}"
    );
    convert_file(&temporal, &half_temporal, StorageDtype::F16).unwrap();
    assert!(file_tensors(&half_spatial).unwrap().iter().all(|t| t.dtype == DType::F16));

    let loaded = load_parts(net(4), &half_spatial, Some(&half_temporal), TemporalInit::Require).unwrap();
    let mut largest_spatial = 0.0f32;
    for ((name, want), (_, got)) in values(&original).iter().zip(values(&loaded)) {
        for (w, g) in want.iter().zip(&got) {
            assert_eq!(*g, half::f16::from_f32(*w).to_f32(), "{name}: {w} loaded as {g}");
            if Part::of(name) == Part::Spatial {
                largest_spatial = largest_spatial.max((g - w).abs());
            }
        }
    }
    assert!(largest_spatial > 0.0, "values were rounded");
    assert_eq!(report.max_abs_error, largest_spatial, "the report's rounding error is the file's largest");
    assert!(
        loaded.linear.weight.val().dtype() == original.linear.weight.val().dtype(),
        "the parameter keeps its dtype"
    );

    // The same input gives the same bytes (the header's keys are sorted, not in hash order),
    // and an F16 file converted to F16 again is unchanged.
    let again = dir.join("again.safetensors");
    convert_file(&spatial, &again, StorageDtype::F16).unwrap();
    assert_eq!(std::fs::read(&again).unwrap(), std::fs::read(&half_spatial).unwrap());
    convert_file(&half_spatial, &again, StorageDtype::F16).unwrap();
    assert_eq!(std::fs::read(&again).unwrap(), std::fs::read(&half_spatial).unwrap());

    // Widening is exact: the F32 file loads exactly as the F16 one did.
    let wide = dir.join("wide.safetensors");
    assert_eq!(convert_file(&half_spatial, &wide, StorageDtype::F32).unwrap().max_abs_error, 0.0);
    let again = load_parts(net(4), &wide, Some(&half_temporal), TemporalInit::Require).unwrap();
    assert_eq!(raw(&again), raw(&loaded));
}

#[test]
fn a_value_f16_cannot_hold_is_refused_by_tensor_name() {
    use crate::weights::{StorageDtype, convert_file};
    let dir = TestDir::new("f16-range");
    let mut module = net(2);
    module.temporal.alpha = Param::from_tensor(Tensor::from_floats([1.0e6], &Default::default()));
    let (spatial, temporal) = (dir.join("net.safetensors"), dir.join("net.temporal.safetensors"));
    save_parts(&module, &spatial, Some(&temporal)).unwrap();
    let half = dir.join("half.safetensors");
    let error = convert_file(&temporal, &half, StorageDtype::F16).unwrap_err().to_string();
    assert!(error.contains("\"temporal.alpha\"") && error.contains("1000000"), "{error}");
    assert!(!half.exists(), "nothing is written");
}

#[test]
fn a_converted_folder_verifies_converts_a_shared_file_once_and_is_never_written_twice() {
    use crate::model::ModelTier;
    use crate::weights::{FileEntry, Manifest, ModelEntry, StorageDtype, convert_folder};
    let src = TestDir::new("convert-src");
    let (_, spatial, temporal) = saved(&src);
    std::fs::write(src.join("MODEL_CARD.md"), "# card\n").unwrap();
    std::fs::write(src.join(".manifest.lock"), "").unwrap();
    let describe = |path: &Path, part| FileEntry::describe(&src.0, path.file_name().unwrap(), part).unwrap();
    let image = ModelEntry::new("image", &1u32, vec![describe(&spatial, Part::Spatial)]).unwrap();
    let video =
        ModelEntry::new("video", &2u32, vec![describe(&spatial, Part::Spatial), describe(&temporal, Part::Temporal)])
            .unwrap();
    let mut manifest = Manifest::new(ModelTier::Micro);
    manifest.models = vec![image, video];
    manifest.write(&src.0).unwrap();

    let dst = TestDir::new("convert-dst");
    let out = dst.0.join("half");
    let report = convert_folder(&src.0, &out, StorageDtype::F16).unwrap();
    assert_eq!(report.files.len(), 2, "the shared spatial file is converted once: {report:?}");
    assert_eq!(report.copied, [PathBuf::from("MODEL_CARD.md")]);
    assert!(report.bytes_after() < report.bytes_before());
    let converted = Manifest::read(&out).unwrap();
    converted.verify(&out).unwrap();
    let hash = |m: &Manifest, model: &str| m.model(model).unwrap().file(Part::Spatial).unwrap().sha256.clone();
    assert_eq!(hash(&converted, "image"), hash(&converted, "video"));
    assert_ne!(hash(&converted, "image"), hash(&manifest, "image"));
    manifest.verify(&src.0).unwrap();
    assert_eq!(std::fs::read_to_string(out.join("MODEL_CARD.md")).unwrap(), "# card\n");
    let loaded = load_parts(
        net(4),
        &out.join("net.safetensors"),
        Some(&out.join("net.temporal.safetensors")),
        TemporalInit::Require,
    );
    assert!(loaded.is_ok(), "{loaded:?}");

    let again = convert_folder(&src.0, &out, StorageDtype::F16).unwrap_err().to_string();
    assert!(again.contains("already exists"), "{again}");
}
