// The client's state machine against a scripted server, frame by frame.
import { afterEach, test } from "node:test";
import assert from "node:assert/strict";
import {
  encodeFrame,
  JimClient,
  JimError,
  MemoryPositionStore,
  reconnects,
  text,
  type ClientEvents,
  type ClientOptions,
  type IncomingMessage,
} from "../../src/index.js";
import { FakeSocket } from "./fake-socket.js";
import { within as withinMs } from "../support.js";

const WAIT_MS = 5_000;
const within = <T>(promise: Promise<T>, what: string, ms = WAIT_MS) => withinMs(promise, what, ms);

function next<K extends keyof ClientEvents>(client: JimClient, event: K): Promise<ClientEvents[K]> {
  return within(new Promise((resolve) => client.once(event, resolve)), `event ${String(event)}`);
}

const clients: JimClient[] = [];
function client(options: Partial<ClientOptions> = {}): JimClient {
  const made = new JimClient({
    url: "ws://gateway.test/ws",
    token: "alice",
    WebSocket: FakeSocket,
    reconnect: { initialDelayMs: 1, maxDelayMs: 5 },
    ...options,
  });
  clients.push(made);
  return made;
}

afterEach(async () => {
  for (const c of clients.splice(0)) {
    if (c.state !== "closed") void c.close();
  }
  FakeSocket.reset();
});

/** A connected client and its socket. */
async function connected(options: Partial<ClientOptions> = {}, b002: Record<string, unknown> = {}) {
  const c = client(options);
  const socket = FakeSocket.next();
  const session = c.connect();
  const server = await within(socket, "a socket");
  const auth = await server.accept(b002);
  await within(session, "signed in");
  return { client: c, server, auth };
}

test("signs in with the token, the device and a since asking for everything, then is connected", async () => {
  const c = client({ device: "test" });
  const states: string[] = [];
  c.on("state", ({ state }) => states.push(state));
  const socket = FakeSocket.next();
  const session = c.connect();
  const server = await socket;
  assert.equal(server.url, "ws://gateway.test/ws");
  const b001 = await server.accept({ session_id: "77", inbox: { epoch: "e1", offset: 4, recovered: false } });
  assert.deepEqual(b001, { token: "alice", device: "test", since: { epoch: "", offset: 0 } });
  assert.equal(server.binaryType, "arraybuffer");
  const info = await session;
  assert.deepEqual(info, {
    userId: "alice",
    sessionId: "77",
    heartbeatSecs: 30,
    reconnected: false,
    inbox: { epoch: "e1", head: 4, recovered: false },
  });
  assert.deepEqual(states, ["connecting", "connected"]);
  assert.deepEqual(c.inboxPosition, { epoch: "e1", offset: 0 });
});

test("a send is a B101 with receiver_id and a client_msg_id, and resolves with the ack's string id", async () => {
  const { client: c, server } = await connected();
  const acked = c.send("bob", text("hello", { mood: "fine" }));
  const sent = await server.nextOf("B101");
  const body = JSON.parse(sent.body);
  assert.equal(body.type, "text");
  assert.equal(body.data.receiver_id, "bob");
  assert.equal(body.data.content, "hello");
  assert.equal(body.data.mood, "fine", "the application's own field is sent");
  assert.match(body.data.client_msg_id, /^[0-9a-f]{32}$/);
  // The id beyond 2^53, as the gateway writes it.
  server.deliver("B101", sent.seq, {
    type: "ack",
    data: { receiver_id: "bob", request_id: sent.seq, message_id: "7302017283123456789" },
  });
  const ack = await acked;
  assert.equal(ack.messageId, "7302017283123456789");
  assert.equal(ack.receiverId, "bob");
  assert.equal(ack.clientMsgId, body.data.client_msg_id);
});

