//! `jim-gateway`: see `jim-gateway --help`.

/// jemalloc, not glibc's malloc: tokio aligns every socket's registration
/// and every task to a cache line, and glibc carves each such allocation
/// out of a larger chunk, leaving fragments that nothing of this size
/// reuses (measured with `malloc_info`: ~140 B per idle connection, 15%
/// of its memory). jemalloc's size classes are aligned already.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    jim_gateway::cli::main()
}
