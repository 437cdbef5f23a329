//! `boxoffice-stream-bench`: the live-availability stream's cost and speed (see
//! `bench/src/stream/mod.rs` and docs/benchmarks.md, "Live stream").

fn main() -> std::process::ExitCode {
    bench::stream::main()
}