test("an error reply rejects that send only, with the contract's code", async () => {
  const { client: c, server } = await connected();
  const refused = c.sendToGroup("team", "hi");
  const fine = c.sendToGroup("team", "hi again");
  const first = await server.nextOf("B102");
  const second = await server.nextOf("B102");
  server.deliver("B102", first.seq, { type: "error", data: { code: 4003, reason: "not a member of group team" } });
  server.deliver("B102", second.seq, { type: "ack", data: { receiver_id: "team", message_id: "9", offset: 1 } });
  await assert.rejects(refused, (e: unknown) => {
    assert.ok(e instanceof JimError);
    assert.equal(e.kind, "rejected");
    assert.equal(e.code, 4003);
    assert.equal(e.reason, "not a member of group team");
    assert.equal(e.retryable, false);
    return true;
  });
  assert.equal((await fine).offset, 1);
});

test("a send with no answer times out; one refused locally never goes out", async () => {
  const { client: c, server } = await connected({ requestTimeoutMs: 50 });
  await assert.rejects(c.send("bob", "anyone?"), (e: unknown) => e instanceof JimError && e.kind === "timeout" && e.retryable);
  await assert.rejects(c.send("", "x"), (e: unknown) => e instanceof JimError && e.kind === "invalid");
  await assert.rejects(
    c.send("bob", { type: "text", data: {} } as never),
    (e: unknown) => e instanceof JimError && e.kind === "invalid",
  );
  await assert.rejects(
    c.send("bob", "x".repeat(70_000)),
    (e: unknown) => e instanceof JimError && e.kind === "invalid" && /above the maximum body/.test(e.reason),
  );
  assert.equal((await server.nextOf("B101")).cmd, "B101", "only the first went out");
  assert.equal(server.sent.length, 0);
  assert.equal(c.pendingSends, 0);
});

/** Every way a connection ends, and whether the client comes back. */
const closes: { code: number; reason: string; b003?: { code: number; reason: string }; token?: "function"; again: boolean }[] = [
  { code: 1001, reason: "server shutting down", again: true },
  { code: 1002, reason: "bad frame", again: true },
  { code: 1006, reason: "", again: true },
  { code: 1008, reason: "idle timeout", again: true },
  { code: 1008, reason: "slow consumer", again: true },
  { code: 1008, reason: "too many connections", again: true },
  { code: 1008, reason: "authentication timeout", again: true },
  { code: 1008, reason: "kicked", again: false },
  { code: 1008, reason: "kicked: spam", again: false },
  { code: 1008, reason: "token expired", again: false },
  { code: 1008, reason: "token expired", token: "function", again: true },
  { code: 1008, reason: "authentication failed", b003: { code: 4001, reason: "bad token" }, again: false },
  { code: 1008, reason: "authentication failed", b003: { code: 4029, reason: "too many sessions" }, again: false },
  { code: 1008, reason: "authentication failed", b003: { code: 5000, reason: "keys unavailable" }, again: true },
  { code: 1009, reason: "frame too large", again: true },
  { code: 1011, reason: "the inbox was reset: reconnect with since", again: true },
];

for (const { code, reason, b003, token, again } of closes) {
  const name = `A999 ${code} "${reason}"${b003 ? ` after B003 ${b003.code}` : ""}${token ? " (token function)" : ""}: ${again ? "reconnects" : "stays closed"}`;
  test(name, async () => {
    const c = client({ token: token ? () => "alice" : "alice" });
    const socket = FakeSocket.next();
    const first = c.connect();
    first.catch(() => {}); // awaited below where it matters
    const server = await socket;
    if (b003) {
      server.open();
      const auth = await server.nextOf("B001");
      server.deliver("B003", auth.seq, b003);
    } else {
      await server.accept();
      await first;
    }
    const nextSocket = FakeSocket.next();
    const closed = next(c, "close");
    server.end(code, reason);
    const info = await closed;
    assert.equal(info.code, code);
    assert.equal(info.reason, reason);
    assert.equal(info.reconnect, again);
    if (b003) {
      assert.equal(info.authError?.code, b003.code);
      if (!again) {
        await assert.rejects(first, (e: unknown) => e instanceof JimError && e.kind === "auth" && e.code === b003.code);
      }
    }
    if (again) {
      assert.equal(c.state, "reconnecting");
      assert.ok(info.delayMs !== undefined && info.delayMs <= 5);
      await within(nextSocket, "a new socket");
    } else {
      assert.equal(c.state, "closed");
      assert.equal(FakeSocket.opened.length, 1, "no new socket");
      await assert.rejects(c.send("bob", "x"), (e: unknown) => e instanceof JimError && e.kind === "closed");
    }
  });
}

