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

/// The spec files that `paths` name: files as given, directories as every `*.toml` in
/// them (sorted by name).
pub fn spec_files(paths: &[std::path::PathBuf]) -> Result<Vec<std::path::PathBuf>, SpecError> {
    let mut files = Vec::new();
    for path in paths {
        if !path.is_dir() {
            files.push(path.clone());
            continue;
        }
        let unreadable = |e: std::io::Error| {
            SpecError::new(
                path,
                vec![Problem::new("", format!("cannot read the directory: {e}"))],
            )
        };
        let mut found: Vec<std::path::PathBuf> = std::fs::read_dir(path)
            .map_err(unreadable)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        if found.is_empty() {
            return Err(SpecError::new(
                path,
                vec![Problem::new("", "holds no `*.toml` spec")],
            ));
        }
        found.sort();
        files.extend(found);
    }
    Ok(files)
}

/// Reads and validates every spec `paths` name (files, or directories of `*.toml`), and
/// refuses what cannot work together in one job: two entities of one name, two uses of
/// one output topic, an output topic that is another entity's input. Every problem of
/// every file is reported at once.
pub fn load_all(
    paths: &[std::path::PathBuf],
) -> Result<Vec<(std::path::PathBuf, Spec)>, Vec<SpecError>> {
    let files = spec_files(paths).map_err(|e| vec![e])?;
    let mut errors = Vec::new();
    let mut specs = Vec::new();
    for file in files {
        match load(&file) {
            Ok(spec) => specs.push((file, spec)),
            Err(e) => errors.push(e),
        }
    }
    let mut entities: std::collections::BTreeMap<String, &Path> = Default::default();
    let mut outputs: std::collections::BTreeMap<String, (&Path, &'static str)> = Default::default();
    let inputs: std::collections::BTreeMap<&str, &Path> = specs
        .iter()
        .flat_map(|(f, s)| {
            s.source
                .input
                .topics
                .iter()
                .chain(&s.target.input.topics)
                .map(move |t| (t.as_str(), f.as_path()))
        })
        .collect();
    for (file, spec) in &specs {
        let mut problems = Vec::new();
        if let Some(other) = entities.insert(spec.entity.clone(), file) {
            problems.push(Problem::new(
                "entity",
                format!(
                    "`{}` is also the entity of {}: entity names must differ",
                    spec.entity,
                    other.display()
                ),
            ));
        }
        for (field, topic) in [
            ("outputs.drift_topic", spec.drift_topic()),
            ("outputs.corrections_topic", spec.corrections_topic()),
            ("outputs.dlq_topic", spec.dlq_topic()),
        ] {
            if let Some((other, other_field)) = outputs.insert(topic.clone(), (file, field)) {
                problems.push(Problem::new(
                    field,
                    format!(
                        "topic `{topic}` is also the {other_field} of {}",
                        other.display()
                    ),
                ));
            }
            if let Some(reader) = inputs.get(topic.as_str()) {
                problems.push(Problem::new(
                    field,
                    format!(
                        "topic `{topic}` is an input of {}: a job must not read what it writes",
                        reader.display()
                    ),
                ));
            }
        }
        if !problems.is_empty() {
            errors.push(SpecError::new(file, problems));
        }
    }
    if errors.is_empty() {
        Ok(specs)
    } else {
        Err(errors)
    }
}
