//! `[hooks]`: where the application's backend is, and how patiently Jim
//! talks to it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::HooksError;

/// `[hooks]` (contract section 9). Nothing is called or sent while both
/// URLs are unset (the default).
///
/// ```
/// let config: jim_hooks::HooksConfig = serde_json::from_str(
///     r#"{"events_url":"http://127.0.0.1:9100/events","secret":"a long shared secret"}"#,
/// ).unwrap();
/// config.validate().unwrap();
/// assert_eq!(config.offline_delay_ms, 5000);
/// assert!(config.before_send_url.is_none());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HooksConfig {
    /// Every B101/B102 is POSTed here before it is stored.
    pub before_send_url: Option<String>,
    /// How long the before-send hook may take.
    pub before_send_timeout_ms: u64,
    /// What a message gets when the hook times out, fails or answers
    /// garbage (and while the breaker is open).
    pub before_send_on_error: OnError,
    /// Hook calls in flight at once, at most (so many connections to the
    /// hook); more messages wait for one to end, within their timeout.
    pub before_send_max_in_flight: usize,
    /// Consecutive failures that open the breaker: the hook is then not
    /// called, `before_send_on_error` decides, for `breaker_open_ms`.
    pub breaker_failures: u32,
    /// How long the breaker stays open before one message tries the hook
    /// again.
    pub breaker_open_ms: u64,
    /// Batches of events are POSTed here.
    pub events_url: Option<String>,
    /// How long one POST of a batch may take before it counts as failed.
    pub events_timeout_ms: u64,
    /// Events per batch, at most.
    pub batch_max: usize,
    /// How long a batch waits to fill before it is sent.
    pub batch_wait_ms: u64,
    /// How long a user has no session before `user.offline` is sent.
    pub offline_delay_ms: u64,
    /// What `push.needed` shows of the message.
    pub push_preview: PushPreview,
    /// Signs every request (`Jim-Signature`).
    pub secret: Option<String>,
    /// The secret being replaced: requests carry a signature with each
    /// while both are set.
    pub previous_secret: Option<String>,
    /// How long a batch is retried before it is dropped (and counted).
    pub retry_for_secs: u64,
    /// Events waiting to be sent, at most; more are dropped and counted.
    pub max_queued: usize,
}

impl Default for HooksConfig {
    fn default() -> HooksConfig {
        HooksConfig {
            before_send_url: None,
            before_send_timeout_ms: 500,
            before_send_on_error: OnError::Deny,
            before_send_max_in_flight: 256,
            breaker_failures: 5,
            breaker_open_ms: 10_000,
            events_url: None,
            events_timeout_ms: 5_000,
            batch_max: 100,
            batch_wait_ms: 200,
            offline_delay_ms: 5_000,
            push_preview: PushPreview::Text,
            secret: None,
            previous_secret: None,
            retry_for_secs: 600,
            max_queued: 100_000,
        }
    }
}

/// What a message gets when the before-send hook cannot answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// Sent as if the hook had allowed it.
    Allow,
    /// Refused with 5000 (retry later).
    Deny,
}

/// What `push.needed` carries of the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PushPreview {
    /// The start of a text message's content (a label for other kinds).
    Text,
    /// Nothing of the content (`"preview": null`).
    None,
}

/// The shortest secret accepted: anything shorter is guessed.
pub const MIN_SECRET_LEN: usize = 16;

impl HooksConfig {
    /// Whether anything is to be called or sent.
    pub fn is_on(&self) -> bool {
        self.before_send_url.is_some() || self.events_url.is_some()
    }

    /// The before-send hook's timeout.
    pub fn before_send_timeout(&self) -> Duration {
        Duration::from_millis(self.before_send_timeout_ms)
    }

    /// How long an offline user waits before `user.offline`.
    pub fn offline_delay(&self) -> Duration {
        Duration::from_millis(self.offline_delay_ms)
    }

