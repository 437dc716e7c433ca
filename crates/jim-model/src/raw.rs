//! Messages as the gateway handles them: read in one pass without building
//! typed structs, validated field by field, stamped by copying the sender's
//! JSON around the server's fields.
//!
//! Field values stay as borrowed JSON text ([`RawValue`]); only the fields
//! the contract defines are type-checked, and unknown fields are copied to
//! the output untouched.

use std::borrow::Cow;
use std::fmt;
use std::io::Write;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use crate::schema::{self, FieldSpec, FieldType};
use crate::strict;
use crate::{MessageId, MessageKind, ModelError};

/// A validated business message, borrowing the body it was read from.
///
/// ```
/// use jim_model::{MessageId, MessageKind, RawMessage, Stamp};
///
/// let body = br#"{"type":"text","data":{"sender_id":"spoofed","receiver_id":"2","content":"hi","x":[1]}}"#;
/// let message = RawMessage::parse(body)?;
/// assert_eq!(message.kind(), MessageKind::Text);
/// assert_eq!(message.receiver_id(), "2");
///
/// let mut out = Vec::new();
/// message.stamp(&Stamp::new("1", MessageId(42), 1_700_000_000_000), &mut out);
/// assert_eq!(
///     String::from_utf8(out).unwrap(),
///     r#"{"type":"text","data":{"sender_id":"1","receiver_id":"2","content":"hi","x":[1],"message_id":"42","timestamp":1700000000000}}"#
/// );
/// # Ok::<(), jim_model::ModelError>(())
/// ```
#[derive(Debug)]
pub struct RawMessage<'a> {
    kind: MessageKind,
    receiver_id: Cow<'a, str>,
    fields: Vec<RawField<'a>>,
    extra: Vec<(Cow<'a, str>, &'a RawValue)>,
}

/// One field of `data`: its key as sent, the contract field it is (if any),
/// and its JSON text.
#[derive(Debug)]
struct RawField<'a> {
    key: Cow<'a, str>,
    spec: Option<&'static FieldSpec>,
    value: &'a RawValue,
}

/// What the server writes into a message it accepts.
#[derive(Debug, Clone, Copy)]
pub struct Stamp<'s> {
    /// The authenticated user id of the sending session.
    pub sender_id: &'s str,
    /// The sender's display name from the token, replacing the client's.
    pub sender_name: Option<&'s str>,
    /// The sender's avatar from the token, replacing the client's.
    pub sender_avatar: Option<&'s str>,
    /// Where the stamp has no name (or avatar): whether the client's own
    /// is relayed as sent, or dropped (no display-name spoofing).
    pub client_profile: bool,
    /// The id given to the message.
    pub message_id: MessageId,
    /// Milliseconds since the Unix epoch.
    pub timestamp: u64,
}

