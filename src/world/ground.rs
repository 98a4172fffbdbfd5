//! The road surface: asphalt, lane markings antialiased over each pixel's footprint,
//! curbs, pavement or grass, and the light pools of street lamps at night.

use super::World;
use super::color::lerp3;
use super::scenery::{HashRng, LAMP_SPACING_M};

/// Albedo of the ground at road coordinates `(s, d)`, antialiased over the pixel
/// footprint (`foot_d` across, `foot_s` along the road, metres).
pub fn ground_albedo(
    world: &World,
    s: f32,
    d: f32,
    foot_d: f32,
    foot_s: f32,
    edges: (f32, f32),
    grass: bool,
) -> [f32; 3] {
    let road = &world.road;
    let (left, right) = edges;
    let on_asphalt = d > left - road.shoulder && d < right + road.shoulder;
    let curb = road.shoulder + road.sidewalk;
    if !on_asphalt {
        let out = if d < left { left - d } else { d - right };
        let mut c = if out < curb {
            [0.30, 0.29, 0.28]
        } else if grass {
            let g = HashRng::new(&[world.seed(), (s * 0.5) as i64 as u64, (d * 0.5) as i64 as u64]).next();
            [0.07 + 0.03 * g, 0.14 + 0.05 * g, 0.04]
        } else {
            [0.22, 0.21, 0.2]
        };
        // Curb line.
        let k = line_coverage(out, road.shoulder + 0.1, 0.2, foot_d);
        c = lerp3(c, [0.5, 0.5, 0.48], k);
        return c;
    }
    let noise = HashRng::new(&[world.seed(), (s * 2.0) as i64 as u64, (d * 2.0) as i64 as u64]).next();
    let a = road.asphalt * (0.85 + 0.3 * noise);
    let mut c = [a, a, a * 1.05];
    let white = [0.75, 0.75, 0.72];
    // Edge lines.
    for e in [left, right] {
        c = lerp3(c, white, line_coverage(d, e, 0.2, foot_d));
    }
    // Median: double yellow between the two directions.
    if road.lanes_opposite > 0 {
        let k = line_coverage(d, -0.13, 0.1, foot_d).max(line_coverage(d, 0.13, 0.1, foot_d));
        c = lerp3(c, [0.65, 0.5, 0.08], k);
    }
    // Dashed lane lines between lanes of one direction.
    let nearest = (d / road.lane_width).round();
    let line_d = nearest * road.lane_width;
    if line_d > left + 0.5 && line_d < right - 0.5 && nearest != 0.0 {
        let k = line_coverage(d, line_d, 0.15, foot_d) * dash_coverage(s, road.dash, road.gap, foot_s);
        c = lerp3(c, white, k);
    }
    c
}

/// Fraction of the footprint `[x − f/2, x + f/2]` covered by a line of `width` at `centre`.
fn line_coverage(x: f32, centre: f32, width: f32, foot: f32) -> f32 {
    let f = foot.max(1e-3);
    let lo = (x - 0.5 * f).max(centre - 0.5 * width);
    let hi = (x + 0.5 * f).min(centre + 0.5 * width);
    ((hi - lo) / f).clamp(0.0, 1.0)
}

/// Fraction of the footprint along the road that falls on dashes.
fn dash_coverage(s: f32, dash: f32, gap: f32, foot: f32) -> f32 {
    let period = dash + gap;
    if foot >= period {
        return dash / period;
    }
    let x = s.rem_euclid(period);
    (-1..=1).map(|k| line_coverage(x, k as f32 * period + 0.5 * dash, dash, foot)).sum::<f32>().min(1.0)
}

/// Light from the nearest street lamps on the ground at `(s, d)`, 0..~1.
pub fn lamp_pool(world: &World, s: f32, d: f32) -> f32 {
    let road = &world.road;
    let (left, right) = road.edges();
    let mut total = 0.0;
    for (on, edge, sign, offset) in
        [(world.landscape.lamps.0, left, -1.0f32, 0.0), (world.landscape.lamps.1, right, 1.0, 0.5 * LAMP_SPACING_M)]
    {
        if !on {
            continue;
        }
        let lamp_d = edge + sign * (road.shoulder + 0.4) - sign * 1.8;
        let k = ((s - offset) / LAMP_SPACING_M).round();
        let ds = s - (offset + k * LAMP_SPACING_M);
        let r2 = ds * ds + (d - lamp_d) * (d - lamp_d);
        total += 1.0 / (1.0 + r2 / 40.0).powf(1.5);
    }
    total
}
