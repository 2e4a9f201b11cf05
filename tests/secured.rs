//! A secured cluster: the job reads, writes and commits over SASL_SSL (SCRAM-SHA-512,
//! the broker's certificate signed by a test CA); a wrong password or an untrusted
//! certificate is refused within seconds, by name; the secret appears nowhere.

mod support {
    #[allow(dead_code)] // this file uses a subset of the broker helpers
    pub mod broker;
}

use driftwatch::demo::generator::{generate, GenConfig};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use support::broker::{free_port, keyed, scrape, Broker, Sasl};

/// The orders spec with `[kafka.properties]` for the SASL_SSL listener; `password` is
/// what the spec says (`${KAFKA_PASSWORD}` or a literal).
fn secured_spec(dir: &Path, sasl: &Sasl, ca: &Path, password: &str) -> String {
    let orders = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/dataflows/orders.toml"
    ))
    .unwrap();
    let spec = format!(
        "{orders}\n[kafka.properties]\n\"security.protocol\" = \"SASL_SSL\"\n\
         \"sasl.mechanism\" = \"SCRAM-SHA-512\"\n\"sasl.username\" = \"{}\"\n\
         \"sasl.password\" = \"{password}\"\n\"ssl.ca.location\" = \"{}\"\n",
        sasl.username,
        ca.display()
    );
    let path = dir.join(format!("orders-{}.toml", free_port()));
    std::fs::write(&path, spec).unwrap();
    path.display().to_string()
}

