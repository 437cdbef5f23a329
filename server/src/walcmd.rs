//! `boxoffice wal verify` and `boxoffice wal dump`: read-only looks at every shard's log,
//! in the words of the API. Ids are spelled as the API spells them (`h-1-1`, `b-0-3`,
//! seat `A-12`, the event's and the user's own ids), times in RFC 3339, and damage as
//! "file, offset, what is wrong, what to do".

use std::io::Write;
use std::path::{Path, PathBuf};

use engine::{BookingId, Decision, Engine, HoldId};
use serde_json::{Map, Value};

use crate::datadir::{recorded_shards, shard_dir};

/// Checks every shard's records and snapshots: every frame and checksum, every record
/// decodes as a decision, no snapshot is damaged, and no records are missing between the
/// newest snapshot and the log. Prints a summary per shard; Err describes the first
/// damage (file, offset, what is wrong, what to do).
pub fn verify(data_dir: &Path) -> Result<(), String> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let shards = recorded_shards(data_dir).map_err(|e| e.to_string())?;
    for index in 0..shards {
        let dir = shard_dir(data_dir, index);
        let report = visit(data_dir, &dir, index, None::<fn(Value)>)?;
        if let Some(path) = report.damaged_snapshots.first() {
            return Err(damage(
                path,
                None,
                "the snapshot's checksum or header does not verify",
                "the server falls back to the snapshot before it plus the log, and its next \
                 snapshot replaces this file; if no older snapshot and no log from seq 1 \
                 remain, restore this shard directory from a backup",
            ));
        }
        let covered = report.snapshots.iter().max().copied().unwrap_or(0);
        if let Some(first) = report.first_seq.filter(|&first| first > covered + 1) {
            return Err(damage(
                &dir,
                None,
                &format!(
                    "records {}..{} are missing (the newest snapshot covers up to seq \
                     {covered}, the first segment starts at seq {first})",
                    covered + 1,
                    first - 1
                ),
                "the server will not start on this shard: restore this shard directory \
                 from a backup (snapshots and segments copied together)",
            ));
        }
        let _ = writeln!(out, "{}", summary(data_dir, index, &report));
    }
    let _ = writeln!(out, "ok: {shards} shard(s) verified");
    Ok(())
}

/// One shard's summary line(s): snapshot, segments, records, last seq, torn tail.
fn summary(data_dir: &Path, index: usize, report: &wal::VerifyReport) -> String {
    let snapshot = match report.snapshots.iter().max() {
        Some(seq) => format!("snapshot at seq {seq}"),
        None => "no snapshot".to_string(),
    };
    let records = match report.first_seq {
        Some(first) => format!(
            "{} record(s), seq {first} to {}",
            report.records, report.last_seq
        ),
        None => "no records".to_string(),
    };
    let last = report
        .snapshots
        .iter()
        .max()
        .copied()
        .unwrap_or(0)
        .max(report.last_seq);
    let mut line = format!(
        "shard {index}: {snapshot}; {} segment(s); {records}; last seq {last}",
        report.segments
    );
    if let Some(torn) = &report.torn_tail {
        line.push_str(&format!(
            "\n  torn tail: {}, offset {}: {} byte(s) of a write cut by a crash; the server \
             cuts them at its next start (nothing acknowledged is in them)",
            relative(data_dir, &torn.path),
            torn.offset,
            torn.bytes_cut
        ));
    }
    line
}

/// Prints every snapshot and every decision as JSON lines, one per line, in words.
pub fn dump(data_dir: &Path) -> Result<(), String> {
    let shards = recorded_shards(data_dir).map_err(|e| e.to_string())?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for index in 0..shards {
        let print = |line: Value| {
            let _ = writeln!(out, "{}", ordered(line));
        };
        visit(data_dir, &shard_dir(data_dir, index), index, Some(print))?;
    }
    out.flush().map_err(|e| e.to_string())
}

/// A dump line as JSON with `shard`, `seq`, `snapshot`, `at` and `decision` first, then
/// the other fields by name.
fn ordered(line: Value) -> String {
    const FIRST: [&str; 5] = ["shard", "seq", "snapshot", "at", "decision"];
    let Value::Object(mut map) = line else {
        return line.to_string();
    };
    let mut parts = Vec::with_capacity(map.len());
    for key in FIRST {
        if let Some(value) = map.remove(key) {
            parts.push(format!("{}:{value}", Value::from(key)));
        }
    }
    for (key, value) in map {
        parts.push(format!("{}:{value}", Value::from(key)));
    }
    format!("{{{}}}", parts.join(","))
}

