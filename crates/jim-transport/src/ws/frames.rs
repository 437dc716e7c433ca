//! WebSocket frames (RFC 6455), server side, on a byte buffer.
//!
//! Headers are parsed by tungstenite's [`FrameHeader`]; what a frame means
//! to a `jim1` connection, and where its bytes live, is decided here: a
//! payload is unmasked in place in the read buffer and handed on without a
//! copy.

use std::io::Cursor;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tungstenite::protocol::frame::FrameHeader;
use tungstenite::protocol::frame::coding::{CloseCode, Control, Data, OpCode};

/// Control frames carry at most this many bytes (RFC 6455 5.5).
const MAX_CONTROL_PAYLOAD: usize = 125;
/// The first header byte of a final frame with each opcode.
const FINAL_BINARY: u8 = 0x82;
const FINAL_CLOSE: u8 = 0x88;
const FINAL_PONG: u8 = 0x8a;

/// One frame from the client, its payload unmasked.
#[derive(Debug)]
pub(crate) enum WsFrame {
    /// A piece of a data message: its first frame (text or binary), or a
    /// continuation; `fin` on its last.
    Data {
        kind: DataKind,
        fin: bool,
        payload: BytesMut,
    },
    /// A ping, with the payload its pong must echo.
    Ping(Bytes),
    /// A pong: nothing is owed for it.
    Pong,
    /// A close, with what to answer it.
    Close(Bytes),
}

/// What a data frame starts or continues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DataKind {
    Binary,
    Text,
    Continuation,
}

/// How a client broke the WebSocket protocol.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Violation {
    /// A data frame longer than what was left of the message's room.
    TooLong(u64),
    /// Anything else, said in words.
    Protocol(&'static str),
}

/// The next whole frame at the start of `buf`, taken off it; `None` when
/// `buf` does not hold one yet (then room for the rest is reserved). A data
/// frame longer than `room` is refused from its header, before its
/// payload arrives.
pub(crate) fn decode(buf: &mut BytesMut, room: usize) -> Result<Option<WsFrame>, Violation> {
    let mut cursor = Cursor::new(&buf[..]);
    let (header, len) = match FrameHeader::parse(&mut cursor) {
        Ok(Some(parsed)) => parsed,
        Ok(None) => return Ok(None),
        Err(_) => return Err(Violation::Protocol("unknown opcode")),
    };
    let header_len = cursor.position() as usize;
    if header.rsv1 || header.rsv2 || header.rsv3 {
        return Err(Violation::Protocol("reserved bits set"));
    }
    let Some(mask) = header.mask else {
        return Err(Violation::Protocol("unmasked frame from the client"));
    };
    let kind = match header.opcode {
        OpCode::Data(Data::Binary) => Some(DataKind::Binary),
        OpCode::Data(Data::Text) => Some(DataKind::Text),
        OpCode::Data(Data::Continue) => Some(DataKind::Continuation),
        OpCode::Data(Data::Reserved(_)) | OpCode::Control(Control::Reserved(_)) => {
            return Err(Violation::Protocol("unknown opcode"));
        }
        OpCode::Control(_) if !header.is_final => {
            return Err(Violation::Protocol("fragmented control frame"));
        }
        OpCode::Control(_) if len > MAX_CONTROL_PAYLOAD as u64 => {
            return Err(Violation::Protocol("control frame longer than 125 bytes"));
        }
        OpCode::Control(_) => None,
    };
    if kind.is_some() && len > room as u64 {
        return Err(Violation::TooLong(len));
    }
    // At most `room` or 125: it fits in memory.
    let total = header_len + len as usize;
    if buf.len() < total {
        buf.reserve(total - buf.len());
        return Ok(None);
    }
    buf.advance(header_len);
    let mut payload = buf.split_to(len as usize);
    unmask(&mut payload, mask);
    Ok(Some(match (kind, header.opcode) {
        (Some(kind), _) => WsFrame::Data {
            kind,
            fin: header.is_final,
            payload,
        },
        (None, OpCode::Control(Control::Ping)) => WsFrame::Ping(payload.freeze()),
        (None, OpCode::Control(Control::Pong)) => WsFrame::Pong,
        (None, _) => WsFrame::Close(close_reply(&payload)?),
    }))
}

