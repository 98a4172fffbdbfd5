//! Single-class detection quality: average precision at an IoU threshold (AP50 at 0.5)
//! and the mean IoU of the matched ground-truth boxes. Used for layout fidelity
//! (detector on generated frame 0 vs the requested boxes) and for the detector's own
//! held-out accuracy (detector on renders vs the world's labels).
//!
//! Matching follows COCO: detections are taken in order of falling score over all
//! images; each claims the unclaimed ground-truth box of its image with the highest
//! IoU, if that IoU reaches the threshold; otherwise it is a false positive (a second
//! detection of a claimed car included). AP is the area under the precision–recall
//! curve with all-point interpolation (PASCAL VOC 2010 onwards): precision is first
//! made non-increasing in recall by taking the maximum to its right.

use crate::world::Box2d;

use super::error::{MetricError, check_finite};

/// IoU threshold of AP50.
pub const AP50_IOU: f32 = 0.5;

/// A scored box.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Detection {
    pub box2d: Box2d,
    /// Confidence; higher ranks first.
    pub score: f32,
}

/// One image's detections and its ground truth (requested boxes or the world's labels).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImageDetections {
    pub detections: Vec<Detection>,
    pub ground_truth: Vec<Box2d>,
}

/// What [`evaluate_detections`] found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectionScores {
    /// Average precision at the threshold, 0..=1.
    pub ap: f32,
    /// Fraction of ground-truth boxes matched by any detection.
    pub recall: f32,
    /// Mean IoU of the matched ground-truth boxes with their detections; `None` when
    /// nothing matched.
    pub mean_iou: Option<f32>,
    pub matched: usize,
    pub ground_truth: usize,
    pub detections: usize,
}

/// AP, recall and mean matched IoU of `images` at `iou_threshold` (in (0, 1]).
pub fn evaluate_detections(images: &[ImageDetections], iou_threshold: f32) -> Result<DetectionScores, MetricError> {
    if !(iou_threshold > 0.0 && iou_threshold <= 1.0) {
        return Err(MetricError::OutOfRange { what: "IoU threshold", value: iou_threshold, range: "(0, 1]" });
    }
    if images.is_empty() {
        return Err(MetricError::Empty { what: "detection images" });
    }
    let boxes = images.iter().flat_map(|im| im.ground_truth.iter().chain(im.detections.iter().map(|d| &d.box2d)));
    check_finite(boxes.flat_map(|b| [b.x1, b.y1, b.x2, b.y2]), "box coordinates")?;
    check_finite(images.iter().flat_map(|im| im.detections.iter().map(|d| d.score)), "detection scores")?;
    let ground_truth: usize = images.iter().map(|im| im.ground_truth.len()).sum();
    if ground_truth == 0 {
        return Err(MetricError::NoGroundTruth);
    }

    // All detections by falling score; the stable sort keeps input order among ties.
    let mut order: Vec<(usize, usize)> =
        images.iter().enumerate().flat_map(|(i, im)| (0..im.detections.len()).map(move |k| (i, k))).collect();
    order.sort_by(|a, b| images[b.0].detections[b.1].score.total_cmp(&images[a.0].detections[a.1].score));

    let mut claimed: Vec<Vec<bool>> = images.iter().map(|im| vec![false; im.ground_truth.len()]).collect();
    let (mut tp, mut iou_sum) = (0usize, 0.0f64);
    // (recall, precision) after each detection.
    let mut curve = Vec::with_capacity(order.len());
    for (rank, &(i, k)) in order.iter().enumerate() {
        let det = &images[i].detections[k].box2d;
        let best = images[i]
            .ground_truth
            .iter()
            .enumerate()
            .filter(|(g, _)| !claimed[i][*g])
            .map(|(g, gt)| (g, gt.iou(det)))
            .filter(|(_, iou)| *iou >= iou_threshold)
            .max_by(|a, b| a.1.total_cmp(&b.1));
        if let Some((g, iou)) = best {
            claimed[i][g] = true;
            tp += 1;
            iou_sum += iou as f64;
        }
        curve.push((tp as f64 / ground_truth as f64, tp as f64 / (rank + 1) as f64));
    }

    Ok(DetectionScores {
        ap: all_point_ap(&curve) as f32,
        recall: tp as f32 / ground_truth as f32,
        mean_iou: (tp > 0).then(|| (iou_sum / tp as f64) as f32),
        matched: tp,
        ground_truth,
        detections: order.len(),
    })
}