/// "file, offset: what is wrong. What to do: ...".
fn damage(path: &Path, offset: Option<u64>, what: &str, to_do: &str) -> String {
    let place = match offset {
        Some(offset) => format!("{}, offset {offset}", path.display()),
        None => path.display().to_string(),
    };
    format!("damage: {place}: {what}. What to do: {to_do}")
}

/// A log error in words.
fn log_error(index: usize, dir: &Path, error: wal::Error) -> String {
    match error {
        wal::Error::Corrupt {
            path,
            offset,
            reason,
        } => damage(
            &path,
            Some(offset),
            &reason,
            "the server will not start on this shard (a crash cannot explain damage before \
             good records). Keep a copy of the whole data directory as it is, then restore \
             this shard directory from a backup; the file and the bytes around the offset \
             show what happened",
        ),
        wal::Error::Io { path, op, source }
            if source.kind() == std::io::ErrorKind::NotFound && path == dir =>
        {
            damage(
                &path,
                None,
                &format!("shard {index}'s log directory is missing ({op})"),
                "restore it from a backup of this data directory",
            )
        }
        other => format!("shard {index}: {other}"),
    }
}

/// Reads one shard's log read-only, decoding every record and snapshot, and, given `f`,
/// hands each snapshot and decision to it as a JSON line in words (see [`Visit`]).
/// Err: the first damage.
fn visit(
    data_dir: &Path,
    dir: &Path,
    index: usize,
    f: Option<impl FnMut(Value)>,
) -> Result<wal::VerifyReport, String> {
    let mut visit = Visit {
        data_dir,
        index,
        f,
        names: Engine::new(index as u16),
        covered: 0,
        failure: None,
    };
    let report = wal::inspect(dir, |item| match item {
        wal::Item::Snapshot { path, seq, bytes } => visit.snapshot(path, seq, bytes),
        wal::Item::Record {
            path,
            offset,
            seq,
            bytes,
        } => visit.record(path, offset, seq, bytes),
    })
    .map_err(|e| log_error(index, dir, e))?;
    match visit.failure {
        Some(failure) => Err(failure),
        None => Ok(report),
    }
}

/// One shard's log being read by [`visit`]. Names come from an engine restored from the
/// newest snapshot and brought forward by the records after it.
struct Visit<'a, F> {
    data_dir: &'a Path,
    index: usize,
    /// Takes each line (none for `wal verify`).
    f: Option<F>,
    /// The engine that names ids.
    names: Engine,
    /// The seq up to which `names` is brought.
    covered: u64,
    /// The first damage found.
    failure: Option<String>,
}

impl<F: FnMut(Value)> Visit<'_, F> {
    /// Snapshot `seq` (file `path`): its line with its time and contents when it decodes;
    /// the newest one becomes the engine that names ids.
    fn snapshot(&mut self, path: &Path, seq: u64, bytes: &[u8]) {
        let restored = Engine::restore(bytes);
        let mut line = Map::new();
        line.insert("shard".into(), self.index.into());
        line.insert("snapshot".into(), relative(self.data_dir, path).into());
        line.insert("seq".into(), seq.into());
        line.insert("bytes".into(), bytes.len().into());
        match restored {
            Ok(engine) => {
                let stats = engine.stats();
                line.insert(
                    "at".into(),
                    rfc3339(engine.now_ms()).map_or(Value::Null, Value::from),
                );
                line.insert(
                    "contents".into(),
                    serde_json::json!({
                        "events": stats.events,
                        "bookings": stats.bookings,
                        "holds_live": stats.holds_live,
                        "tickets_sold": stats.tickets_sold,
                        "tickets_held": stats.tickets_held,
                    }),
                );
                if seq >= self.covered {
                    self.names = engine;
                    self.covered = seq;
                }
            }
            Err(e) => {
                self.failure.get_or_insert(damage(
                    path,
                    None,
                    &format!("the snapshot does not decode: {e}"),
                    "this build cannot read it: run the release that wrote it, or \
                     remove it so that the server starts from the older snapshot and \
                     the log",
                ));
            }
        }
        if let Some(f) = self.f.as_mut() {
            f(Value::Object(line));
        }
    }

    /// Record `seq` (at `offset` of segment `path`): given `f`, its decision in words, then
    /// applied to the naming engine when the snapshot does not cover it.
    fn record(&mut self, path: &Path, offset: u64, seq: u64, bytes: &[u8]) {
        match Decision::decode(bytes) {
            Ok(decision) => {
                let Some(f) = self.f.as_mut() else { return };
                let mut line = Map::new();
                line.insert("shard".into(), self.index.into());
                line.insert("seq".into(), seq.into());
                describe(&self.names, &decision, &mut line);
                f(Value::Object(line));
                if seq > self.covered {
                    self.names.apply(&decision);
                }
            }
            Err(e) => {
                self.failure.get_or_insert(damage(
                    path,
                    Some(offset),
                    &format!("record {seq} does not decode as a decision: {e}"),
                    "its frame and checksum are good, so this build cannot read what \
                     another release wrote: run the release that wrote it",
                ));
            }
        }
    }
}

