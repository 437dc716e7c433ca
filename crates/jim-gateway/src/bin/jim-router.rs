//! `jim-router`: the central router of the `grpc` mode. See `jim-router --help`.

fn main() -> std::process::ExitCode {
    jim_gateway::router_cli::main()
}
