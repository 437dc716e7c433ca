//! The codec, specified by example: split reads, batches, limits, bad input.

use bytes::{BufMut, Bytes, BytesMut};
use jim_protocol::{Command, DEFAULT_MAX_BODY, Frame, FrameCodec, HEADER_LEN, Header, ProtocolError};
use proptest::prelude::*;

fn wire(frames: &[Frame]) -> BytesMut {
    let codec = FrameCodec::new();
    let mut buf = BytesMut::new();
    for frame in frames {
        codec.encode_into(frame, &mut buf).unwrap();
    }
    buf
}

fn decode_all(codec: &FrameCodec, buf: &mut BytesMut) -> Vec<Frame> {
    let mut out = Vec::new();
    while let Some(frame) = codec.decode_from(buf).unwrap() {
        out.push(frame);
    }
    out
}

#[test]
fn every_command_round_trips() {
    let codec = FrameCodec::new();
    let commands = Command::KNOWN.into_iter().chain([Command::Unknown(*b"Z123")]);
    for (seq, cmd) in commands.enumerate() {
        let frame = Frame::new(cmd, seq as u32, format!("body of {cmd}"));
        let mut buf = wire(std::slice::from_ref(&frame));
        assert_eq!(&buf[4..8], &cmd.code());
        assert_eq!(codec.decode_from(&mut buf).unwrap(), Some(frame));
        assert!(buf.is_empty());
    }
}

#[test]
fn header_is_big_endian_and_laid_out_as_the_contract_says() {
    let buf = wire(&[Frame::new(Command::C2C, 0x0102_0304, "abc")]);
    assert_eq!(&buf[..], b"jim1B101\x01\x02\x03\x04\x00\x00\x00\x03abc");
}

#[test]
fn one_frame_fed_one_byte_at_a_time() {
    let codec = FrameCodec::new();
    let frame = Frame::new(Command::C2G, 42, r#"{"type":"text","data":{"content":"hi"}}"#);
    let full = wire(std::slice::from_ref(&frame));
    let mut buf = BytesMut::new();
    for (i, byte) in full.iter().enumerate() {
        buf.put_u8(*byte);
        let decoded = codec.decode_from(&mut buf).unwrap();
        if i + 1 < full.len() {
            assert_eq!(decoded, None, "decoded early after {} bytes", i + 1);
        } else {
            assert_eq!(decoded, Some(frame.clone()));
        }
    }
    assert!(buf.is_empty());
}

#[test]
fn many_frames_in_one_buffer() {
    let codec = FrameCodec::new();
    let frames: Vec<Frame> = (0..100)
        .map(|i| Frame::new(Command::C2C, i, format!("message {i}")))
        .collect();
    let mut buf = wire(&frames);
    assert_eq!(decode_all(&codec, &mut buf), frames);
    assert!(buf.is_empty());
}

#[test]
fn many_frames_across_arbitrary_read_boundaries() {
    let codec = FrameCodec::new();
    let frames: Vec<Frame> = (0..50)
        .map(|i| Frame::new(Command::C2C, i, "x".repeat(i as usize * 7)))
        .collect();
    let full = wire(&frames).freeze();
    for chunk in [1, 3, 15, 16, 17, 100, 1000] {
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for piece in full.chunks(chunk) {
            buf.extend_from_slice(piece);
            out.extend(decode_all(&codec, &mut buf));
        }
        assert_eq!(out, frames, "chunk size {chunk}");
    }
}

#[test]
fn empty_body() {
    let codec = FrameCodec::new();
    let mut buf = wire(&[Frame::empty(Command::Ping, 9)]);
    assert_eq!(buf.len(), HEADER_LEN);
    let frame = codec.decode_from(&mut buf).unwrap().unwrap();
    assert_eq!((frame.cmd, frame.seq), (Command::Ping, 9));
    assert!(frame.body.is_empty());
}

#[test]
fn body_of_exactly_the_maximum_is_accepted() {
    let codec = FrameCodec::new();
    let frame = Frame::new(Command::C2C, 1, vec![b'a'; DEFAULT_MAX_BODY]);
    let mut buf = wire(std::slice::from_ref(&frame));
    assert_eq!(codec.decode_from(&mut buf).unwrap(), Some(frame));
}

#[test]
fn body_one_byte_over_the_maximum_is_refused_from_the_header_alone() {
    let codec = FrameCodec::new();
    let header = Header {
        cmd: Command::C2C,
        seq: 1,
        len: DEFAULT_MAX_BODY as u32 + 1,
    };
    // Only the header has arrived: the body is never waited for.
    let mut buf = BytesMut::from(&header.to_bytes()[..]);
    match codec.decode_from(&mut buf) {
        Err(ProtocolError::BodyTooLarge { len, max }) => {
            assert_eq!((len, max), (DEFAULT_MAX_BODY as u64 + 1, DEFAULT_MAX_BODY));
        }
        other => panic!("expected BodyTooLarge, got {other:?}"),
    }
    // No room was reserved for the refused body.
    assert!(buf.capacity() < DEFAULT_MAX_BODY);
}

#[test]
fn configured_maximum_is_enforced_both_ways() {
    let codec = FrameCodec::with_max_body(8);
    assert_eq!(codec.max_body(), 8);
    let mut buf = BytesMut::new();
    codec
        .encode_into(&Frame::new(Command::C2C, 1, "12345678"), &mut buf)
        .unwrap();
    let err = codec
        .encode_into(&Frame::new(Command::C2C, 1, "123456789"), &mut buf)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "frame body of 9 bytes exceeds the maximum of 8 bytes"
    );
    assert!(codec.decode_from(&mut buf).unwrap().is_some());
}

