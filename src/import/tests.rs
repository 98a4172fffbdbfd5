use std::path::{Path, PathBuf};

use burn::backend::Flex;
use image::{Rgb, RgbImage};

use super::*;
use crate::export::kitti;
use crate::train::{FrameSource, visible_boxes};

fn tmp(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("latentdrive-import-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

const RED: Rgb<u8> = Rgb([255, 0, 0]);
const GREEN: Rgb<u8> = Rgb([0, 255, 0]);
const BLUE: Rgb<u8> = Rgb([0, 0, 255]);

/// A 90×30 frame (3:1): red in its left 15 columns, blue in its right 15, green between,
/// so its 2:1 centre crop (columns 15..75) is all green.
fn wide_frame(path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let img = RgbImage::from_fn(90, 30, |x, _| {
        if x < 15 {
            RED
        } else if x >= 75 {
            BLUE
        } else {
            GREEN
        }
    });
    img.save(path).unwrap();
}

/// A KITTI tracking row: `frame track type truncated occluded` and the box; a fixed 3D box.
fn tracking_row(frame: u32, track: i32, kind: &str, truncated: i8, occluded: i8, b: [f32; 4]) -> String {
    format!(
        "{frame} {track} {kind} {truncated} {occluded} -1.57 {:.2} {:.2} {:.2} {:.2} 1.50 1.60 4.00 1.00 1.70 20.00 -1.57",
        b[0], b[1], b[2], b[3]
    )
}

/// KITTI tracking sequence 0000: frames 0..=4 and 6..=7 (frame 5 missing).
fn kitti_tracking_fixture(root: &Path) {
    for n in (0..5).chain(6..8) {
        wide_frame(&root.join(format!("image_02/0000/{n:06}.png")));
    }
    let rows = [
        tracking_row(0, 0, "Car", 0, 0, [30.0, 10.0, 45.0, 20.0]),
        // Left of the crop (columns 15..75): left out.
        tracking_row(0, 1, "Car", 0, 1, [0.0, 5.0, 12.0, 15.0]),
        tracking_row(0, 2, "Pedestrian", 0, 0, [40.0, 5.0, 44.0, 15.0]),
        "0 -1 DontCare -1 -1 -10.00 50.00 5.00 60.00 10.00 -1.00 -1.00 -1.00 -1000.00 -1000.00 -1000.00 -10.00".into(),
        tracking_row(0, 3, "Van", 0, 0, [50.0, 5.0, 60.0, 15.0]),
        // Half inside the crop's right edge, truncated level 1, largely occluded.
        tracking_row(1, 0, "Car", 1, 2, [70.0, 0.0, 80.0, 30.0]),
        tracking_row(6, 4, "Car", 0, 3, [20.0, 10.0, 30.0, 20.0]),
    ];
    std::fs::create_dir_all(root.join("label_02")).unwrap();
    std::fs::write(root.join("label_02/0000.txt"), rows.join("\n") + "\n").unwrap();
}

fn options(format: ImportFormat) -> ImportOptions {
    ImportOptions {
        format,
        images: None,
        frames: 2,
        fps: 10.0,
        width: 32,
        height: 16,
        car_classes: vec!["car".into()],
        time_of_day: TimeOfDay::Night,
        crowdedness: Some(1),
        max_clips: None,
    }
}

fn assert_box(b: &Box2d, want: [f32; 4]) {
    let got = [b.x1, b.y1, b.x2, b.y2];
    assert!(got.iter().zip(want).all(|(g, w)| (g - w).abs() < 1e-4), "{got:?} vs {want:?}");
}

#[test]
fn kitti_tracking_clips_are_cut_cropped_and_labelled() {
    let (src, out) = (tmp("kt-src"), tmp("kt-out"));
    kitti_tracking_fixture(&src);
    let mut seen = Vec::new();
    let summary = import_dataset(&src, &out, &options(ImportFormat::KittiTracking), |p| seen.push(p.clips)).unwrap();
    assert_eq!(seen, vec![0, 3]);
    // Frames 0..=4 give two clips of 2 (frame 4 left over), frames 6..=7 one.
    let index = DatasetIndex::read(&out).unwrap();
    assert_eq!(index, summary.index);
    let sources: Vec<_> = index.clips.iter().map(|c| c.source.clone().unwrap()).collect();
    assert_eq!(sources, ["0000 frames 0–1", "0000 frames 2–3", "0000 frames 6–7"]);
    assert_eq!((index.frames_per_clip, index.fps, index.width, index.height), (2, 10.0, 32, 16));
    assert_eq!((summary.sequences, summary.frames, summary.cars, summary.cars_outside_crop), (2, 6, 3, 1));
    assert!(index.clips.iter().all(|c| c.time_of_day == TimeOfDay::Night && c.crowdedness == 1));

    // The centre crop: only the green middle of each frame, scaled to 32×16.
    for path in index.frame_paths(&out, &index.clips[0]) {
        let img = image::open(&path).unwrap().into_rgb8();
        assert_eq!(img.dimensions(), (32, 16));
        assert!(img.pixels().all(|p| *p == GREEN), "{}", path.display());
    }

    // Boxes move by the crop (x − 15) and scale by 32/60.
    let s = 32.0 / 60.0;
    let labels = DatasetIndex::labels(&out, &index.clips[0]).unwrap();
    assert_eq!(labels.len(), 2);
    assert_eq!(labels[0].objects.len(), 1, "{:?}", labels[0].objects);
    let car = &labels[0].objects[0];
    assert_box(&car.box2d, [15.0 * s, 10.0 * s, 30.0 * s, 20.0 * s]);
    assert_eq!((car.track_id, car.truncation, car.occlusion), (0, 0.0, Occlusion::FullyVisible));
    assert_eq!(car.box3d, Box3d { dimensions: [1.5, 1.6, 4.0], location: [1.0, 1.7, 20.0], rotation_y: -1.57 });
    assert_eq!(car.visible_pixels, (car.box2d.area()).round() as u32);
    // Half of the second frame's car is outside the crop: truncation 1 − (1 − 0.25) · 0.5.
    let cut = &labels[1].objects[0];
    assert_box(&cut.box2d, [55.0 * s, 0.0, 32.0, 16.0]);
    assert_eq!(cut.track_id, 0);
    assert!((cut.truncation - 0.625).abs() < 1e-6, "{}", cut.truncation);
    assert_eq!(cut.occlusion, Occlusion::LargelyOccluded);
    assert_eq!(cut.visible_pixels, (cut.box2d.area() * 0.25).round() as u32);

    // The clip's other label files agree: KITTI tracking parses back with the levels.
    let rows = kitti::read_tracking(&out.join("clips/000000/labels/kitti_tracking.txt")).unwrap();
    let levels: Vec<_> = rows.iter().map(|r| (r.frame, r.truncated, r.occluded)).collect();
    assert_eq!(levels, [(0, 0, 0), (1, 2, 2)]);
    // Occlusion "unknown" (3) is taken as partly occluded; track ids restart per clip.
    let last = DatasetIndex::labels(&out, &index.clips[2]).unwrap();
    assert_eq!((last[0].objects[0].track_id, last[0].objects[0].occlusion), (0, Occlusion::PartlyOccluded));

    // More classes as cars: the van joins.
    let out2 = tmp("kt-out2");
    let opts = ImportOptions { car_classes: vec!["car".into(), "VAN".into()], ..options(ImportFormat::KittiTracking) };
    let summary = import_dataset(&src, &out2, &opts, |_| {}).unwrap();
    assert_eq!(summary.cars, 4);
    for dir in [src, out, out2] {
        std::fs::remove_dir_all(dir).unwrap();
    }
}

#[test]
fn an_imported_dataset_trains_with_its_boxes() {
    let (src, out) = (tmp("train-src"), tmp("train-out"));
    kitti_tracking_fixture(&src);
    import_dataset(&src, &out, &options(ImportFormat::KittiTracking), |_| {}).unwrap();
    let frames = FrameSource::new(16, 32, 3).with_dataset(&out, &[(2, 10.0)]).unwrap();
    let index = DatasetIndex::read(&out).unwrap();
    let all_boxes: Vec<Vec<[f32; 4]>> =
        index.clips.iter().flat_map(|c| DatasetIndex::labels(&out, c).unwrap()).map(|l| visible_boxes(&l)).collect();
    let mut with_cars = 0;
    for step in 0..8 {
        let (frame, conditions, boxes) = frames.labelled_frame::<Flex>(frames.train_seed(step, 0), &Default::default());
        assert_eq!(frame.dims(), [3, 16, 32]);
        assert_eq!((conditions.time_of_day, conditions.crowdedness), (TimeOfDay::Night, 1));
        assert!(all_boxes.contains(&boxes), "{boxes:?}");
        with_cars += usize::from(!boxes.is_empty());
    }
    assert!(with_cars > 0);
    // A clip stage at 5 Hz takes every second frame: 2 frames need 3 per clip.
    assert!(FrameSource::new(16, 32, 3).with_dataset(&out, &[(2, 5.0)]).is_err());
    std::fs::remove_dir_all(src).unwrap();
    std::fs::remove_dir_all(out).unwrap();
}

#[test]
fn kitti_object_images_are_one_frame_clips() {
    let (src, out) = (tmp("ko-src"), tmp("ko-out"));
    for id in ["000000", "000001"] {
        wide_frame(&src.join(format!("image_2/{id}.png")));
    }
    std::fs::create_dir_all(src.join("label_2")).unwrap();
    let row = "Car 0.40 1 -1.57 30.00 10.00 45.00 20.00 1.50 1.60 4.00 1.00 1.70 20.00 -1.57\n";
    std::fs::write(src.join("label_2/000000.txt"), row).unwrap();
    std::fs::write(src.join("label_2/000001.txt"), "").unwrap();
    // Crowdedness from the car count: the image without cars is level 0.
    let opts = ImportOptions { frames: 1, crowdedness: None, ..options(ImportFormat::KittiObject) };
    let summary = import_dataset(&src, &out, &opts, |_| {}).unwrap();
    let sources: Vec<_> = summary.index.clips.iter().map(|c| c.source.clone().unwrap()).collect();
    assert_eq!(sources, ["000000 frame 0", "000001 frame 0"]);
    let labels = DatasetIndex::labels(&out, &summary.index.clips[0]).unwrap();
    // The object format's truncation is a fraction, kept as it is.
    let car = &labels[0].objects[0];
    assert!((car.truncation - 0.4).abs() < 1e-6 && car.occlusion == Occlusion::PartlyOccluded, "{car:?}");
    assert_eq!((summary.index.clips[1].cars_first_frame, summary.index.clips[1].crowdedness), (0, 0));
    std::fs::remove_dir_all(src).unwrap();
    std::fs::remove_dir_all(out).unwrap();
}

/// A BDD100K frame of video `video` with `labels` (a JSON list), or unlabelled.
fn bdd_frame(video: &str, index: u32, timeofday: &str, labels: Option<&str>) -> String {
    let labels = labels.map_or(String::new(), |l| format!(", \"labels\": {l}"));
    format!(
        "{{\"name\": \"{video}-{index:07}.jpg\", \"videoName\": \"{video}\", \"frameIndex\": {index}, \
         \"attributes\": {{\"timeofday\": \"{timeofday}\", \"weather\": \"clear\"}}{labels}}}"
    )
}

#[test]
fn bdd100k_videos_are_grouped_ordered_and_split() {
    let (src, images, out) = (tmp("bdd-src"), tmp("bdd-img"), tmp("bdd-out"));
    // Video a: frames 0..=4 with 2 unlabelled (→ sequences 0..=1 and 3..=4). Video b: 0..=1 at night.
    for (video, n) in [("a", 0), ("a", 1), ("a", 2), ("a", 3), ("a", 4), ("b", 0), ("b", 1)] {
        let path = images.join(video).join(format!("{video}-{n:07}.jpg"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let img = RgbImage::from_fn(64, 48, |x, _| if x < 32 { GREEN } else { BLUE });
        img.save(&path).unwrap();
    }
    let car = r#"[{"id": "00091078", "category": "car", "attributes": {"occluded": true, "truncated": false, "crowd": false},
                   "box2d": {"x1": 10.0, "y1": 12.0, "x2": 29.0, "y2": 23.0}},
                  {"id": 7, "category": "pedestrian", "box2d": {"x1": 1, "y1": 1, "x2": 5, "y2": 5}},
                  {"category": "lane", "poly2d": []}]"#;
    let frames = [
        bdd_frame("a", 3, "daytime", Some(car)),
        bdd_frame("a", 0, "daytime", Some(car)),
        bdd_frame("b", 0, "night", Some("[]")),
        bdd_frame("a", 1, "daytime", Some("[]")),
        bdd_frame("a", 2, "daytime", None),
        bdd_frame("a", 4, "daytime", Some(car)),
        bdd_frame("b", 1, "night", Some("[]")),
    ];
    std::fs::write(src.join("labels.json"), format!("[{}]", frames.join(",\n"))).unwrap();
    let opts =
        ImportOptions { images: Some(images.clone()), time_of_day: TimeOfDay::Day, ..options(ImportFormat::Bdd100k) };
    let summary = import_dataset(&src, &out, &opts, |_| {}).unwrap();
    let clips = &summary.index.clips;
    let sources: Vec<_> = clips.iter().map(|c| c.source.clone().unwrap()).collect();
    assert_eq!(sources, ["a frames 0–1", "a frames 3–4", "b frames 0–1"]);
    let times: Vec<_> = clips.iter().map(|c| c.time_of_day).collect();
    assert_eq!(times, [TimeOfDay::Day, TimeOfDay::Day, TimeOfDay::Night]);
    // 64×48 → the centre 64×32 (rows 8..40) → 32×16: scale 1/2. Inclusive corners gain a pixel.
    let labels = DatasetIndex::labels(&out, &clips[1]).unwrap();
    let car = &labels[0].objects[0];
    assert_box(&car.box2d, [5.0, 2.0, 15.0, 8.0]);
    assert_eq!((car.occlusion, car.box3d), (Occlusion::PartlyOccluded, Box3d::UNKNOWN));
    // One id string, one track across the clip.
    assert_eq!(labels[1].objects[0].track_id, car.track_id);
    // Its KITTI row says "unknown" the KITTI way.
    let rows = kitti::read_tracking(&out.join("clips/000001/labels/kitti_tracking.txt")).unwrap();
    assert_eq!((rows[0].geometry.alpha, rows[0].geometry.box3d.rotation_y), (-10.0, -10.0));

    // The {"frames": [...]} form reads the same.
    let (src2, out2) = (tmp("bdd-src2"), tmp("bdd-out2"));
    std::fs::write(src2.join("a.json"), format!("{{\"frames\": [{}], \"config\": {{}}}}", frames.join(","))).unwrap();
    let again = import_dataset(&src2, &out2, &opts, |_| {}).unwrap();
    assert_eq!(
        again.index.clips.iter().map(|c| c.source.clone()).collect::<Vec<_>>(),
        sources.into_iter().map(Some).collect::<Vec<_>>()
    );
    for dir in [src, images, out, src2, out2] {
        std::fs::remove_dir_all(dir).unwrap();
    }
}

fn import_error(src: &Path, opts: &ImportOptions) -> String {
    let out = tmp("err-out");
    let err = import_dataset(src, &out, opts, |_| {}).unwrap_err();
    assert!(matches!(err, ImportError::Source(_)), "{err:?}");
    // Nothing complete was left behind.
    assert!(!out.join("index.json").exists());
    std::fs::remove_dir_all(out).unwrap();
    err.to_string()
}

#[test]
fn bad_sources_are_named_with_file_and_line() {
    let src = tmp("bad-src");
    let opts = options(ImportFormat::KittiTracking);
    let msg = import_error(&src, &opts);
    assert!(msg.contains("no label_02/ folder"), "{msg}");

    kitti_tracking_fixture(&src);
    let labels = src.join("label_02/0000.txt");
    std::fs::write(&labels, "0 0 Car 0 0 -1.57 30 10 45\n").unwrap();
    let msg = import_error(&src, &opts);
    assert!(msg.contains("0000.txt:1: expected 17 columns"), "{msg}");

    std::fs::write(&labels, tracking_row(9, 0, "Car", 0, 0, [1.0, 1.0, 5.0, 5.0]) + "\n").unwrap();
    let msg = import_error(&src, &opts);
    assert!(msg.contains("frame 9 has labels but no image"), "{msg}");

    std::fs::write(&labels, "").unwrap();
    let msg = import_error(&src, &ImportOptions { width: 64, height: 32, ..opts.clone() });
    assert!(msg.contains("centre crop is 60x30, smaller than the output size 64x32"), "{msg}");
    let msg = import_error(&src, &ImportOptions { frames: 6, ..opts.clone() });
    assert!(msg.contains("no sequence of 6 consecutive labelled frames (the longest has 5)"), "{msg}");

    std::fs::write(src.join("image_02/0000/000001.png"), b"not a png").unwrap();
    let msg = import_error(&src, &opts);
    assert!(msg.contains("000001.png: cannot read the image"), "{msg}");

    let bdd = src.join("bdd.json");
    std::fs::write(&bdd, "[{\"name\": \"x.jpg\", \"labels\": [{\"category\": \"car\", \"box2d\": {\"x1\": 1}}]}]")
        .unwrap();
    let bdd_opts = ImportOptions { images: Some(src.clone()), ..options(ImportFormat::Bdd100k) };
    let msg = import_error(&bdd, &bdd_opts);
    assert!(msg.contains("bdd.json: missing field `y1` at line 1"), "{msg}");
    std::fs::write(&bdd, "[{\"name\": \"x.jpg\", \"labels\": []}]").unwrap();
    let msg = import_error(&bdd, &bdd_opts);
    assert!(msg.contains("frame \"x.jpg\" has no image"), "{msg}");
    std::fs::remove_dir_all(src).unwrap();
}

#[test]
fn crop_is_centred_and_boxes_map_into_it() {
    assert_eq!(Crop::centre(1242, 375, 512, 256), Crop { x0: 246, y0: 0, width: 750, height: 375 });
    assert_eq!(Crop::centre(1280, 720, 512, 256), Crop { x0: 0, y0: 40, width: 1280, height: 640 });
    assert_eq!(Crop::centre(256, 128, 256, 128), Crop { x0: 0, y0: 0, width: 256, height: 128 });
    let crop = Crop::centre(1280, 720, 512, 256);
    let (b, kept) = crop.map_box(&Box2d { x1: 100.0, y1: 20.0, x2: 200.0, y2: 60.0 }, 512, 256).unwrap();
    assert_box(&b, [40.0, 0.0, 80.0, 8.0]);
    assert!((kept - 0.5).abs() < 1e-6);
    assert!(crop.map_box(&Box2d { x1: 100.0, y1: 0.0, x2: 200.0, y2: 40.0 }, 512, 256).is_none());
}

#[test]
fn world_crowdedness_levels_rise_with_the_car_count() {
    let crowd = world_crowdedness(CALIBRATION_WORLDS).unwrap();
    assert_eq!(crowd.thresholds.len(), 3);
    assert!(crowd.mean_counts.windows(2).all(|m| m[0] < m[1]), "{:?}", crowd.mean_counts);
    assert_eq!(crowd.level(0), 0);
    assert_eq!(crowd.level(1000), 3);
    println!(
        "world crowdedness: mean visible cars per level {:?}, thresholds {:?}",
        crowd.mean_counts, crowd.thresholds
    );
}
