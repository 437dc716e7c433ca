//! Bad bodies are refused with an error that names the field; unknown
//! fields survive; the raw checks and the typed model agree.

use jim_model::{Addressing, Message, MessageId, MessageKind, ModelError, RawMessage, Stamp, schema};
use serde_json::{Value, json};

fn raw_err(body: &str) -> String {
    RawMessage::parse(body.as_bytes()).unwrap_err().to_string()
}

#[test]
fn malformed_json_is_refused() {
    assert!(raw_err(r#"{"type":"text","#).starts_with("malformed JSON: "));
    assert!(raw_err("not json").starts_with("malformed JSON: "));
    assert!(raw_err(r#"["type","text"]"#).starts_with("malformed JSON: invalid type: sequence"));
    assert!(
        raw_err(r#"{"type":"text","data":{"receiver_id":"2","content":"x"}} trailing"#)
            .starts_with("malformed JSON")
    );
    assert!(raw_err("").starts_with("malformed JSON"));
}

#[test]
fn envelope_problems_name_the_field() {
    assert_eq!(raw_err(r#"{"data":{}}"#), "missing field `type`");
    assert_eq!(
        raw_err(r#"{"type":7,"data":{}}"#),
        "field `type` must be a string"
    );
    assert_eq!(raw_err(r#"{"type":"gif","data":{}}"#), r#"unknown type "gif""#);
    assert_eq!(raw_err(r#"{"type":"text"}"#), "missing field `data`");
    assert_eq!(
        raw_err(r#"{"type":"text","data":"hi"}"#),
        "field `data` must be an object"
    );
    assert_eq!(
        raw_err(r#"{"type":"text","data":[1,2]}"#),
        "field `data` must be an object"
    );
    assert_eq!(
        raw_err(r#"{"type":"text","type":"face","data":{}}"#),
        "duplicate field `type`"
    );
}

#[test]
fn field_problems_name_the_field() {
    let cases = [
        (
            r#"{"type":"text","data":{"content":"x"}}"#,
            "missing field `data.receiver_id`",
        ),
        (
            r#"{"type":"text","data":{"receiver_id":"2"}}"#,
            "missing field `data.content`",
        ),
        (
            r#"{"type":"text","data":{"receiver_id":"2","content":null}}"#,
            "missing field `data.content`",
        ),
        (
            r#"{"type":"text","data":{"receiver_id":2,"content":"x"}}"#,
            "field `data.receiver_id` must be a string",
        ),
        (
            r#"{"type":"text","data":{"receiver_id":"","content":"x"}}"#,
            "field `data.receiver_id` must be a non-empty string",
        ),
        (
            r#"{"type":"text","data":{"receiver_id":"2","content":["x"]}}"#,
            "field `data.content` must be a string",
        ),
        (
            r#"{"type":"sound","data":{"receiver_id":"2","url":"u","size":-1}}"#,
            "field `data.size` must be a non-negative integer",
        ),
        (
            r#"{"type":"sound","data":{"receiver_id":"2","url":"u","size":1.5}}"#,
            "field `data.size` must be a non-negative integer",
        ),
        (
            r#"{"type":"sound","data":{"receiver_id":"2","url":"u","seconds":4294967296}}"#,
            "field `data.seconds` must be a non-negative integer below 2^32",
        ),
        (
            r#"{"type":"location","data":{"receiver_id":"2","lat":"1","lng":2}}"#,
            "field `data.lat` must be a number",
        ),
        (
            r#"{"type":"image","data":{"receiver_id":"2","big_url":"b","format":9}}"#,
            "field `data.format` must be one of the image format codes 0 1 2 3 (Jpg Gif Png Bmp )",
        ),
        (
            r#"{"type":"file","data":{"receiver_id":"2","url":"u","name":"n","format":4}}"#,
            "field `data.format` must be one of the file format codes 0 1 2 3 (Doc Docx Ppt Xls )",
        ),
        (
            r#"{"type":"video","data":{"receiver_id":"2","url":"u","format":6}}"#,
            "field `data.format` must be one of the video format codes 0 1 2 3 4 5 (Mp4 Mov Wmv Flv Avi Mkv )",
        ),
        (
            r#"{"type":"image","data":{"receiver_id":"2","big_url":"b","size":1,"size ":2}}"#,
            "duplicate field `data.size`",
        ),
        (
            r#"{"type":"ack","data":{"receiver_id":"2","message_id":"12a"}}"#,
            "field `data.message_id` must be a message id (a string of decimal digits)",
        ),
        (
            r#"{"type":"ack","data":{"receiver_id":"2"}}"#,
            "missing field `data.message_id`",
        ),
        (
            r#"{"type":"error","data":{"code":70000,"reason":"x"}}"#,
            "field `data.code` must be a non-negative integer below 65536",
        ),
    ];
    for (body, expected) in cases {
        assert_eq!(raw_err(body), expected, "for {body}");
    }
}

#[test]
fn route_peek_reads_only_type_and_receiver() {
    let route =
        Addressing::peek(br#"{"data":{"x":{"deep":[1,2,{"a":null}]},"receiver_id":"g7"},"type":"text"}"#)
            .unwrap();
    assert_eq!((route.kind, &*route.receiver_id), (MessageKind::Text, "g7"));
    // Peek does not validate the rest: that is what `RawMessage::parse` is for.
    assert!(Addressing::peek(br#"{"type":"text","data":{"receiver_id":"2"}}"#).is_ok());
    let err = |b: &str| Addressing::peek(b.as_bytes()).unwrap_err().to_string();
    assert_eq!(
        err(r#"{"type":"text","data":{}}"#),
        "missing field `data.receiver_id`"
    );
    assert_eq!(
        err(r#"{"type":"text","data":{"receiver_id":1}}"#),
        "field `data.receiver_id` must be a non-empty string"
    );
    assert_eq!(
        err(r#"{"type":"text","data":7}"#),
        "field `data` must be an object"
    );
    assert_eq!(err(r#"{"type":"nope","data":{}}"#), r#"unknown type "nope""#);
}

#[test]
fn unknown_fields_survive_stamping_untouched() {
    let body = r#"{"type":"text","trace":{"id":"t-1"},"data":{"receiver_id":"2","content":"hi","reply_to":"m-9","meta":{"a":[1,2.50,"\u00e9"]}}}"#;
    let raw = RawMessage::parse(body.as_bytes()).unwrap();
    let mut out = Vec::new();
    raw.stamp(&Stamp::new("1", MessageId(5), 9), &mut out);
    let out = String::from_utf8(out).unwrap();
    // Copied byte for byte: 2.50 stays 2.50 and the escape stays an escape.
    assert!(out.contains(r#""meta":{"a":[1,2.50,"\u00e9"]}"#), "{out}");
    assert!(out.contains(r#""reply_to":"m-9""#), "{out}");
    assert!(out.ends_with(r#","trace":{"id":"t-1"}}"#), "{out}");
    // The typed model keeps unknown data fields too.
    let Message::Text(text) = Message::from_slice(body.as_bytes()).unwrap() else {
        panic!()
    };
    assert_eq!(text.extra["reply_to"], "m-9");
}

#[test]
fn stamping_overrides_the_client_identity() {
    let body = r#"{"type":"text","data":{"sender_id":"admin","sender_name":"Boss","sender_avatar":"x","receiver_id":"2","content":"hi","message_id":"1","timestamp":1}}"#;
    let raw = RawMessage::parse(body.as_bytes()).unwrap();

    let mut out = Vec::new();
    raw.stamp(&Stamp::new("mallory", MessageId(10), 20), &mut out);
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["data"]["sender_id"], "mallory");
    assert_eq!(
        v["data"]["sender_name"], "Boss",
        "without token claims the client's name stays"
    );
    assert_eq!(
        (v["data"]["message_id"].clone(), v["data"]["timestamp"].clone()),
        (json!("10"), json!(20))
    );
    assert_eq!(out.windows(11).filter(|w| w == b"\"sender_id\"").count(), 1);

    let mut out = Vec::new();
    let stamp = Stamp {
        sender_name: Some("Mallory \"M\""),
        sender_avatar: Some("https://a/m.png"),
        ..Stamp::new("mallory", MessageId(10), 20)
    };
    raw.stamp(&stamp, &mut out);
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["data"]["sender_name"], "Mallory \"M\"");
    assert_eq!(v["data"]["sender_avatar"], "https://a/m.png");
    assert_eq!(v["data"].as_object().unwrap().len(), 7);

    // Without client profiles, the client's own name and avatar are dropped.
    let mut out = Vec::new();
    let stamp = Stamp {
        client_profile: false,
        ..Stamp::new("mallory", MessageId(10), 20)
    };
    raw.stamp(&stamp, &mut out);
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        (v["data"].get("sender_name"), v["data"].get("sender_avatar")),
        (None, None),
        "{v}"
    );
    assert_eq!(v["data"]["sender_id"], "mallory");
}

#[test]
fn escaped_keys_and_values_are_understood() {
    let body = r#"{"typ\u0065":"text","data":{"receiver\u005fid":"a\"b","content":"x","we\"ird":1}}"#;
    let raw = RawMessage::parse(body.as_bytes()).unwrap();
    assert_eq!(raw.receiver_id(), "a\"b");
    let mut out = Vec::new();
    raw.stamp(&Stamp::new("1", MessageId(1), 1), &mut out);
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["data"]["receiver_id"], "a\"b");
    assert_eq!(v["data"]["we\"ird"], 1);
}

/// Builds a valid body of `kind` with every field of the schema.
fn full_body(kind: MessageKind) -> Value {
    let mut data = serde_json::Map::new();
    for (k, name, _) in schema::describe().filter(|(k, _, _)| *k == kind) {
        let _ = k;
        let value = match name {
            "lat" | "lng" => json!(1.5),
            "message_id" => json!("123"),
            "code" => json!(4000),
            "size" | "seconds" | "width" | "height" | "timestamp" | "request_id" | "thumb_size"
            | "thumb_width" | "thumb_height" => json!(7),
            "format" | "thumb_format" => json!(1),
            _ => json!("s"),
        };
        data.insert(name.to_owned(), value);
    }
    json!({"type": kind.as_str(), "data": data})
}

#[test]
fn schema_agrees_with_typed_model() {
    for kind in MessageKind::ALL {
        let full = full_body(kind);
        let bytes = serde_json::to_vec(&full).unwrap();
        let raw_ok = RawMessage::parse(&bytes).map(|_| ());
        let typed_ok = Message::from_slice(&bytes).map(|_| ());
        assert!(
            raw_ok.is_ok() && typed_ok.is_ok(),
            "{kind}: {raw_ok:?} {typed_ok:?}"
        );
        // Every field written back by the typed model is a schema field.
        let typed = Message::from_slice(&bytes).unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&typed.to_vec()).unwrap(),
            full,
            "{kind}"
        );

        for (_, name, required) in schema::describe().filter(|(k, _, _)| *k == kind) {
            // Removing a field: both refuse exactly the required ones.
            let mut without = full.clone();
            without["data"].as_object_mut().unwrap().remove(name);
            let bytes = serde_json::to_vec(&without).unwrap();
            assert_eq!(RawMessage::parse(&bytes).is_err(), required, "{kind}.{name} raw");
            assert_eq!(
                Message::from_slice(&bytes).is_err(),
                required,
                "{kind}.{name} typed"
            );

            // An ill-typed value: both refuse.
            let mut wrong = full.clone();
            wrong["data"][name] = json!({"not": "this"});
            let bytes = serde_json::to_vec(&wrong).unwrap();
            assert!(
                matches!(RawMessage::parse(&bytes), Err(ModelError::InvalidField { .. })),
                "{kind}.{name} raw"
            );
            assert!(Message::from_slice(&bytes).is_err(), "{kind}.{name} typed");
        }
    }
}

mod proptests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn arbitrary_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = RawMessage::parse(&body);
            let _ = Addressing::peek(&body);
            let _ = Message::from_slice(&body);
        }

        #[test]
        fn any_text_content_and_extra_round_trips_through_stamping(
            content in ".*", receiver in ".+", key in "[a-z_]{1,12}", extra in ".*", sender in ".*",
        ) {
            prop_assume!(!["sender_id", "sender_name", "sender_avatar", "receiver_id", "message_id", "timestamp", "content"].contains(&key.as_str()));
            let body = json!({"type": "text", "data": {"receiver_id": receiver, "content": content, key.clone(): extra}});
            let bytes = serde_json::to_vec(&body).unwrap();
            let raw = RawMessage::parse(&bytes).unwrap();
            let mut out = Vec::new();
            raw.stamp(&Stamp::new(&sender, MessageId(3), 4), &mut out);
            let Message::Text(text) = Message::from_slice(&out).unwrap() else { panic!() };
            prop_assert_eq!(text.content, content);
            prop_assert_eq!(text.common.sender_id.as_deref(), Some(sender.as_str()));
            prop_assert_eq!(&text.common.receiver_id, &receiver);
            prop_assert_eq!(&text.extra[&key], &json!(extra));
        }
    }
}

#[test]
fn json_that_parsers_read_differently_is_refused_wherever_it_hides() {
    let cases = [
        // An unknown field of `data` given twice.
        (
            r#"{"type":"text","data":{"receiver_id":"2","content":"x","k":1,"k":2}}"#,
            r#"the key "k" twice"#,
        ),
        // An unknown top-level field given twice.
        (
            r#"{"type":"text","x":1,"data":{"receiver_id":"2","content":"x"},"x":2}"#,
            r#"the key "x" twice"#,
        ),
        // Deep inside an unknown field.
        (
            r#"{"type":"text","data":{"receiver_id":"2","content":"x","e":{"a":[{"b":1,"b":1}]}}}"#,
            r#"the key "b" twice"#,
        ),
        (
            r#"{"type":"text","data":{"receiver_id":"2","content":"\udc00"}}"#,
            "lone surrogate",
        ),
        (
            r#"{"type":"text","data":{"receiver_id":"2","content":"x","n":-1e999}}"#,
            "too large for a double",
        ),
    ];
    for (body, expected) in cases {
        let err = raw_err(body);
        assert!(
            err.starts_with("JSON that parsers read differently: "),
            "{body}: {err}"
        );
        assert!(err.contains(expected), "{body}: {err}");
    }
    let deep = format!(
        r#"{{"type":"text","data":{{"receiver_id":"2","content":"x","d":{}0{}}}}}"#,
        "[".repeat(62),
        "]".repeat(62)
    );
    assert!(
        RawMessage::parse(deep.as_bytes()).is_ok(),
        "64 deep in all is accepted"
    );
    let deeper = deep.replacen('[', "[[", 1).replacen(']', "]]", 1);
    assert!(raw_err(&deeper).contains("nested deeper than 64"));
    // A surrogate pair is a character: accepted.
    assert!(
        RawMessage::parse(
            r#"{"type":"text","data":{"receiver_id":"2","content":"\ud83d\ude00"}}"#.as_bytes()
        )
        .is_ok()
    );
}

/// Found by the fuzzer: a kind without sender fields (an `ack`) carrying
/// `sender_name` as an unknown key got the stamp's too, twice in one object.
#[test]
fn stamping_never_writes_a_key_twice() {
    let body = r#"{"type":"ack","data":{"receiver_id":"0","sender_name":1233,"message_id":"1","timestamp":2,"sender_id":"x"}}"#;
    let raw = RawMessage::parse(body.as_bytes()).unwrap();
    let stamp = Stamp {
        sender_name: Some("Name"),
        ..Stamp::new("me", MessageId(5), 6)
    };
    let mut out = Vec::new();
    raw.stamp(&stamp, &mut out);
    jim_model::strict::check(&out).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out)));
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        (
            v["data"]["sender_name"].clone(),
            v["data"]["message_id"].clone(),
            v["data"]["sender_id"].clone()
        ),
        (json!("Name"), json!("5"), json!("me"))
    );
}
