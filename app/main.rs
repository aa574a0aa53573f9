//! The `lgo-dash` binary: everything lives in the library so tests can drive it.

/// mimalloc: the telemetry path allocates many small, short-lived records; glibc malloc spent
/// a third of OTLP ingest consolidating chunks.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    lgo_dash::main()
}
