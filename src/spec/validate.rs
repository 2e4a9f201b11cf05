//! Checks of meaning that serde cannot express; every problem carries the field's path.

mod fields;

use super::{Format, Side, Spec};
use std::fmt;
use std::path::{Path, PathBuf};

/// One problem in a spec, at a field path such as `source.version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted path of the offending field (empty for the whole document).
    pub path: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl Problem {
    /// A problem at `path`.
    pub fn new(path: &str, message: impl Into<String>) -> Self {
        Problem {
            path: path.to_string(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// A spec that cannot be used, with all of its problems.
#[derive(Debug, Clone)]
pub struct SpecError {
    /// The spec file.
    pub file: PathBuf,
    /// Every problem found.
    pub problems: Vec<Problem>,
}

impl SpecError {
    /// The problems of the spec at `file`.
    pub fn new(file: &Path, problems: Vec<Problem>) -> Self {
        SpecError {
            file: file.to_path_buf(),
            problems,
        }
    }
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid spec {}: ", self.file.display())?;
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SpecError {}

/// Every problem of meaning in a structurally valid spec.
pub fn validate(spec: &Spec) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut err = |path: &str, message: String| problems.push(Problem::new(path, message));
    if spec.entity.is_empty()
        || !spec
            .entity
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
    {
        err(
            "entity",
            format!(
                "`{}` is not a valid entity name: use letters, digits, `_`, `-` or `.`",
                spec.entity
            ),
        );
    }
    if spec.key.is_empty() {
        err(
            "key",
            "name at least one key column, e.g. `key = [\"id\"]`".into(),
        );
    }
    for (i, k) in spec.key.iter().enumerate() {
        if k.is_empty() || k.len() > 255 {
            err(
                &format!("key.{i}"),
                "a key column name must be 1 to 255 bytes".into(),
            );
        }
        if spec.key[..i].contains(k) {
            err(
                &format!("key.{i}"),
                format!("key column `{k}` is listed twice"),
            );
        }
        if crate::row::FieldFilter::new(&spec.compare.ignore, &spec.compare.only)
            .is_ok_and(|f| f.skips(k))
        {
            err(
                "compare",
                format!("key column `{k}` cannot be ignored (by `ignore` or `only`)"),
            );
        }
    }
    if spec.time_resolution.as_millis() == 0 {
        err("time_resolution", "must be at least 1ms".into());
    }
    if spec.max_message_bytes < 64 {
        err("max_message_bytes", "must be at least 64 bytes".into());
    }
    if let Some(c) = &spec.checkpoint {
        if c.dir.trim().is_empty() {
            err("checkpoint.dir", "must name a directory".into());
        }
        if c.interval.as_millis() < 100 {
            err("checkpoint.interval", "must be at least 100ms".into());
        }
        if c.keep == 0 {
            err("checkpoint.keep", "must keep at least 1 checkpoint".into());
        }
    }
    for (name, side) in [("source", &spec.source), ("target", &spec.target)] {
        side_problems(name, side, &mut err);
    }
    fields::problems(spec, &mut err);
    if spec.outputs.partitions == 0 {
        err("outputs.partitions", "must be at least 1".into());
    }
    if spec.kafka.properties.contains_key("bootstrap.servers") {
        err(
            "kafka.properties.bootstrap.servers",
            "set `kafka.brokers` instead".into(),
        );
    }
    problems
}

fn side_problems(name: &str, side: &Side, err: &mut impl FnMut(&str, String)) {
    let top_level_only = side.format == Format::Upsert;
    if let Some(paths) = &side.version {
        if paths.list().is_empty() {
            err(
                &format!("{name}.version"),
                "an empty list: name at least one path, e.g. `source.lsn`".into(),
            );
        }
        if paths.list().len() > 8 {
            err(
                &format!("{name}.version"),
                format!("{} paths: at most 8", paths.list().len()),
            );
        }
        let many = paths.list().len() > 1;
        for (i, v) in paths.list().iter().enumerate() {
            let at = if many {
                format!("{name}.version.{i}")
            } else {
                format!("{name}.version")
            };
            if v.is_empty() || v.split('.').any(str::is_empty) {
                err(&at, format!("`{v}` is not a path: write e.g. `source.lsn`"));
            } else if top_level_only && v.contains('.') {
                err(
                    &at,
                    format!("an upsert version is a top-level row field, not `{v}`"),
                );
            }
        }
    }
    let t = &side.event_time;
    if t != "@timestamp" {
        if t.is_empty() || t.split('.').any(str::is_empty) {
            err(
                &format!("{name}.event_time"),
                format!("`{t}` is not a path: write e.g. `source.ts_ms` or `@timestamp`"),
            );
        } else if top_level_only && t.contains('.') {
            err(
                &format!("{name}.event_time"),
                format!("an upsert event time is a top-level row field or `@timestamp`, not `{t}`"),
            );
        }
    }
    if !side.select.is_empty() && top_level_only {
        err(
            &format!("{name}.select"),
            "select takes `debezium` events by their envelope fields; an upsert input's \
             deletes (tombstones) carry none: give the entity its own topic"
                .into(),
        );
    }
    for path in side.select.keys() {
        if path.is_empty() || path.split('.').any(str::is_empty) {
            err(
                &format!("{name}.select"),
                format!("`{path}` is not a path: write e.g. `\"source.table\" = \"orders\"`"),
            );
        }
    }
    if side.input.topics.is_empty() && side.input.files.is_empty() {
        err(
            &format!("{name}.input"),
            "name `topics = [...]` or `files = [...]` (the command line can override them)".into(),
        );
    }
    for (i, topic) in side.input.topics.iter().enumerate() {
        if topic.is_empty()
            || topic.len() > 249
            || !topic
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        {
            err(
                &format!("{name}.input.topics.{i}"),
                format!("`{topic}` is not a valid Kafka topic name"),
            );
        }
    }
}