impl<'s> Stamp<'s> {
    /// A stamp with no display name or avatar (the client's are kept).
    pub fn new(sender_id: &'s str, message_id: MessageId, timestamp: u64) -> Stamp<'s> {
        Stamp {
            sender_id,
            sender_name: None,
            sender_avatar: None,
            client_profile: true,
            message_id,
            timestamp,
        }
    }
}

impl<'a> RawMessage<'a> {
    /// Reads and validates a message body in one pass.
    ///
    /// # Errors
    /// A [`ModelError`] naming the offending field: malformed JSON, missing
    /// or non-string `type`, unknown type, missing or non-object `data`,
    /// and for each field of the kind, missing (when required), ill-typed
    /// or duplicated; or JSON that parsers read differently
    /// ([`strict::check`]).
    pub fn parse(body: &'a [u8]) -> Result<RawMessage<'a>, ModelError> {
        let envelope: Envelope<'a, DataSlot<'a>> = serde_json::from_slice(body).map_err(ModelError::Json)?;
        let (kind, data, extra) = envelope.into_parts()?;
        let DataSlot::Object(pairs) = data else {
            return Err(invalid("data", "an object"));
        };
        let specs = schema::fields(kind);
        let mut seen = 0u64;
        let mut receiver_id = None;
        let mut fields = Vec::with_capacity(pairs.len());
        for (key, value) in pairs {
            let found = specs.iter().enumerate().find(|(_, spec)| spec.matches(&key));
            let spec = match found {
                Some((index, spec)) => {
                    if seen & (1 << index) != 0 {
                        return Err(ModelError::DuplicateField {
                            field: format!("data.{}", spec.name),
                        });
                    }
                    seen |= 1 << index;
                    if value.get() == "null" {
                        seen &= !(1 << index); // null is absent, as in the typed model
                    } else {
                        check_type(spec, value)?;
                        if spec.name == "receiver_id" {
                            receiver_id = Some(json_str(value).map_err(|_| invalid_spec(spec))?);
                        }
                    }
                    Some(spec)
                }
                None => None,
            };
            fields.push(RawField { key, spec, value });
        }
        if let Some(missing) = specs
            .iter()
            .enumerate()
            .find(|(index, spec)| spec.required && seen & (1 << index) == 0)
        {
            return Err(ModelError::MissingField {
                field: format!("data.{}", missing.1.name),
            });
        }
        let receiver_id = match receiver_id {
            Some(id) if id.is_empty() => return Err(invalid("data.receiver_id", "a non-empty string")),
            Some(id) => id,
            // Only `error` has no receiver.
            None => Cow::Borrowed(""),
        };
        // Last, so that the errors above (a duplicate contract field among
        // them) keep naming the field. The keys of the envelope and of
        // `data` were read here; the values are checked as JSON text.
        // A contract field given twice (under any alias) was refused
        // above, and no unknown key is a contract field's name: only the
        // unknown keys can still repeat.
        if extra.len() > 1 {
            strict::unique_keys(extra.iter().map(|(key, _)| &**key), 0)?;
        }
        let unknown = fields.iter().filter(|f| f.spec.is_none());
        if unknown.clone().nth(1).is_some() {
            strict::unique_keys(unknown.map(|f| &*f.key), 0)?;
        }
        // One search of the whole body, instead of one per string: without
        // a backslash anywhere, no string can hide a lone surrogate.
        let escapes = strict::has_backslash(body);
        for value in fields
            .iter()
            .map(|f| f.value)
            .chain(extra.iter().map(|(_, v)| *v))
        {
            strict::check_value(body, value.get().as_bytes(), 2, escapes)?;
        }
        Ok(RawMessage {
            kind,
            receiver_id,
            fields,
            extra,
        })
    }

    /// The message's `type`.
    pub fn kind(&self) -> MessageKind {
        self.kind
    }

    /// `data.receiver_id`: a user id or a group id (empty only for `error`).
    pub fn receiver_id(&self) -> &str {
        &self.receiver_id
    }

    /// The JSON text of a field of `data` by its contract name (aliases
    /// resolved) or, for unknown fields, by its key.
    pub fn field(&self, name: &str) -> Option<&'a RawValue> {
        self.fields
            .iter()
            .find(|f| f.spec.map_or(&*f.key, |spec| spec.name) == name)
            .map(|f| f.value)
    }

    /// Writes the stamped message to `out`: `sender_id` (and `sender_name`,
    /// `sender_avatar` when the stamp has them) replace the client's (which
    /// are dropped without replacement unless `client_profile`),
    /// `message_id` and `timestamp` are added, aliased keys are written with
    /// their clean names, and everything else is copied as it was sent.
    pub fn stamp(&self, stamp: &Stamp<'_>, out: &mut Vec<u8>) {
        out.reserve(self.stamped_len_hint(stamp));
        out.extend_from_slice(b"{\"type\":\"");
        out.extend_from_slice(self.kind.as_str().as_bytes());
        out.extend_from_slice(b"\",\"data\":{\"sender_id\":");
        write_json_str(out, stamp.sender_id);
        if let Some(name) = stamp.sender_name {
            out.extend_from_slice(b",\"sender_name\":");
            write_json_str(out, name);
        }
        if let Some(avatar) = stamp.sender_avatar {
            out.extend_from_slice(b",\"sender_avatar\":");
            write_json_str(out, avatar);
        }
        for field in &self.fields {
            // By name, not only as contract fields: a kind without these
            // fields (an `ack`) may carry them as unknown keys, which the
            // server's own must not duplicate.
            let replaced = match field.spec.map_or(&*field.key, |spec| spec.name) {
                "sender_id" | "message_id" | "timestamp" => true,
                "sender_name" => stamp.sender_name.is_some() || !stamp.client_profile,
                "sender_avatar" => stamp.sender_avatar.is_some() || !stamp.client_profile,
                _ => false,
            };
            if !replaced {
                out.push(b',');
                write_key(out, field.spec, &field.key);
                out.extend_from_slice(field.value.get().as_bytes());
            }
        }
        let mut digits = itoa::Buffer::new();
        out.extend_from_slice(b",\"message_id\":\"");
        out.extend_from_slice(digits.format(stamp.message_id.0).as_bytes());
        out.extend_from_slice(b"\",\"timestamp\":");
        out.extend_from_slice(digits.format(stamp.timestamp).as_bytes());
        out.push(b'}');
        for (key, value) in &self.extra {
            out.push(b',');
            write_key(out, None, key);
            out.extend_from_slice(value.get().as_bytes());
        }
        out.push(b'}');
    }

