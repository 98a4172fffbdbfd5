//! Small linear-RGB helpers and the sRGB encoding of rendered frames.

pub fn lerp3(a: [f32; 3], b: [f32; 3], t: f32) -> [f32; 3] {
    [a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t]
}
pub fn mul3(a: [f32; 3], b: [f32; 3]) -> [f32; 3] {
    [a[0] * b[0], a[1] * b[1], a[2] * b[2]]
}
pub fn add_into(a: &mut [f32; 3], b: [f32; 3]) {
    a[0] += b[0];
    a[1] += b[1];
    a[2] += b[2];
}
/// Linear → sRGB 8-bit, with a soft shoulder so lights saturate gracefully.
/// A table over [0, 2] in steps of 1/8192 replaces a `powf` per channel.
pub fn to_srgb8(x: f32) -> u8 {
    static LUT: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    let lut = LUT.get_or_init(|| (0..=16384).map(|i| srgb8_exact(i as f32 / 8192.0)).collect());
    if x >= 2.0 {
        return srgb8_exact(x);
    }
    lut[(x.max(0.0) * 8192.0 + 0.5) as usize]
}

fn srgb8_exact(x: f32) -> u8 {
    let x = x.max(0.0);
    let x = if x > 0.8 { 0.8 + 0.2 * (1.0 - (-(x - 0.8) * 5.0).exp()) } else { x };
    let s = if x <= 0.003_130_8 { 12.92 * x } else { 1.055 * x.powf(1.0 / 2.4) - 0.055 };
    (s * 255.0 + 0.5).clamp(0.0, 255.0) as u8
}
