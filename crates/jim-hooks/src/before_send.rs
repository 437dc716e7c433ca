//! The before-send hook (`hooks.before_send_url`): every B101/B102 is
//! shown to the application before it is stored, which allows it, denies
//! it, or replaces some of its fields. A timeout, a failure or an answer
//! outside the contract is decided by `hooks.before_send_on_error`; after
//! `hooks.breaker_failures` of them in a row the breaker opens: for
//! `hooks.breaker_open_ms` the hook is not called at all (so a dead hook
//! costs one timeout per interval, not one per message), then one message
//! tries it again.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use jim_model::Conversation;
use jim_protocol::Command;
use serde_json::{Map, Value};
use tokio::time::Instant;

use crate::{HooksConfig, HooksError, HooksMetrics, OnError, Secrets};

/// Fields of `data` a replacement never changes: who sent it, to whom,
/// and the ids and times the server stamps.
pub const PROTECTED_FIELDS: [&str; 8] = [
    "sender_id",
    "sender_name",
    "sender_avatar",
    "receiver_id",
    "group_id",
    "message_id",
    "client_msg_id",
    "timestamp",
];

/// The longest deny reason passed on to the sender.
const MAX_REASON: usize = 200;

/// What the hook decided (or `on_error` for it).
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Send it as it is.
    Allow,
    /// Refuse it: the sender gets this error code and reason.
    Deny {
        /// 4000 to 4999 from the hook; 5000 when the hook failed.
        code: u16,
        /// Why, for the sender.
        reason: String,
    },
    /// Send it with these fields of `data` replaced (never the protected
    /// ones, which are left out).
    Replace {
        /// The fields.
        data: Map<String, Value>,
    },
}

/// One message as the hook is shown it.
#[derive(Debug, Clone, Copy)]
pub struct Proposed<'a> {
    /// The sending user.
    pub sender: &'a str,
    /// The sending session's device, when it said.
    pub device: Option<&'a str>,
    /// `B101` or `B102`.
    pub cmd: Command,
    /// The conversation, from the sender's side.
    pub conversation: &'a Conversation,
    /// The message as the client sent it (`{"type":..,"data":{..}}`).
    pub message: &'a [u8],
}

/// The client of the before-send hook: cheap to share.
#[derive(Debug)]
pub struct BeforeSend {
    client: reqwest::Client,
    url: String,
    timeout: Duration,
    on_error: OnError,
    failures_to_open: u32,
    open_for: Duration,
    secrets: Arc<Secrets>,
    breaker: Mutex<Breaker>,
    /// Calls in flight: one connection each.
    in_flight: tokio::sync::Semaphore,
    metrics: HooksMetrics,
}

#[derive(Debug, Default)]
struct Breaker {
    failures: u32,
    open_until: Option<Instant>,
    /// A call is trying the hook while the breaker is half open.
    trying: bool,
}

/// Why a call gave no verdict.
enum Failure {
    Timeout,
    Error(String),
    Garbage(String),
}

impl BeforeSend {
    pub(crate) fn new(
        config: &HooksConfig,
        client: reqwest::Client,
        secrets: Arc<Secrets>,
        metrics: HooksMetrics,
    ) -> BeforeSend {
        BeforeSend {
            client,
            url: config.before_send_url.clone().unwrap_or_default(),
            timeout: config.before_send_timeout(),
            on_error: config.before_send_on_error,
            failures_to_open: config.breaker_failures.max(1),
            open_for: Duration::from_millis(config.breaker_open_ms),
            secrets,
            breaker: Mutex::new(Breaker::default()),
            in_flight: tokio::sync::Semaphore::new(config.before_send_max_in_flight.max(1)),
            metrics,
        }
    }