/// Area under the precision envelope of `(recall, precision)` points in rank order.
fn all_point_ap(curve: &[(f64, f64)]) -> f64 {
    let mut envelope: Vec<f64> = curve.iter().map(|p| p.1).collect();
    for i in (0..envelope.len().saturating_sub(1)).rev() {
        envelope[i] = envelope[i].max(envelope[i + 1]);
    }
    let mut previous_recall = 0.0;
    let mut ap = 0.0;
    for (&(recall, _), &precision) in curve.iter().zip(&envelope) {
        ap += (recall - previous_recall) * precision;
        previous_recall = recall;
    }
    ap
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bx(x1: f32, y1: f32, x2: f32, y2: f32) -> Box2d {
        Box2d { x1, y1, x2, y2 }
    }

    fn det(b: Box2d, score: f32) -> Detection {
        Detection { box2d: b, score }
    }

    fn shifted(b: &Box2d, dx: f32) -> Box2d {
        bx(b.x1 + dx, b.y1, b.x2 + dx, b.y2)
    }

    /// Two images with three cars between them.
    fn scene() -> Vec<Vec<Box2d>> {
        vec![vec![bx(10.0, 20.0, 30.0, 35.0), bx(50.0, 22.0, 62.0, 30.0)], vec![bx(5.0, 5.0, 25.0, 25.0)]]
    }

    fn perfect(gt: &[Vec<Box2d>]) -> Vec<ImageDetections> {
        gt.iter()
            .map(|g| ImageDetections { detections: g.iter().map(|b| det(*b, 0.9)).collect(), ground_truth: g.clone() })
            .collect()
    }

    #[test]
    fn perfect_boxes_give_ap_one() {
        let s = evaluate_detections(&perfect(&scene()), AP50_IOU).unwrap();
        assert_eq!((s.ap, s.recall, s.mean_iou, s.matched, s.ground_truth), (1.0, 1.0, Some(1.0), 3, 3));
        // False positives ranked below every true one cost nothing.
        let mut images = perfect(&scene());
        images[1].detections.push(det(bx(100.0, 0.0, 110.0, 10.0), 0.1));
        assert_eq!(evaluate_detections(&images, AP50_IOU).unwrap().ap, 1.0);
    }

    #[test]
    fn ranking_and_misses_give_the_hand_computed_ap() {
        // Ranks: TP, FP, TP, FP; one car never found. Precision 1, 1/2, 2/3, 1/2 at recall
        // 1/3, 1/3, 2/3, 2/3; the envelope is 1 then 2/3: AP = 1/3 + 2/9 = 5/9.
        let gt = scene();
        let images = vec![
            ImageDetections {
                detections: vec![det(gt[0][0], 0.9), det(bx(80.0, 0.0, 90.0, 9.0), 0.8), det(gt[0][1], 0.7)],
                ground_truth: gt[0].clone(),
            },
            ImageDetections { detections: vec![det(bx(60.0, 60.0, 70.0, 70.0), 0.6)], ground_truth: gt[1].clone() },
        ];
        let s = evaluate_detections(&images, AP50_IOU).unwrap();
        assert!((s.ap - 5.0 / 9.0).abs() < 1e-6, "{}", s.ap);
        assert!((s.recall - 2.0 / 3.0).abs() < 1e-6);
        // A confident false positive above the only true detection halves precision.
        let one = vec![ImageDetections {
            detections: vec![det(bx(0.0, 0.0, 5.0, 5.0), 0.9), det(gt[1][0], 0.8)],
            ground_truth: gt[1].clone(),
        }];
        assert_eq!(evaluate_detections(&one, AP50_IOU).unwrap().ap, 0.5);
    }

    #[test]
    fn a_second_detection_of_one_car_is_a_false_positive() {
        let gt = vec![bx(0.0, 0.0, 10.0, 10.0)];
        let images = vec![ImageDetections {
            detections: vec![det(shifted(&gt[0], 1.0), 0.8), det(gt[0], 0.9)],
            ground_truth: gt,
        }];
        let s = evaluate_detections(&images, AP50_IOU).unwrap();
        // The higher score claims the car (IoU 1); the shifted duplicate is a miss.
        assert_eq!((s.ap, s.matched, s.mean_iou), (1.0, 1, Some(1.0)));
    }

    #[test]
    fn shifting_boxes_lowers_iou_then_ap() {
        let gt = scene();
        let moved = |dx: f32| -> DetectionScores {
            let images: Vec<ImageDetections> = gt
                .iter()
                .map(|g| ImageDetections {
                    detections: g.iter().map(|b| det(shifted(b, dx * b.width()), 0.9)).collect(),
                    ground_truth: g.clone(),
                })
                .collect();
            evaluate_detections(&images, AP50_IOU).unwrap()
        };
        let (a, b, c) = (moved(0.0), moved(0.1), moved(0.25));
        let iou = |s: &DetectionScores| s.mean_iou.unwrap();
        assert!(iou(&a) > iou(&b) && iou(&b) > iou(&c) && c.ap == 1.0, "{a:?} {b:?} {c:?}");
        // Shifted by half a width, IoU is 1/3: nothing matches any more.
        let far = moved(0.5);
        assert_eq!((far.ap, far.recall, far.mean_iou), (0.0, 0.0, None));
    }

    #[test]
    fn degenerate_inputs_are_clear_errors() {
        assert_eq!(evaluate_detections(&[], AP50_IOU), Err(MetricError::Empty { what: "detection images" }));
        let no_gt = vec![ImageDetections { detections: vec![det(bx(0.0, 0.0, 1.0, 1.0), 0.5)], ground_truth: vec![] }];
        let err = evaluate_detections(&no_gt, AP50_IOU).unwrap_err();
        assert_eq!(err.to_string(), "no ground-truth boxes in any image: average precision is undefined");
        let mut nan = perfect(&scene());
        nan[1].detections[0].score = f32::NAN;
        assert_eq!(
            evaluate_detections(&nan, AP50_IOU).unwrap_err().to_string(),
            "detection scores: value 2 is not finite"
        );
        let bad = evaluate_detections(&perfect(&scene()), 0.0).unwrap_err();
        assert_eq!(bad.to_string(), "IoU threshold: 0 is outside (0, 1]");
        // No detections at all is a valid, bad result.
        let none: Vec<ImageDetections> =
            scene().into_iter().map(|g| ImageDetections { detections: vec![], ground_truth: g }).collect();
        assert_eq!(evaluate_detections(&none, AP50_IOU).unwrap().ap, 0.0);
    }
}
