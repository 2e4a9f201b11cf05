//! Checkpoint cost: size per key, time to write and to restore, and recovery against
//! replaying the history.
//!
//! `cargo bench --bench checkpoint -- [--keys N]` (default 1M keys):
//!
//! 1. builds one worker's state for N order keys (both sides hold a ~200-byte row),
//!    encodes it, writes it atomically (fsync), reads it back, verifies and decodes it,
//!    and restores it into the operators' state;
//! 2. for a tenth of the keys, times the same restore against a replay of a minimal
//!    history (about two changes per key and side) through the engine in process. A
//!    replay from Kafka would be slower still: the broker serves about 16k messages/s
//!    (BENCHMARKS.md).
//!
//! Without `--bench` (under `cargo test --all-targets`) it runs 20k keys.

use driftwatch::checkpoint::state::{EntityState, KeyEntry, SideEntry, WorkerState};
use driftwatch::checkpoint::store::Store;
use driftwatch::checkpoint::Bytes;
use driftwatch::dataflow::sides::SidesState;
use driftwatch::dataflow::State;
use driftwatch::job::checkpoint::Restore;
use driftwatch::row::{Decimal, RowBuilder, ValueRef};
use std::sync::Arc;
use std::time::Instant;

fn main() {
    if let Err(e) = real_main() {
        eprintln!("checkpoint bench: {e:#}");
        std::process::exit(2);
    }
}

fn row(b: &mut RowBuilder, id: i64, status: &str) -> anyhow::Result<Vec<u8>> {
    b.clear();
    b.push("id", ValueRef::Int(id))
        .map_err(anyhow::Error::msg)?;
    b.push("customer_id", ValueRef::Int(id % 50_000))
        .map_err(anyhow::Error::msg)?;
    b.push("status", ValueRef::Str(status))
        .map_err(anyhow::Error::msg)?;
    let amount = Decimal {
        mantissa: i128::from(id % 100_000),
        scale: 2,
    };
    b.push("amount", ValueRef::Decimal(amount))
        .map_err(anyhow::Error::msg)?;
    b.push("items", ValueRef::Int(id % 9 + 1))
        .map_err(anyhow::Error::msg)?;
    b.push(
        "note",
        ValueRef::Str("leave at the door, gift wrap please, call first"),
    )
    .map_err(anyhow::Error::msg)?;
    b.push(
        "updated_at",
        ValueRef::Timestamp(1_772_323_200_000_000_000 + id),
    )
    .map_err(anyhow::Error::msg)?;
    Ok(b.finish_row().as_bytes().to_vec())
}

/// The name of entity `e` of a benchmark state.
fn entity_name(e: usize) -> String {
    format!("orders-{e:03}")
}

/// One worker's state: `keys` keys spread evenly over `entities` entities.
fn state(keys: u64, entities: usize) -> anyhow::Result<WorkerState> {
    let mut b = RowBuilder::default();
    let mut states: Vec<EntityState> = (0..entities)
        .map(|e| EntityState {
            name: Bytes::from(entity_name(e).as_bytes()),
            keys: Vec::with_capacity(keys as usize / entities + 1),
            episodes: Vec::new(),
            source_floor: None,
            target_floor: None,
        })
        .collect();
    for id in 0..keys as i64 {
        b.clear();
        b.push("id", ValueRef::Int(id))
            .map_err(anyhow::Error::msg)?;
        let key = b.finish_key();
        let side = |row: Vec<u8>, version: u64| SideEntry {
            version: Bytes::from(&*driftwatch::cdc::Version::Num(version).encoded()),
            row_ts_ms: 1_772_323_200_000 + id as u64,
            row: Some(Bytes::from(&row[..])),
        };
        states[id as usize % entities].keys.push(KeyEntry {
            key: Bytes::from(key.as_bytes()),
            source: Some(side(row(&mut b, id, "shipped")?, 1_000 + id as u64)),
            target: Some(side(row(&mut b, id, "shipped")?, 9_000 + id as u64)),
            drifting: 0,
        });
    }
    Ok(WorkerState {
        time: 1_772_323_260_000,
        index: 0,
        peers: 1,
        entities: states,
        offsets: Vec::new(),
    })
}

