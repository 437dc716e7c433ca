//! `jim-gateway`, under the name these tests declare.

fn main() -> std::process::ExitCode {
    jim_gateway::cli::main()
}