test("the reconnect rules as a function: disabled never, kicked never", () => {
  const on = { enabled: true, canRenewToken: false };
  assert.equal(reconnects({ code: 1006, reason: "" }, undefined, { ...on, enabled: false }), false);
  assert.equal(reconnects({ code: 1008, reason: "kicked" }, undefined, { ...on, canRenewToken: true }), false);
  assert.equal(reconnects({ code: 1000, reason: "proxy restarted" }, undefined, on), true);
});

for (const [what, bytes] of [
  ["two frames coalesced in one WebSocket message", new Uint8Array([...encodeFrame("A002", 1), ...encodeFrame("A002", 2)])],
  ["half a frame in a WebSocket message", encodeFrame("B101", 1, '{"type":"text"}').subarray(0, 20)],
  ["a bad magic", new TextEncoder().encode("HTTP/1.1 200 OK\r\n\r\n")],
] as const) {
  test(`${what} is a protocol error: the client closes with 1002 and reconnects`, async () => {
    const { client: c, server } = await connected();
    const problem = next(c, "protocolError");
    const closed = next(c, "close");
    const again = FakeSocket.next();
    server.deliverBytes(bytes);
    assert.match((await problem).message, /frame|magic/);
    const info = await closed;
    assert.equal(info.code, 1002);
    assert.equal(info.reconnect, true);
    assert.equal(server.closedByClient, 1002);
    await within(again, "a new socket");
  });
}

test("a text WebSocket message is a protocol error too", async () => {
  const { client: c, server } = await connected();
  const closed = next(c, "close");
  server.onmessage?.({ data: "jim1A0010000" });
  assert.equal((await closed).code, 1002);
});

test("a declared length above the maximum closes with 1009", async () => {
  const { client: c, server } = await connected({ maxBodyBytes: 100 });
  const closed = next(c, "close");
  server.deliver("B101", 1, { type: "text", data: { receiver_id: "alice", content: "x".repeat(200) } });
  assert.equal((await closed).code, 1009);
  assert.equal(server.closedByClient, 1009);
});

function collect(c: JimClient): IncomingMessage[] {
  const got: IncomingMessage[] = [];
  c.on("message", (m) => got.push(m));
  return got;
}

const delivery = (offset: number, content: string, from = "bob") => ({
  type: "text",
  data: { sender_id: from, receiver_id: "alice", content, message_id: String(1000 + offset), timestamp: 1_700_000_000_000 },
});

