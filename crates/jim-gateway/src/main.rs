//! `jim-gateway`: see `jim-gateway --help`.

fn main() -> std::process::ExitCode {
    jim_gateway::cli::main()
}
