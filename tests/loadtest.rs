//! The load-test harness's own accounting: a fault-free run reports nothing, and a run
//! with injected faults reports exactly the episodes its ground truth says must be
//! reported (none missed, none false), each with a measured latency.

use driftwatch::loadtest::config::Profile;
use driftwatch::loadtest::run_in_process;

/// Keys are many for the rate (each changes every few seconds), so replication lag
/// alone never keeps a key out of sync for a whole grace period. (With a few hot keys
/// it does, and the harness rightly counts that as drift: `truth` includes it.)
fn profile(p_drop: f64, p_corrupt: f64, p_extra: f64) -> Profile {
    Profile {
        rate: 2_000.0,
        duration_s: 3.0,
        keys: 5_000,
        seed: 11,
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
fn a_fault_free_run_reports_no_drift() {
    let o = run_in_process(&profile(0.0, 0.0, 0.0), 2).unwrap();
    let r = &o.report;
    assert_eq!(r["truth"], 0, "{r}");
    assert_eq!(r["found"], 0, "{r}");
    assert_eq!(r["false"].as_array().unwrap().len(), 0, "{r}");
    assert_eq!(r["missed"].as_array().unwrap().len(), 0, "{r}");
    assert_eq!(r["read"], r["messages"], "{r}");
}

#[test]
fn a_run_with_known_faults_reports_exactly_those() {
    let o = run_in_process(&profile(0.01, 0.005, 0.002), 2).unwrap();
    let r = &o.report;
    let truth = r["truth"].as_u64().unwrap();
    assert!(truth >= 20, "too few faults to score: {r}");
    assert_eq!(r["found"], truth, "{r}");
    assert_eq!(r["missed"].as_array().unwrap().len(), 0, "{r}");
    assert_eq!(r["false"].as_array().unwrap().len(), 0, "{r}");
    assert_eq!(r["precision"], 1.0);
    assert_eq!(r["recall"], 1.0);
    assert_eq!(
        o.latency.len() + o.tail_latency.len(),
        truth,
        "one latency per detection"
    );
    let svg = driftwatch::loadtest::chart::svg(&o);
    assert!(svg.starts_with("<svg") && svg.contains("polyline"));
}

#[test]
fn a_stalled_replica_partition_holds_reporting_back_instead_of_raising_false_drift() {
    // The replica's partition delivers nothing for 3 s (twice the grace period) while
    // the source keeps flowing: a lagging input must hold time back.
    let p = Profile {
        stall_at_s: Some(1.0),
        stall_for_s: Some(3.0),
        ..profile(0.01, 0.0, 0.0)
    };
    let o = run_in_process(&p, 2).unwrap();
    let r = &o.report;
    assert!(r["truth"].as_u64().unwrap() >= 10, "{r}");
    assert_eq!(r["false"].as_array().unwrap().len(), 0, "{r}");
    assert_eq!(r["missed"].as_array().unwrap().len(), 0, "{r}");
    // Held back, not lost: the stall shows up as latency.
    let max = r["detection_latency_ms_beyond_grace"]["max"]
        .as_u64()
        .unwrap();
    assert!(max >= 500, "the stall should delay some detections: {r}");
}

#[test]
fn reordered_replica_events_are_scored_exactly_with_the_version_gate_and_late_times() {
    // A fifth of the replica's events arrive behind those of up to 300 ms later. The
    // stale ones are dropped by the version gate and the late ones take their
    // partition's progress as their time; the truth models both, and the detector must
    // agree with it episode for episode. (Without the late-time rule in the truth this
    // kind of run misses episodes and reports false ones: the check can fail.)
    let p = Profile {
        p_extra: 0.01,
        p_reorder: 0.2,
        reorder_ms: 300,
        ..profile(0.01, 0.0, 0.01)
    };
    let o = run_in_process(&p, 2).unwrap();
    let r = &o.report;
    assert!(r["injected"]["reordered"].as_u64().unwrap() > 500, "{r}");
    assert!(r["truth"].as_u64().unwrap() >= 50, "{r}");
    assert_eq!(r["missed"].as_array().unwrap().len(), 0, "{r}");
    assert_eq!(r["false"].as_array().unwrap().len(), 0, "{r}");
    assert_eq!(r["found"], r["truth"], "{r}");
}

#[test]
fn closing_the_loop_repairs_every_difference_and_converges() {
    // The same faulty load twice: left alone, the replica ends with drift open; with
    // the detector's corrections applied to it, every reported difference is repaired
    // and none is left once the load has ended.
    let faulty = profile(0.01, 0.005, 0.005);
    let open = run_in_process(&faulty, 2).unwrap();
    let left = open.report["open_drift_at_end"].as_u64().unwrap();
    assert!(left >= 10, "{}", open.report);

    let closed = run_in_process(
        &Profile {
            close_loop: true,
            ..faulty
        },
        2,
    )
    .unwrap();
    let r = &closed.report;
    let l = &r["close_loop"];
    assert_eq!(r["open_drift_at_end"], 0, "{r}");
    assert_eq!(l["converged"], true, "{r}");
    assert_eq!(l["open_at_end"], 0, "{r}");
    assert!(l["corrections_applied"].as_u64().unwrap() >= left, "{r}");
    assert!(l["repaired"].as_u64().unwrap() >= left, "{r}");
    assert!(
        l["converged_after_last_message_ms"].as_u64().is_some(),
        "{r}"
    );
}

#[test]
fn bad_profiles_and_flags_are_refused_with_what_to_fix() {
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("p.toml");
    std::fs::write(
        &profile,
        "rate = 100\nlag_median_ms = 20\nlag_p99_ms = 10\n",
    )
    .unwrap();
    for (args, says) in [
        (
            vec!["--profile", profile.to_str().unwrap()],
            "lag_p99_ms (10) must be above lag_median_ms (20)",
        ),
        (vec!["--p-delete", "1.5"], "p_delete must be a probability"),
        (
            vec!["--stall-at", "1"],
            "give both --stall-at and --stall-for",
        ),
        (vec!["--rate", "0"], "rate must be in (0, 1000000]"),
        (
            vec![
                "--brokers",
                "127.0.0.1:1",
                "--rate",
                "100",
                "--duration",
                "1",
            ],
            "cannot reach the broker at 127.0.0.1:1",
        ),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_driftwatch"))
            .arg("loadtest")
            .args(&args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one clean line: {err}");
    }
}