#[test]
fn wrong_magic_is_fatal_and_names_what_was_seen() {
    let codec = FrameCodec::new();
    let mut buf = BytesMut::from(&b"jim2B101\0\0\0\x01\0\0\0\0"[..]);
    let err = codec.decode_from(&mut buf).unwrap_err();
    assert!(matches!(err, ProtocolError::BadMagic { found } if &found == b"jim2"));
    assert_eq!(err.to_string(), r#"bad magic: expected "jim1", got "jim2""#);
}

#[test]
fn wrong_magic_is_detected_before_the_header_is_complete() {
    let codec = FrameCodec::new();
    let mut buf = BytesMut::from(&b"GET "[..]);
    assert!(matches!(
        codec.decode_from(&mut buf),
        Err(ProtocolError::BadMagic { .. })
    ));
    let mut buf = BytesMut::from(&b"jim"[..]);
    assert_eq!(codec.decode_from(&mut buf).unwrap(), None);
}

#[test]
fn non_printable_magic_is_escaped_in_the_error() {
    let err = Header::parse(&[0, 0xff, b'\n', b'a']).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"bad magic: expected "jim1", got "\x00\xff\na""#
    );
}

#[test]
fn decoding_takes_the_body_without_copying() {
    let codec = FrameCodec::new();
    let mut buf = wire(&[Frame::new(Command::C2C, 1, vec![7u8; 1000])]);
    let start = buf.as_ptr() as usize;
    let frame = codec.decode_from(&mut buf).unwrap().unwrap();
    assert_eq!(frame.body.as_ptr() as usize, start + HEADER_LEN);
}

#[test]
fn a_message_holding_exactly_one_frame_decodes() {
    let codec = FrameCodec::new();
    let frame = Frame::new(Command::C2C, 3, "hello");
    let message = frame.to_bytes().unwrap();
    let start = message.as_ptr() as usize;
    let decoded = codec.decode_message(message).unwrap();
    assert_eq!(decoded, frame);
    assert_eq!(decoded.body.as_ptr() as usize, start + HEADER_LEN);
}

#[test]
fn a_message_that_is_not_exactly_one_frame_is_refused() {
    let codec = FrameCodec::new();
    let one = Frame::new(Command::C2C, 3, "hello").to_bytes().unwrap();

    let short = one.slice(..one.len() - 1);
    let err = codec.decode_message(short).unwrap_err();
    assert!(matches!(
        err,
        ProtocolError::LengthMismatch {
            declared: Some(21),
            actual: 20
        }
    ));
    assert_eq!(
        err.to_string(),
        "message of 20 bytes is not exactly one frame (its header declares 21 bytes)"
    );

    let mut two = BytesMut::from(&one[..]);
    two.extend_from_slice(&one);
    assert!(matches!(
        codec.decode_message(two.freeze()),
        Err(ProtocolError::LengthMismatch {
            declared: Some(21),
            actual: 42
        })
    ));

    let err = codec.decode_message(Bytes::from_static(b"jim1B1")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "message of 6 bytes is not exactly one frame (shorter than the 16-byte header)"
    );
    assert!(matches!(
        codec.decode_message(Bytes::from_static(b"{}")),
        Err(ProtocolError::LengthMismatch { .. })
    ));
    assert!(matches!(
        codec.decode_message(Bytes::from_static(b"hello")),
        Err(ProtocolError::BadMagic { .. })
    ));
}

