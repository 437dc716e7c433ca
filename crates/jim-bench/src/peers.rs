//! The wire protocols of the servers Jim is compared with, so that the
//! same workloads run against them (`--transport mqtt` for mosquitto,
//! `--transport nats` for nats-server; `scripts/bench-peers.sh`).
//!
//! Each maps what a `jim1` client does onto the peer's nearest equivalent,
//! and nothing more, by hand: a client library's own event loop would be
//! measured with the server.
//!
//! | jim1 | MQTT 3.1.1 | NATS |
//! |------|------------|------|
//! | `B001` sign-in | `CONNECT` (client id = user), `SUBSCRIBE` to the user's topic, QoS 0 | `CONNECT` (verbose, no echo), `SUB` to the user's subject, `PING` |
//! | `B002` | `SUBACK` | `PONG` |
//! | `B101` to a user | `PUBLISH` QoS 1 to their topic | `PUB` to their subject |
//! | the ack | `PUBACK` | `+OK` (verbose mode acks every `PUB`) |
//! | a delivery | `PUBLISH` QoS 0 (the subscription's) | `MSG` |
//!
//! So each message costs the peer what it costs Jim: a publish read, an ack
//! written to the sender, one delivery written, with no acknowledgement
//! from the recipient. The body is the `jim1` body, unchanged: the
//! receivers' checks (order, loss, latency) read it as they read Jim's.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// A peer's protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// MQTT 3.1.1.
    Mqtt,
    /// NATS's client protocol.
    Nats,
}

/// What a peer sent, in `jim1`'s terms.
#[derive(Debug, PartialEq)]
pub enum Event {
    /// Signed in and subscribed.
    SignedIn,
    /// A publish was acknowledged.
    Ack,
    /// A message for this client: its payload.
    Delivery(Bytes),
    /// The server refused something.
    Refused(String),
    /// Anything else (NATS's `INFO`, a ping reply).
    Other,
}

/// The `receiver_id` of a `jim1` message body, found by scanning.
pub fn receiver(body: &[u8]) -> Option<&str> {
    const FIELD: &[u8] = br#""receiver_id":""#;
    let start = body.windows(FIELD.len()).position(|w| w == FIELD)? + FIELD.len();
    let len = body[start..].iter().position(|b| *b == b'"')?;
    std::str::from_utf8(&body[start..start + len]).ok()
}

/// The `token` of a `jim1` sign-in body.
pub fn token(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    Some(value.get("token")?.as_str()?.to_owned())
}

impl Peer {
    /// Appends the sign-in of `user`: connect, and subscribe to the user's
    /// own topic or subject.
    pub fn sign_in(self, user: &str, dst: &mut BytesMut) {
        match self {
            Peer::Mqtt => {
                // CONNECT: protocol "MQTT" level 4, clean session, no keep-alive.
                let mut body = BytesMut::new();
                put_string(&mut body, "MQTT");
                body.put_u8(4);
                body.put_u8(0x02);
                body.put_u16(0);
                put_string(&mut body, user);
                put_packet(dst, 0x10, &body);
                // SUBSCRIBE, packet id 1, the user's topic at QoS 0.
                let mut body = BytesMut::new();
                body.put_u16(1);
                put_string(&mut body, user);
                body.put_u8(0);
                put_packet(dst, 0x82, &body);
            }
            Peer::Nats => {
                dst.put_slice(
                    br#"CONNECT {"verbose":true,"pedantic":false,"echo":false,"lang":"jim-bench","version":"1","protocol":1}"#,
                );
                dst.put_slice(b"\r\nSUB ");
                dst.put_slice(user.as_bytes());
                dst.put_slice(b" 1\r\nPING\r\n");
            }
        }
    }

    /// Appends a publish of `body` to `receiver`; MQTT's QoS 1 needs a
    /// packet id (never 0).
    pub fn publish(self, receiver: &str, body: &[u8], packet_id: u16, dst: &mut BytesMut) {
        match self {
            Peer::Mqtt => {
                let len = 2 + receiver.len() + 2 + body.len();
                dst.reserve(5 + len);
                dst.put_u8(0x32);
                put_length(dst, len);
                put_string(dst, receiver);
                dst.put_u16(packet_id.max(1));
                dst.put_slice(body);
            }
            Peer::Nats => {
                dst.reserve(receiver.len() + body.len() + 20);
                dst.put_slice(b"PUB ");
                dst.put_slice(receiver.as_bytes());
                dst.put_u8(b' ');
                dst.put_slice(itoa::Buffer::new().format(body.len()).as_bytes());
                dst.put_slice(b"\r\n");
                dst.put_slice(body);
                dst.put_slice(b"\r\n");
            }
        }
    }

    /// The next event in `src`, `Ok(None)` until a whole one is there.
    ///
    /// # Errors
    /// Bytes that are not the protocol.
    pub fn decode(self, src: &mut BytesMut) -> Result<Option<Event>, String> {
        match self {
            Peer::Mqtt => decode_mqtt(src),
            Peer::Nats => decode_nats(src),
        }
    }
}

fn put_string(dst: &mut BytesMut, s: &str) {
    dst.put_u16(u16::try_from(s.len()).unwrap_or(u16::MAX));
    dst.put_slice(s.as_bytes());
}

/// MQTT's remaining length: 7 bits a byte, least significant first.
fn put_length(dst: &mut BytesMut, mut len: usize) {
    loop {
        let byte = (len % 128) as u8;
        len /= 128;
        if len == 0 {
            dst.put_u8(byte);
            return;
        }
        dst.put_u8(byte | 0x80);
    }
}

fn put_packet(dst: &mut BytesMut, kind: u8, body: &[u8]) {
    dst.put_u8(kind);
    put_length(dst, body.len());
    dst.put_slice(body);
}

