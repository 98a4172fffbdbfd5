//! Scenario errors that name the file, the position and the field.

use std::fmt;
use std::path::PathBuf;

use super::locate::Pos;

/// One problem in a scenario file.
#[derive(Debug, Clone, PartialEq)]
pub struct Issue {
    /// Field path as users write it, e.g. `boxes[1].image.x1`; `(scenario)` for the whole file.
    pub field: String,
    /// Where the parser or the source map places the problem.
    pub pos: Option<Pos>,
    /// What is wrong and what was expected.
    pub message: String,
}

/// Why a scenario could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("{}: cannot read scenario file: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", IssueList { path, issues })]
    Invalid { path: PathBuf, issues: Vec<Issue> },
}

impl ScenarioError {
    /// The individual problems (empty for I/O errors).
    pub fn issues(&self) -> &[Issue] {
        match self {
            ScenarioError::Io { .. } => &[],
            ScenarioError::Invalid { issues, .. } => issues,
        }
    }
}

struct IssueList<'a> {
    path: &'a PathBuf,
    issues: &'a [Issue],
}

impl fmt::Display for IssueList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, issue) in self.issues.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}", self.path.display())?;
            if let Some(pos) = issue.pos {
                write!(f, ":{}:{}", pos.line, pos.col)?;
            }
            write!(f, ": {}: {}", issue.field, issue.message)?;
        }
        Ok(())
    }
}