/// The answer to a client's close frame: its code echoed (RFC 6455 5.5.1),
/// or 1002 for a code no endpoint may send.
fn close_reply(payload: &[u8]) -> Result<Bytes, Violation> {
    match payload {
        [] => Ok(close(None)),
        [_] => Err(Violation::Protocol("close frame with a one-byte payload")),
        [high, low, reason @ ..] => {
            let reason =
                std::str::from_utf8(reason).map_err(|_| Violation::Protocol("close reason is not UTF-8"))?;
            let code = u16::from_be_bytes([*high, *low]);
            Ok(if CloseCode::from(code).is_allowed() {
                close(Some((code, reason)))
            } else {
                close(Some((1002, "Protocol violation")))
            })
        }
    }
}

/// A close frame, with a status code and reason or with neither. A reason
/// too long for a control frame is cut at a character boundary.
pub(crate) fn close(status: Option<(u16, &str)>) -> Bytes {
    let mut frame = BytesMut::with_capacity(2 + MAX_CONTROL_PAYLOAD);
    frame.put_u8(FINAL_CLOSE);
    match status {
        None => frame.put_u8(0),
        Some((code, reason)) => {
            let mut end = reason.len().min(MAX_CONTROL_PAYLOAD - 2);
            while !reason.is_char_boundary(end) {
                end -= 1;
            }
            frame.put_u8(2 + end as u8);
            frame.put_u16(code);
            frame.put_slice(&reason.as_bytes()[..end]);
        }
    }
    frame.freeze()
}

/// The pong that answers a ping with `payload` (at most 125 bytes).
pub(crate) fn pong(payload: &[u8]) -> Bytes {
    let mut frame = BytesMut::with_capacity(2 + payload.len());
    frame.put_u8(FINAL_PONG);
    frame.put_u8(payload.len() as u8);
    frame.put_slice(payload);
    frame.freeze()
}

/// The header of an unmasked, final binary frame of `len` bytes.
pub(crate) fn put_binary_header(buf: &mut BytesMut, len: usize) {
    buf.put_u8(FINAL_BINARY);
    match len {
        0..126 => buf.put_u8(len as u8),
        126..=0xffff => {
            buf.put_u8(126);
            buf.put_u16(len as u16);
        }
        _ => {
            buf.put_u8(127);
            buf.put_u64(len as u64);
        }
    }
}

/// How long [`put_binary_header`] makes the header of a `len`-byte frame.
pub(crate) fn binary_header_len(len: usize) -> usize {
    match len {
        0..126 => 2,
        126..=0xffff => 4,
        _ => 10,
    }
}

