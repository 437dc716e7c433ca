//! Command-line mistakes, explained.

use clap::builder::StyledStr;
use clap::error::{ContextKind, ContextValue, ErrorKind};

/// What to say of a listener flag spelt as other servers spell it.
const LISTENERS: &str = "each listener has its own address: --tcp ADDR, --ws ADDR, --admin ADDR (for example --tcp 127.0.0.1:9800), or `off`";

/// Flags people reach for that our binaries spell otherwise, and what to
/// say instead.
const INSTEAD: &[(&str, &str)] = &[
    ("--port", LISTENERS),
    ("--listen", LISTENERS),
    ("--host", LISTENERS),
    ("--verbose", "the log filter is --log (for example --log debug)"),
];

/// Adds to clap's error for an unknown flag what clap leaves out: the
/// nearest flag of `command` when the letters are only swapped or slightly
/// off (`--dve`: `--dev`), a tip for flags spelt otherwise here
/// (`--port`), and the whole usage instead of the part already typed.
///
/// ```
/// use clap::{CommandFactory, Parser};
///
/// #[derive(Parser, Debug)]
/// struct Args {
///     #[arg(long)]
///     dev: bool,
/// }
///
/// let error = Args::try_parse_from(["app", "--dve"]).unwrap_err();
/// let explained = jim_service::explain_cli_error(error, &Args::command());
/// assert!(explained.to_string().contains("'--dev'"));
/// ```
pub fn explain_cli_error(mut error: clap::Error, command: &clap::Command) -> clap::Error {
    if error.kind() != ErrorKind::UnknownArgument {
        return error;
    }
    let Some(ContextValue::String(typed)) = error.get(ContextKind::InvalidArg).cloned() else {
        return error;
    };
    let flag = typed.split('=').next().unwrap_or(&typed).to_owned();
    if let Some((_, tip)) = INSTEAD.iter().find(|(wrong, _)| *wrong == flag) {
        error.insert(
            ContextKind::Suggested,
            ContextValue::StyledStrs(vec![StyledStr::from(*tip)]),
        );
    } else if error.get(ContextKind::SuggestedArg).is_none()
        && let Some(nearest) = nearest_flag(&flag, command)
    {
        error.insert(ContextKind::SuggestedArg, ContextValue::String(nearest));
    }
    let mut command = command.clone();
    error.insert(
        ContextKind::Usage,
        ContextValue::StyledStr(command.render_usage()),
    );
    error
}

/// The long flag of `command` (or of its subcommands) closest to `typed`,
/// if it is close: two edits at most, swaps counting as one.
fn nearest_flag(typed: &str, command: &clap::Command) -> Option<String> {
    let typed = typed.strip_prefix("--")?;
    let flags = command
        .get_arguments()
        .chain(command.get_subcommands().flat_map(clap::Command::get_arguments))
        .filter_map(|arg| arg.get_long());
    flags
        .map(|flag| (strsim::osa_distance(typed, flag), flag))
        .filter(|(distance, flag)| *distance <= 2 && *distance < flag.len())
        .min()
        .map(|(_, flag)| format!("--{flag}"))
}
