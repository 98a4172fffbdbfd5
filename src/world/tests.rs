//! Behaviour the world promises: exact labels, occlusion, truncation, determinism,
//! diverging futures, visible conditions.

use super::*;
use crate::scenario::{BoxSpec, Conditions, ImageBox, ObjectClass, RoadPlacement, TimeOfDay};

fn road_box(lane: i8, ahead_m: f32) -> BoxSpec {
    BoxSpec { class: ObjectClass::Car, image: None, road: Some(RoadPlacement { lane, ahead_m }) }
}

fn conditions(time_of_day: TimeOfDay, crowdedness: u8) -> Conditions {
    Conditions { time_of_day, crowdedness }
}

fn straight_world(seed: u64, boxes: &[BoxSpec]) -> World {
    let mut w = World::new(seed, conditions(TimeOfDay::Day, 0), boxes).unwrap();
    w.road.curve_amplitude = 0.0;
    w
}

fn label_of(labels: &FrameLabels, track: u32) -> Option<&ObjectLabel> {
    labels.objects.iter().find(|o| o.track_id == track)
}

/// Pixel extent `[x0, x1) × [y0, y1)` of a mask.
fn extent(mask: &[bool], w: usize) -> Option<[usize; 4]> {
    let mut e: Option<[usize; 4]> = None;
    for (i, _) in mask.iter().enumerate().filter(|(_, m)| **m) {
        let (x, y) = (i % w, i / w);
        e = Some(match e {
            None => [x, y, x + 1, y + 1],
            Some([a, b, c, d]) => [a.min(x), b.min(y), c.max(x + 1), d.max(y + 1)],
        });
    }
    e
}

#[test]
fn unoccluded_untruncated_car_box_matches_its_pixels_within_one_pixel() {
    let mut checked = 0;
    for (seed, lane, ahead) in [(1, 0, 9.0), (2, 0, 20.0), (3, 1, 15.0), (4, -1, 30.0), (5, 0, 60.0), (6, 1, 40.0)] {
        for (w, h) in [(256, 128), (512, 256)] {
            let world = straight_world(seed, &[road_box(lane, ahead)]);
            let mut r = Renderer::new(w, h);
            let (_, labels) = r.render(&world, 0);
            let track = world.scenario_tracks[0];
            let label = label_of(&labels, track).expect("placed car is labelled");
            assert_eq!(label.occlusion, Occlusion::FullyVisible, "seed {seed}");
            assert_eq!(label.truncation, 0.0);
            let mask = r.instance_mask(track).unwrap();
            let [x0, y0, x1, y1] = extent(&mask, w as usize).unwrap();
            let b = label.box2d;
            for (px, lab) in [(x0, b.x1), (y0, b.y1), (x1, b.x2), (y1, b.y2)] {
                assert!(
                    (px as f32 - lab).abs() <= 1.0,
                    "seed {seed} {w}x{h}: pixels {:?} vs box {b:?}",
                    [x0, y0, x1, y1]
                );
            }
            assert_eq!(label.visible_pixels as usize, mask.iter().filter(|m| **m).count());
            checked += 1;
        }
    }
    assert_eq!(checked, 12);
}

#[test]
fn car_hidden_behind_a_van_is_fully_occluded() {
    let mut world = straight_world(11, &[road_box(0, 12.0), road_box(0, 30.0)]);
    let (front, back) = (world.scenario_tracks[0], world.scenario_tracks[1]);
    for a in &mut world.traffic.agents {
        if a.track_id == front {
            a.body = Body { kind: BodyKind::Van, length: 5.0, width: 2.0, height: 2.1, color: [0.8; 3] };
        } else if a.track_id == back {
            a.body = Body { kind: BodyKind::Sedan, length: 4.5, width: 1.8, height: 1.45, color: [0.5; 3] };
        }
    }
    let (_, labels) = Renderer::new(256, 128).render(&world, 0);
    let hidden = label_of(&labels, back).expect("a hidden car in view is still labelled");
    assert_eq!(hidden.occlusion, Occlusion::FullyOccluded);
    assert_eq!(hidden.visible_pixels, 0);
    assert_eq!(hidden.occluded_fraction, 1.0);
    assert_eq!(label_of(&labels, front).unwrap().occlusion, Occlusion::FullyVisible);

    // Shift the far car sideways: now partly visible, and less hidden the further it moves.
    let mut last = 1.0;
    for shift in [2.0, 2.8, 3.8] {
        let mut w2 = world.clone();
        for a in &mut w2.traffic.agents {
            if a.track_id == back {
                a.motion.d += shift;
            }
        }
        let (_, labels) = Renderer::new(256, 128).render(&w2, 0);
        let l = label_of(&labels, back).unwrap();
        assert!(l.visible_pixels > 0 && l.occluded_fraction < last, "shift {shift}: {l:?}");
        last = l.occluded_fraction;
    }
    assert!(last < 0.1, "fully beside the van it should be fully visible, hidden {last}");
}

#[test]
fn truncation_matches_clipping_at_the_image_border() {
    // A car close by in the right lane sticks out of the image on the right.
    let world = straight_world(21, &[road_box(1, 4.0), road_box(0, 25.0)]);
    let (_, labels) = Renderer::new(256, 128).render(&world, 0);
    let near = label_of(&labels, world.scenario_tracks[0]).unwrap();
    assert!(near.truncation > 0.05, "{near:?}");
    assert!(near.box2d.x2 == 256.0 || near.box2d.y2 == 128.0, "a truncated box touches the border: {near:?}");
    let far = label_of(&labels, world.scenario_tracks[1]).unwrap();
    assert_eq!(far.truncation, 0.0);
    assert!(far.box2d.x1 > 0.0 && far.box2d.x2 < 256.0);
}

