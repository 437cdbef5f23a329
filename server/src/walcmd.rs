//! `boxoffice wal verify` and `boxoffice wal dump`: read-only looks at every shard's log.

use std::io::Write;
use std::path::Path;

use engine::Decision;

use crate::datadir::{recorded_shards, shard_dir};

/// Checks every shard's records and snapshots: every frame and checksum, every record
/// decodes as a decision, no snapshot is damaged, and no records are missing between the
/// newest snapshot and the log. Err names the file and offset.
pub fn verify(data_dir: &Path) -> Result<(), String> {
    let shards = recorded_shards(data_dir).map_err(|e| e.to_string())?;
    for index in 0..shards {
        let dir = shard_dir(data_dir, index);
        let report = visit(&dir, index, |_| {})?;
        if let Some(path) = report.damaged_snapshots.first() {
            return Err(format!(
                "shard {index}: snapshot {} is damaged (the server falls back to an older \
                 one, if any)",
                path.display()
            ));
        }
        let covered = report.snapshots.iter().max().copied().unwrap_or(0);
        if let Some(first) = report.first_seq.filter(|&first| first > covered + 1) {
            return Err(format!(
                "shard {index}: records {}..{} are missing in {} (the newest snapshot \
                 covers up to {covered})",
                covered + 1,
                first - 1,
                dir.display()
            ));
        }
        println!("shard {index}: {report:?}");
    }
    println!("ok: {shards} shard(s) verified");
    Ok(())
}

/// Prints every snapshot (its seq and size) and every decision as JSON lines.
pub fn dump(data_dir: &Path) -> Result<(), String> {
    let shards = recorded_shards(data_dir).map_err(|e| e.to_string())?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for index in 0..shards {
        visit(&shard_dir(data_dir, index), index, |line| {
            let _ = writeln!(out, "{line}");
        })?;
    }
    out.flush().map_err(|e| e.to_string())
}

/// Reads one shard's log read-only, decoding every record, and hands each snapshot and
/// decision to `f` as a JSON line. Err: the first damage, with file and offset.
fn visit(
    dir: &Path,
    index: usize,
    mut f: impl FnMut(serde_json::Value),
) -> Result<wal::VerifyReport, String> {
    let mut failure = None;
    let report = wal::inspect(dir, |item| match item {
        wal::Item::Snapshot { path, seq, bytes } => f(serde_json::json!({
            "shard": index, "snapshot": path.display().to_string(), "seq": seq, "bytes": bytes.len()
        })),
        wal::Item::Record {
            path,
            offset,
            seq,
            bytes,
        } => match Decision::decode(bytes) {
            Ok(decision) => f(serde_json::json!({
                "shard": index, "seq": seq, "decision": decision
            })),
            Err(e) => {
                failure.get_or_insert(format!(
                    "{}: record {seq} at offset {offset} does not decode: {e:?}",
                    path.display()
                ));
            }
        },
    })
    .map_err(|e| format!("shard {index}: {e}"))?;
    match failure {
        Some(failure) => Err(format!("shard {index}: {failure}")),
        None => Ok(report),
    }
}
