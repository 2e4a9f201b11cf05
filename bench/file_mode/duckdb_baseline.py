#!/usr/bin/env python3
"""The DuckDB baseline: the batch SQL a data engineer would write over the two dumps.

Each side's latest change per key by LSN (`arg_max`), a full outer join, and the orders
spec's compare rules (`dataflows/orders.toml`) in SQL: `_synced_at` ignored, `amount` a
Connect Decimal (base64 big-endian bytes at scale 2) on one side and a number on the
other, equal within 0.005; `updated_at` microseconds since the epoch on one side and an
RFC 3339 string on the other, equal as instants; every other column equal as JSON, an
absent column equal to `null`. It recomputes everything from scratch, as a batch engine
does.

    duckdb_baseline.py DIR PARTITIONS [THREADS]

prints one JSON line: events, bytes, secs, peak_rss, open ([missing, orphan, mismatch]).
"""

import json
import os
import sys
import time

import duckdb

SQL = """
-- A Connect Decimal's bytes: big-endian two's complement, unscaled.
CREATE MACRO unscaled(raw) AS
    CAST(('0x' || hex(raw)) AS HUGEINT)
    - CASE WHEN left(hex(raw), 1) >= '8' THEN CAST(1 AS HUGEINT) << (8 * octet_length(raw)) ELSE 0 END;

CREATE MACRO amount_of(v) AS CASE json_type(v)
    WHEN 'VARCHAR' THEN unscaled(from_base64(CASE json_type(v) WHEN 'VARCHAR' THEN json_extract_string(v, '$') ELSE '' END)) / 100.0
    ELSE TRY_CAST(v AS DOUBLE) END;

CREATE MACRO micros_of(v) AS CASE
    WHEN json_type(v) IN ('UBIGINT', 'BIGINT') THEN CAST(v AS BIGINT)
    WHEN json_type(v) = 'VARCHAR' THEN epoch_us(CAST(json_extract_string(v, '$') AS TIMESTAMPTZ))
    ELSE NULL END;

CREATE MACRO same(a, b) AS
    coalesce(json_extract(a, '$.id'), 'null') = coalesce(json_extract(b, '$.id'), 'null')
    AND coalesce(json_extract(a, '$.customer_id'), 'null') = coalesce(json_extract(b, '$.customer_id'), 'null')
    AND coalesce(json_extract(a, '$.status'), 'null') = coalesce(json_extract(b, '$.status'), 'null')
    AND coalesce(json_extract(a, '$.items'), 'null') = coalesce(json_extract(b, '$.items'), 'null')
    AND coalesce(json_extract(a, '$.note'), 'null') = coalesce(json_extract(b, '$.note'), 'null')
    AND coalesce(abs(amount_of(json_extract(a, '$.amount')) - amount_of(json_extract(b, '$.amount'))) <= 0.005 + 1e-9,
                 coalesce(json_extract(a, '$.amount'), 'null') = coalesce(json_extract(b, '$.amount'), 'null'))
    AND coalesce(micros_of(json_extract(a, '$.updated_at')) = micros_of(json_extract(b, '$.updated_at')), false);

CREATE MACRO latest(files) AS TABLE
    WITH events AS (
        SELECT CAST(json ->> '$.source.lsn' AS UBIGINT) AS lsn,
               json -> '$.after' AS after,
               coalesce(json ->> '$.after.id', json ->> '$.before.id') AS id
        FROM read_json_objects(files, format = 'newline_delimited')
    )
    -- A struct, so that a delete (a null `after`) can be the latest change.
    SELECT id, arg_max({'after': after}, lsn).after AS row
    FROM events
    GROUP BY id;

WITH s AS (SELECT * FROM latest($source)),
     t AS (SELECT * FROM latest($target)),
     j AS (
        SELECT CASE
                 WHEN (s.row IS NULL OR s.row = 'null') AND (t.row IS NULL OR t.row = 'null') THEN NULL
                 WHEN t.row IS NULL OR t.row = 'null' THEN 'missing'
                 WHEN s.row IS NULL OR s.row = 'null' THEN 'orphan'
                 WHEN NOT same(s.row, t.row) THEN 'mismatch'
               END AS kind
        FROM s FULL OUTER JOIN t ON s.id = t.id
     )
SELECT count(*) FILTER (kind = 'missing'),
       count(*) FILTER (kind = 'orphan'),
       count(*) FILTER (kind = 'mismatch')
FROM j;
"""


def peak_rss_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def main():
    data, partitions = sys.argv[1], int(sys.argv[2])
    threads = int(sys.argv[3]) if len(sys.argv) > 3 else os.cpu_count()
    files = lambda side: [os.path.join(data, f"{side}-{p}.jsonl") for p in range(partitions)]
    source, target = files("source"), files("target")
    started = time.monotonic()
    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    con.execute("SET TimeZone = 'UTC'")
    statements = [s for s in SQL.split(";") if s.strip()]
    for s in statements[:-1]:
        con.execute(s)
    open_drift = con.execute(statements[-1], {"source": source, "target": target}).fetchone()
    secs = time.monotonic() - started
    events = 0
    size = 0
    for f in source + target:
        size += os.path.getsize(f)
        with open(f, "rb") as fh:
            events += sum(1 for _ in fh)
    print(json.dumps({
        "events": events,
        "bytes": size,
        "secs": secs,
        "peak_rss": peak_rss_bytes(),
        "open": list(open_drift),
    }))


if __name__ == "__main__":
    main()
