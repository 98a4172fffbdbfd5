//! Reading KITTI tracking and object label files, strictly: every line must have the
//! exact column count, every number must parse and be finite, and levels must be in
//! KITTI's ranges. Errors give the 1-based line and the column by name.
//!
//! Blank lines are skipped. Result files with an 18th `score` column are not label
//! files and are rejected by the column count.

use std::path::Path;
use std::str::FromStr;

use crate::world::labels::{Box2d, Box3d};

use super::{KittiGeometry, KittiObjectRow, KittiTrackingRow, OBJECT_COLUMNS, TRACKING_COLUMNS};
use crate::export::error::ExportError;

/// Parses tracking label text; errors name the source `<kitti tracking text>`.
pub fn parse_tracking(text: &str) -> Result<Vec<KittiTrackingRow>, ExportError> {
    parse_tracking_from("<kitti tracking text>", text)
}

/// Reads and parses a tracking label file; errors name `path`.
pub fn read_tracking(path: &Path) -> Result<Vec<KittiTrackingRow>, ExportError> {
    let text = std::fs::read_to_string(path).map_err(|e| ExportError::io(path, e))?;
    parse_tracking_from(&path.display().to_string(), &text)
}

/// Parses object label text; errors name the source `<kitti object text>`.
pub fn parse_object(text: &str) -> Result<Vec<KittiObjectRow>, ExportError> {
    parse_object_from("<kitti object text>", text)
}

/// Reads and parses an object label file; errors name `path`.
pub fn read_object(path: &Path) -> Result<Vec<KittiObjectRow>, ExportError> {
    let text = std::fs::read_to_string(path).map_err(|e| ExportError::io(path, e))?;
    parse_object_from(&path.display().to_string(), &text)
}

fn parse_tracking_from(source: &str, text: &str) -> Result<Vec<KittiTrackingRow>, ExportError> {
    rows(source, text, &TRACKING_COLUMNS, |c| {
        Ok(KittiTrackingRow {
            frame: c.int(0, 0..=u32::MAX)?,
            track_id: c.int(1, -1..=i32::MAX)?,
            object_type: c.cols[2].to_string(),
            truncated: c.int(3, -1..=2)?,
            occluded: c.int(4, -1..=3)?,
            geometry: c.geometry(5)?,
        })
    })
}

fn parse_object_from(source: &str, text: &str) -> Result<Vec<KittiObjectRow>, ExportError> {
    rows(source, text, &OBJECT_COLUMNS, |c| {
        Ok(KittiObjectRow {
            object_type: c.cols[0].to_string(),
            truncated: c.float(1)?,
            occluded: c.int(2, -1..=3)?,
            geometry: c.geometry(3)?,
        })
    })
}

/// Splits `text` into non-blank lines of exactly `names.len()` columns and builds
/// one row from each with `row`.
fn rows<T>(
    source: &str,
    text: &str,
    names: &[&'static str],
    row: impl Fn(&Columns<'_>) -> Result<T, String>,
) -> Result<Vec<T>, ExportError> {
    let mut out = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let error =
            |message: String| ExportError::Parse { path_or_source: source.to_string(), line: index + 1, message };
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() != names.len() {
            return Err(error(format!("expected {} columns ({}), found {}", names.len(), names.join(" "), cols.len())));
        }
        out.push(row(&Columns { cols, names }).map_err(error)?);
    }
    Ok(out)
}

/// The columns of one line, read by index with messages that name the column.
struct Columns<'a> {
    cols: Vec<&'a str>,
    names: &'a [&'static str],
}

