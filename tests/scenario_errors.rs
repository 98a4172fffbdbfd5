//! Malformed scenario files: each gives an error naming file, line:column, field
//! and what was expected; none panics. Also: every shipped example is valid and
//! round-trips through RON.

use std::path::Path;

use latentdrive::scenario::{self, ScenarioError};

/// A valid scenario, one field per line so that mutations land on known lines.
const BASE: &str = r#"Scenario(
    name: "case",
    seed: 1,
    conditions: (time_of_day: Day, crowdedness: 1),
    boxes: [
        (class: Car, image: (x1: 0.40, y1: 0.52, x2: 0.52, y2: 0.64)),
        (class: Car, road: (lane: 1, ahead_m: 18.0)),
    ],
    rollout: (futures: 4, seconds: 8.0, context_frames: 2),
    sampling: (steps: 50, eta: 0.0, label_guidance: 2.0, context_guidance: 1.5),
    model: (tier: Tiny),
)
"#;

fn errors_of(src: &str) -> String {
    match scenario::parse_str(src, Path::new("case.ron")) {
        Ok(s) => panic!("expected an error, parsed {s:?}"),
        Err(e) => e.to_string(),
    }
}

/// `(what, source, expected fragments of the message)`.
fn cases() -> Vec<(&'static str, String, Vec<&'static str>)> {
    let m = |from: &str, to: &str| {
        assert!(BASE.contains(from), "mutation anchor {from:?} missing");
        BASE.replacen(from, to, 1)
    };
    vec![
        (
            "unknown top-level field",
            m("    seed: 1,", "    seed: 1,\n    colour: Red,"),
            vec!["case.ron:4:", "colour: unknown field `colour`; expected one of `name`, `seed`"],
        ),
        (
            "unknown nested field",
            m("crowdedness: 1)", "crowdedness: 1, fog: 2)"),
            vec!["case.ron:4:", "conditions.fog: unknown field `fog`"],
        ),
        (
            "unknown box field",
            m("(class: Car, road:", "(class: Car, speed: 3.0, road:"),
            vec!["case.ron:7:", "boxes[1].speed: unknown field `speed`"],
        ),
        ("missing name", m("    name: \"case\",\n", ""), vec!["name: missing field; it is required"]),
        (
            "missing conditions",
            m("    conditions: (time_of_day: Day, crowdedness: 1),\n", ""),
            vec!["conditions: missing field"],
        ),
        (
            "missing crowdedness",
            m(", crowdedness: 1)", ")"),
            vec!["case.ron:4:", "conditions.crowdedness: missing field"],
        ),
        (
            "duplicate field",
            m("    seed: 1,", "    seed: 1,\n    seed: 2,"),
            vec!["case.ron:4:", "seed: field is given twice"],
        ),
        (
            "unknown time of day",
            m("time_of_day: Day", "time_of_day: Dusk"),
            vec!["case.ron:4:", "conditions.time_of_day: unknown value `Dusk`; expected one of `Day`, `Night`"],
        ),
        (
            "unknown tier",
            m("tier: Tiny", "tier: Huge"),
            vec!["case.ron:11:", "model.tier: unknown value `Huge`; expected one of `Tiny`, `Base`"],
        ),
        (
            "unknown class",
            m("(class: Car, road:", "(class: Truck, road:"),
            vec!["case.ron:7:", "boxes[1].class: unknown value `Truck`; expected one of `Car`"],
        ),
        (
            "crowdedness too high",
            m("crowdedness: 1", "crowdedness: 5"),
            vec!["case.ron:4:", "conditions.crowdedness: expected 0..=3 (0 empty, 3 dense), found 5"],
        ),
        ("crowdedness negative", m("crowdedness: 1", "crowdedness: -1"), vec!["case.ron:4:", "conditions.crowdedness"]),
        (
            "crowdedness as text",
            m("crowdedness: 1", "crowdedness: \"busy\""),
            vec!["case.ron:4:", "conditions.crowdedness", "expected"],
        ),
        ("seed negative", m("seed: 1", "seed: -4"), vec!["case.ron:3:", "seed"]),
        ("seed too large for u64", m("seed: 1", "seed: 99999999999999999999999"), vec!["case.ron:3:", "seed"]),
        (
            "inverted box x",
            m("x1: 0.40, y1: 0.52, x2: 0.52", "x1: 0.60, y1: 0.52, x2: 0.52"),
            vec!["case.ron:6:", "boxes[0].image.x2: expected x2 > x1 = 0.6, found 0.52"],
        ),
        (
            "inverted box y",
            m("y1: 0.52, x2: 0.52, y2: 0.64", "y1: 0.70, x2: 0.52, y2: 0.64"),
            vec!["case.ron:6:", "boxes[0].image.y2: expected y2 > y1 = 0.7, found 0.64"],
        ),
        (
            "degenerate box",
            m("x1: 0.40, y1: 0.52, x2: 0.52", "x1: 0.40, y1: 0.52, x2: 0.405"),
            vec!["case.ron:6:", "boxes[0].image.x2: box is degenerate"],
        ),
        (
            "box outside the image",
            m("x2: 0.52, y2: 0.64", "x2: 1.20, y2: 0.64"),
            vec!["case.ron:6:", "boxes[0].image.x2: expected a number in [0, 1], found 1.2"],
        ),
        (
            "box with negative coordinate",
            m("x1: 0.40", "x1: -0.10"),
            vec!["case.ron:6:", "boxes[0].image.x1: expected a number in [0, 1], found -0.1"],
        ),
        (
            "box with NaN",
            m("y1: 0.52", "y1: NaN"),
            vec!["case.ron:6:", "boxes[0].image.y1: expected a finite number in [0, 1], found NaN"],
        ),
        (
            "box in the sky",
            m("y1: 0.52, x2: 0.52, y2: 0.64", "y1: 0.10, x2: 0.52, y2: 0.30"),
            vec!["case.ron:6:", "boxes[0].image.y2: the box's bottom edge must be below the horizon"],
        ),
        (
            "both placements",
            m(
                "(class: Car, road: (lane: 1, ahead_m: 18.0))",
                "(class: Car, road: (lane: 1, ahead_m: 18.0), image: (x1: 0.1, y1: 0.5, x2: 0.2, y2: 0.6))",
            ),
            vec!["case.ron:7:", "boxes[1]: has both `image` and `road`"],
        ),
        (
            "no placement",
            m("(class: Car, road: (lane: 1, ahead_m: 18.0))", "(class: Car)"),
            vec!["case.ron:7:", "boxes[1]: has neither `image` nor `road`"],
        ),
        (
            "lane out of range",
            m("lane: 1", "lane: 4"),
            vec!["case.ron:7:", "boxes[1].road.lane: expected -3..=3 (0 ego lane, -1 left, +1 right), found 4"],
        ),
        (
            "ahead zero",
            m("ahead_m: 18.0", "ahead_m: 0.0"),
            vec!["case.ron:7:", "boxes[1].road.ahead_m: expected a number in (0, 150], found 0"],
        ),
        (
            "ahead too far",
            m("ahead_m: 18.0", "ahead_m: 151.0"),
            vec!["case.ron:7:", "boxes[1].road.ahead_m: expected a number in (0, 150], found 151"],
        ),
        (
            "ahead infinite",
            m("ahead_m: 18.0", "ahead_m: inf"),
            vec!["case.ron:7:", "boxes[1].road.ahead_m: expected a finite number"],
        ),
        (
            "duplicate image boxes",
            m(
                "        (class: Car, road:",
                "        (class: Car, image: (x1: 0.40, y1: 0.52, x2: 0.52, y2: 0.64)),\n        (class: Car, road:",
            ),
            vec!["case.ron:7:", "boxes[1]: duplicates boxes[0]"],
        ),
        (
            "overlapping road cars",
            m(
                "        (class: Car, road: (lane: 1, ahead_m: 18.0)),",
                "        (class: Car, road: (lane: 1, ahead_m: 18.0)),\n        (class: Car, road: (lane: 1, ahead_m: 20.0)),",
            ),
            vec!["case.ron:8:", "boxes[2].road: overlaps boxes[1] (same lane 1, 2.0 m apart)"],
        ),
        (
            "zero futures",
            m("futures: 4", "futures: 0"),
            vec!["case.ron:9:", "rollout.futures: expected 1..=64, found 0"],
        ),
        (
            "too many futures",
            m("futures: 4", "futures: 65"),
            vec!["case.ron:9:", "rollout.futures: expected 1..=64, found 65"],
        ),
        (
            "negative seconds",
            m("seconds: 8.0", "seconds: -1.0"),
            vec!["case.ron:9:", "rollout.seconds: expected a number in (0, 600], found -1"],
        ),
        (
            "too long",
            m("seconds: 8.0", "seconds: 601.0"),
            vec!["case.ron:9:", "rollout.seconds: expected a number in (0, 600], found 601"],
        ),
        (
            "too many context frames",
            m("context_frames: 2", "context_frames: 3"),
            vec!["case.ron:9:", "rollout.context_frames: expected 0..=2, found 3"],
        ),
        ("zero steps", m("steps: 50", "steps: 0"), vec!["case.ron:10:", "sampling.steps: expected 1..=1000, found 0"]),
        (
            "eta above one",
            m("eta: 0.0", "eta: 1.5"),
            vec!["case.ron:10:", "sampling.eta: expected a number in [0, 1], found 1.5"],
        ),
        (
            "negative guidance",
            m("label_guidance: 2.0", "label_guidance: -2.0"),
            vec!["case.ron:10:", "sampling.label_guidance: expected a finite number ≥ 0, found -2"],
        ),
        (
            "NaN guidance",
            m("context_guidance: 1.5", "context_guidance: NaN"),
            vec!["case.ron:10:", "sampling.context_guidance: expected a finite number ≥ 0, found NaN"],
        ),
        (
            "interpolation guide above one",
            m("context_guidance: 1.5", "context_guidance: 1.5, interpolation_guide: 1.2"),
            vec!["case.ron:10:", "sampling.interpolation_guide: expected a number in [0, 1], found 1.2"],
        ),
        (
            "unknown interpolation guess",
            m("context_guidance: 1.5", "context_guidance: 1.5, interpolation_guess: Optical"),
            vec![
                "case.ron:10:",
                "sampling.interpolation_guess: unknown value `Optical`; expected one of `Blend`, `Ego`",
            ],
        ),
        (
            "negative box guidance",
            m("context_guidance: 1.5", "context_guidance: 1.5, box_guidance: -1.0"),
            vec!["case.ron:10:", "sampling.box_guidance: expected a finite number ≥ 0, found -1"],
        ),
        (
            "negative prediction guide",
            m("context_guidance: 1.5", "context_guidance: 1.5, prediction_guide: -0.1"),
            vec!["case.ron:10:", "sampling.prediction_guide: expected a number in [0, 1], found -0.1"],
        ),
        (
            "prediction noise above 1",
            m("context_guidance: 1.5", "context_guidance: 1.5, prediction_noise: 1.2"),
            vec!["case.ron:10:", "sampling.prediction_noise: expected a number in [0, 1], found 1.2"],
        ),
        (
            "prediction guide falloff above 4",
            m("context_guidance: 1.5", "context_guidance: 1.5, prediction_guide_falloff: 5.0"),
            vec!["case.ron:10:", "sampling.prediction_guide_falloff: expected a number in [0, 4], found 5"],
        ),
        (
            "negative interpolation noise",
            m("context_guidance: 1.5", "context_guidance: 1.5, interpolation_noise: -0.1"),
            vec!["case.ron:10:", "sampling.interpolation_noise: expected a number in [0, 1], found -0.1"],
        ),
        ("empty name", m("name: \"case\"", "name: \"\""), vec!["case.ron:2:", "name: expected a non-empty name"]),
        (
            "name with a slash",
            m("name: \"case\"", "name: \"../etc\""),
            vec!["case.ron:2:", "name: expected only letters, digits"],
        ),
        ("name as number", m("name: \"case\"", "name: 5"), vec!["case.ron:2:", "name", "expected"]),
        (
            "empty weights path",
            m("model: (tier: Tiny)", "model: (tier: Tiny, weights: \"\")"),
            vec!["case.ron:11:", "model.weights: expected a folder path"],
        ),
        ("unclosed paren", BASE.trim_end().trim_end_matches(')').to_string(), vec!["case.ron:", "(scenario)"]),
        ("trailing text", format!("{BASE}\nextra"), vec!["case.ron:12:2:", "unexpected text after the scenario"]),
        ("wrong struct name", BASE.replacen("Scenario(", "Scene(", 1), vec!["case.ron:1:", "Scenario"]),
        (
            "boxes not a list",
            m("    boxes: [", "    boxes: (").replacen("    ],\n    rollout", "    ),\n    rollout", 1),
            vec!["case.ron:5:", "boxes"],
        ),
        ("empty file", String::new(), vec!["case.ron:1:1:"]),
        ("unclosed comment", format!("/* {BASE}"), vec!["case.ron:", "comment"]),
        (
            "too many boxes",
            {
                let many: String = (0..65)
                    .map(|i| format!("        (class: Car, road: (lane: 0, ahead_m: {}.0)),\n", 6 + 2 * i))
                    .collect();
                BASE.replacen("        (class: Car, image: (x1: 0.40, y1: 0.52, x2: 0.52, y2: 0.64)),\n        (class: Car, road: (lane: 1, ahead_m: 18.0)),\n", &many, 1)
            },
            vec!["case.ron:5:", "boxes: at most 64 boxes, found 65"],
        ),
    ]
}

