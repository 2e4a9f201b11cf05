//! The load test through a real Apache Kafka broker: the load produced on schedule, the
//! detector run as a `driftwatch run` job, its drift topic consumed and scored. The
//! harness's accounting must hold end to end: nothing reported on a fault-free load,
//! exactly the truth on a faulty one.

mod support {
    #[allow(dead_code)] // this test uses the broker's start and address only
    pub mod broker;
}

use driftwatch::loadtest::config::Profile;
use driftwatch::loadtest::kafka::{run, KafkaMode};
use support::broker::Broker;

fn mode(broker: &Broker) -> KafkaMode {
    KafkaMode {
        brokers: broker.addr(),
        exe: env!("CARGO_BIN_EXE_driftwatch").into(),
        workers: 2,
        // Generous: this checks accounting, not latency, on a machine that may be busy.
        clock_skew: driftwatch::spec::Duration::from_millis(1_000),
    }
}

/// A load the broker here carries comfortably (about 2.2k messages/s in all).
fn profile(p_drop: f64, p_corrupt: f64, p_extra: f64) -> Profile {
    Profile {
        rate: 1_000.0,
        duration_s: 4.0,
        keys: 3_000,
        seed: 5,
        grace: driftwatch::spec::Duration::from_millis(1_500),
        p_drop,
        p_corrupt,
        p_extra,
        p_duplicate: 0.02,
        p_redeliver: 0.01,
        ..Profile::default()
    }
}

#[test]
fn through_the_broker_a_fault_free_load_reports_nothing_and_a_faulty_one_exactly_its_truth() {
    let broker = Broker::start();

    let clean = run(&profile(0.0, 0.0, 0.0), &mode(&broker)).unwrap();
    let r = &clean.report;
    assert_eq!(r["mode"], "kafka", "{r}");
    assert_eq!(r["truth"], 0, "{r}");
    assert_eq!(r["found"], 0, "{r}");
    assert_eq!(r["false"].as_array().unwrap().len(), 0, "{r}");
    assert_eq!(r["read"], r["messages"], "the job read every message: {r}");

    let faulty = Profile {
        p_reorder: 0.05,
        ..profile(0.02, 0.01, 0.005)
    };
    let o = run(&faulty, &mode(&broker)).unwrap();
    let r = &o.report;
    let truth = r["truth"].as_u64().unwrap();
    assert!(truth >= 40, "too few faults to score: {r}");
    assert_eq!(r["missed"].as_array().unwrap().len(), 0, "{r}");
    assert_eq!(r["false"].as_array().unwrap().len(), 0, "{r}");
    assert_eq!(r["found"], truth, "{r}");
    assert_eq!(
        o.latency.len() + o.tail_latency.len(),
        truth,
        "one latency per detection"
    );
    assert!(r["drift_records"].as_u64().unwrap() >= truth, "{r}");
    assert_eq!(r["read"], r["messages"], "{r}");
    let left = r["open_drift_at_end"].as_u64().unwrap();
    assert!(left > 0, "{r}");

    // The loop closed through the broker: the job's corrections, consumed and written
    // to the replica's topic as its next changes, repair every difference.
    let closed = run(
        &Profile {
            close_loop: true,
            ..faulty
        },
        &mode(&broker),
    )
    .unwrap();
    let r = &closed.report;
    assert_eq!(r["open_drift_at_end"], 0, "{r}");
    assert_eq!(r["close_loop"]["converged"], true, "{r}");
    assert!(
        r["close_loop"]["corrections_applied"].as_u64().unwrap() >= left,
        "{r}"
    );
    assert!(
        r["read"].as_u64().unwrap() > r["messages"].as_u64().unwrap(),
        "the job read the corrections back: {r}"
    );
}
