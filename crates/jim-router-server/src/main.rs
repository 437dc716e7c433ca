//! The `jim-router` binary: see the `jim_router_server` crate.

fn main() -> std::process::ExitCode {
    jim_router_server::main()
}
