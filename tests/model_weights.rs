//! Weight files of the real models: the video UNet round-trips bit-exactly with its
//! temporal parameters in their own file, an image LDM's file seeds a video model,
//! and a file from another tier is refused naming the tensor and both shapes.

use std::path::PathBuf;

use burn::backend::Flex;
use burn::module::Module;
use burn::tensor::{Distribution, Tensor};
use latentdrive::model::{ModelTier, UNet, UNetInput};
use latentdrive::weights::{Part, TemporalInit, file_tensors, load_parts, save_parts};

type B = Flex;

fn tmp(tag: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("latentdrive-mw-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).unwrap();
    p
}

fn flat(m: &UNet<B>) -> Vec<f32> {
    // A forward pass on fixed input fingerprints every parameter that matters.
    let dev = Default::default();
    let x = Tensor::<B, 4>::ones([2, 4, 4, 8], &dev);
    m.forward(UNetInput::new(x, Tensor::from_floats([10.0, 20.0], &dev), 2)).into_data().to_vec::<f32>().unwrap()
}

#[test]
fn video_unet_round_trips_with_temporal_weights_apart() {
    let dev = Default::default();
    let dir = tmp("roundtrip");
    let cfg = ModelTier::Micro.config();
    // Random non-zero weights everywhere (fresh outputs start at zero).
    let model = cfg.video_ldm.init::<B>(&dev).map(&mut RandomAll);
    let (spatial, temporal) = (dir.join("video.safetensors"), dir.join("video.temporal.safetensors"));
    save_parts(&model, &spatial, Some(&temporal)).unwrap();
    let names = |p| file_tensors(p).unwrap().into_iter().map(|t| t.name).collect::<Vec<_>>();
    assert!(names(&spatial).iter().all(|n| Part::of(n) == Part::Spatial));
    let temporal_names = names(&temporal);
    assert!(temporal_names.iter().all(|n| n.split('.').any(|s| s == "temporal")));
    assert!(temporal_names.iter().any(|n| n.ends_with("alpha.mix")));
    assert!(temporal_names.iter().any(|n| n.starts_with("temporal.context.")));

    let fresh = cfg.video_ldm.init::<B>(&dev);
    assert_ne!(flat(&fresh), flat(&model));
    let loaded = load_parts(fresh, &spatial, Some(&temporal), TemporalInit::Require).unwrap();
    assert_eq!(flat(&loaded), flat(&model));

    // The image model's weights (spatial only) seed a new video model.
    let image = model.clone().into_image_model();
    let image_file = dir.join("image.safetensors");
    save_parts(&image, &image_file, None).unwrap();
    let video = load_parts(cfg.video_ldm.init::<B>(&dev), &image_file, None, TemporalInit::Keep).unwrap();
    let refused = load_parts(cfg.video_ldm.init::<B>(&dev), &image_file, None, TemporalInit::Require).unwrap_err();
    assert!(refused.to_string().contains("temporal"), "{refused}");
    // A new video model with the image weights is the image model (zero-initialised temporal outputs).
    let x = Tensor::<B, 4>::ones([2, 4, 4, 8], &dev);
    let t = Tensor::<B, 1>::from_floats([10.0, 20.0], &dev);
    let v = video.forward(UNetInput::new(x.clone(), t.clone(), 2));
    let i = image.forward(UNetInput::new(x, t, 1));
    let d: f32 = (v - i).abs().max().into_scalar();
    assert!(d <= 1e-5, "{d}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn weights_of_another_tier_are_refused_with_tensor_and_shapes() {
    let dev = Default::default();
    let dir = tmp("tier");
    let file = dir.join("unet.safetensors");
    let micro = ModelTier::Micro.config().image_ldm.init::<B>(&dev);
    save_parts(&micro, &file, None).unwrap();
    let mut wider = ModelTier::Micro.config().image_ldm.clone();
    wider.base_channels *= 2;
    let err = load_parts(wider.init::<B>(&dev), &file, None, TemporalInit::Require).unwrap_err().to_string();
    assert!(
        err.contains("unet.safetensors") && err.contains("has shape") && err.contains("the model expects"),
        "{err}"
    );
    eprintln!("{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Replaces every float parameter with random values.
struct RandomAll;

impl<Bk: burn::tensor::backend::Backend> burn::module::ModuleMapper<Bk> for RandomAll {
    fn map_float<const D: usize>(
        &mut self,
        p: burn::module::Param<Tensor<Bk, D>>,
    ) -> burn::module::Param<Tensor<Bk, D>> {
        let (id, t, mapper) = p.consume();
        let r = Tensor::random(t.dims(), Distribution::Normal(0.0, 0.1), &t.device());
        burn::module::Param::from_mapped_value(id, r, mapper)
    }
}