    fn stamped_len_hint(&self, stamp: &Stamp<'_>) -> usize {
        let fields: usize = self
            .fields
            .iter()
            .map(|f| f.key.len() + f.value.get().len() + 4)
            .sum();
        let extra: usize = self.extra.iter().map(|(k, v)| k.len() + v.get().len() + 4).sum();
        let sender = stamp.sender_id.len()
            + stamp.sender_name.map_or(0, str::len)
            + stamp.sender_avatar.map_or(0, str::len);
        96 + fields + extra + sender
    }
}

/// `type` and `data.receiver_id` read without validating or keeping the rest:
/// what a router needs to pick the recipients.
///
/// ```
/// use jim_model::{MessageKind, Addressing};
///
/// let addressing = Addressing::peek(br#"{"type":"face","data":{"symbol":"[:smile]","receiver_id":"g1"}}"#)?;
/// assert_eq!((addressing.kind, &*addressing.receiver_id), (MessageKind::Face, "g1"));
/// # Ok::<(), jim_model::ModelError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addressing<'a> {
    /// The message's `type`.
    pub kind: MessageKind,
    /// `data.receiver_id`.
    pub receiver_id: Cow<'a, str>,
}

impl<'a> Addressing<'a> {
    /// Reads `type` and `data.receiver_id`, skipping everything else.
    ///
    /// # Errors
    /// Malformed JSON, a missing or unknown `type`, or a missing, non-string
    /// or empty `receiver_id`.
    pub fn peek(body: &'a [u8]) -> Result<Addressing<'a>, ModelError> {
        let envelope: Envelope<'a, ReceiverSlot<'a>> =
            serde_json::from_slice(body).map_err(ModelError::Json)?;
        let (kind, data, _) = envelope.into_parts()?;
        match data {
            ReceiverSlot::Found(id) if !id.is_empty() => Ok(Addressing {
                kind,
                receiver_id: id,
            }),
            ReceiverSlot::Found(_) | ReceiverSlot::Invalid => {
                Err(invalid("data.receiver_id", "a non-empty string"))
            }
            ReceiverSlot::Missing => Err(ModelError::MissingField {
                field: "data.receiver_id".into(),
            }),
            ReceiverSlot::NotObject => Err(invalid("data", "an object")),
        }
    }
}

/// A message body with `data.receiver_id` set to `receiver_id`: how a
/// server push is addressed to each of its recipients.
///
/// ```
/// let body = jim_model::addressed(br#"{"type":"text","data":{"content":"hi"}}"#, "alice")?;
/// let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
/// assert_eq!(body["data"]["receiver_id"], "alice");
/// assert_eq!(body["data"]["content"], "hi");
/// # Ok::<(), jim_model::ModelError>(())
/// ```
///
/// # Errors
/// [`ModelError::Json`] for malformed JSON, [`ModelError::InvalidField`]
/// when the body is not `{"type":..,"data":{..}}`.
pub fn addressed(message: &[u8], receiver_id: &str) -> Result<Vec<u8>, ModelError> {
    let mut message: serde_json::Value = serde_json::from_slice(message).map_err(ModelError::Json)?;
    let data = message
        .as_object_mut()
        .and_then(|m| m.get_mut("data"))
        .and_then(serde_json::Value::as_object_mut)
        .ok_or_else(|| invalid("message", "{\"type\":..,\"data\":{..}}"))?;
    data.insert(
        "receiver_id".to_owned(),
        serde_json::Value::String(receiver_id.to_owned()),
    );
    Ok(serde_json::to_vec(&message).unwrap_or_default())
}

/// Writes the body of an `ack` reply:
/// `{"type":"ack","data":{"receiver_id":..,"request_id":<seq>,"message_id":".."}}`,
/// with `"offset":N` after the id when given (a group message's offset in
/// the sender's own inbox).
///
/// ```
/// use jim_model::{MessageId, write_ack};
///
/// let mut out = Vec::new();
/// write_ack(&mut out, "2", 1233, MessageId(89797), None);
/// assert_eq!(out, br#"{"type":"ack","data":{"receiver_id":"2","request_id":1233,"message_id":"89797"}}"#);
/// out.clear();
/// write_ack(&mut out, "g1", 7, MessageId(5), Some(42));
/// assert_eq!(out, br#"{"type":"ack","data":{"receiver_id":"g1","request_id":7,"message_id":"5","offset":42}}"#);
/// ```
pub fn write_ack(
    out: &mut Vec<u8>,
    receiver_id: &str,
    request_id: u32,
    message_id: MessageId,
    offset: Option<u32>,
) {
    out.extend_from_slice(b"{\"type\":\"ack\",\"data\":{\"receiver_id\":");
    write_json_str(out, receiver_id);
    let mut digits = itoa::Buffer::new();
    out.extend_from_slice(b",\"request_id\":");
    out.extend_from_slice(digits.format(request_id).as_bytes());
    out.extend_from_slice(b",\"message_id\":\"");
    out.extend_from_slice(digits.format(message_id.0).as_bytes());
    out.push(b'"');
    if let Some(offset) = offset {
        out.extend_from_slice(b",\"offset\":");
        out.extend_from_slice(digits.format(offset).as_bytes());
    }
    out.extend_from_slice(b"}}");
}

/// Writes the body of an error reply:
/// `{"type":"error","data":{"code":C,"reason":".."}}`.
///
/// ```
/// use jim_model::{ErrorCode, write_error};
///
/// let mut out = Vec::new();
/// write_error(&mut out, ErrorCode::Forbidden, "not a member of group \"g1\"");
/// assert_eq!(out, br#"{"type":"error","data":{"code":4003,"reason":"not a member of group \"g1\""}}"#);
/// ```
pub fn write_error(out: &mut Vec<u8>, code: crate::ErrorCode, reason: &str) {
    write_error_code(out, code.as_u16(), reason);
}

/// As [`write_error`], with a code of the application's (a before-send
/// hook's deny: 4000 to 4999).
///
/// ```
/// let mut body = Vec::new();
/// jim_model::write_error_code(&mut body, 4403, "no links");
/// assert_eq!(body, br#"{"type":"error","data":{"code":4403,"reason":"no links"}}"#);
/// ```
pub fn write_error_code(out: &mut Vec<u8>, code: u16, reason: &str) {
    let _ = write!(out, "{{\"type\":\"error\",\"data\":{{\"code\":{code},\"reason\":");
    write_json_str(out, reason);
    out.extend_from_slice(b"}}");
}

fn write_json_str(out: &mut Vec<u8>, s: &str) {
    // Writing a &str to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

fn write_key(out: &mut Vec<u8>, spec: Option<&FieldSpec>, key: &str) {
    match spec {
        Some(spec) => {
            out.push(b'"');
            out.extend_from_slice(spec.name.as_bytes());
            out.push(b'"');
        }
        None => write_json_str(out, key),
    }
    out.push(b':');
}

fn invalid(field: &str, expected: &'static str) -> ModelError {
    ModelError::InvalidField {
        field: field.to_owned(),
        expected,
    }
}

fn invalid_spec(spec: &FieldSpec) -> ModelError {
    ModelError::InvalidField {
        field: format!("data.{}", spec.name),
        expected: spec.ty.expected(),
    }
}

fn check_type(spec: &FieldSpec, value: &RawValue) -> Result<(), ModelError> {
    let text = value.get();
    let ok = match spec.ty {
        FieldType::Str => text.starts_with('"'),
        FieldType::F64 => text.starts_with(|c: char| c == '-' || c.is_ascii_digit()),
        FieldType::U64 => text.parse::<u64>().is_ok(),
        FieldType::U32 => text.parse::<u32>().is_ok(),
        FieldType::U16 => text.parse::<u16>().is_ok(),
        FieldType::Id => serde_json::from_str::<MessageId>(text).is_ok(),
        FieldType::Image(check) | FieldType::File(check) | FieldType::Video(check) => {
            text.parse::<u64>().ok().is_some_and(check)
        }
    };
    if ok { Ok(()) } else { Err(invalid_spec(spec)) }
}

/// The string a JSON string value holds, borrowed when it has no escapes.
fn json_str(value: &RawValue) -> Result<Cow<'_, str>, serde_json::Error> {
    serde_json::from_str::<Key<'_>>(value.get()).map(|key| key.0)
}

// ---- One-pass deserialisation -------------------------------------------

/// The envelope, with `data` read by `D`.
struct Envelope<'a, D> {
    kind: Option<TypeSlot<'a>>,
    data: Option<D>,
    extra: Vec<(Cow<'a, str>, &'a RawValue)>,
    duplicate: Option<&'static str>,
}