/// Loads the newest checkpoint in `store` and restores each of its `entities` into fresh
/// operator state; returns the keys restored.
fn restore(store: &Store, entities: usize) -> anyhow::Result<usize> {
    let states = store
        .load_newest()?
        .ok_or_else(|| anyhow::anyhow!("no checkpoint"))?;
    let spec = driftwatch::spec::load_str(driftwatch::demo::ORDERS_SPEC)
        .map_err(|p| anyhow::anyhow!("{p:?}"))?;
    let rules = Arc::new(driftwatch::row::CompareRules::new(&spec));
    let restore = Restore::new(states)?;
    let mut restored = 0;
    for e in 0..entities {
        let target = State {
            sides: SidesState::new(rules.clone(), Arc::default(), 5_000),
        };
        restore.apply(&entity_name(e), None, 0, 1, &target)?;
        restored += target.sides.snapshot().len();
    }
    Ok(restored)
}

fn real_main() -> anyhow::Result<()> {
    let bench = std::env::args().any(|a| a == "--bench");
    let mut keys: u64 = if bench { 1_000_000 } else { 20_000 };
    let mut entities: usize = 1;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--bench" => {}
            "--keys" => keys = args.next().unwrap_or_default().parse()?,
            "--entities" => entities = args.next().unwrap_or_default().parse()?,
            other => anyhow::bail!("unknown argument {other:?}"),
        }
    }
    let dir = tempfile::tempdir()?;
    let store = Store::new(dir.path());

    let t = Instant::now();
    anyhow::ensure!(entities > 0, "--entities must be at least 1");
    let s = state(keys, entities)?;
    let build = t.elapsed();
    let t = Instant::now();
    let path = store.write(&s)?;
    let write = t.elapsed();
    drop(s);
    let size = std::fs::metadata(&path)?.len();
    let t = Instant::now();
    let restored = restore(&store, entities)?;
    let read = t.elapsed();
    anyhow::ensure!(
        restored == keys as usize,
        "restored {restored} of {keys} keys"
    );
    println!(
        "\n{keys} keys (both sides hold a row) over {entities} entities, one worker's checkpoint\n"
    );
    println!("| what | figure |");
    println!("|---|---|");
    println!(
        "| file size | {:.1} MB ({:.0} bytes per key) |",
        size as f64 / 1e6,
        size as f64 / keys as f64
    );
    println!(
        "| encode + write (fsync, rename) | {:.2} s |",
        write.as_secs_f64()
    );
    println!(
        "| read + verify + decode + restore into the operators | {:.2} s |",
        read.as_secs_f64()
    );
    println!(
        "| (building the state for the benchmark) | {:.2} s |",
        build.as_secs_f64()
    );

    // Recovery against replay, at a tenth of the keys.
    let small = (keys / 10).max(1_000);
    let dir2 = tempfile::tempdir()?;
    let store2 = Store::new(dir2.path());
    store2.write(&state(small, 1)?)?;
    let t = Instant::now();
    restore(&store2, 1)?;
    let recover = t.elapsed();
    let g = driftwatch::demo::generator::generate(&driftwatch::demo::generator::GenConfig {
        events: small * 2,
        keys: small,
        wrapped: false,
        note_len: 60,
        ..Default::default()
    });
    let (src, tgt) = (dir2.path().join("s.jsonl"), dir2.path().join("t.jsonl"));
    std::fs::write(&src, g.source.join("\n"))?;
    std::fs::write(&tgt, g.target.join("\n"))?;
    let events = g.source.len() + g.target.len();
    drop(g);
    let spec = driftwatch::spec::load_str(driftwatch::demo::ORDERS_SPEC)
        .map_err(|p| anyhow::anyhow!("{p:?}"))?;
    let t = Instant::now();
    driftwatch::run::run_files(
        &spec,
        &driftwatch::run::Cluster::local(1),
        vec![src],
        vec![tgt],
        &dir2.path().join("out"),
    )?;
    let replay = t.elapsed();
    println!("\n{small} keys: recovery from a checkpoint against replaying a minimal history ({events} events), in process, one worker\n");
    println!("| how | time | ratio |");
    println!("|---|---|---|");
    println!(
        "| restore the checkpoint | {:.3} s | 1.00× |",
        recover.as_secs_f64()
    );
    println!(
        "| replay the history (file mode) | {:.3} s | {:.1}× |",
        replay.as_secs_f64(),
        replay.as_secs_f64() / recover.as_secs_f64()
    );
    Ok(())
}