#[test]
fn malformed_scenarios_name_file_position_field_and_expectation() {
    let cases = cases();
    assert!(cases.len() >= 30);
    let mut failures = Vec::new();
    for (what, src, expected) in &cases {
        let msg =
            std::panic::catch_unwind(|| errors_of(src)).unwrap_or_else(|_| format!("PANIC or no error for {what}"));
        for frag in expected {
            if !msg.contains(frag) {
                failures.push(format!("{what}: expected {frag:?} in\n    {msg}"));
            }
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

#[test]
fn every_error_carries_a_position() {
    for (what, src, _) in cases() {
        let err = scenario::parse_str(&src, Path::new("case.ron")).unwrap_err();
        let ScenarioError::Invalid { issues, .. } = &err else { panic!("{what}: {err}") };
        assert!(issues.iter().all(|i| i.pos.is_some()), "{what}: {err}");
    }
}

#[test]
fn validation_reports_every_problem_not_just_the_first() {
    let src = BASE
        .replacen("crowdedness: 1", "crowdedness: 9", 1)
        .replacen("futures: 4", "futures: 0", 1)
        .replacen("eta: 0.0", "eta: 2.0", 1);
    let err = scenario::parse_str(&src, Path::new("x.ron")).unwrap_err();
    assert_eq!(err.issues().len(), 3, "{err}");
}

#[test]
fn shipped_examples_are_valid_and_round_trip() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let files = scenario::collect_scenario_files(&dir).unwrap();
    assert!(files.len() >= 6);
    let results = scenario::load_many(&files);
    let (mut day, mut night, mut empty, mut dense, mut image, mut road) = (0, 0, 0, 0, 0, 0);
    for (path, r) in results {
        let s = r.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let text = scenario::to_ron_string(&s);
        assert_eq!(scenario::parse_str(&text, &path).unwrap(), s, "{}", path.display());
        match s.conditions.time_of_day {
            scenario::TimeOfDay::Day => day += 1,
            scenario::TimeOfDay::Night => night += 1,
        }
        empty += (s.conditions.crowdedness == 0) as u32;
        dense += (s.conditions.crowdedness == 3) as u32;
        image += s.boxes.iter().filter(|b| b.image.is_some()).count();
        road += s.boxes.iter().filter(|b| b.road.is_some()).count();
    }
    assert!(day > 0 && night > 0 && empty > 0 && dense > 0 && image > 0 && road > 0);
}

/// The interpolation guess is written out only when it is not the default, so files saved
/// before the option stay as they were; `Ego` round-trips.
#[test]
fn the_interpolation_guess_is_written_only_when_not_the_default() {
    let s = scenario::parse_str(BASE, Path::new("case.ron")).unwrap();
    assert_eq!(s.sampling.interpolation_guess, scenario::InterpolationGuess::Blend);
    assert!(!scenario::to_ron_string(&s).contains("interpolation_guess"));
    let mut ego = s.clone();
    ego.sampling.interpolation_guess = scenario::InterpolationGuess::Ego;
    let text = scenario::to_ron_string(&ego);
    assert!(text.contains("interpolation_guess: Ego"), "{text}");
    assert_eq!(scenario::parse_str(&text, Path::new("case.ron")).unwrap(), ego);
}

#[test]
fn the_noise_shares_are_written_only_when_not_the_default() {
    let s = scenario::parse_str(BASE, Path::new("case.ron")).unwrap();
    assert_eq!(s.sampling.prediction_noise, scenario::DEFAULT_PREDICTION_NOISE);
    assert_eq!(s.sampling.interpolation_noise, scenario::DEFAULT_INTERPOLATION_NOISE);
    let text = scenario::to_ron_string(&s);
    assert_eq!(s.sampling.prediction_guide_falloff, scenario::DEFAULT_PREDICTION_GUIDE_FALLOFF);
    for field in ["prediction_noise", "interpolation_noise", "prediction_guide_falloff"] {
        assert!(!text.contains(field), "{text}");
    }
    let mut moved = s.clone();
    (moved.sampling.prediction_noise, moved.sampling.interpolation_noise) = (0.75, 0.5);
    moved.sampling.prediction_guide_falloff = 1.5;
    let text = scenario::to_ron_string(&moved);
    assert!(text.contains("prediction_noise: 0.75") && text.contains("interpolation_noise: 0.5"), "{text}");
    assert!(text.contains("prediction_guide_falloff: 1.5"), "{text}");
    assert_eq!(scenario::parse_str(&text, Path::new("case.ron")).unwrap(), moved);
}

#[test]
fn duplicate_names_across_files_are_an_error() {
    let dir = std::env::temp_dir().join(format!("latentdrive-dupnames-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("a.ron"), BASE).unwrap();
    std::fs::write(dir.join("b.ron"), BASE).unwrap();
    let files = scenario::collect_scenario_files(&dir).unwrap();
    let results = scenario::load_many(&files);
    assert!(results[0].1.is_ok());
    let err = results[1].1.as_ref().unwrap_err().to_string();
    assert!(err.contains("b.ron:2:11: name: duplicate scenario name \"case\""), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn missing_file_is_an_io_error_naming_it() {
    let err = scenario::load(Path::new("no/such/file.ron")).unwrap_err();
    assert!(err.to_string().starts_with("no/such/file.ron: cannot read scenario file"), "{err}");
}