    /// Checks what start-up needs: URLs that are http(s) URLs, a secret
    /// when anything is called, limits that can be met.
    ///
    /// ```
    /// let config = jim_hooks::HooksConfig {
    ///     events_url: Some("http://127.0.0.1:9100/events".into()),
    ///     ..Default::default()
    /// };
    /// let error = config.validate().unwrap_err().to_string();
    /// assert!(error.contains("hooks.secret"), "{error}");
    /// ```
    ///
    /// # Errors
    /// [`HooksError::Config`] saying which key is wrong and why.
    pub fn validate(&self) -> Result<(), HooksError> {
        let bad = |reason: String| Err(HooksError::Config { reason });
        for (key, url) in [
            ("hooks.before_send_url", &self.before_send_url),
            ("hooks.events_url", &self.events_url),
        ] {
            let Some(url) = url else { continue };
            match reqwest::Url::parse(url) {
                Ok(parsed) if matches!(parsed.scheme(), "http" | "https") && parsed.host().is_some() => {}
                Ok(_) => {
                    return bad(format!(
                        "{key} = {url:?} must be an http:// or https:// URL with a host"
                    ));
                }
                Err(e) => return bad(format!("{key} = {url:?} is not a URL ({e})")),
            }
        }
        if !self.is_on() {
            return Ok(());
        }
        match &self.secret {
            None => {
                return bad(format!(
                    "hooks.secret is required when hooks.before_send_url or hooks.events_url is set: every request is signed with it (Jim-Signature), and the receiver checks it; use at least {MIN_SECRET_LEN} random characters (JIM_HOOKS_SECRET)"
                ));
            }
            Some(secret) if secret.len() < MIN_SECRET_LEN => {
                return bad(format!(
                    "hooks.secret is {} characters: use at least {MIN_SECRET_LEN}",
                    secret.len()
                ));
            }
            Some(_) => {}
        }
        if self
            .previous_secret
            .as_ref()
            .is_some_and(|s| s.len() < MIN_SECRET_LEN)
        {
            return bad(format!(
                "hooks.previous_secret must be at least {MIN_SECRET_LEN} characters"
            ));
        }
        for (key, value) in [
            ("hooks.before_send_timeout_ms", self.before_send_timeout_ms),
            ("hooks.events_timeout_ms", self.events_timeout_ms),
            ("hooks.breaker_open_ms", self.breaker_open_ms),
            ("hooks.batch_wait_ms", self.batch_wait_ms),
            ("hooks.breaker_failures", u64::from(self.breaker_failures)),
            (
                "hooks.before_send_max_in_flight",
                self.before_send_max_in_flight as u64,
            ),
        ] {
            if value == 0 {
                return bad(format!("{key} must be above 0"));
            }
        }
        if !(1..=1000).contains(&self.batch_max) {
            return bad(format!("hooks.batch_max = {} must be 1 to 1000", self.batch_max));
        }
        if self.max_queued < self.batch_max {
            return bad(format!(
                "hooks.max_queued = {} must be at least hooks.batch_max ({})",
                self.max_queued, self.batch_max
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(config: HooksConfig) -> String {
        config.validate().unwrap_err().to_string()
    }

    #[test]
    fn start_up_says_which_key_is_wrong() {
        let on = HooksConfig {
            events_url: Some("http://127.0.0.1:1/e".into()),
            secret: Some("0123456789abcdef".into()),
            ..HooksConfig::default()
        };
        on.validate().unwrap();
        HooksConfig::default().validate().unwrap();
        assert_eq!(
            error(HooksConfig {
                before_send_url: Some("ftp://x/y".into()),
                ..on.clone()
            }),
            "invalid [hooks] configuration: hooks.before_send_url = \"ftp://x/y\" must be an http:// or https:// URL with a host"
        );
        assert!(
            error(HooksConfig {
                events_url: Some("not a url".into()),
                ..on.clone()
            })
            .contains("hooks.events_url = \"not a url\" is not a URL")
        );
        assert_eq!(
            error(HooksConfig {
                secret: Some("short".into()),
                ..on.clone()
            }),
            "invalid [hooks] configuration: hooks.secret is 5 characters: use at least 16"
        );
        assert!(
            error(HooksConfig {
                batch_max: 0,
                ..on.clone()
            })
            .contains("hooks.batch_max = 0 must be 1 to 1000")
        );
        assert!(
            error(HooksConfig {
                before_send_timeout_ms: 0,
                ..on.clone()
            })
            .contains("hooks.before_send_timeout_ms must be above 0")
        );
        assert!(
            error(HooksConfig { max_queued: 10, ..on })
                .contains("hooks.max_queued = 10 must be at least hooks.batch_max (100)")
        );
    }

    #[test]
    fn unknown_keys_and_values_are_refused() {
        assert!(serde_json::from_str::<HooksConfig>(r#"{"event_url":"x"}"#).is_err());
        assert!(serde_json::from_str::<HooksConfig>(r#"{"before_send_on_error":"maybe"}"#).is_err());
        let config: HooksConfig =
            serde_json::from_str(r#"{"before_send_on_error":"allow","push_preview":"none"}"#).unwrap();
        assert_eq!(
            (config.before_send_on_error, config.push_preview),
            (OnError::Allow, PushPreview::None)
        );
    }
}