fn render_run(world: &World, frames: u32, seed: Option<u64>) -> (Vec<Vec<u8>>, Vec<FrameLabels>) {
    let mut w = world.clone();
    if let Some(s) = seed {
        w.reseed_behaviour(s);
    }
    let mut r = Renderer::new(128, 64);
    let (mut imgs, mut labs) = (Vec::new(), Vec::new());
    for i in 0..frames {
        w.advance_to(i as f32 * 0.5);
        let (img, lab) = r.render(&w, i);
        imgs.push(img.into_raw());
        labs.push(lab);
    }
    (imgs, labs)
}

#[test]
fn same_seed_gives_identical_frames_and_labels() {
    let world = World::new(77, conditions(TimeOfDay::Night, 2), &[road_box(0, 20.0)]).unwrap();
    let a = render_run(&world, 12, None);
    let b = render_run(&World::new(77, conditions(TimeOfDay::Night, 2), &[road_box(0, 20.0)]).unwrap(), 12, None);
    assert_eq!(a, b);
}

#[test]
fn different_behaviour_seeds_give_diverging_futures_from_one_start() {
    let world = World::new(5, conditions(TimeOfDay::Day, 3), &[]).unwrap();
    let mut futures: Vec<World> = (0..4)
        .map(|k| {
            let mut w = world.clone();
            w.reseed_behaviour(k);
            w
        })
        .collect();
    let spread = |fs: &[World]| -> f32 {
        // Mean over tracks present in every future of the spread of their positions.
        let mut total = 0.0;
        let mut n = 0;
        for a in &fs[0].traffic.agents {
            let pos: Vec<(f32, f32)> = fs
                .iter()
                .filter_map(|f| {
                    f.traffic.agents.iter().find(|b| b.track_id == a.track_id).map(|b| (b.motion.s, b.motion.d))
                })
                .collect();
            if pos.len() == fs.len() {
                let d = pos.iter().map(|p| (p.0 - pos[0].0).abs() + (p.1 - pos[0].1).abs()).sum::<f32>();
                total += d / (fs.len() - 1) as f32;
                n += 1;
            }
        }
        total / n.max(1) as f32
    };
    assert_eq!(spread(&futures), 0.0);
    for f in &mut futures {
        f.advance_to(8.0);
    }
    let s = spread(&futures);
    assert!(s > 2.0, "futures should diverge by metres after 8 s, mean spread {s:.3} m");
    // And the pictures differ.
    let (a, _) = render_run(&world, 20, Some(0));
    let (b, _) = render_run(&world, 20, Some(1));
    assert_eq!(a[0], b[0], "the start frame is shared");
    let diff: f64 =
        a[19].iter().zip(&b[19]).map(|(x, y)| (*x as f64 - *y as f64).abs()).sum::<f64>() / a[19].len() as f64;
    assert!(diff > 1.0, "mean abs pixel difference after 9.5 s: {diff:.3}");
}

#[test]
fn night_is_dark_and_dense_has_more_cars() {
    let mean = |img: &image::RgbImage| img.as_raw().iter().map(|&v| v as f64).sum::<f64>() / img.as_raw().len() as f64;
    let (mut day_sum, mut night_sum, mut empty_cars, mut dense_cars) = (0.0, 0.0, 0, 0);
    for seed in 0..6 {
        let mut r = Renderer::new(128, 64);
        day_sum += mean(&r.render(&World::new(seed, conditions(TimeOfDay::Day, 1), &[]).unwrap(), 0).0);
        night_sum += mean(&r.render(&World::new(seed, conditions(TimeOfDay::Night, 1), &[]).unwrap(), 0).0);
        empty_cars += r.render(&World::new(seed, conditions(TimeOfDay::Day, 0), &[]).unwrap(), 0).1.objects.len();
        dense_cars += r.render(&World::new(seed, conditions(TimeOfDay::Day, 3), &[]).unwrap(), 0).1.objects.len();
    }
    assert!(night_sum < 0.35 * day_sum, "night {night_sum:.1} vs day {day_sum:.1}");
    assert_eq!(empty_cars, 0);
    assert!(dense_cars >= 6 * 4, "dense scenes should show several cars each, got {dense_cars} in 6");
}

#[test]
fn image_boxes_become_cars_where_requested() {
    let requested = ImageBox { x1: 0.40, y1: 0.50, x2: 0.52, y2: 0.64 };
    let spec = BoxSpec { class: ObjectClass::Car, image: Some(requested), road: None };
    let world = straight_world(9, &[spec]);
    let (_, labels) = Renderer::new(256, 128).render(&world, 0);
    let got = label_of(&labels, world.scenario_tracks[0]).unwrap().box2d;
    let want = Box2d {
        x1: requested.x1 * 256.0,
        y1: requested.y1 * 128.0,
        x2: requested.x2 * 256.0,
        y2: requested.y2 * 128.0,
    };
    assert!(got.iou(&want) > 0.5, "requested {want:?}, rendered {got:?}");
}

#[test]
fn frames_at_shared_times_match_across_frame_rates() {
    let world = World::new(3, conditions(TimeOfDay::Day, 2), &[]).unwrap();
    let (mut slow, mut fast) = (world.clone(), world);
    let mut r = Renderer::new(64, 32);
    slow.advance_to(2.0);
    for i in 0..=20 {
        fast.advance_to(i as f32 * 0.1);
    }
    assert_eq!(r.render(&slow, 0).0, r.render(&fast, 0).0);
}
