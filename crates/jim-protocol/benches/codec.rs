//! Codec throughput: decode and encode of 64 B, 1 KiB and 64 KiB bodies.
//!
//! Run with `cargo bench -p jim-protocol --bench codec`. Each benchmark
//! reports frames per second and bytes per second (whole frames, header
//! included). `memcpy` is the reference for encoding: copying the same body
//! bytes into a reused buffer.

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use jim_protocol::{Command, Frame, FrameCodec, HEADER_LEN};

const SIZES: [(usize, &str); 3] = [(64, "64B"), (1024, "1KiB"), (64 * 1024, "64KiB")];

/// Enough frames per decoded buffer to amortise the setup, ~1 MiB at most.
fn frames_per_buffer(body: usize) -> usize {
    (1 << 20) / (HEADER_LEN + body)
}

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    let codec = FrameCodec::new();
    for (size, name) in SIZES {
        let count = frames_per_buffer(size);
        let frame = Frame::new(Command::C2C, 1, Bytes::from(vec![b'x'; size]));
        let mut wire = BytesMut::new();
        for _ in 0..count {
            codec.encode_into(&frame, &mut wire).unwrap();
        }
        group.throughput(Throughput::ElementsAndBytes {
            elements: count as u64,
            bytes: wire.len() as u64,
        });
        group.bench_with_input(BenchmarkId::from_parameter(name), &wire, |b, wire| {
            b.iter_batched_ref(
                || wire.clone(),
                |buf| {
                    while let Some(frame) = codec.decode_from(buf).unwrap() {
                        black_box(frame);
                    }
                },
                BatchSize::LargeInput,
            );
        });
    }
    group.finish();
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    let codec = FrameCodec::new();
    for (size, name) in SIZES {
        let frame = Frame::new(Command::C2C, 1, Bytes::from(vec![b'x'; size]));
        group.throughput(Throughput::ElementsAndBytes {
            elements: 1,
            bytes: frame.encoded_len() as u64,
        });
        let mut dst = BytesMut::with_capacity(frame.encoded_len());
        group.bench_with_input(BenchmarkId::from_parameter(name), &frame, |b, frame| {
            b.iter(|| {
                dst.clear();
                codec.encode_into(black_box(frame), &mut dst).unwrap();
                black_box(&dst);
            });
        });
    }
    group.finish();

    let mut group = c.benchmark_group("memcpy");
    for (size, name) in SIZES {
        let body = vec![b'x'; size];
        group.throughput(Throughput::ElementsAndBytes {
            elements: 1,
            bytes: (HEADER_LEN + size) as u64,
        });
        let mut dst = BytesMut::with_capacity(size);
        group.bench_with_input(BenchmarkId::from_parameter(name), &body, |b, body| {
            b.iter(|| {
                dst.clear();
                dst.extend_from_slice(black_box(body));
                black_box(&dst);
            });
        });
    }
    group.finish();
}

criterion_group!(benches, decode, encode);
criterion_main!(benches);
