//! The seed note's sample payloads, copied verbatim from `jim-doc.md`: each
//! parses, typed and raw, and re-serialises to equivalent JSON.

use jim_model::{Addressing, Message, MessageId, MessageKind, RawMessage, Stamp};
use serde_json::{Value, json};

pub const TEXT: &str = r#"{"type":"text","data":{"sender_id":"1","sender_name":"用户1","sender_avatar":"https://www.baidu.com/img/flexible/logo/pc/result.png","receiver_id":"2","content":"hello client 2"}}"#;
pub const LOCATION: &str = r#"{"type":"location","data":{"sender_id":"1","sender_name":"用户1","sender_avatar":"https://www.baidu.com/img/flexible/logo/pc/result.png","receiver_id":"2","cover_image":"https://www.baidu.com/img/flexible/logo/pc/result.png","lat":116.5319,"lng":40.016465,"map_link":"https://j.map.baidu.com/8f/Q44c","desc":"深圳湾公园"}}"#;
pub const FACE: &str = r#"{"type":"face","data":{"sender_id":"1","sender_name":"用户1","sender_avatar":"https://www.baidu.com/img/flexible/logo/pc/result.png","receiver_id":"2","symbol":"[:smile]"}}"#;
pub const SOUND: &str = r#"{"type":"sound","data":{"sender_id":"1","sender_name":"用户1","sender_avatar":"https://www.baidu.com/img/flexible/logo/pc/result.png","receiver_id":"2","url":"https://example.com/a.mp3","size":10240,"seconds":3600}}"#;
pub const IMAGE: &str = r#"{"type":"image","data":{"sender_id":"1","sender_name":"用户1","sender_avatar":"https://www.baidu.com/img/flexible/logo/pc/result.png","receiver_id":"2","format":2,"size ":10240,"width ":500,"height ":700,"icon_url ":"https: //www.baidu.com/img/flexible/logo/pc/result.png","big_url ":"https: //www.baidu.com/img/flexible/logo/pc/result.png"}}"#;
pub const FILE: &str = r#"{"type":"file","data":{"sender_id":"1","sender_name":"用户1","sender_avatar":"https://www.baidu.com/img/flexible/logo/pc/result.png","receiver_id":"2","size":10240,"name":"a.docx","format":1,"thumb_url":"https://example.com/a.png","url":"https://example/a.docx"}}"#;
pub const VIDEO: &str = r#"{"type":"video","data":{"sender_id":"1","sender_name":"用户1","sender_avatar":"https://www.baidu.com/img/flexible/logo/pc/result.png","receiver_id":"2","size":10240,"seconds":3600,"url":"https://example/a.mp4","format":1,"thumb_url":"https://example.com/a.png","thumb_size":1024,"thumb_width":500,"thumb_height":700,"thumb_format":2}}"#;
pub const ACK: &str = r#"{"type":"ack","data":{"receiver_id":"2","request_id":1233,"message_id":89797}}"#;

fn value(s: &str) -> Value {
    serde_json::from_str(s).unwrap()
}

/// The sample as Jim writes it back: keys with a trailing space under their
/// clean names, and `message_id` as a decimal string (docs/protocol.md).
fn canonical(sample: &str) -> Value {
    let mut v = value(sample);
    let data = v["data"].as_object_mut().unwrap();
    let keys: Vec<String> = data.keys().cloned().collect();
    for key in keys {
        if key.ends_with(' ') {
            let val = data.remove(&key).unwrap();
            data.insert(key.trim_end().to_owned(), val);
        }
    }
    if let Some(Value::Number(n)) = data.get("message_id") {
        let s = n.to_string();
        data.insert("message_id".into(), Value::String(s));
    }
    v
}

fn typed_round_trip(sample: &str, kind: MessageKind) {
    let message = Message::from_slice(sample.as_bytes()).unwrap_or_else(|e| panic!("{kind}: {e}"));
    assert_eq!(message.kind(), kind);
    let written: Value = serde_json::from_slice(&message.to_vec()).unwrap();
    assert_eq!(written, canonical(sample), "{kind} did not round-trip");
}

fn raw_round_trip(sample: &str, kind: MessageKind) {
    let raw = RawMessage::parse(sample.as_bytes()).unwrap_or_else(|e| panic!("{kind}: {e}"));
    assert_eq!(raw.kind(), kind);
    assert_eq!(raw.receiver_id(), "2");
    assert_eq!(Addressing::peek(sample.as_bytes()).unwrap().receiver_id, "2");
    if kind == MessageKind::Ack {
        return; // acks are not stamped
    }
    let mut out = Vec::new();
    raw.stamp(&Stamp::new("1", MessageId(77), 1_764_000_000_000), &mut out);
    let mut expected = canonical(sample);
    expected["data"]["message_id"] = json!("77");
    expected["data"]["timestamp"] = json!(1_764_000_000_000u64);
    assert_eq!(
        serde_json::from_slice::<Value>(&out).unwrap(),
        expected,
        "{kind} stamped"
    );
}

macro_rules! sample_tests {
    ($($name:ident: $sample:expr, $kind:expr;)*) => {
        $(
            #[test]
            fn $name() {
                typed_round_trip($sample, $kind);
                raw_round_trip($sample, $kind);
            }
        )*
    };
}

sample_tests! {
    text_sample_round_trips: TEXT, MessageKind::Text;
    location_sample_round_trips: LOCATION, MessageKind::Location;
    face_sample_round_trips: FACE, MessageKind::Face;
    sound_sample_round_trips: SOUND, MessageKind::Sound;
    image_sample_round_trips_with_clean_keys: IMAGE, MessageKind::Image;
    file_sample_round_trips: FILE, MessageKind::File;
    video_sample_round_trips: VIDEO, MessageKind::Video;
    ack_sample_round_trips: ACK, MessageKind::Ack;
}

#[test]
fn image_aliases_fill_the_clean_fields() {
    let Message::Image(image) = Message::from_slice(IMAGE.as_bytes()).unwrap() else {
        panic!()
    };
    assert_eq!(
        (image.size, image.width, image.height),
        (Some(10240), Some(500), Some(700))
    );
    assert_eq!(
        image.big_url,
        "https: //www.baidu.com/img/flexible/logo/pc/result.png"
    );
    assert!(
        image.extra.is_empty(),
        "aliases are not unknown fields: {:?}",
        image.extra
    );
    let written = String::from_utf8(Message::Image(image).to_vec()).unwrap();
    assert!(
        !written.contains(" \":"),
        "a key with a trailing space was written: {written}"
    );
}

#[test]
fn the_seed_location_sample_keeps_its_swapped_coordinates() {
    let Message::Location(loc) = Message::from_slice(LOCATION.as_bytes()).unwrap() else {
        panic!()
    };
    assert_eq!((loc.lat, loc.lng), (116.5319, 40.016465));
}

#[test]
fn ack_sample_message_id_is_read_from_a_number_and_written_as_a_string() {
    let Message::Ack(ack) = Message::from_slice(ACK.as_bytes()).unwrap() else {
        panic!()
    };
    assert_eq!((ack.request_id, ack.message_id), (Some(1233), MessageId(89797)));
    let written = String::from_utf8(Message::Ack(ack).to_vec()).unwrap();
    assert!(written.contains(r#""message_id":"89797""#), "{written}");
}