test("no offset is handed over twice: a replay overlapping live deliveries, then a resume", async () => {
  const positions = new MemoryPositionStore();
  const { client: c, server } = await connected({ positions }, { inbox: { epoch: "e1", offset: 0, recovered: false } });
  const got = collect(c);
  for (const n of [1, 2, 2, 1, 3]) server.deliver("B101", n, delivery(n, `m${n}`));
  // A push to everyone is no inbox entry (seq 0): always handed over.
  server.deliver("B103", 0, { type: "text", data: { sender_id: "system", receiver_id: "*", content: "all" } });
  assert.deepEqual(
    got.map((m) => [m.offset, m.message.data["content"], m.kind]),
    [
      [1, "m1", "c2c"],
      [2, "m2", "c2c"],
      [3, "m3", "c2c"],
      [0, "all", "push"],
    ],
  );
  assert.equal(got[0]!.conversation, "bob");
  assert.equal(got[0]!.messageId, "1001");
  assert.deepEqual(positions.load("alice"), { epoch: "e1", offset: 3 });

  // The link drops; the client resumes from 3 and the server replays 3..5.
  const again = FakeSocket.next();
  server.drop();
  const second = await within(again, "a new socket");
  const session = next(c, "session");
  const auth = await second.accept({ session_id: "2", inbox: { epoch: "e1", offset: 5, recovered: true } });
  assert.deepEqual(auth["since"], { epoch: "e1", offset: 3 });
  const info = await session;
  assert.equal(info.reconnected, true);
  assert.equal(info.inbox?.recovered, true);
  for (const n of [3, 4, 5]) second.deliver("B101", n, delivery(n, `m${n}`));
  assert.deepEqual(
    got.slice(4).map((m) => m.offset),
    [4, 5],
  );
  assert.deepEqual(positions.load("alice"), { epoch: "e1", offset: 5 });
});

test("a saved position is sent on the first sign-in; another epoch starts the count again", async () => {
  const positions = new MemoryPositionStore();
  positions.save("alice", { epoch: "old", offset: 40 });
  const { client: c, server, auth } = await connected(
    { positions },
    { inbox: { epoch: "new", offset: 2, recovered: false } },
  );
  assert.deepEqual(auth["since"], { epoch: "old", offset: 40 });
  const got = collect(c);
  for (const n of [1, 2]) server.deliver("B101", n, delivery(n, `m${n}`));
  assert.deepEqual(
    got.map((m) => m.offset),
    [1, 2],
  );
  assert.deepEqual(positions.load("alice"), { epoch: "new", offset: 2 });
});

test("resumeFrom now sends no since and counts from the head; positions: null resumes nothing", async () => {
  const { auth, client: c } = await connected({ resumeFrom: "now" }, { inbox: { epoch: "e", offset: 9, recovered: false } });
  assert.equal(auth["since"], undefined);
  assert.deepEqual(c.inboxPosition, { epoch: "e", offset: 9 });
  const off = await connected({ positions: null });
  assert.equal(off.auth["since"], undefined);
});

test("a group message's own offset, announced in its ack, moves the position past it", async () => {
  const { client: c, server } = await connected({}, { inbox: { epoch: "e", offset: 0, recovered: true } });
  const got = collect(c);
  server.deliver("B102", 1, { ...delivery(1, "from bob"), data: { ...delivery(1, "x").data, receiver_id: "team" } });
  const acked = c.sendToGroup("team", "mine");
  const sent = await server.nextOf("B102");
  server.deliver("B102", sent.seq, { type: "ack", data: { receiver_id: "team", message_id: "55", offset: 2 } });
  assert.equal((await acked).offset, 2);
  assert.deepEqual(c.inboxPosition, { epoch: "e", offset: 2 });
  server.deliver("B102", 3, { ...delivery(3, "x"), data: { ...delivery(3, "x").data, receiver_id: "team" } });
  assert.deepEqual(
    got.map((m) => [m.offset, m.kind, m.conversation]),
    [
      [1, "c2g", "team"],
      [3, "c2g", "team"],
    ],
  );
});

test("a send in flight when the link drops goes again after reconnecting, with the same client_msg_id", async () => {
  const { client: c, server } = await connected();
  const acked = c.send("bob", "are you there?");
  const first = await server.nextOf("B101");
  const again = FakeSocket.next();
  server.drop();
  const second = await within(again, "a new socket");
  // Queued meanwhile: goes after the lost one.
  const later = c.send("bob", "second");
  await second.accept();
  const resent = await second.nextOf("B101");
  const queued = await second.nextOf("B101");
  const id = JSON.parse(first.body).data.client_msg_id;
  assert.equal(JSON.parse(resent.body).data.client_msg_id, id);
  assert.equal(JSON.parse(queued.body).data.content, "second");
  second.deliver("B101", resent.seq, { type: "ack", data: { receiver_id: "bob", message_id: "1" } });
  second.deliver("B101", queued.seq, { type: "ack", data: { receiver_id: "bob", message_id: "2" } });
  assert.equal((await acked).messageId, "1");
  assert.equal((await later).messageId, "2");
});