    /// Asks the hook about `message`.
    pub async fn check(&self, message: &Proposed<'_>) -> Verdict {
        let trial = match self.admit() {
            Some(trial) => trial,
            None => {
                self.metrics.failures[3].increment(1);
                return self.fallback("its breaker is open after repeated failures");
            }
        };
        let started = Instant::now();
        let answer = self.call(message).await;
        self.metrics.hook_seconds.record(started.elapsed().as_secs_f64());
        self.settle(answer.is_ok(), trial);
        match answer {
            Ok(verdict) => {
                let i = match verdict {
                    Verdict::Allow => 0,
                    Verdict::Deny { .. } => 1,
                    Verdict::Replace { .. } => 2,
                };
                self.metrics.verdicts[i].increment(1);
                verdict
            }
            Err(Failure::Timeout) => {
                self.metrics.failures[0].increment(1);
                self.fallback("it timed out")
            }
            Err(Failure::Error(why)) => {
                self.metrics.failures[1].increment(1);
                tracing::warn!(url = %self.url, "before-send hook failed: {why}");
                self.fallback("it failed")
            }
            Err(Failure::Garbage(why)) => {
                self.metrics.failures[2].increment(1);
                tracing::warn!(url = %self.url, "before-send hook answered outside the contract: {why}");
                self.fallback("its answer was not understood")
            }
        }
    }

    /// What `hooks.before_send_on_error` decides when the hook could not
    /// answer (`why`, for the sender).
    pub fn fallback(&self, why: &str) -> Verdict {
        match self.on_error {
            OnError::Allow => Verdict::Allow,
            OnError::Deny => Verdict::Deny {
                code: 5000,
                reason: format!(
                    "message not sent: the application's check is unavailable ({why}); retry later"
                ),
            },
        }
    }

    /// Whether the hook may be called: `Some(trial)` yes (`trial`: the
    /// one call of a half-open breaker), `None` no (open).
    fn admit(&self) -> Option<bool> {
        let mut breaker = self.breaker.lock().unwrap_or_else(|e| e.into_inner());
        let Some(until) = breaker.open_until else {
            return Some(false);
        };
        if Instant::now() < until || breaker.trying {
            return None;
        }
        breaker.trying = true;
        self.metrics.breaker.set(2.0);
        Some(true)
    }

    fn settle(&self, ok: bool, trial: bool) {
        let mut breaker = self.breaker.lock().unwrap_or_else(|e| e.into_inner());
        if trial {
            breaker.trying = false;
        }
        if ok {
            breaker.failures = 0;
            if breaker.open_until.take().is_some() {
                tracing::info!(url = %self.url, "before-send hook answers again: breaker closed");
            }
            self.metrics.breaker.set(0.0);
            return;
        }
        breaker.failures += 1;
        if trial || (breaker.open_until.is_none() && breaker.failures >= self.failures_to_open) {
            breaker.open_until = Some(Instant::now() + self.open_for);
            self.metrics.breaker.set(1.0);
            tracing::warn!(
                url = %self.url,
                failures = breaker.failures,
                "before-send hook breaker open for {:?}: messages get hooks.before_send_on_error",
                self.open_for
            );
        }
    }

    async fn call(&self, message: &Proposed<'_>) -> Result<Verdict, Failure> {
        let body = request_body(message);
        let signature = self.secrets.sign(&body);
        let sent = self
            .client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(crate::SIGNATURE_HEADER, signature)
            .body(body)
            .send();
        // The timeout around it all, not reqwest's own per request: that
        // one closed the connection of every request (measured: hundreds
        // of TIME-WAITs a second), so none was reused.
        let answer = async {
            // Waiting for a turn counts toward the timeout.
            let _turn = self.in_flight.acquire().await;
            let answer = sent.await?;
            let status = answer.status();
            let bytes = answer.bytes().await?;
            Ok::<_, reqwest::Error>((status, bytes))
        };
        let (status, bytes) = match tokio::time::timeout(self.timeout, answer).await {
            Err(_) => return Err(Failure::Timeout),
            Ok(Err(e)) if e.is_timeout() => return Err(Failure::Timeout),
            Ok(Err(e)) => return Err(Failure::Error(e.to_string())),
            Ok(Ok(answer)) => answer,
        };
        if status != reqwest::StatusCode::OK {
            return Err(Failure::Error(format!("HTTP {status}")));
        }
        parse_verdict(&bytes).map_err(|e| Failure::Garbage(e.to_string()))
    }
}

