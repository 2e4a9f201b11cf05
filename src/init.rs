//! `driftwatch init`: one commented spec per table, from the topics themselves.
//!
//! A database has tens to hundreds of tables and Debezium writes one topic per table;
//! writing their specs by hand is not practical. `init` lists the topics under the
//! source's and the target's prefixes, pairs them by table (Debezium's
//! `<prefix>.<schema>.<table>`), reads one row change of each to learn the key columns
//! (from the message key) and the column types (from the Connect schema), and writes one
//! spec per pair with the version for the connector it recognises. Topics without a
//! partner are listed, not guessed.

mod infer;
mod pair;
mod sample;
mod write;

use std::path::PathBuf;
use std::time::Duration;

/// Where the samples come from.
#[derive(Debug, Clone)]
pub enum Samples {
    /// Kafka: the topics on these brokers.
    Kafka {
        /// Bootstrap servers.
        brokers: String,
        /// Client properties (`${VAR}` read from the environment), also written into
        /// every spec's `[kafka.properties]` as given.
        properties: std::collections::BTreeMap<String, String>,
    },
    /// A directory of `<topic>.jsonl` dumps (a message value per line, or
    /// `{"key": …, "value": …}`).
    Files(PathBuf),
}

/// What `init` is asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where the samples come from.
    pub samples: Samples,
    /// The source's topic prefix (Debezium's `topic.prefix`).
    pub source_prefix: String,
    /// The target's topic prefix.
    pub target_prefix: String,
    /// The directory to write the specs to.
    pub out: PathBuf,
    /// Overwrite specs that exist.
    pub force: bool,
}

/// What `init` did.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The specs written.
    pub written: Vec<PathBuf>,
    /// Topics under either prefix with no partner.
    pub unpaired: Vec<String>,
    /// Paired topics with no row change to learn from (no spec is written for them).
    pub unsampled: Vec<String>,
}

/// An entity name for a table: `table`, or `schema_table` when the table name is taken.
fn entity_name(table: &str, taken: &mut std::collections::BTreeSet<String>) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "_-".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    let short = clean(table.rsplit('.').next().unwrap_or(table));
    let name = if taken.contains(&short) {
        clean(table)
    } else {
        short
    };
    taken.insert(name.clone());
    name
}

/// Writes one spec per pair of topics.
pub fn run(opts: &Options) -> anyhow::Result<Outcome> {
    let prefixes = [opts.source_prefix.as_str(), opts.target_prefix.as_str()];
    let samples = match &opts.samples {
        Samples::Files(dir) => sample::from_files(dir)?,
        Samples::Kafka {
            brokers,
            properties,
        } => {
            let config = crate::io::kafka::config::KafkaConfig::with_properties(
                brokers,
                "driftwatch-init",
                properties,
            )?;
            sample::from_kafka(&config, &prefixes, Duration::from_secs(5))?
        }
    };
    let pairing = pair::pair(&samples.topics, &opts.source_prefix, &opts.target_prefix);
    std::fs::create_dir_all(&opts.out)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", opts.out.display()))?;
    let kafka = match &opts.samples {
        Samples::Kafka {
            brokers,
            properties,
        } => Some((brokers.as_str(), properties)),
        Samples::Files(_) => None,
    };
    let mut outcome = Outcome {
        unpaired: pairing.unpaired.clone(),
        ..Outcome::default()
    };
    let mut taken = Default::default();
    for p in &pairing.pairs {
        let (Some(source), Some(target)) =
            (samples.tables.get(&p.source), samples.tables.get(&p.target))
        else {
            outcome
                .unsampled
                .push(format!("{} / {}", p.source, p.target));
            continue;
        };
        let entity = entity_name(&p.table, &mut taken);
        let text = write::spec(&write::Facts {
            pair: p,
            entity: &entity,
            source,
            target,
            kafka,
        });
        // What it writes must be a spec driftwatch accepts.
        crate::spec::load_str(&text).map_err(|problems| {
            let p: Vec<String> = problems.iter().map(ToString::to_string).collect();
            anyhow::anyhow!(
                "the spec for {entity} is not valid (a bug): {}",
                p.join("; ")
            )
        })?;
        let path = opts.out.join(format!("{entity}.toml"));
        if path.exists() && !opts.force {
            anyhow::bail!("{} exists: give --force to overwrite it", path.display());
        }
        std::fs::write(&path, text)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
        outcome.written.push(path);
    }
    Ok(outcome)
}
