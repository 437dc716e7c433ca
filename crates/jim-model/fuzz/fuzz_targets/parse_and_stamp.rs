//! Any body through the gateway's one-pass read and its stamping: never a
//! panic; what it accepts, the routing peek and serde read alike; what it
//! stamps is a message it accepts again, with the server's fields.
#![no_main]

use jim_model::{MessageId, RawMessage, Addressing, Stamp};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, body)) = data.split_first() else { return };
    let Ok(message) = RawMessage::parse(body) else { return };

    // Whatever the gateway accepts is JSON every reader agrees on.
    let value: serde_json::Value = serde_json::from_slice(body).expect("accepted, yet not JSON to serde");
    assert_eq!(value["type"], message.kind().as_str());
    if !message.receiver_id().is_empty() {
        let route = Addressing::peek(body).expect("accepted, yet the routing peek refuses it");
        assert_eq!((route.kind, &*route.receiver_id), (message.kind(), message.receiver_id()));
    }

    let stamp = Stamp {
        sender_name: (flags & 1 != 0).then_some("Náme \"quoted\""),
        sender_avatar: (flags & 2 != 0).then_some("https://a/b.png"),
        client_profile: flags & 4 != 0,
        ..Stamp::new("sender\u{1F600}", MessageId(u64::from(flags) << 40 | 7), 1_764_000_000_000)
    };
    let mut out = Vec::new();
    message.stamp(&stamp, &mut out);
    let again = RawMessage::parse(&out).unwrap_or_else(|e| {
        panic!("stamped output refused ({e}): {}", String::from_utf8_lossy(&out))
    });
    assert_eq!((again.kind(), again.receiver_id()), (message.kind(), message.receiver_id()));
    let stamped: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let data = &stamped["data"];
    assert_eq!(data["sender_id"], "sender\u{1F600}");
    assert_eq!(data["message_id"], stamp.message_id.to_string());
    assert_eq!(data["timestamp"], 1_764_000_000_000u64);
    match (stamp.sender_name, stamp.client_profile) {
        (Some(name), _) => assert_eq!(data["sender_name"], name),
        (None, false) => assert!(data.get("sender_name").is_none()),
        (None, true) => assert_eq!(data.get("sender_name"), value["data"].get("sender_name")),
    }
});
