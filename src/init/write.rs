//! One commented spec for a pair of topics, from what their samples told.

use super::infer::{version, Table};
use super::pair::Pair;
use std::fmt::Write as _;

/// Where the job will read from: the brokers and client properties, when the samples came from Kafka.
pub(crate) struct Facts<'a> {
    pub(crate) pair: &'a Pair,
    pub(crate) entity: &'a str,
    pub(crate) source: &'a Table,
    pub(crate) target: &'a Table,
    pub(crate) kafka: Option<(&'a str, &'a std::collections::BTreeMap<String, String>)>,
}

fn quoted(items: &[impl AsRef<str>]) -> String {
    let items: Vec<String> = items.iter().map(|i| format!("{:?}", i.as_ref())).collect();
    items.join(", ")
}

fn side(out: &mut String, name: &str, topic: &str, table: &Table) {
    let _ = writeln!(out, "\n[{name}]\nformat = \"debezium\"");
    let connector = table.connector.as_deref().unwrap_or("unknown");
    match version(connector) {
        Some([one]) => {
            let _ = writeln!(out, "version = {one:?}  # {connector}");
        }
        Some(paths) => {
            let _ = writeln!(out, "version = [{}]  # {connector}", quoted(paths));
        }
        None => {
            let _ = writeln!(
                out,
                "# No version: connector `{connector}` is not one driftwatch knows, so input\n\
                 # order decides. Name the event's position here if it has one."
            );
        }
    }
    let _ = writeln!(out, "event_time = \"source.ts_ms\"");
    let _ = writeln!(out, "input = {{ topics = [{topic:?}] }}");
    if connector == "postgresql" {
        let _ = writeln!(
            out,
            "# PostgreSQL sends `__debezium_unavailable_value` for unchanged TOASTed columns\n\
             # under REPLICA IDENTITY DEFAULT. With REPLICA IDENTITY FULL it never does:\n\
             # then set `unavailable_placeholders = false`, so a copy holding the string is drift."
        );
    } else {
        let _ = writeln!(
            out,
            "# This connector does not send Debezium's TOAST placeholder: the string is a value.\n\
             unavailable_placeholders = false"
        );
    }
}

/// The spec text.
pub(crate) fn spec(f: &Facts<'_>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# {}: {} ({}) copied to {} ({}).\n\
         # Written by `driftwatch init` from one message of each topic: review it, then\n\
         # check it with `driftwatch validate`.",
        f.pair.table,
        f.pair.source,
        f.source.connector.as_deref().unwrap_or("unknown connector"),
        f.pair.target,
        f.target.connector.as_deref().unwrap_or("unknown connector"),
    );
    let _ = writeln!(out, "entity = {:?}", f.entity);
    let key = if f.source.key.is_empty() {
        &f.target.key
    } else {
        &f.source.key
    };
    if key.is_empty() {
        let _ = writeln!(
            out,
            "# The samples carry no message key (a table without a primary key?): name the\n\
             # columns that identify a row."
        );
        let _ = writeln!(out, "key = [\"id\"]");
    } else {
        let _ = writeln!(out, "key = [{}]", quoted(key));
    }
    let _ = writeln!(
        out,
        "# How long a difference must last before it is drift.\ngrace = \"5s\""
    );
    side(&mut out, "source", &f.pair.source, f.source);
    side(&mut out, "target", &f.pair.target, f.target);
    if !f.source.schema {
        let _ = writeln!(
            out,
            "\n# The source's sample carries no Connect schema: declare decimals, timestamps\n\
             # and JSON columns below (`[fields.NAME] type = …`)."
        );
    }
    for c in &f.source.columns {
        let _ = writeln!(
            out,
            "\n# {}\n[fields.{:?}]\ntype = {:?}",
            c.logical, c.name, c.kind
        );
        if let Some(scale) = c.scale {
            let _ = writeln!(out, "scale = {scale}");
        }
        if let Some(unit) = c.unit {
            let _ = writeln!(out, "unit = {unit:?}");
        }
    }
    if let Some((brokers, properties)) = f.kafka {
        let _ = writeln!(out, "\n[kafka]\nbrokers = {brokers:?}");
        if !properties.is_empty() {
            let _ = writeln!(out, "\n[kafka.properties]");
            for (name, value) in properties {
                let _ = writeln!(out, "{name:?} = {value:?}");
            }
        }
    }
    out
}
