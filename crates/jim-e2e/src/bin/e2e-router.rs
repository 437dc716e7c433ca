//! `jim-router`, under the name these tests declare.

fn main() -> std::process::ExitCode {
    jim_router_server::main()
}
