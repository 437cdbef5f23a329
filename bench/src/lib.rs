//! Benchmarks and the load generator of boxoffice.
//!
//! The criterion benchmarks live in `benches/`; the load generator `boxoffice-load` is the
//! [`load`] module, with a thin binary in `src/bin/boxoffice-load.rs`; the live-stream
//! benchmark `boxoffice-stream-bench` is the [`stream`] module.
#![warn(clippy::too_many_lines)]

pub mod load;
pub mod stream;
