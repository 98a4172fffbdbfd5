//! The one error type of every exporter: each variant names the file (or text) and
//! the object it is about, so a message is actionable without a backtrace.

use std::path::{Path, PathBuf};

use thiserror::Error;

/// Everything that can go wrong while writing or reading exported files.
#[derive(Debug, Error)]
pub enum ExportError {
    /// Creating, writing, renaming or reading a file failed.
    #[error("I/O error on `{}`: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Encoding an image (PNG, GIF) failed for a reason other than I/O.
    #[error("cannot encode image `{}`: {source}", path.display())]
    Image {
        path: PathBuf,
        #[source]
        source: image::ImageError,
    },
    /// Serialising or deserialising JSON failed for a reason other than I/O.
    #[error("JSON error in `{}`: {source}", path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// A text label file (KITTI) is malformed. `line` is 1-based.
    #[error("{path_or_source}:{line}: {message}")]
    Parse {
        /// The file's path, or a description of where the text came from.
        path_or_source: String,
        line: usize,
        message: String,
    },
    /// A label holds NaN or an infinity, which no label format can carry faithfully
    /// (JSON turns it into `null`, KITTI readers choke on `NaN`).
    #[error("frame {frame}, track {track_id}: `{field}` is not a finite number")]
    NonFinite { frame: u32, track_id: u32, field: &'static str },
    /// Two images of one COCO/BDD dataset share a file name, so their labels could
    /// not be told apart (typically two clips both writing `000000.png`).
    #[error("duplicate image file name `{file_name}` in one dataset")]
    DuplicateImage { file_name: String },
    /// Frames of one KITTI tracking sequence must have strictly increasing indices.
    #[error("frame {found} follows frame {previous}; frames must be strictly increasing")]
    FramesOutOfOrder { previous: u32, found: u32 },
    /// An animation's frame rate must be a finite number above zero.
    #[error("cannot write `{}`: frame rate {fps} is not a positive finite number", path.display())]
    InvalidFps { path: PathBuf, fps: f32 },
    /// An animation needs at least one frame.
    #[error("cannot write `{}`: the animation has no frames", path.display())]
    NoFrames { path: PathBuf },
    /// Every frame of an animation must have the size of the first.
    #[error(
        "cannot write `{}`: frame {index} is {}x{}, but frame 0 is {}x{}",
        path.display(), found.0, found.1, expected.0, expected.1
    )]
    FrameSize { path: PathBuf, index: usize, expected: (u32, u32), found: (u32, u32) },
}

impl ExportError {
    /// Wraps an I/O error on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        ExportError::Io { path: path.to_path_buf(), source }
    }
}

/// Errors that become an [`ExportError`] once the file they happened on is known.
///
/// Writers handed to [`write_atomic_with`](super::write_atomic_with) return any of
/// these; the atomic writer supplies the target path. I/O failures hidden inside
/// image or JSON errors are reported as [`ExportError::Io`], so a full disk reads
/// the same whatever the format.
pub trait AtPath {
    /// The error, attributed to `path`.
    fn at_path(self, path: &Path) -> ExportError;
}

impl AtPath for std::io::Error {
    fn at_path(self, path: &Path) -> ExportError {
        ExportError::io(path, self)
    }
}

impl AtPath for image::ImageError {
    fn at_path(self, path: &Path) -> ExportError {
        match self {
            image::ImageError::IoError(source) => ExportError::io(path, source),
            source => ExportError::Image { path: path.to_path_buf(), source },
        }
    }
}

impl AtPath for serde_json::Error {
    fn at_path(self, path: &Path) -> ExportError {
        if self.is_io() {
            ExportError::io(path, self.into())
        } else {
            ExportError::Json { path: path.to_path_buf(), source: self }
        }
    }
}

/// Already attributed: kept as is.
impl AtPath for ExportError {
    fn at_path(self, _path: &Path) -> ExportError {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_error_message_names_source_and_line() {
        let e = ExportError::Parse {
            path_or_source: "labels/0000.txt".into(),
            line: 7,
            message: "expected 17 columns, found 16".into(),
        };
        assert_eq!(e.to_string(), "labels/0000.txt:7: expected 17 columns, found 16");
    }

    #[test]
    fn io_hidden_in_image_and_json_errors_is_reported_as_io() {
        let path = Path::new("out/x.png");
        let img = image::ImageError::IoError(std::io::Error::other("disk full"));
        assert!(matches!(img.at_path(path), ExportError::Io { .. }));

        let json = serde_json::Error::io(std::io::Error::other("disk full"));
        match json.at_path(path) {
            ExportError::Io { path: p, .. } => assert_eq!(p, path),
            other => panic!("expected Io, got {other:?}"),
        }

        let syntax = serde_json::from_str::<u32>("x").unwrap_err();
        assert!(matches!(syntax.at_path(path), ExportError::Json { .. }));
    }
}
