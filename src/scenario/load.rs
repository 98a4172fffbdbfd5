//! RON loading: parse, then validate, with every error placed at file:line:col and field.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ron::extensions::Extensions;

use super::error::{Issue, ScenarioError};
use super::locate::{FieldPath, SourceMap};
use super::types::Scenario;
use super::validate::validate;

fn ron_options() -> ron::Options {
    // IMPLICIT_SOME: optional fields are written without `Some(..)`.
    ron::Options::default().with_default_extension(Extensions::IMPLICIT_SOME)
}

/// Reads, parses and validates one scenario file.
pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
    let src = std::fs::read_to_string(path).map_err(|source| ScenarioError::Io { path: path.to_path_buf(), source })?;
    parse_str(&src, path)
}

/// Parses and validates scenario text; `path` is only used in messages.
pub fn parse_str(src: &str, path: &Path) -> Result<Scenario, ScenarioError> {
    let invalid = |issues| ScenarioError::Invalid { path: path.to_path_buf(), issues };
    let scenario = parse_ron(src).map_err(|issue| invalid(vec![issue]))?;
    let problems = validate(&scenario);
    if problems.is_empty() {
        return Ok(scenario);
    }
    let map = SourceMap::new(src);
    let issues = problems
        .into_iter()
        .map(|(field, message)| Issue { pos: map.locate(&field), field: field.to_string(), message })
        .collect();
    Err(invalid(issues))
}

fn parse_ron(src: &str) -> Result<Scenario, Issue> {
    let options = ron_options();
    let mut de = ron::Deserializer::from_str_with_options(src, &options).map_err(|e| Issue {
        field: FieldPath::root().to_string(),
        pos: Some(to_pos(e.span.start)),
        message: e.code.to_string(),
    })?;
    let scenario = serde_path_to_error::deserialize::<_, Scenario>(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let code = e.into_inner();
        let span = de.span_error(code.clone()).span;
        describe(&path, code, to_pos(span.start))
    })?;
    de.end().map_err(|code| {
        let span = de.span_error(code.clone()).span;
        describe(".", code, to_pos(span.start))
    })?;
    Ok(scenario)
}

/// serde_path_to_error prints the root as `.`; users see `(scenario)`.
fn join(path: &str, field: &str) -> String {
    if path == "." || path.is_empty() { field.to_string() } else { format!("{path}.{field}") }
}

fn describe(path: &str, code: ron::Error, pos: super::locate::Pos) -> Issue {
    use ron::Error as E;
    let quoted = |names: &[&str]| names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ");
    let (field, message) = match code {
        E::NoSuchStructField { expected, found, .. } => {
            // serde_path_to_error already ends nested paths with the unknown key.
            let field = if path.ends_with(found.as_str()) { path.to_string() } else { join(path, &found) };
            (field, format!("unknown field `{found}`; expected one of {}", quoted(expected)))
        }
        E::MissingStructField { field, .. } => (join(path, field), "missing field; it is required".to_string()),
        E::DuplicateStructField { field, .. } => (join(path, field), "field is given twice".to_string()),
        E::NoSuchEnumVariant { expected, found, .. } => {
            (path.to_string(), format!("unknown value `{found}`; expected one of {}", quoted(expected)))
        }
        E::TrailingCharacters => (path.to_string(), "unexpected text after the scenario's closing `)`".to_string()),
        other => (path.to_string(), lowercase_first(&other.to_string())),
    };
    // `.` is serde_path_to_error's root and `?` its unknown position.
    let field = if matches!(field.as_str(), "." | "?" | "") { FieldPath::root().to_string() } else { field };
    Issue { field, pos: Some(pos), message }
}

fn lowercase_first(s: &str) -> String {
    let mut chars = s.chars();
    chars.next().map(|c| c.to_lowercase().chain(chars).collect()).unwrap_or_default()
}

fn to_pos(p: ron::error::Position) -> super::locate::Pos {
    super::locate::Pos { line: p.line, col: p.col }
}

/// Serialises a scenario as RON that `parse_str` reads back unchanged.
pub fn to_ron_string(s: &Scenario) -> String {
    let pretty = ron::ser::PrettyConfig::new()
        .struct_names(true)
        .extensions(Extensions::IMPLICIT_SOME)
        .indentor("    ".to_string());
    // Serialising plain data with derived impls cannot fail.
    ron::ser::to_string_pretty(s, pretty).unwrap_or_default()
}

/// Expands a CLI input into scenario files: a `.ron` file, a folder (its `*.ron`,
/// sorted), or a list file (`.txt`, one path per line relative to the list, `#` comments).
pub fn collect_scenario_files(input: &Path) -> Result<Vec<PathBuf>, ScenarioError> {
    let io_err = |source| ScenarioError::Io { path: input.to_path_buf(), source };
    if input.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(input)
            .map_err(io_err)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "ron"))
            .collect();
        files.sort();
        return Ok(files);
    }
    if input.extension().is_some_and(|x| x == "txt") {
        let text = std::fs::read_to_string(input).map_err(io_err)?;
        let base = input.parent().unwrap_or(Path::new("."));
        return Ok(text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| base.join(l))
            .collect());
    }
    Ok(vec![input.to_path_buf()])
}

/// Loads several scenarios; besides each file's own errors, two scenarios with one
/// name are an error (their outputs would collide). Returns one result per file.
pub fn load_many(files: &[PathBuf]) -> Vec<(PathBuf, Result<Scenario, ScenarioError>)> {
    let mut out: Vec<(PathBuf, Result<Scenario, ScenarioError>)> = files.iter().map(|f| (f.clone(), load(f))).collect();
    let mut first_by_name: HashMap<String, PathBuf> = HashMap::new();
    for (path, result) in out.iter_mut() {
        let Ok(s) = result else { continue };
        match first_by_name.get(&s.name) {
            None => {
                first_by_name.insert(s.name.clone(), path.clone());
            }
            Some(first) => {
                let src = std::fs::read_to_string(&*path).unwrap_or_default();
                let field = FieldPath::root().field("name");
                *result = Err(ScenarioError::Invalid {
                    path: path.clone(),
                    issues: vec![Issue {
                        pos: SourceMap::new(&src).locate(&field),
                        field: field.to_string(),
                        message: format!(
                            "duplicate scenario name {:?}, already used by {}; outputs would collide",
                            s.name,
                            first.display()
                        ),
                    }],
                });
            }
        }
    }
    out
}
