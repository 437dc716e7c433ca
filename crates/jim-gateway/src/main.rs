//! `jim-gateway`: see `jim-gateway --help`.

/// mimalloc instead of the system allocator: less CPU per message, and far
/// less memory kept per connection (glibc fragments between handshakes'
/// short-lived buffers and the connections' long-lived state); see
/// docs/benchmarks.md.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    jim_gateway::cli::main()
}