test("with resendOnReconnect false a lost send fails with closed; whileOffline fail refuses at once", async () => {
  const { client: c, server } = await connected({ resendOnReconnect: false, whileOffline: "fail" });
  const lost = c.send("bob", "x");
  await server.nextOf("B101");
  server.drop();
  await assert.rejects(lost, (e: unknown) => e instanceof JimError && e.kind === "closed");
  await assert.rejects(c.send("bob", "y"), (e: unknown) => e instanceof JimError && e.kind === "offline");
});

test("the waiting queue is bounded", async () => {
  const c = client({ maxQueued: 2 });
  const connecting = c.connect();
  const a = c.send("bob", "1");
  const b = c.send("bob", "2");
  await assert.rejects(c.send("bob", "3"), (e: unknown) => e instanceof JimError && e.kind === "offline" && /full/.test(e.reason));
  assert.equal(c.pendingSends, 2);
  await c.close();
  await assert.rejects(a, (e: unknown) => e instanceof JimError && e.kind === "closed");
  await assert.rejects(b, (e: unknown) => e instanceof JimError && e.kind === "closed");
  await assert.rejects(connecting, (e: unknown) => e instanceof JimError && e.kind === "closed");
});

test("pings every heartbeat; a link that answers nothing is dropped and made again", async () => {
  const { client: c, server } = await connected({ heartbeatMs: 20, pongTimeoutMs: 30 });
  const ping = await within(server.nextOf("A001"), "a ping");
  server.deliver("A002", ping.seq, ping.body);
  const again = FakeSocket.next();
  const closed = next(c, "close");
  // Silence from now on.
  const info = await closed;
  assert.match(info.reason, /no answer to a ping within 30 ms/);
  assert.equal(info.reconnect, true);
  assert.ok(c.rttMs !== undefined && c.rttMs >= 0);
  await within(again, "a new socket");
});

test("the server's ping is answered with a pong of the same seq and body", async () => {
  const { server } = await connected();
  server.deliver("A001", 42, "t=1");
  const pong = await server.nextOf("A002");
  assert.deepEqual([pong.seq, pong.body], [42, "t=1"]);
});

test("a token function is called to connect, to reconnect, and to refresh before expiry", async () => {
  const reasons: string[] = [];
  const soon = Math.floor(Date.now() / 1000) + 2;
  const jwt = (exp: number) => `x.${Buffer.from(JSON.stringify({ sub: "alice", exp })).toString("base64url")}.y`;
  const { server } = await connected({
    token: (reason) => {
      reasons.push(reason);
      return jwt(soon);
    },
    refreshBeforeExpiryMs: 1_500,
  });
  // exp in 2 s, refreshed 1.5 s before: a B001 on the same socket.
  const refresh = await within(server.nextOf("B001"), "a refresh", 3_000);
  assert.equal(JSON.parse(refresh.body).token, jwt(soon));
  assert.equal(JSON.parse(refresh.body).since, undefined, "a refresh does not resume");
  server.deliver("B002", refresh.seq, { user_id: "alice", session_id: "1", heartbeat_secs: 30 });
  const again = FakeSocket.next();
  server.drop();
  await (await within(again, "a new socket")).accept();
  assert.deepEqual(reasons, ["connect", "refresh", "reconnect"]);
});

