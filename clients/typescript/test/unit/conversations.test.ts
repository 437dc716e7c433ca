// Receipt marks as the SDK sends them: forward only, delivered ones
// coalesced (only the highest of a conversation counts), read ones at once.
import { test } from "node:test";
import assert from "node:assert/strict";
import { compareIds, type Conversation, type MarkStatus } from "../../src/index.js";
import { MarkSender } from "../../src/conversations.js";

function recorder() {
  const sent: [string, MarkStatus, string][] = [];
  const marks = new MarkSender((conversation: Conversation, status, id) => {
    sent.push(["group" in conversation ? `g:${conversation.group}` : `u:${conversation.user}`, status, id]);
    return true;
  }, 60_000);
  return { sent, marks };
}

test("message ids compare as numbers, whatever their length", () => {
  assert.ok(compareIds("10", "9") > 0);
  assert.ok(compareIds("7302000000000000001", "7302000000000000002") < 0);
  assert.equal(compareIds("42", "42"), 0);
});

test("delivered marks are coalesced per conversation and the highest is never lost", () => {
  const { sent, marks } = recorder();
  marks.mark({ user: "bob" }, "delivered", "5");
  marks.mark({ user: "bob" }, "delivered", "9");
  marks.mark({ user: "bob" }, "delivered", "7");
  marks.mark({ group: "team" }, "delivered", "3");
  assert.deepEqual(sent, [], "held until the flush");
  marks.flush();
  assert.deepEqual(sent, [
    ["u:bob", "delivered", "9"],
    ["g:team", "delivered", "3"],
  ]);
  marks.mark({ user: "bob" }, "delivered", "8");
  marks.flush();
  assert.equal(sent.length, 2, "below what was sent: nothing");
});

test("read marks go at once, forward only", () => {
  const { sent, marks } = recorder();
  marks.mark({ user: "bob" }, "read", "5");
  marks.mark({ user: "bob" }, "read", "5");
  marks.mark({ user: "bob" }, "read", "4");
  marks.mark({ user: "bob" }, "read", "6");
  assert.deepEqual(sent, [
    ["u:bob", "read", "5"],
    ["u:bob", "read", "6"],
  ]);
  marks.clear();
});
