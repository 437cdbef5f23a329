//! `boxoffice-load`: see `bench::load` and docs/load.md.

fn main() -> std::process::ExitCode {
    bench::load::main()
}