test("a failing token function is a failed attempt: the client tries again", async () => {
  let calls = 0;
  const c = client({
    token: () => {
      calls++;
      if (calls === 1) throw new Error("identity provider down");
      return "alice";
    },
  });
  const first = FakeSocket.next();
  const session = c.connect();
  const closed = next(c, "close");
  (await first).open();
  const info = await closed;
  assert.match(info.reason, /the token function failed: identity provider down/);
  assert.equal(info.reconnect, true);
  const second = await within(FakeSocket.next(), "a new socket");
  await second.accept();
  assert.equal((await session).userId, "alice");
});

test("close() says A998, waits for the server's A999, and does not reconnect", async () => {
  const { client: c, server } = await connected();
  const states: string[] = [];
  c.on("state", ({ state }) => states.push(state));
  const done = c.close();
  const leave = await server.nextOf("A998");
  assert.equal(leave.body, "");
  server.end(1000, "client closed");
  await within(done, "close()");
  assert.equal(c.state, "closed");
  assert.deepEqual(states, ["closed"]);
  assert.equal(FakeSocket.opened.length, 1);
});

test("frames in and out are events for a debug view", async () => {
  const c = client();
  const frames: string[] = [];
  c.on("frame", (f) => frames.push(`${f.direction} ${f.cmd} ${f.seq}`));
  const socket = FakeSocket.next();
  const session = c.connect();
  await (await socket).accept();
  await session;
  assert.deepEqual(frames, ["out B001 1", "in B002 1"]);
});

test("a connection that fails with an error and never a close (Node 20's WebSocket) is tried again", async () => {
  const c = client();
  const first = FakeSocket.next();
  const connecting = c.connect();
  const closed = next(c, "close");
  const again = FakeSocket.next();
  (await first).onerror?.({});
  const info = await closed;
  assert.deepEqual([info.code, info.reason, info.reconnect], [1006, "no connection (refused, unreachable, or not a WebSocket server)", true]);
  await (await within(again, "a new socket")).accept();
  assert.equal((await connecting).userId, "alice");
});

test("connect() after close() is a new first connection, not a reconnection", async () => {
  const { client: c, server } = await connected();
  const done = c.close();
  await server.nextOf("A998");
  server.end(1000, "client closed");
  await done;
  const states: string[] = [];
  c.on("state", ({ state }) => states.push(state));
  const socket = FakeSocket.next();
  const session = c.connect();
  await (await socket).accept();
  assert.equal((await session).reconnected, false);
  assert.deepEqual(states, ["connecting", "connected"]);
});

test("a position store that fails to save is reported and costs nothing else", async () => {
  const full = new MemoryPositionStore();
  full.save = () => {
    throw new Error("QuotaExceededError");
  };
  const { client: c, server } = await connected({ positions: full }, { inbox: { epoch: "e", offset: 0, recovered: false } });
  const failed = next(c, "storeError");
  const got = collect(c);
  server.deliver("B101", 1, delivery(1, "one"));
  server.deliver("B101", 2, delivery(2, "two"));
  assert.match((await failed).message, /QuotaExceeded/);
  assert.deepEqual(
    got.map((m) => m.offset),
    [1, 2],
  );
  assert.deepEqual(c.inboxPosition, { epoch: "e", offset: 2 });
});

test("close() twice waits for the same goodbye; without one in time the socket is closed anyway", async () => {
  const { client: c, server } = await connected();
  const first = c.close();
  const second = c.close();
  await server.nextOf("A998");
  // No A999: after its wait the client closes the socket itself.
  await within(Promise.all([first, second]), "both close() calls", 4_000);
  assert.equal(c.state, "closed");
  assert.equal(server.closedByClient, 1005);
});

test("close() while still connecting closes the socket being opened", async () => {
  const c = client();
  const socket = FakeSocket.next();
  const connecting = c.connect();
  connecting.catch(() => {});
  const pending = await socket;
  await c.close();
  assert.equal(pending.closedByClient, 1005);
  await assert.rejects(connecting, (e: unknown) => e instanceof JimError && e.kind === "closed");
});
