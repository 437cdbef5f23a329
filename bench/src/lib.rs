//! Benchmarks and the load generator of boxoffice.
//!
//! The criterion benchmarks live in `benches/`; the load generator `boxoffice-load` is the
//! [`load`] module, with a thin binary in `src/bin/boxoffice-load.rs`.

pub mod load;
