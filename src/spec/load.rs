//! Reading a spec: TOML syntax, then structure (every unknown or mistyped field), then meaning.

use super::validate::{validate, Problem, SpecError};
use super::Spec;
use std::path::Path;

/// Reads and validates the spec at `path`, reporting every problem found at once.
pub fn load(path: &Path) -> Result<Spec, SpecError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        SpecError::new(
            path,
            vec![Problem::new("", format!("cannot read the spec: {e}"))],
        )
    })?;
    load_str(&text).map_err(|problems| SpecError::new(path, problems))
}

/// Parses and validates spec text; on failure returns every problem found.
pub fn load_str(text: &str) -> Result<Spec, Vec<Problem>> {
    let mut tree: toml::Value = toml::from_str(text).map_err(|e| {
        vec![Problem::new(
            "",
            format!("not valid TOML: {}", e.message().trim()),
        )]
    })?;
    let mut problems = Vec::new();
    // Structural errors: record each, remove the offending entry and try again, so that
    // one typo does not hide the next. A missing required field cannot be repaired.
    let spec = loop {
        match serde_path_to_error::deserialize::<_, Spec>(tree.clone()) {
            Ok(spec) => break Some(spec),
            Err(err) => {
                let mut path: Vec<String> = err
                    .path()
                    .iter()
                    .map(|s| s.to_string())
                    .filter(|s| s != "?")
                    .collect();
                let message = err.inner().message().to_string();
                if let Some(field) = unknown_field(&message) {
                    if path.last().map(String::as_str) != Some(field) {
                        path.push(field.to_string());
                    }
                }
                problems.push(Problem::new(&path.join("."), message.clone()));
                if message.starts_with("missing field")
                    || path.is_empty()
                    || !remove(&mut tree, &path)
                    || problems.len() > 50
                {
                    break None;
                }
            }
        }
    };
    match spec {
        Some(spec) => {
            problems.extend(validate(&spec));
            if problems.is_empty() {
                Ok(spec)
            } else {
                Err(problems)
            }
        }
        None => Err(problems),
    }
}

/// The field named in serde's "unknown field `x`, expected …" message.
fn unknown_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split('`').next()
}

/// Removes the entry at `path`; false when there is none.
fn remove(tree: &mut toml::Value, path: &[String]) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut node = tree;
    for part in parents {
        node = match node {
            toml::Value::Table(t) => match t.get_mut(part) {
                Some(n) => n,
                None => return false,
            },
            toml::Value::Array(a) => match part.parse::<usize>().ok().and_then(|i| a.get_mut(i)) {
                Some(n) => n,
                None => return false,
            },
            _ => return false,
        };
    }
    match node {
        toml::Value::Table(t) => t.remove(last).is_some(),
        toml::Value::Array(a) => match last.parse::<usize>() {
            Ok(i) if i < a.len() => {
                a.remove(i);
                true
            }
            _ => false,
        },
        _ => false,
    }
}