fn decode_mqtt(src: &mut BytesMut) -> Result<Option<Event>, String> {
    let Some(&kind) = src.first() else {
        return Ok(None);
    };
    let (mut len, mut shift, mut at) = (0usize, 0, 1);
    loop {
        let Some(&byte) = src.get(at) else {
            return Ok(None);
        };
        len |= usize::from(byte & 0x7f) << shift;
        at += 1;
        if byte & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 21 {
            return Err("MQTT: remaining length over 4 bytes".into());
        }
    }
    if src.len() < at + len {
        src.reserve(at + len - src.len());
        return Ok(None);
    }
    src.advance(at);
    let mut packet = src.split_to(len);
    Ok(Some(match kind >> 4 {
        2 => match packet.get(1) {
            Some(0) => Event::Other,
            code => Event::Refused(format!("MQTT CONNACK refused: {code:?}")),
        },
        3 => {
            if packet.len() < 2 {
                return Err("MQTT: a PUBLISH without its topic".into());
            }
            let topic = usize::from(u16::from_be_bytes([packet[0], packet[1]]));
            let qos = (kind >> 1) & 3;
            let skip = 2 + topic + if qos > 0 { 2 } else { 0 };
            if packet.len() < skip {
                return Err("MQTT: a PUBLISH shorter than its topic".into());
            }
            packet.advance(skip);
            Event::Delivery(packet.freeze())
        }
        4 => Event::Ack,
        9 => match packet.get(2) {
            Some(0x80) | None => Event::Refused("MQTT SUBACK refused the subscription".into()),
            Some(_) => Event::SignedIn,
        },
        _ => Event::Other,
    }))
}

fn decode_nats(src: &mut BytesMut) -> Result<Option<Event>, String> {
    let Some(end) = src.windows(2).position(|w| w == b"\r\n") else {
        return Ok(None);
    };
    if src.starts_with(b"MSG ") {
        // MSG <subject> <sid> [reply-to] <#bytes>
        let size = std::str::from_utf8(&src[..end])
            .ok()
            .and_then(|line| line.rsplit(' ').next()?.parse::<usize>().ok())
            .ok_or_else(|| format!("NATS: bad MSG line {:?}", String::from_utf8_lossy(&src[..end])))?;
        let total = end + 2 + size + 2;
        if src.len() < total {
            src.reserve(total - src.len());
            return Ok(None);
        }
        src.advance(end + 2);
        let payload = src.split_to(size).freeze();
        src.advance(2);
        return Ok(Some(Event::Delivery(payload)));
    }
    let line = src.split_to(end + 2);
    let line = &line[..end];
    Ok(Some(if line == b"+OK" {
        Event::Ack
    } else if line == b"PONG" {
        Event::SignedIn
    } else if let Some(error) = line.strip_prefix(b"-ERR") {
        Event::Refused(format!("NATS:{}", String::from_utf8_lossy(error)))
    } else {
        Event::Other
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_mqtt_publish_reads_back_as_a_delivery_of_its_body() {
        let body = br#"{"type":"text","data":{"receiver_id":"u2","content":"hi"}}"#;
        let mut wire = BytesMut::new();
        Peer::Mqtt.publish(receiver(body).unwrap(), body, 7, &mut wire);
        // What the broker sends a QoS 0 subscriber: the same without the id.
        let mut delivered = BytesMut::new();
        delivered.put_u8(0x30);
        put_length(&mut delivered, 2 + 2 + body.len());
        put_string(&mut delivered, "u2");
        delivered.put_slice(body);
        assert_eq!(wire.len(), delivered.len() + 4 - 2);
        delivered.extend_from_slice(&[0x40, 2, 0, 7]);
        let mut half = delivered.split_to(10);
        assert_eq!(Peer::Mqtt.decode(&mut half), Ok(None));
        half.unsplit(delivered);
        assert_eq!(
            Peer::Mqtt.decode(&mut half),
            Ok(Some(Event::Delivery(Bytes::copy_from_slice(body))))
        );
        assert_eq!(Peer::Mqtt.decode(&mut half), Ok(Some(Event::Ack)));
        assert!(half.is_empty());
    }

    #[test]
    fn an_mqtt_length_takes_as_many_bytes_as_it_needs() {
        for (len, bytes) in [(0, 1), (127, 1), (128, 2), (16_383, 2), (16_384, 3)] {
            let mut dst = BytesMut::new();
            put_length(&mut dst, len);
            assert_eq!(dst.len(), bytes, "{len}");
        }
    }

    #[test]
    fn nats_lines_and_messages_are_told_apart() {
        let mut wire = BytesMut::from(
            &b"INFO {}\r\n+OK\r\nPONG\r\nMSG u2 1 5\r\nhello\r\n-ERR 'x'\r\nMSG u2 1 3\r\nab"[..],
        );
        assert_eq!(Peer::Nats.decode(&mut wire), Ok(Some(Event::Other)));
        assert_eq!(Peer::Nats.decode(&mut wire), Ok(Some(Event::Ack)));
        assert_eq!(Peer::Nats.decode(&mut wire), Ok(Some(Event::SignedIn)));
        assert_eq!(
            Peer::Nats.decode(&mut wire),
            Ok(Some(Event::Delivery(Bytes::from_static(b"hello"))))
        );
        assert!(matches!(
            Peer::Nats.decode(&mut wire),
            Ok(Some(Event::Refused(_)))
        ));
        assert_eq!(Peer::Nats.decode(&mut wire), Ok(None));
        let mut publish = BytesMut::new();
        Peer::Nats.publish("u2", b"hello", 0, &mut publish);
        assert_eq!(&publish[..], b"PUB u2 5\r\nhello\r\n");
    }
}