impl<'a, D> Envelope<'a, D> {
    #[allow(clippy::type_complexity)]
    fn into_parts(self) -> Result<(MessageKind, D, Vec<(Cow<'a, str>, &'a RawValue)>), ModelError> {
        if let Some(field) = self.duplicate {
            return Err(ModelError::DuplicateField { field: field.into() });
        }
        let kind = match self.kind {
            None => return Err(ModelError::MissingField { field: "type".into() }),
            Some(TypeSlot::Other) => return Err(invalid("type", "a string")),
            Some(TypeSlot::Str(name)) => {
                MessageKind::parse(&name).ok_or_else(|| ModelError::UnknownType {
                    found: name.into_owned(),
                })?
            }
        };
        let data = self
            .data
            .ok_or_else(|| ModelError::MissingField { field: "data".into() })?;
        Ok((kind, data, self.extra))
    }
}

impl<'de: 'a, 'a, D: Deserialize<'de>> Deserialize<'de> for Envelope<'a, D> {
    fn deserialize<De: Deserializer<'de>>(deserializer: De) -> Result<Self, De::Error> {
        struct EnvelopeVisitor<'a, D>(std::marker::PhantomData<(&'a (), D)>);

        impl<'de: 'a, 'a, D: Deserialize<'de>> Visitor<'de> for EnvelopeVisitor<'a, D> {
            type Value = Envelope<'a, D>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(r#"a message object {"type":..,"data":{..}}"#)
            }

            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut envelope = Envelope {
                    kind: None,
                    data: None,
                    extra: Vec::new(),
                    duplicate: None,
                };
                while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
                    match &*key {
                        "type" => {
                            let slot = map.next_value::<TypeSlot<'de>>()?;
                            if envelope.kind.replace(slot).is_some() {
                                envelope.duplicate.get_or_insert("type");
                            }
                        }
                        "data" => {
                            let data = map.next_value::<D>()?;
                            if envelope.data.replace(data).is_some() {
                                envelope.duplicate.get_or_insert("data");
                            }
                        }
                        _ => {
                            let value = map.next_value::<&'de RawValue>()?;
                            envelope.extra.push((key, value));
                        }
                    }
                }
                Ok(envelope)
            }
        }

        deserializer.deserialize_map(EnvelopeVisitor(std::marker::PhantomData))
    }
}

