//! Every checkpoint is one consistent cut: each worker's state at its event time, even on a
//! worker that reads nothing or runs out of input before the others.

use driftwatch::cdc::SideId;
use driftwatch::checkpoint::state::WorkerState;
use driftwatch::demo::generator::{generate, GenConfig};
use driftwatch::demo::GeneratedPartition;
use driftwatch::io::Partition;
use driftwatch::job::checkpoint::{Checkpoints, Restore};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Every checkpoint file in `dir`, by checkpoint time.
fn all_checkpoints(dir: &std::path::Path) -> BTreeMap<u64, Vec<WorkerState>> {
    let mut out: BTreeMap<u64, Vec<WorkerState>> = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "ckpt") {
            let state: WorkerState =
                driftwatch::checkpoint::decode(&std::fs::read(&path).unwrap()).unwrap();
            out.entry(state.time).or_default().push(state);
        }
    }
    out
}

#[test]
fn every_checkpoint_is_a_cut_at_its_time_on_every_worker() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string("dataflows/orders.toml").unwrap();
    let text = text
        + &format!(
            "\n[checkpoint]\ndir = {:?}\ninterval = \"250ms\"\nmin_wall_interval = \"0ms\"\nkeep = 100000\n",
            dir.path().display().to_string()
        );
    let spec = driftwatch::spec::load_str(&text).unwrap();
    let g = generate(&GenConfig {
        events: 20_000,
        keys: 1_000,
        ..GenConfig::default()
    });
    let (source, target) = (Arc::new(g.source), Arc::new(g.target));
    // Worker 0 reads the source, worker 1 the target (shortened, so it runs out first),
    // worker 2 nothing: the state of workers 1 and 2 is driven by the others' inputs.
    let short = Arc::new(target[..target.len() / 2].to_vec());
    let parts: driftwatch::run::PartitionFactory = Arc::new(move |index, _| {
        Ok(match index {
            0 => vec![
                Box::new(GeneratedPartition::new(SideId::Source, source.clone(), 0))
                    as Box<dyn Partition>,
            ],
            1 => vec![
                Box::new(GeneratedPartition::new(SideId::Target, short.clone(), 0))
                    as Box<dyn Partition>,
            ],
            _ => vec![],
        })
    });
    let stats = Arc::new(driftwatch::dataflow::Stats::default());
    driftwatch::run::execute_with(
        &spec,
        &driftwatch::run::Cluster::local(3),
        parts,
        None,
        u64::MAX,
        stats,
        Some(Arc::new(Checkpoints::default())),
    )
    .unwrap();

    let checkpoints = all_checkpoints(dir.path());
    assert!(checkpoints.len() >= 20, "{} checkpoints", checkpoints.len());
    for (time, states) in checkpoints {
        assert_eq!(states.len(), 3, "checkpoint {time} is incomplete");
        // Nothing of event time `time` or later is in a cut at `time`.
        for s in &states {
            assert_eq!(s.entities.len(), 1);
            for k in &s.entities[0].keys {
                for side in [&k.source, &k.target].into_iter().flatten() {
                    assert!(
                        side.row.is_none() || side.row_ts_ms < time,
                        "checkpoint {time}, worker {}: a row of event time {}",
                        s.index,
                        side.row_ts_ms
                    );
                }
            }
            for e in &s.entities[0].episodes {
                assert!(
                    e.since < time,
                    "checkpoint {time}: an episode since {}",
                    e.since
                );
            }
        }
        // And it restores: every open episode is a key whose sides differ in the cut.
        let restore = Restore::new(states).unwrap();
        for index in 0..3 {
            let state = driftwatch::dataflow::State {
                sides: driftwatch::dataflow::sides::SidesState::new(
                    Arc::new(driftwatch::row::CompareRules::new(&spec)),
                    Arc::default(),
                    spec.grace.as_millis(),
                ),
            };
            restore
                .apply("orders", None, index, 3, &state)
                .unwrap_or_else(|e| panic!("checkpoint {time}, worker {index}: {e:#}"));
        }
    }
}
