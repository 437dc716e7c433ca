//! What reading a message costs the gateway: routing fields only, the
//! validated one-pass read, the typed parse, and stamping.
//!
//! Run with `cargo bench -p jim-model --bench routing`. The body is the
//! seed's text sample (~200 bytes).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use jim_model::{Addressing, Message, MessageId, RawMessage, Stamp};

const TEXT: &[u8] = r#"{"type":"text","data":{"sender_id":"1","sender_name":"用户1","sender_avatar":"https://www.baidu.com/img/flexible/logo/pc/result.png","receiver_id":"2","content":"hello client 2"}}"#.as_bytes();

fn routing(c: &mut Criterion) {
    let mut group = c.benchmark_group("read_text_sample");
    group.throughput(Throughput::ElementsAndBytes {
        elements: 1,
        bytes: TEXT.len() as u64,
    });
    group.bench_function("route_peek", |b| {
        b.iter(|| black_box(Addressing::peek(black_box(TEXT)).unwrap()))
    });
    group.bench_function("raw_parse_validated", |b| {
        b.iter(|| black_box(RawMessage::parse(black_box(TEXT)).unwrap()))
    });
    group.bench_function("typed_parse", |b| {
        b.iter(|| black_box(Message::from_slice(black_box(TEXT)).unwrap()))
    });
    // The part of raw_parse_validated that refuses JSON parsers read differently.
    group.bench_function("strict_check", |b| {
        b.iter(|| jim_model::strict::check(black_box(TEXT)).is_ok())
    });
    group.finish();

    let mut group = c.benchmark_group("stamp_text_sample");
    group.throughput(Throughput::ElementsAndBytes {
        elements: 1,
        bytes: TEXT.len() as u64,
    });
    let stamp = Stamp::new("1", MessageId(7_300_000_000_000_000_001), 1_764_000_000_000);
    let mut out = Vec::with_capacity(512);
    group.bench_function("raw_parse_and_stamp", |b| {
        b.iter(|| {
            out.clear();
            RawMessage::parse(black_box(TEXT))
                .unwrap()
                .stamp(&stamp, &mut out);
            black_box(&out);
        })
    });
    group.bench_function("typed_parse_stamp_serialize", |b| {
        b.iter(|| {
            out.clear();
            let mut message = Message::from_slice(black_box(TEXT)).unwrap();
            if let Message::Text(text) = &mut message {
                text.common.sender_id = Some("1".to_owned());
                text.common.message_id = Some(stamp.message_id);
                text.common.timestamp = Some(stamp.timestamp);
            }
            serde_json::to_writer(&mut out, &message).unwrap();
            black_box(&out);
        })
    });
    group.finish();
}

criterion_group!(benches, routing);
criterion_main!(benches);