/// A string borrowed from the input when it has no escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;

        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }

            fn visit_string<E: de::Error>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }

        deserializer.deserialize_str(KeyVisitor)
    }
}

/// Reads any JSON value, keeping it only when `visit_*` says so; the rest
/// of a value of the wrong type is skipped so that the error can name the
/// field instead of the position.
macro_rules! other_on_wrong_type {
    ($other:expr) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok($other)
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok($other)
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok($other)
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok($other)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok($other)
        }
        fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Self::Value, S::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok($other)
        }
    };
}

enum TypeSlot<'a> {
    Str(Cow<'a, str>),
    Other,
}

impl<'de> Deserialize<'de> for TypeSlot<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TypeVisitor;

        impl<'de> Visitor<'de> for TypeVisitor {
            type Value = TypeSlot<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }

            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(TypeSlot::Str(Cow::Borrowed(v)))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(TypeSlot::Str(Cow::Owned(v.to_owned())))
            }

            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(TypeSlot::Other)
            }

            other_on_wrong_type!(TypeSlot::Other);
        }

        deserializer.deserialize_any(TypeVisitor)
    }
}

/// `data` as its list of fields, each kept as JSON text.
enum DataSlot<'a> {
    Object(Vec<(Cow<'a, str>, &'a RawValue)>),
    Other,
}

impl<'de> Deserialize<'de> for DataSlot<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DataVisitor;

        impl<'de> Visitor<'de> for DataVisitor {
            type Value = DataSlot<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }

            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(12));
                while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
                    fields.push((key, map.next_value::<&'de RawValue>()?));
                }
                Ok(DataSlot::Object(fields))
            }

            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok(DataSlot::Other)
            }

            other_on_wrong_type!(DataSlot::Other);
        }

        deserializer.deserialize_any(DataVisitor)
    }
}

/// `data` reduced to its `receiver_id`.
enum ReceiverSlot<'a> {
    Found(Cow<'a, str>),
    Invalid,
    Missing,
    NotObject,
}

impl<'de> Deserialize<'de> for ReceiverSlot<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ReceiverVisitor;

        impl<'de> Visitor<'de> for ReceiverVisitor {
            type Value = ReceiverSlot<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }

            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut slot = ReceiverSlot::Missing;
                while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
                    if key == "receiver_id" {
                        slot = match map.next_value::<TypeSlot<'de>>()? {
                            TypeSlot::Str(id) => ReceiverSlot::Found(id),
                            TypeSlot::Other => ReceiverSlot::Invalid,
                        };
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(slot)
            }

            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok(ReceiverSlot::NotObject)
            }

            other_on_wrong_type!(ReceiverSlot::NotObject);
        }

        deserializer.deserialize_any(ReceiverVisitor)
    }
}
