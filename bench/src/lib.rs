//! Benchmarks and the load generator of boxoffice.