#[test]
fn unknown_command_survives_a_round_trip() {
    let codec = FrameCodec::new();
    let mut buf = BytesMut::from(&b"jim1\x00\x01\x02\x03\0\0\0\x05\0\0\0\0"[..]);
    let frame = codec.decode_from(&mut buf).unwrap().unwrap();
    assert_eq!(frame.cmd, Command::Unknown([0, 1, 2, 3]));
    assert_eq!(frame.seq, 5);
    assert_eq!(&frame.to_bytes().unwrap()[4..8], &[0, 1, 2, 3]);
}

#[tokio::test]
async fn framed_stream_reads_and_writes_frames() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_util::codec::Framed;

    let (a, b) = tokio::io::duplex(64);
    let mut left = Framed::new(a, FrameCodec::new());
    let mut right = Framed::new(b, FrameCodec::new());
    let frames: Vec<Frame> = (0..20)
        .map(|i| Frame::new(Command::C2C, i, "y".repeat(100)))
        .collect();
    let sent = frames.clone();
    let writer = tokio::spawn(async move {
        for frame in sent {
            left.send(frame).await.unwrap();
        }
    });
    for expected in frames {
        assert_eq!(right.next().await.unwrap().unwrap(), expected);
    }
    writer.await.unwrap();
}

fn any_command() -> impl Strategy<Value = Command> {
    prop_oneof![
        proptest::sample::select(Command::KNOWN.to_vec()),
        any::<[u8; 4]>().prop_map(Command::from_code),
    ]
}

fn any_frame() -> impl Strategy<Value = Frame> {
    (
        any_command(),
        any::<u32>(),
        proptest::collection::vec(any::<u8>(), 0..2048),
    )
        .prop_map(|(cmd, seq, body)| Frame::new(cmd, seq, body))
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..16)) {
        let codec = FrameCodec::with_max_body(256);
        let mut buf = BytesMut::new();
        for chunk in chunks {
            buf.extend_from_slice(&chunk);
            while let Ok(Some(_)) = codec.decode_from(&mut buf) {}
        }
        // The same bytes as one message never panic either.
        let _ = codec.decode_message(buf.freeze());
    }

    #[test]
    fn arbitrary_bytes_after_a_valid_magic_never_panic(rest in proptest::collection::vec(any::<u8>(), 0..300)) {
        let codec = FrameCodec::with_max_body(128);
        let mut buf = BytesMut::from(&b"jim1"[..]);
        buf.extend_from_slice(&rest);
        while let Ok(Some(frame)) = codec.decode_from(&mut buf) {
            prop_assert!(frame.body.len() <= 128);
        }
    }

    #[test]
    fn arbitrary_frames_round_trip(frames in proptest::collection::vec(any_frame(), 1..8), split in 1usize..64) {
        let codec = FrameCodec::new();
        let full = wire(&frames).freeze();
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for piece in full.chunks(split) {
            buf.extend_from_slice(piece);
            out.extend(decode_all(&codec, &mut buf));
        }
        prop_assert_eq!(out, frames.clone());
        for frame in frames {
            prop_assert_eq!(codec.decode_message(frame.to_bytes().unwrap()).unwrap(), frame);
        }
    }
}

/// The TypeScript SDK's default maximum body is this crate's: one number,
/// checked here against the SDK's source.
#[test]
fn the_sdks_default_maximum_body_is_the_contracts() {
    let frame_ts = include_str!("../../../clients/typescript/src/frame.ts");
    let declared = frame_ts
        .lines()
        .find_map(|line| line.strip_prefix("export const DEFAULT_MAX_BODY = "))
        .expect("frame.ts declares DEFAULT_MAX_BODY");
    let value: usize = declared
        .trim_end_matches(';')
        .split('*')
        .map(|factor| factor.trim().parse::<usize>().expect("a product of numbers"))
        .product();
    assert_eq!(value, DEFAULT_MAX_BODY);
}