/// `{"event":"message.before_send","sender":..,"device":..,"cmd":..,
/// "conversation":{..},"message":{type, data}}`.
fn request_body(message: &Proposed<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(160 + message.message.len());
    out.extend_from_slice(b"{\"event\":\"message.before_send\",\"sender\":");
    let _ = serde_json::to_writer(&mut out, message.sender);
    out.extend_from_slice(b",\"device\":");
    let _ = serde_json::to_writer(&mut out, &message.device);
    out.extend_from_slice(b",\"cmd\":\"");
    out.extend_from_slice(&message.cmd.code());
    out.extend_from_slice(b"\",\"conversation\":");
    let _ = serde_json::to_writer(&mut out, message.conversation);
    out.extend_from_slice(b",\"message\":");
    // The client's body, valid JSON already (it passed validation).
    out.extend_from_slice(message.message);
    out.push(b'}');
    out
}

/// Reads a hook's answer.
///
/// ```
/// use jim_hooks::{Verdict, parse_verdict};
///
/// assert_eq!(parse_verdict(br#"{"verdict":"allow"}"#)?, Verdict::Allow);
/// assert_eq!(
///     parse_verdict(br#"{"verdict":"deny","reason":"no spam"}"#)?,
///     Verdict::Deny { code: 4003, reason: "no spam".into() }
/// );
/// assert!(parse_verdict(br#"{"verdict":"deny","code":200}"#).is_err());
/// # Ok::<(), jim_hooks::HooksError>(())
/// ```
///
/// # Errors
/// [`HooksError::Answer`] for an answer outside the contract.
pub fn parse_verdict(answer: &[u8]) -> Result<Verdict, HooksError> {
    let bad = |reason: String| HooksError::Answer { reason };
    let answer: Map<String, Value> =
        serde_json::from_slice(answer).map_err(|e| bad(format!("something that is no JSON object ({e})")))?;
    match answer.get("verdict").and_then(Value::as_str) {
        Some("allow") => Ok(Verdict::Allow),
        Some("deny") => {
            let code = match answer.get("code") {
                None | Some(Value::Null) => 4003,
                Some(code) => match code.as_u64() {
                    Some(code @ 4000..=4999) => code as u16,
                    _ => return Err(bad(format!("a deny with code {code}, not 4000 to 4999"))),
                },
            };
            let mut reason = match answer.get("reason") {
                None | Some(Value::Null) => "message refused by the application".to_owned(),
                Some(Value::String(reason)) => reason.clone(),
                Some(other) => return Err(bad(format!("a deny whose reason is {other}, not a string"))),
            };
            if reason.len() > MAX_REASON {
                let mut end = MAX_REASON;
                while !reason.is_char_boundary(end) {
                    end -= 1;
                }
                reason.truncate(end);
            }
            Ok(Verdict::Deny { code, reason })
        }
        Some("replace") => match answer.get("data") {
            Some(Value::Object(data)) => {
                let mut data = data.clone();
                data.retain(|field, _| !PROTECTED_FIELDS.contains(&field.as_str()));
                Ok(Verdict::Replace { data })
            }
            _ => Err(bad("a replace without a `data` object".to_owned())),
        },
        Some(other) => Err(bad(format!("verdict {other:?} (allow, deny or replace)"))),
        None => Err(bad("no `verdict`".to_owned())),
    }
}

/// The message with `data`'s fields in place of its own: what a
/// `replace` verdict sends (then validated and stamped as any message;
/// its keys come out sorted).
///
/// ```
/// use serde_json::json;
///
/// let message = br#"{"type":"text","data":{"receiver_id":"bob","content":"see http://x"}}"#;
/// let data = json!({"content":"see [link]"}).as_object().unwrap().clone();
/// let replaced = jim_hooks::replaced(message, &data).unwrap();
/// assert_eq!(
///     String::from_utf8(replaced).unwrap(),
///     r#"{"data":{"content":"see [link]","receiver_id":"bob"},"type":"text"}"#
/// );
/// ```
///
/// # Errors
/// [`HooksError::Answer`] when `message` has no `data` object.
pub fn replaced(message: &[u8], data: &Map<String, Value>) -> Result<Vec<u8>, HooksError> {
    let mut message: Map<String, Value> =
        serde_json::from_slice(message).map_err(|e| HooksError::Answer {
            reason: format!("a replace for a message that is no object ({e})"),
        })?;
    let Some(Value::Object(fields)) = message.get_mut("data") else {
        return Err(HooksError::Answer {
            reason: "a replace for a message without `data`".to_owned(),
        });
    };
    for (field, value) in data {
        fields.insert(field.clone(), value.clone());
    }
    Ok(serde_json::to_vec(&message).unwrap_or_default())
}
