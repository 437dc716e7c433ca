//! The fields of each message kind, as the gateway checks them.
//!
//! This table and the typed structs in `message.rs` describe the same
//! contract; the `schema_agrees_with_typed_model` tests hold them together.

use crate::{FileFormat, ImageFormat, MessageKind, VideoFormat};

/// The JSON type a field must hold.
#[derive(Debug, Clone, Copy)]
pub(crate) enum FieldType {
    Str,
    F64,
    U64,
    U32,
    U16,
    Id,
    Image(fn(u64) -> bool),
    File(fn(u64) -> bool),
    Video(fn(u64) -> bool),
}

impl FieldType {
    pub(crate) fn expected(self) -> &'static str {
        match self {
            FieldType::Str => "a string",
            FieldType::F64 => "a number",
            FieldType::U64 => "a non-negative integer",
            FieldType::U32 => "a non-negative integer below 2^32",
            FieldType::U16 => "a non-negative integer below 65536",
            FieldType::Id => crate::MessageId::EXPECTED,
            FieldType::Image(_) => ImageFormat::EXPECTED,
            FieldType::File(_) => FileFormat::EXPECTED,
            FieldType::Video(_) => VideoFormat::EXPECTED,
        }
    }
}

/// One field of `data`.
#[derive(Debug)]
pub(crate) struct FieldSpec {
    pub(crate) name: &'static str,
    /// Another key read as this field (the seed's `"size "` and the like).
    pub(crate) alias: Option<&'static str>,
    pub(crate) ty: FieldType,
    pub(crate) required: bool,
}

impl FieldSpec {
    pub(crate) fn matches(&self, key: &str) -> bool {
        self.name == key || self.alias == Some(key)
    }
}

const fn req(name: &'static str, ty: FieldType) -> FieldSpec {
    FieldSpec {
        name,
        alias: None,
        ty,
        required: true,
    }
}

const fn opt(name: &'static str, ty: FieldType) -> FieldSpec {
    FieldSpec {
        name,
        alias: None,
        ty,
        required: false,
    }
}

const fn aliased(spec: FieldSpec, alias: &'static str) -> FieldSpec {
    FieldSpec {
        alias: Some(alias),
        ..spec
    }
}

use FieldType::{F64, Id, Str, U16, U32, U64};

const IMAGE: FieldType = FieldType::Image(|n| ImageFormat::from_number(n).is_some());
const FILE: FieldType = FieldType::File(|n| FileFormat::from_number(n).is_some());
const VIDEO: FieldType = FieldType::Video(|n| VideoFormat::from_number(n).is_some());

macro_rules! chat_fields {
    ($($field:expr),* $(,)?) => {
        &[
            opt("sender_id", Str),
            opt("sender_name", Str),
            opt("sender_avatar", Str),
            req("receiver_id", Str),
            opt("message_id", Id),
            opt("timestamp", U64),
            $($field,)*
        ]
    };
}

const TEXT: &[FieldSpec] = chat_fields![req("content", Str)];
const LOCATION: &[FieldSpec] = chat_fields![
    req("lat", F64),
    req("lng", F64),
    opt("cover_image", Str),
    opt("map_link", Str),
    opt("desc", Str),
];
const FACE: &[FieldSpec] = chat_fields![req("symbol", Str)];
const SOUND: &[FieldSpec] = chat_fields![req("url", Str), opt("size", U64), opt("seconds", U32)];
const IMAGE_FIELDS: &[FieldSpec] = chat_fields![
    opt("format", IMAGE),
    aliased(opt("size", U64), "size "),
    aliased(opt("width", U32), "width "),
    aliased(opt("height", U32), "height "),
    aliased(opt("icon_url", Str), "icon_url "),
    aliased(req("big_url", Str), "big_url "),
];
const FILE_FIELDS: &[FieldSpec] = chat_fields![
    req("url", Str),
    req("name", Str),
    opt("size", U64),
    opt("format", FILE),
    opt("thumb_url", Str),
];
const VIDEO_FIELDS: &[FieldSpec] = chat_fields![
    req("url", Str),
    opt("size", U64),
    opt("seconds", U32),
    opt("format", VIDEO),
    opt("thumb_url", Str),
    opt("thumb_size", U64),
    opt("thumb_width", U32),
    opt("thumb_height", U32),
    opt("thumb_format", IMAGE),
];
/// An ack: a v1 client ack (`receiver_id`, no `status`), or a receipt
/// (v1.2: `status`, and `receiver_id` or `group_id`), read by
/// [`Mark`](crate::Mark).
const ACK: &[FieldSpec] = &[
    opt("receiver_id", Str),
    opt("group_id", Str),
    opt("request_id", U32),
    req("message_id", Id),
    opt("status", Str),
];
const ERROR: &[FieldSpec] = &[req("code", U16), req("reason", Str)];
/// A `B104` body (read by [`Typing`](crate::Typing), never as a message).
const TYPING: &[FieldSpec] = &[opt("receiver_id", Str), opt("group_id", Str), req("state", Str)];

/// The fields of `kind` (at most 64, for the seen-set bitmask).
pub(crate) fn fields(kind: MessageKind) -> &'static [FieldSpec] {
    match kind {
        MessageKind::Text => TEXT,
        MessageKind::Location => LOCATION,
        MessageKind::Face => FACE,
        MessageKind::Sound => SOUND,
        MessageKind::Image => IMAGE_FIELDS,
        MessageKind::File => FILE_FIELDS,
        MessageKind::Video => VIDEO_FIELDS,
        MessageKind::Ack => ACK,
        MessageKind::Error => ERROR,
        MessageKind::Typing => TYPING,
    }
}

/// Every field of every kind: (kind, name, required). For docs and tests.
pub fn describe() -> impl Iterator<Item = (MessageKind, &'static str, bool)> {
    MessageKind::ALL.into_iter().flat_map(|kind| {
        fields(kind)
            .iter()
            .map(move |spec| (kind, spec.name, spec.required))
    })
}
