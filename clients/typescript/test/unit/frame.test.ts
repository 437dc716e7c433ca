import { test } from "node:test";
import assert from "node:assert/strict";
import { bodyText, decodeFrame, encodeFrame, FrameDecoder, FrameError } from "../../src/index.js";

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex");

test("a frame is jim1, the command, seq and length big-endian, then the body", () => {
  const bytes = encodeFrame("B101", 0x01020304, "{}");
  assert.equal(hex(bytes.subarray(0, 16)), Buffer.from("jim1B101").toString("hex") + "01020304" + "00000002");
  assert.equal(Buffer.from(bytes.subarray(16)).toString(), "{}");
});

test("a frame round-trips, with UTF-8 bodies counted in bytes", () => {
  const body = '{"type":"text","data":{"receiver_id":"2","content":"你好 😀"}}';
  const frame = decodeFrame(encodeFrame("B101", 4294967295, body));
  assert.equal(frame.cmd, "B101");
  assert.equal(frame.seq, 4294967295);
  assert.equal(bodyText(frame), body);
  assert.equal(frame.body.length, new TextEncoder().encode(body).length);
});

test("encoding refuses a command that is not 4 ASCII letters and a seq beyond u32", () => {
  assert.throws(() => encodeFrame("B10", 1), TypeError);
  assert.throws(() => encodeFrame("B1011", 1), TypeError);
  assert.throws(() => encodeFrame("B10é", 1), TypeError);
  assert.throws(() => encodeFrame("B101", -1), RangeError);
  assert.throws(() => encodeFrame("B101", 2 ** 32), RangeError);
  assert.throws(() => encodeFrame("B101", 1.5), RangeError);
});

function frameError(fn: () => unknown): FrameError {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof FrameError, `a FrameError, not ${String(error)}`);
    return error;
  }
  assert.fail("no error");
}

test("a WebSocket message must hold exactly one frame: coalesced frames are a protocol error", () => {
  const one = encodeFrame("A002", 1, "x");
  const two = new Uint8Array([...one, ...encodeFrame("A002", 2, "y")]);
  const error = frameError(() => decodeFrame(two));
  assert.equal(error.closeCode, 1002);
  assert.match(error.message, /exactly one frame: 34 bytes for a frame of 17/);
});

test("a WebSocket message with a split frame (header only, half a body, half a header) is a protocol error", () => {
  const whole = encodeFrame("B101", 1, '{"type":"text"}');
  for (const cut of [15, 16, 20, whole.length - 1]) {
    const error = frameError(() => decodeFrame(whole.subarray(0, cut)));
    assert.equal(error.closeCode, 1002, `cut at ${cut}`);
  }
  assert.match(frameError(() => decodeFrame(whole.subarray(0, 8))).message, /shorter than a frame header/);
});

test("a bad magic is 1002 and an oversized length 1009, from the header alone", () => {
  const bad = encodeFrame("A001", 1, "");
  bad[3] = "2".charCodeAt(0);
  assert.equal(frameError(() => decodeFrame(bad)).closeCode, 1002);
  const header = encodeFrame("B101", 1, "").slice(0, 16);
  new DataView(header.buffer).setUint32(12, 65537, false);
  const error = frameError(() => decodeFrame(header, 65536));
  assert.equal(error.closeCode, 1009);
  assert.match(error.message, /65537 bytes is above the maximum of 65536/);
});

test("a body that is not UTF-8 is a protocol error", () => {
  const frame = decodeFrame(encodeFrame("B101", 1, new Uint8Array([0xff, 0xfe])));
  assert.equal(frameError(() => bodyText(frame)).closeCode, 1002);
});

test("the stream decoder reads frames split at every byte", () => {
  const frames = [encodeFrame("A001", 1, "ping"), encodeFrame("B101", 2, '{"a":"ü"}'), encodeFrame("A002", 3)];
  const stream = new Uint8Array(frames.reduce((n, f) => n + f.length, 0));
  let at = 0;
  for (const f of frames) {
    stream.set(f, at);
    at += f.length;
  }
  const decoder = new FrameDecoder();
  const out = [];
  for (let i = 0; i < stream.length; i++) out.push(...decoder.push(stream.subarray(i, i + 1)));
  assert.deepEqual(
    out.map((f) => [f.cmd, f.seq, bodyText(f)]),
    [
      ["A001", 1, "ping"],
      ["B101", 2, '{"a":"ü"}'],
      ["A002", 3, ""],
    ],
  );
  assert.equal(decoder.pending, 0);
});

test("the stream decoder reads many frames coalesced in one chunk, and keeps a trailing part", () => {
  const decoder = new FrameDecoder();
  const a = encodeFrame("A001", 1, "a");
  const b = encodeFrame("A001", 2, "bb");
  const chunk = new Uint8Array([...a, ...b, ...b.subarray(0, 5)]);
  const out = decoder.push(chunk);
  assert.deepEqual(
    out.map((f) => f.seq),
    [1, 2],
  );
  assert.equal(decoder.pending, 5);
  assert.deepEqual(
    decoder.push(b.subarray(5)).map((f) => bodyText(f)),
    ["bb"],
  );
});

test("the stream decoder refuses a bad magic at its fourth byte and an oversized length before the body", () => {
  const decoder = new FrameDecoder();
  assert.deepEqual(decoder.push(new TextEncoder().encode("jim")), []);
  assert.equal(frameError(() => decoder.push(new TextEncoder().encode("2"))).closeCode, 1002);
  const http = new FrameDecoder();
  assert.equal(frameError(() => http.push(new TextEncoder().encode("GET / HTTP/1.1"))).closeCode, 1002);
  const header = encodeFrame("B101", 1, "").slice(0, 16);
  new DataView(header.buffer).setUint32(12, 70000, false);
  assert.equal(frameError(() => new FrameDecoder(65536).push(header)).closeCode, 1009);
});
