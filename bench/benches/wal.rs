//! Criterion benchmarks of the write-ahead log: durable appends (append + one fdatasync
//! per batch) next to a raw `write` + `fdatasync` loop of the same bytes, measured in the
//! same run; and replay. Files go to a temporary directory under `target/` (a real disk,
//! not tmpfs). `cargo bench -p boxoffice-bench --bench wal`.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use wal::{Options, Wal};

fn bench_dir() -> tempfile::TempDir {
    let base = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench-tmp");
    std::fs::create_dir_all(&base).unwrap();
    tempfile::tempdir_in(base).unwrap()
}

fn durable_appends(c: &mut Criterion) {
    let mut group = c.benchmark_group("wal_durable_append");
    group
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_millis(500))
        .sample_size(20);
    for record_len in [64usize, 256] {
        for batch in [1usize, 64, 1024, 8192] {
            let records: Vec<Vec<u8>> = (0..batch)
                .map(|i| vec![(i % 251) as u8; record_len])
                .collect();
            group.throughput(Throughput::Elements(batch as u64));
            let id = format!("{batch}x{record_len}B");
            // The log as the server runs it (zeros reserved ahead), and without the
            // reservation (every fdatasync also writes the grown file's inode).
            for (name, preallocate_bytes) in [
                ("wal", Options::default().preallocate_bytes),
                ("wal_unreserved", 0),
            ] {
                group.bench_function(BenchmarkId::new(name, &id), |b| {
                    let dir = bench_dir();
                    let options = Options {
                        preallocate_bytes,
                        ..Options::default()
                    };
                    let (mut wal, _) = Wal::open(dir.path(), options).unwrap();
                    b.iter(|| {
                        wal.append(&records).unwrap();
                        wal.sync().unwrap();
                    })
                });
            }
            // The same bytes (record + 16-byte frame header) with a plain write + fdatasync.
            let raw = vec![7u8; batch * (record_len + wal::RECORD_HEADER_LEN)];
            group.bench_function(BenchmarkId::new("raw_write_fdatasync", &id), |b| {
                let dir = bench_dir();
                let mut file = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(dir.path().join("raw"))
                    .unwrap();
                b.iter(|| {
                    file.write_all(&raw).unwrap();
                    file.sync_data().unwrap();
                })
            });
        }
    }
    group.finish();
}

fn replay(c: &mut Criterion) {
    let mut group = c.benchmark_group("wal_replay");
    group
        .measurement_time(Duration::from_secs(3))
        .sample_size(10);
    const RECORDS: u64 = 1_000_000;
    let dir = bench_dir();
    {
        let (mut wal, _) = Wal::open(dir.path(), Options::default()).unwrap();
        let batch: Vec<Vec<u8>> = (0..8192).map(|i| vec![(i % 251) as u8; 64]).collect();
        let mut written = 0;
        while written < RECORDS {
            wal.append(&batch).unwrap();
            written += batch.len() as u64;
        }
        wal.sync().unwrap();
    }
    let (mut wal, _) = Wal::open(dir.path(), Options::default()).unwrap();
    let total = wal.last_seq();
    group.throughput(Throughput::Elements(total));
    group.bench_function("replay_64B_records_from_page_cache", |b| {
        b.iter(|| {
            let mut bytes = 0usize;
            let n = wal
                .replay(1, |_, payload| {
                    bytes += payload.len();
                    Ok::<(), ()>(())
                })
                .unwrap();
            assert_eq!(n, total);
            bytes
        })
    });
    group.finish();
}

criterion_group!(wal_benches, durable_appends, replay);
criterion_main!(wal_benches);