fn job(spec: &str, sasl: &Sasl, password: &str, metrics: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_driftwatch"));
    c.args(["run", spec, "--stop-at-end", "--brokers", &sasl.addr])
        .args(["--source-topic", "sec.src", "--target-topic", "sec.tgt"])
        .args([
            "--drift-topic",
            "sec.drift",
            "--corrections-topic",
            "sec.corr",
        ])
        .args(["--dlq-topic", "sec.dlq", "--metrics-addr", metrics])
        .env("KAFKA_PASSWORD", password)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// Runs a job that should be refused: its output and how long it took.
fn refused(mut command: Command) -> (Output, Duration) {
    let start = Instant::now();
    let out = command.output().unwrap();
    (out, start.elapsed())
}

fn one_line(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    lines[0].to_string()
}

#[test]
fn over_sasl_ssl_the_job_reads_writes_and_commits_and_bad_credentials_are_refused_by_name() {
    let broker = Broker::start();
    let sasl = broker.sasl();
    let g = generate(&GenConfig {
        events: 1_000,
        keys: 100,
        seed: 12,
        p_drop: 0.03,
        p_corrupt: 0.02,
        ..GenConfig::default()
    });
    assert!(!g.expected.is_empty());
    for (topic, lines) in [("sec.src", &g.source), ("sec.tgt", &g.target)] {
        broker.create_topic(topic, 2);
        broker.produce(topic, &keyed(lines));
    }
    broker.create_outputs("sec");
    let dir = tempfile::tempdir().unwrap();
    let spec = secured_spec(dir.path(), &sasl, &sasl.ca, "${KAFKA_PASSWORD}");

    // The job over SASL_SSL, its metrics scraped while it runs.
    let metrics = format!("127.0.0.1:{}", free_port());
    let mut child = job(&spec, &sasl, &sasl.password, &metrics).spawn().unwrap();
    let mut scraped = String::new();
    while child.try_wait().unwrap().is_none() {
        let text = scrape(&metrics);
        if !text.is_empty() {
            scraped = text;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(scraped.contains("driftwatch_"), "no metrics scraped");
    for text in [
        &stderr,
        &String::from_utf8_lossy(&out.stdout),
        &scraped.into(),
    ] {
        assert!(
            !text.contains(&sasl.password),
            "the password leaked: {text}"
        );
    }
    // It read everything, committed its offsets and wrote its drift.
    for topic in ["sec.src", "sec.tgt"] {
        assert_eq!(
            broker.committed("driftwatch.orders", topic, 2),
            broker.ends(topic, 2),
            "{topic}"
        );
    }
    let drift = broker.consume_all("sec.drift");
    let open: std::collections::BTreeSet<i64> = drift
        .iter()
        .filter_map(|r| {
            let v: serde_json::Value = serde_json::from_str(r.value.as_deref()?).ok()?;
            (v["status"] == "open").then(|| v["key"]["id"].as_i64().unwrap())
        })
        .collect();
    for id in g.expected.keys() {
        assert!(open.contains(id), "order {id} was not reported: {open:?}");
    }
    assert!(!broker.consume_all("sec.corr").is_empty());

    // A wrong password: refused within seconds, one line that says so, no secret.
    let wrong = "not-the-password-8d1c";
    let (out, took) = refused(job(
        &spec,
        &sasl,
        wrong,
        &format!("127.0.0.1:{}", free_port()),
    ));
    let line = one_line(&out);
    assert_eq!(out.status.code(), Some(2), "{line}");
    assert!(took < Duration::from_secs(15), "took {took:?}: {line}");
    assert!(line.contains("refused the credentials"), "{line}");
    assert!(
        !line.contains(wrong) && !line.contains(&sasl.password),
        "{line}"
    );

    // An untrusted certificate (the right password, the wrong CA).
    let untrusted = secured_spec(dir.path(), &sasl, &sasl.other_ca, "${KAFKA_PASSWORD}");
    let (out, took) = refused(job(
        &untrusted,
        &sasl,
        &sasl.password,
        &format!("127.0.0.1:{}", free_port()),
    ));
    let line = one_line(&out);
    assert_eq!(out.status.code(), Some(2), "{line}");
    assert!(took < Duration::from_secs(15), "took {took:?}: {line}");
    assert!(
        line.contains("certificate") && line.contains("not trusted"),
        "{line}"
    );
    assert!(!line.contains(&sasl.password), "{line}");

    // `validate` masks the secret even when the spec holds it literally.
    let literal = secured_spec(dir.path(), &sasl, &sasl.ca, &sasl.password);
    let out = Command::new(env!("CARGO_BIN_EXE_driftwatch"))
        .args(["validate", &literal])
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{shown}");
    assert!(shown.contains("sasl.username"), "{shown}");
    assert!(!shown.contains(&sasl.password), "{shown}");

    // `init` reaches the secured cluster with -X properties, and its specs carry them
    // with the secret as the environment variable it came from.
    broker.create_topic("secsrc.public.orders", 1);
    broker.create_topic("secdst.public.orders", 1);
    broker.produce("secsrc.public.orders", &keyed(&g.source[..5]));
    broker.produce("secdst.public.orders", &keyed(&g.target[..5]));
    let init = |password_property: &str| {
        Command::new(env!("CARGO_BIN_EXE_driftwatch"))
            .args(["init", "--brokers", &sasl.addr])
            .args(["--source-prefix", "secsrc", "--target-prefix", "secdst"])
            .arg("--out")
            .arg(dir.path().join("init"))
            .args([
                "-X",
                "security.protocol=SASL_SSL",
                "-X",
                "sasl.mechanism=SCRAM-SHA-512",
            ])
            .args(["-X", &format!("sasl.username={}", sasl.username)])
            .args(["-X", password_property])
            .args(["-X", &format!("ssl.ca.location={}", sasl.ca.display())])
            .env("KAFKA_PASSWORD", &sasl.password)
            .output()
            .unwrap()
    };
    let out = init("sasl.password=${KAFKA_PASSWORD}");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("1 spec(s) written"), "{said}");
    let written = std::fs::read_to_string(dir.path().join("init/orders.toml")).unwrap();
    assert!(
        written.contains("\"sasl.password\" = \"${KAFKA_PASSWORD}\""),
        "{written}"
    );
    assert!(!written.contains(&sasl.password), "{written}");
    // A literal secret would be written into every spec: refused, and not shown.
    let out = init(&format!("sasl.password={}", sasl.password));
    let line = one_line(&out);
    assert_eq!(out.status.code(), Some(2), "{line}");
    assert!(line.contains("give a secret as ${VAR}"), "{line}");
    assert!(!line.contains(&sasl.password), "{line}");
}