/// XORs `payload` with the client's mask, eight bytes at a time.
fn unmask(payload: &mut [u8], mask: [u8; 4]) {
    let [a, b, c, d] = mask;
    let wide = u64::from_ne_bytes([a, b, c, d, a, b, c, d]);
    let mut words = payload.chunks_exact_mut(8);
    for word in &mut words {
        let masked = u64::from_ne_bytes(word.try_into().expect("eight bytes")) ^ wide;
        word.copy_from_slice(&masked.to_ne_bytes());
    }
    // The remainder starts at a multiple of 8, so at the mask's first byte.
    for (i, byte) in words.into_remainder().iter_mut().enumerate() {
        *byte ^= mask[i & 3];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame as a client sends it: masked.
    fn client_frame(first: u8, payload: &[u8]) -> BytesMut {
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        let mut frame = BytesMut::new();
        frame.put_u8(first);
        match payload.len() {
            0..126 => frame.put_u8(0x80 | payload.len() as u8),
            126..=0xffff => {
                frame.put_u8(0x80 | 126);
                frame.put_u16(payload.len() as u16);
            }
            _ => {
                frame.put_u8(0x80 | 127);
                frame.put_u64(payload.len() as u64);
            }
        }
        frame.put_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        frame
    }

    #[test]
    fn rfc_6455s_masked_hello_is_unmasked() {
        // RFC 6455 5.7: a single-frame masked text message "Hello".
        let mut buf = BytesMut::from(&[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58][..]);
        let Some(WsFrame::Data { kind, fin, payload }) = decode(&mut buf, 100).unwrap() else {
            panic!("a data frame")
        };
        assert_eq!((kind, fin, &payload[..]), (DataKind::Text, true, &b"Hello"[..]));
        assert!(buf.is_empty());
    }

    #[test]
    fn every_payload_length_form_round_trips_through_the_mask() {
        for len in [0, 1, 7, 8, 9, 125, 126, 1000, 0xffff, 0x10000] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            let mut buf = client_frame(0x82, &payload);
            buf.put_slice(b"next");
            let Some(WsFrame::Data { payload: got, .. }) = decode(&mut buf, 0x10000).unwrap() else {
                panic!("a data frame of {len}")
            };
            assert_eq!(&got[..], &payload[..], "length {len}");
            assert_eq!(&buf[..], b"next", "only the frame is taken");
        }
    }

    #[test]
    fn a_partial_frame_waits_and_reserves_room_for_the_rest() {
        let whole = client_frame(0x82, &[9; 3000]);
        let mut buf = BytesMut::from(&whole[..100]);
        assert!(decode(&mut buf, 4000).unwrap().is_none());
        assert_eq!(buf.len(), 100, "nothing taken");
        assert!(buf.capacity() >= whole.len());
        buf.put_slice(&whole[100..]);
        assert!(matches!(decode(&mut buf, 4000), Ok(Some(WsFrame::Data { .. }))));
    }

    #[test]
    fn an_oversized_data_frame_is_refused_from_its_header_alone() {
        let whole = client_frame(0x82, &[0; 70_000]);
        let mut buf = BytesMut::from(&whole[..14]);
        assert_eq!(decode(&mut buf, 65_536).unwrap_err(), Violation::TooLong(70_000));
    }

    #[test]
    fn breaches_of_the_protocol_are_named() {
        let cases: [(BytesMut, &str); 5] = [
            (
                BytesMut::from(&[0x82, 0x01, b'x'][..]),
                "unmasked frame from the client",
            ),
            (client_frame(0xc2, b"x"), "reserved bits set"),
            (client_frame(0x83, b"x"), "unknown opcode"),
            (client_frame(0x09, b"x"), "fragmented control frame"),
            (
                client_frame(0x89, &[0; 126]),
                "control frame longer than 125 bytes",
            ),
        ];
        for (mut buf, why) in cases {
            assert_eq!(decode(&mut buf, 100).unwrap_err(), Violation::Protocol(why));
        }
        let mut buf = client_frame(0x88, &[0x03]);
        assert_eq!(
            decode(&mut buf, 100).unwrap_err(),
            Violation::Protocol("close frame with a one-byte payload")
        );
        let mut buf = client_frame(0x88, &[0x03, 0xe8, 0xff]);
        assert_eq!(
            decode(&mut buf, 100).unwrap_err(),
            Violation::Protocol("close reason is not UTF-8")
        );
    }

    #[test]
    fn a_close_is_echoed_and_a_forbidden_code_answered_with_1002() {
        let mut buf = client_frame(0x88, b"\x0f\xa0bye");
        let Some(WsFrame::Close(reply)) = decode(&mut buf, 100).unwrap() else {
            panic!("a close")
        };
        assert_eq!(&reply[..], b"\x88\x05\x0f\xa0bye");
        // 1005 ("no status") may never be sent.
        let mut buf = client_frame(0x88, b"\x03\xed");
        let Some(WsFrame::Close(reply)) = decode(&mut buf, 100).unwrap() else {
            panic!("a close")
        };
        assert_eq!(&reply[..], b"\x88\x14\x03\xeaProtocol violation");
        let mut buf = client_frame(0x88, b"");
        assert!(matches!(decode(&mut buf, 100), Ok(Some(WsFrame::Close(reply))) if reply[..] == [0x88, 0]));
    }

    #[test]
    fn pings_carry_their_payload_and_pongs_echo_it() {
        let mut buf = client_frame(0x89, b"are you there");
        let Some(WsFrame::Ping(payload)) = decode(&mut buf, 100).unwrap() else {
            panic!("a ping")
        };
        assert_eq!(&pong(&payload)[..], b"\x8a\x0dare you there");
    }

    #[test]
    fn a_long_close_reason_is_cut_at_a_character_boundary() {
        let reason = "é".repeat(100);
        let frame = close(Some((1008, &reason)));
        assert_eq!(frame[1], 2 + 122, "61 two-byte characters");
        assert!(std::str::from_utf8(&frame[4..]).is_ok());
    }

    #[test]
    fn binary_headers_use_the_shortest_length_form() {
        for (len, header_len) in [(0, 2), (125, 2), (126, 4), (0xffff, 4), (0x10000, 10)] {
            let mut buf = BytesMut::new();
            put_binary_header(&mut buf, len);
            assert_eq!(buf.len(), header_len);
            assert_eq!(binary_header_len(len), header_len);
            let mut cursor = Cursor::new(&buf[..]);
            let (header, parsed) = FrameHeader::parse(&mut cursor).unwrap().unwrap();
            assert_eq!((header.opcode, parsed), (OpCode::Data(Data::Binary), len as u64));
        }
    }
}
