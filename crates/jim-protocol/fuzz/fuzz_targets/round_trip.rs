//! Arbitrary frames encode and decode back to themselves, whole and split.
#![no_main]

use arbitrary::Arbitrary;
use bytes::BytesMut;
use jim_protocol::{Command, Frame, FrameCodec};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input {
    frames: Vec<(u8, [u8; 4], u32, Vec<u8>)>,
    split: u8,
}

fuzz_target!(|input: Input| {
    let codec = FrameCodec::with_max_body(4096);
    let frames: Vec<Frame> = input
        .frames
        .into_iter()
        .map(|(pick, code, seq, body)| {
            let cmd = match Command::KNOWN.get(usize::from(pick)) {
                Some(known) => *known,
                None => Command::from_code(code),
            };
            Frame::new(cmd, seq, body)
        })
        .filter(|frame| frame.body.len() <= 4096)
        .collect();
    let mut wire = BytesMut::new();
    for frame in &frames {
        codec.encode_into(frame, &mut wire).unwrap();
    }
    let mut buf = BytesMut::new();
    let mut decoded = Vec::new();
    for chunk in wire.chunks(usize::from(input.split).max(1)) {
        buf.extend_from_slice(chunk);
        while let Some(frame) = codec.decode_from(&mut buf).unwrap() {
            decoded.push(frame);
        }
    }
    assert_eq!(decoded, frames);
});
