//! The command-line flags (and `JIM_HOOKS_*` variables) that both
//! binaries take for the events: the gateway's and the router's.

use crate::HooksConfig;

/// `--hooks-events-url`, `--hooks-secret`, `--hooks-previous-secret`
/// (`JIM_HOOKS_EVENTS_URL`, `JIM_HOOKS_SECRET`, `JIM_HOOKS_PREVIOUS_SECRET`):
/// flatten them into a binary's arguments, then [`apply`](Self::apply).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct EventFlags {
    /// Where events are POSTed (`hooks.events_url`).
    #[arg(long, env = "JIM_HOOKS_EVENTS_URL")]
    pub hooks_events_url: Option<String>,
    /// The secret that signs hook and event requests (`hooks.secret`).
    #[arg(long, env = "JIM_HOOKS_SECRET", hide_env_values = true)]
    pub hooks_secret: Option<String>,
    /// The secret being rotated out (`hooks.previous_secret`).
    #[arg(long, env = "JIM_HOOKS_PREVIOUS_SECRET", hide_env_values = true)]
    pub hooks_previous_secret: Option<String>,
}

impl EventFlags {
    /// Sets in `config` what was given, over the file's values.
    pub fn apply(&self, config: &mut HooksConfig) {
        for (flag, setting) in [
            (&self.hooks_events_url, &mut config.events_url),
            (&self.hooks_secret, &mut config.secret),
            (&self.hooks_previous_secret, &mut config.previous_secret),
        ] {
            if flag.is_some() {
                setting.clone_from(flag);
            }
        }
    }
}
