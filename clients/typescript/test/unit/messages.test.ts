import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import {
  face,
  file,
  FileFormat,
  image,
  ImageFormat,
  isFace,
  isFile,
  isImage,
  isLocation,
  isMessage,
  isSound,
  isText,
  isVideo,
  location,
  MESSAGE_TYPES,
  sound,
  summary,
  text,
  video,
  VideoFormat,
  type ChatMessage,
} from "../../src/index.js";

/** The seed's samples, as docs/protocol.md section 7 lists them (the test vectors). */
function seedSamples(): Record<string, unknown>[] {
  const doc = readFileSync(new URL("../../../../../docs/protocol.md", import.meta.url), "utf8");
  return doc
    .split("\n")
    .filter((line) => line.startsWith('{"type":'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

/** What the gateway writes for the seed's image sample: its keys without the trailing space. */
function cleanKeys(sample: Record<string, unknown>): Record<string, unknown> {
  const data = sample["data"] as Record<string, unknown>;
  return { ...sample, data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k.trim(), v])) };
}

const guards = { text: isText, location: isLocation, face: isFace, sound: isSound, image: isImage, file: isFile, video: isVideo };

test("every chat sample of the seed is recognised by its guard and by no other", () => {
  const samples = seedSamples();
  assert.equal(samples.length, 8, "seven kinds and the ack");
  for (const sample of samples) {
    const type = sample["type"] as string;
    if (type === "ack") {
      assert.equal(isMessage(sample), false, "an ack is not a chat message");
      continue;
    }
    const clean = cleanKeys(sample);
    for (const [kind, guard] of Object.entries(guards)) {
      assert.equal(guard(clean), kind === type, `${kind} guard on the ${type} sample`);
    }
    assert.ok(isMessage(clean));
    // Unknown fields stay put: the guard narrows, it does not copy or strip.
    const extended = { ...clean, trace: "t1", data: { ...(clean["data"] as object), reply_to: "42" } };
    assert.ok(isMessage(extended, type as (typeof MESSAGE_TYPES)[number]));
    assert.equal((extended as ChatMessage).data["reply_to"], "42");
  }
});

test("the seed's image sample with its trailing-space keys lacks big_url until the gateway cleans it", () => {
  const image = seedSamples().find((s) => s["type"] === "image")!;
  assert.equal(isImage(image), false);
  assert.equal(isImage(cleanKeys(image)), true);
});

test("guards refuse what lacks a required field or has the wrong type", () => {
  assert.equal(isText({ type: "text", data: {} }), false);
  assert.equal(isText({ type: "text", data: { content: 5 } }), false);
  assert.equal(isLocation({ type: "location", data: { lat: "1", lng: 2 } }), false);
  assert.equal(isFile({ type: "file", data: { url: "u" } }), false, "a file needs its name");
  assert.equal(isMessage({ type: "gif", data: {} }), false);
  assert.equal(isMessage(null), false);
  assert.equal(isMessage({ type: "text", data: [] }), false);
});

test("builders make each kind with its fields and keep the application's own", () => {
  const made: ChatMessage[] = [
    text("hi", { client_msg_id: "c1", reply_to: "7" }),
    location({ lat: 22.5, lng: 113.9, desc: "深圳湾公园" }),
    face("[:smile]"),
    sound({ url: "https://example.com/a.mp3", seconds: 3 }),
    image({ big_url: "https://example.com/a.png", format: ImageFormat.png, width: 500 }),
    file({ url: "https://example.com/a.docx", name: "a.docx", format: FileFormat.docx }),
    video({ url: "https://example.com/a.mp4", format: VideoFormat.mov, thumb_format: ImageFormat.jpg }),
  ];
  assert.deepEqual(
    made.map((m) => m.type),
    [...MESSAGE_TYPES],
  );
  for (const message of made) assert.ok(isMessage(message, message.type), message.type);
  assert.deepEqual(made[0], { type: "text", data: { client_msg_id: "c1", reply_to: "7", content: "hi" } });
  assert.deepEqual(
    made.map((m) => summary(m)),
    ["hi", "📍 深圳湾公园", "[:smile]", "🔊 3 s", "🖼 image", "📄 a.docx", "🎬 video"],
  );
});

test("a 64-bit message_id survives JSON as the string it is", () => {
  const body = '{"type":"text","data":{"receiver_id":"2","content":"x","message_id":"7302017283123456789"}}';
  const parsed = JSON.parse(body) as ChatMessage;
  assert.equal(parsed.data.message_id, "7302017283123456789");
  assert.equal(JSON.stringify(parsed), body);
});
