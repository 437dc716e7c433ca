//! Raw bytes, in arbitrary read sizes, through the stream decoder and the
//! one-message decoder: never a panic, never a body above the limit.
#![no_main]

use bytes::BytesMut;
use jim_protocol::FrameCodec;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else { return };
    let codec = FrameCodec::with_max_body(1024);
    let mut buf = BytesMut::new();
    for chunk in rest.chunks(usize::from(split).max(1)) {
        buf.extend_from_slice(chunk);
        while let Ok(Some(frame)) = codec.decode_from(&mut buf) {
            assert!(frame.body.len() <= 1024);
        }
    }
    let _ = codec.decode_message(bytes::Bytes::copy_from_slice(rest));
});