/// `path` relative to the data directory when it is inside it.
fn relative(data_dir: &Path, path: &Path) -> String {
    path.strip_prefix(data_dir)
        .map(PathBuf::from)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

/// Milliseconds since the Unix epoch as RFC 3339 UTC (`2026-12-01T19:48:29.123Z`).
fn rfc3339(ms: u64) -> Option<String> {
    let nanos = i128::from(ms).checked_mul(1_000_000)?;
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()?;
    at.format(&time::format_description::well_known::Rfc3339)
        .ok()
}

/// `HoldPlaced` → `hold_placed`.
fn snake(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Puts `decision` into `line` in words: `decision` (its kind), then its fields with ids
/// as the API spells them. Works from the decision's serde shape, so that a field keeps
/// its meaning in every variant (and in variants added later): `hold`, `booking`,
/// `event`, `user`, `lines`, `idem`, and `*_at_ms` times.
fn describe(names: &Engine, decision: &Decision, line: &mut Map<String, Value>) {
    describe_value(
        names,
        serde_json::to_value(decision).unwrap_or(Value::Null),
        line,
    );
}

/// A decision's serde form (`{"Kind": {fields}}`) in words: `decision` (its kind in
/// snake case) and its fields, ids as the API writes them.
fn describe_value(names: &Engine, value: Value, line: &mut Map<String, Value>) {
    let (kind, fields) = match value {
        Value::Object(map) if map.len() == 1 => {
            let (kind, fields) = map.into_iter().next().expect("one entry");
            (kind, fields)
        }
        Value::String(kind) => (kind, Value::Object(Map::new())),
        other => ("unknown".to_string(), other),
    };
    line.insert("decision".into(), snake(&kind).into());
    let Value::Object(fields) = fields else {
        line.insert("fields".into(), fields);
        return;
    };
    // The event the decision is about, for names of sections and seats.
    let mut event = fields
        .get("event")
        .and_then(Value::as_u64)
        .map(|e| e as u32);
    if event.is_none() {
        event = fields
            .get("hold")
            .and_then(Value::as_u64)
            .and_then(|h| names.event_of_hold(HoldId(h)))
            .or_else(|| {
                fields
                    .get("booking")
                    .and_then(Value::as_u64)
                    .and_then(|b| names.event_of_booking(BookingId(b)))
            });
        if let Some(id) = event.and_then(|e| names.event_id_of(e)) {
            line.insert("event".into(), id.into());
        }
    }
    for (name, value) in fields {
        put(names, event, &name, value, line);
    }
}

/// One field in words.
fn put(names: &Engine, event: Option<u32>, name: &str, value: Value, out: &mut Map<String, Value>) {
    match (name, value) {
        (_, Value::Null) => {}
        ("hold", Value::Number(n)) => {
            let id = n.as_u64().map(|n| HoldId(n).to_string());
            out.insert("hold".into(), id.map_or(Value::Number(n), Value::from));
        }
        ("entry", Value::Number(n)) => {
            let id = n.as_u64().map(|n| engine::EntryId(n).to_string());
            out.insert("entry".into(), id.map_or(Value::Number(n), Value::from));
        }
        // A cascade's release, expiry or cancellation, and what its waiting list did.
        ("base", base @ Value::Object(_)) => {
            let mut words = Map::new();
            describe_value(names, base, &mut words);
            out.insert("base".into(), Value::Object(words));
        }
        ("steps", Value::Array(steps)) => {
            let steps = steps
                .into_iter()
                .map(|step| {
                    let mut words = Map::new();
                    describe_value(names, step, &mut words);
                    if let Some(kind) = words.remove("decision") {
                        words.insert("step".into(), kind);
                    }
                    Value::Object(words)
                })
                .collect();
            out.insert("steps".into(), Value::Array(steps));
        }
        ("booking", Value::Number(n)) => {
            let id = n.as_u64().map(|n| BookingId(n).to_string());
            out.insert("booking".into(), id.map_or(Value::Number(n), Value::from));
        }
        ("event", Value::Number(n)) => {
            let id = n
                .as_u64()
                .and_then(|e| names.event_id_of(e as u32))
                .map(str::to_string);
            match id {
                Some(id) => out.insert("event".into(), id.into()),
                None => out.insert("event_index".into(), Value::Number(n)),
            };
        }
        ("event", Value::Object(spec)) => {
            let mut words = Map::new();
            for (name, value) in spec {
                put_plain(&name, value, &mut words);
            }
            out.insert("event".into(), Value::Object(words));
        }
        ("user", Value::Object(user)) => {
            let (how, which) = user.into_iter().next().unwrap_or(("".into(), Value::Null));
            let name = match (how.as_str(), &which) {
                ("Known", Value::Number(i)) => i
                    .as_u64()
                    .and_then(|i| names.user_of(i as u32))
                    .map(str::to_string),
                ("New", Value::String(user)) => Some(user.clone()),
                _ => None,
            };
            match name {
                Some(name) => out.insert("user".into(), name.into()),
                None => out.insert("user_index".into(), which),
            };
        }
        ("lines", Value::Object(lines)) => {
            for (kind, list) in lines {
                let Value::Array(list) = list else { continue };
                let words: Vec<Value> = list
                    .into_iter()
                    .map(|pair| line_in_words(names, event, &kind, pair))
                    .collect();
                out.insert(kind, Value::Array(words));
            }
        }
        ("idem", Value::Object(tag)) => {
            out.insert("idempotency".into(), idem_in_words(tag));
        }
        (name, value) => put_plain(name, value, out),
    }
}

/// An idempotency tag in words: its scope, key and fingerprint (hex).
fn idem_in_words(tag: Map<String, Value>) -> Value {
    let mut words = Map::new();
    for (name, value) in tag {
        match (name.as_str(), value) {
            ("scope", Value::String(s)) if s == "Admin" => {
                words.insert("scope".into(), "admin".into());
            }
            ("scope", Value::Object(user)) => {
                if let Some(Value::String(u)) = user.get("User") {
                    words.insert("scope".into(), format!("user {u}").into());
                }
            }
            ("fingerprint", Value::Number(n)) => {
                let hex = n.as_u64().map(|n| format!("{n:016x}"));
                words.insert(
                    "fingerprint".into(),
                    hex.map_or(Value::Number(n), Value::from),
                );
            }
            (name, value) => {
                words.insert(name.to_string(), value);
            }
        }
    }
    Value::Object(words)
}

/// A field that needs no engine names: `*_at_ms` becomes an RFC 3339 `*_at`, rows become
/// `{label, count}`, nested objects likewise.
fn put_plain(name: &str, value: Value, out: &mut Map<String, Value>) {
    match (name, value) {
        (_, Value::Null) => {}
        (name, Value::Number(n)) if name == "at_ms" || name.ends_with("_at_ms") => {
            let text = n
                .as_i64()
                .filter(|&ms| ms >= 0)
                .and_then(|ms| rfc3339(ms as u64));
            let key = name.trim_end_matches("_ms");
            match text {
                Some(text) => out.insert(key.to_string(), text.into()),
                None => out.insert(name.to_string(), Value::Number(n)),
            };
        }
        ("rows", Value::Array(rows)) => {
            let rows = rows
                .into_iter()
                .map(|row| match row {
                    Value::Array(pair) if pair.len() == 2 => {
                        serde_json::json!({"label": pair[0], "count": pair[1]})
                    }
                    other => other,
                })
                .collect();
            out.insert("rows".into(), Value::Array(rows));
        }
        (name, Value::Array(list)) => {
            let list = list
                .into_iter()
                .map(|item| match item {
                    Value::Object(map) => {
                        let mut words = Map::new();
                        for (name, value) in map {
                            put_plain(&name, value, &mut words);
                        }
                        Value::Object(words)
                    }
                    other => other,
                })
                .collect();
            out.insert(name.to_string(), Value::Array(list));
        }
        (name, value) => {
            out.insert(name.to_string(), value);
        }
    }
}

/// A GA line `[section, qty]` → `{section_id, qty}`; a seat `[section, seat]` → `"A-12"`.
fn line_in_words(names: &Engine, event: Option<u32>, kind: &str, pair: Value) -> Value {
    let Some((section, n)) = pair.as_array().and_then(|p| match p.as_slice() {
        [s, n] => Some((s.as_u64()?, n.as_u64()?)),
        _ => None,
    }) else {
        return pair;
    };
    let section = section as u16;
    let section_id = event.and_then(|e| names.section_id_of(e, section));
    match kind {
        "seats" => match event.and_then(|e| names.seat_label_of(e, section, n as u32)) {
            Some(label) => label.into(),
            None => pair,
        },
        _ => match section_id {
            Some(id) => serde_json::json!({"section_id": id, "qty": n}),
            None => pair,
        },
    }
}