impl Columns<'_> {
    fn describe(&self, i: usize) -> String {
        format!("column {} (`{}`)", i + 1, self.names[i])
    }

    fn float(&self, i: usize) -> Result<f32, String> {
        let text = self.cols[i];
        match text.parse::<f32>() {
            Ok(v) if v.is_finite() => Ok(v),
            Ok(_) => Err(format!("{}: `{text}` is not a finite number", self.describe(i))),
            Err(_) => Err(format!("{}: `{text}` is not a number", self.describe(i))),
        }
    }

    fn int<T>(&self, i: usize, range: std::ops::RangeInclusive<T>) -> Result<T, String>
    where
        T: FromStr + PartialOrd + std::fmt::Display,
    {
        let text = self.cols[i];
        match text.parse::<T>() {
            Ok(v) if range.contains(&v) => Ok(v),
            _ => {
                Err(format!("{}: `{text}` is not an integer in {}..={}", self.describe(i), range.start(), range.end()))
            }
        }
    }

    /// The 12 geometry columns starting at `first` (`alpha`).
    fn geometry(&self, first: usize) -> Result<KittiGeometry, String> {
        let f = |k: usize| self.float(first + k);
        Ok(KittiGeometry {
            alpha: f(0)?,
            box2d: Box2d { x1: f(1)?, y1: f(2)?, x2: f(3)?, y2: f(4)? },
            box3d: Box3d { dimensions: [f(5)?, f(6)?, f(7)?], location: [f(8)?, f(9)?, f(10)?], rotation_y: f(11)? },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::fixtures::{self, TestDir};
    use crate::export::kitti::{write_object, write_tracking};
    use crate::export::select::exported_objects;

    /// Within the 2-decimal printing precision (plus f32 slack).
    fn close(a: f32, b: f32) -> bool {
        (a - b).abs() <= 0.005 + 1e-4
    }

    fn geometry_close(a: &KittiGeometry, b: &KittiGeometry) -> bool {
        let (p, q) = (&a.box2d, &b.box2d);
        let (s, t) = (&a.box3d, &b.box3d);
        close(a.alpha, b.alpha)
            && [(p.x1, q.x1), (p.y1, q.y1), (p.x2, q.x2), (p.y2, q.y2)].iter().all(|&(u, v)| close(u, v))
            && (0..3).all(|k| close(s.dimensions[k], t.dimensions[k]))
            && (0..3).all(|k| close(s.location[k], t.location[k]))
            && close(s.rotation_y, t.rotation_y)
    }

    #[test]
    fn tracking_round_trip_through_a_file() {
        let dir = TestDir::new("kitti_tracking_rt");
        let frames = [fixtures::frame(0), fixtures::frame(1), fixtures::frame(7)];
        let path = dir.path().join("0000.txt");
        write_tracking(&path, &frames).unwrap();
        let parsed = read_tracking(&path).unwrap();

        let expected: Vec<KittiTrackingRow> = frames
            .iter()
            .flat_map(|f| exported_objects(f).unwrap().into_iter().map(|o| KittiTrackingRow::from_label(f.frame, o)))
            .collect();
        assert_eq!(parsed.len(), 6);
        for (p, e) in parsed.iter().zip(&expected) {
            assert_eq!(
                (p.frame, p.track_id, &p.object_type, p.truncated, p.occluded),
                (e.frame, e.track_id, &e.object_type, e.truncated, e.occluded)
            );
            assert!(geometry_close(&p.geometry, &e.geometry), "{p:?} vs {e:?}");
        }
        assert_eq!(parsed[5].frame, 7);
    }

    #[test]
    fn object_round_trip_through_a_file() {
        let dir = TestDir::new("kitti_object_rt");
        let frame = fixtures::frame(3);
        let path = dir.path().join("000003.txt");
        write_object(&path, &frame).unwrap();
        let parsed = read_object(&path).unwrap();
        let expected: Vec<KittiObjectRow> =
            exported_objects(&frame).unwrap().into_iter().map(KittiObjectRow::from_label).collect();
        assert_eq!(parsed.len(), 2);
        for (p, e) in parsed.iter().zip(&expected) {
            assert_eq!((&p.object_type, p.occluded), (&e.object_type, e.occluded));
            assert!(close(p.truncated, e.truncated));
            assert!(geometry_close(&p.geometry, &e.geometry), "{p:?} vs {e:?}");
        }
    }

    #[test]
    fn reads_kittis_own_dontcare_rows() {
        let text = "0 -1 DontCare -1 -1 -10.000000 219.310000 188.490000 245.500000 \
                    218.560000 -1000.000000 -1000.000000 -1000.000000 -10.000000 \
                    -1.000000 -1.000000 -1.000000\n";
        let rows = parse_tracking(text).unwrap();
        assert_eq!(rows[0].track_id, -1);
        assert_eq!(rows[0].object_type, "DontCare");
        assert_eq!(rows[0].geometry.box2d.x2, 245.5);
    }

    #[test]
    fn wrong_column_count_names_the_line() {
        let good = "0 3 Car 0 0 -1.40 10.00 20.00 50.00 45.00 1.52 1.73 4.21 -3.26 1.65 18.40 -1.57";
        let text = format!("{good}\n\n{}\n", &good[..good.len() - 6]);
        let err = parse_tracking(&text).unwrap_err();
        assert_eq!(
            err.to_string(),
            "<kitti tracking text>:3: expected 17 columns (frame track_id type truncated \
             occluded alpha x1 y1 x2 y2 h w l x y z rotation_y), found 16"
        );
        // A tracking line is not an object line.
        let err = parse_object(good).unwrap_err();
        assert!(err.to_string().starts_with("<kitti object text>:1: expected 15 columns"));
    }

    #[test]
    fn bad_numbers_name_line_and_column() {
        let line = "Car 0.00 0 -1.40 10.00 abc 50.00 45.00 1.52 1.73 4.21 -3.26 1.65 18.40 -1.57";
        let err = parse_object(&format!("\n{line}")).unwrap_err();
        assert_eq!(err.to_string(), "<kitti object text>:2: column 6 (`y1`): `abc` is not a number");

        let line = "Car 0.00 0 -1.40 10.00 20.00 NaN 45.00 1.52 1.73 4.21 -3.26 1.65 18.40 -1.57";
        let err = parse_object(line).unwrap_err();
        assert_eq!(err.to_string(), "<kitti object text>:1: column 7 (`x2`): `NaN` is not a finite number");

        let line = "0 3 Car 4 0 -1.40 10.00 20.00 50.00 45.00 1.52 1.73 4.21 -3.26 1.65 18.40 -1.57";
        let err = parse_tracking(line).unwrap_err();
        assert_eq!(err.to_string(), "<kitti tracking text>:1: column 4 (`truncated`): `4` is not an integer in -1..=2");
    }

    #[test]
    fn file_errors_name_the_path() {
        let dir = TestDir::new("kitti_read_err");
        let path = dir.path().join("0001.txt");
        std::fs::write(&path, "0 1 Car\n").unwrap();
        let err = read_tracking(&path).unwrap_err();
        match err {
            ExportError::Parse { path_or_source, line, .. } => {
                assert_eq!(path_or_source, path.display().to_string());
                assert_eq!(line, 1);
            }
            other => panic!("expected Parse, got {other:?}"),
        }
        let missing = dir.path().join("nope.txt");
        assert!(matches!(read_object(&missing), Err(ExportError::Io { path, .. }) if path == missing));
    }
}
