//! `boxoffice wal verify` and `boxoffice wal dump`: read-only looks at every shard's log.

use std::io::Write;
use std::path::Path;

use engine::Decision;

use crate::datadir::{recorded_shards, shard_dir};

/// Checks every shard's records and snapshots. Err names the file and offset.
pub fn verify(data_dir: &Path) -> Result<(), String> {
    let shards = recorded_shards(data_dir).map_err(|e| e.to_string())?;
    for index in 0..shards {
        let dir = shard_dir(data_dir, index);
        let report = wal::verify(&dir).map_err(|e| format!("shard {index}: {e}"))?;
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
        let dir = shard_dir(data_dir, index);
        let mut failure = None;
        wal::inspect(&dir, |item| {
            let line = match item {
                wal::Item::Snapshot { path, seq, bytes } => serde_json::json!({
                    "shard": index, "snapshot": path.display().to_string(), "seq": seq, "bytes": bytes.len()
                }),
                wal::Item::Record { path, offset, seq, bytes } => match Decision::decode(bytes) {
                    Ok(decision) => serde_json::json!({
                        "shard": index, "seq": seq, "decision": decision
                    }),
                    Err(e) => {
                        failure.get_or_insert(format!(
                            "{}: record {seq} at offset {offset} does not decode: {e:?}",
                            path.display()
                        ));
                        return;
                    }
                },
            };
            let _ = writeln!(out, "{line}");
        })
        .map_err(|e| format!("shard {index}: {e}"))?;
        if let Some(failure) = failure {
            return Err(failure);
        }
    }
    out.flush().map_err(|e| e.to_string())
}
