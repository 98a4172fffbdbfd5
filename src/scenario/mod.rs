//! Scenario files: types, RON loading with precise errors, validation.
//!
//! ```text
//! RON text ──parse (serde, deny_unknown_fields)──▶ Scenario ──validate──▶ Ok / errors
//!                                    └── SourceMap gives line:col for validation errors
//! ```
mod error;
mod load;
pub mod locate;
mod types;
mod validate;

pub use error::{Issue, ScenarioError};
pub use load::{collect_scenario_files, load, load_many, parse_str, to_ron_string};
pub use types::*;
pub use validate::{MAX_BOXES, MIN_BOX_SIZE, validate};
