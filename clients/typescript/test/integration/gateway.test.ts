// The SDK against the real gateway binary: sign-in, one-to-one and group
// messages, acks, errors, tokens, reconnection across a restart, and the
// recovery of what was sent while a user was away.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import WebSocketFromWs from "ws";
import {
  JimClient,
  JimError,
  MemoryPositionStore,
  image,
  ImageFormat,
  isImage,
  isText,
  text,
  type ClientEvents,
  type ClientOptions,
  type ConnectionState,
  type IncomingMessage,
  type WebSocketConstructor,
} from "../../src/index.js";
import { startDurableGateway, startGateway, within, type Gateway } from "./gateway.js";

const clients: JimClient[] = [];
after(async () => {
  await Promise.allSettled(clients.map((c) => c.close()));
});

function client(gateway: Gateway | string, user: string, options: Partial<ClientOptions> = {}): JimClient {
  const made = new JimClient({
    url: typeof gateway === "string" ? gateway : gateway.wsUrl,
    token: user,
    reconnect: { initialDelayMs: 50, maxDelayMs: 500 },
    ...options,
  });
  clients.push(made);
  return made;
}

/** Messages as they arrive, to wait on one at a time. */
function mailbox(c: JimClient) {
  const arrived: IncomingMessage[] = [];
  const waiting: ((m: IncomingMessage) => void)[] = [];
  c.on("message", (m) => {
    const waiter = waiting.shift();
    if (waiter) waiter(m);
    else arrived.push(m);
  });
  return {
    next(what = "a message"): Promise<IncomingMessage> {
      const first = arrived.shift();
      if (first) return Promise.resolve(first);
      return within(new Promise((resolve) => waiting.push(resolve)), what);
    },
    get queued() {
      return arrived.length;
    },
  };
}

function event<K extends keyof ClientEvents>(c: JimClient, name: K, accept: (payload: ClientEvents[K]) => boolean = () => true) {
  return within(
    new Promise<ClientEvents[K]>((resolve) => {
      const off = c.on(name, (payload) => {
        if (accept(payload)) {
          off();
          resolve(payload);
        }
      });
    }),
    `event ${String(name)}`,
  );
}

const reached = (c: JimClient, state: ConnectionState) =>
  c.state === state ? Promise.resolve() : event(c, "state", (s) => s.state === state).then(() => undefined);

test("one-to-one: alice's send is acked with a string id and bob gets it with its inbox offset", async (t) => {
  const gateway = await startGateway();
  t.after(() => gateway.stop());
  const alice = client(gateway, "alice");
  const bob = client(gateway, "bob");
  const bobs = mailbox(bob);
  const [aliceSession, bobSession] = await Promise.all([alice.connect(), bob.connect()]);
  assert.equal(aliceSession.userId, "alice");
  assert.equal(bobSession.inbox?.recovered, false, "a new device: nothing to recover from");
  const ack = await alice.send("bob", text("hello bob", { reply_to: "nothing" }));
  assert.match(ack.messageId, /^\d+$/);
  assert.ok(BigInt(ack.messageId) > 2n ** 53n, "beyond a Number's exact range, and exact");
  const got = await bobs.next();
  assert.equal(got.kind, "c2c");
  assert.equal(got.senderId, "alice");
  assert.equal(got.conversation, "alice");
  assert.equal(got.messageId, ack.messageId);
  assert.equal(got.offset, 1);
  assert.ok(isText(got.message));
  assert.equal(got.message.data.content, "hello bob");
  assert.equal(got.message.data["reply_to"], "nothing", "the application's own field arrives");
  assert.equal(got.message.data.client_msg_id, ack.clientMsgId);
  assert.deepEqual(bob.inboxPosition, { epoch: bobSession.inbox!.epoch, offset: 1 });

  // Every kind goes through with its fields: an image, for one.
  await alice.send("bob", image({ big_url: "https://example.com/a.png", format: ImageFormat.png, width: 500 }));
  const picture = await bobs.next();
  assert.ok(isImage(picture.message));
  assert.equal(picture.message.data.width, 500);
  assert.equal(picture.offset, 2);
});

test("group: members get it, the sender's ack carries its offset, errors carry the contract's code", async (t) => {
  const gateway = await startGateway();
  t.after(() => gateway.stop());
  const added = await gateway.admin("POST", "/v1/groups/team/members", { users: ["alice", "bob", "carol"] });
  assert.equal(added.status, 200);
  const [alice, bob, carol, mallory] = ["alice", "bob", "carol", "mallory"].map((u) => client(gateway, u)) as [
    JimClient,
    JimClient,
    JimClient,
    JimClient,
  ];
  const bobs = mailbox(bob);
  const carols = mailbox(carol);
  await Promise.all([alice, bob, carol, mallory].map((c) => c.connect()));
  const ack = await alice.sendToGroup("team", "hi team");
  assert.equal(ack.offset, 1, "the message's offset in alice's own inbox");
  assert.deepEqual(alice.inboxPosition?.offset, 1, "alice is not sent her own message: her position moved past it");
  for (const inbox of [bobs, carols]) {
    const got = await inbox.next();
    assert.deepEqual([got.kind, got.conversation, got.senderId, got.messageId], ["c2g", "team", "alice", ack.messageId]);
  }
  const refusal = (code: number) => (e: unknown) => {
    assert.ok(e instanceof JimError, String(e));
    assert.equal(e.kind, "rejected");
    assert.equal(e.code, code, e.reason);
    return true;
  };
  await assert.rejects(mallory.sendToGroup("team", "let me in"), refusal(4003));
  await assert.rejects(alice.sendToGroup("nosuchgroup", "hello?"), refusal(4004));
  await assert.rejects(alice.send("bob", text("too long an id", { client_msg_id: "x".repeat(65) })), (e: unknown) => {
    refusal(4000)(e);
    assert.match((e as JimError).reason, /client_msg_id/);
    return true;
  });
  // Each refusal was that message's only: the next send goes through.
  await alice.send("bob", "still here");
  assert.equal((await bobs.next()).message.data["content"], "still here");
  assert.equal(bobs.queued + carols.queued, 0, "nothing else arrived");
});

test("a retry with the same client_msg_id is acked with the original id and delivered once", async (t) => {
  const gateway = await startGateway();
  t.after(() => gateway.stop());
  const alice = client(gateway, "alice");
  const bob = client(gateway, "bob");
  const bobs = mailbox(bob);
  await Promise.all([alice.connect(), bob.connect()]);
  const first = await alice.send("bob", text("once", { client_msg_id: "c-1" }));
  const retry = await alice.send("bob", text("once", { client_msg_id: "c-1" }));
  assert.equal(retry.messageId, first.messageId);
  await alice.send("bob", "after");
  assert.deepEqual(
    [(await bobs.next()).message.data["content"], (await bobs.next()).message.data["content"]],
    ["once", "after"],
  );
});

const SECRET = "a-test-secret-of-at-least-32-bytes!!";
function jwt(claims: Record<string, unknown>, secret = SECRET): string {
  const part = (value: object) => Buffer.from(JSON.stringify(value)).toString("base64url");
  const unsigned = `${part({ alg: "HS256", typ: "JWT" })}.${part(claims)}`;
  return `${unsigned}.${createHmac("sha256", secret).update(unsigned).digest("base64url")}`;
}

test("production tokens: a token function signs in and refreshes in place; a bad token stops the client", async (t) => {
  const gateway = await startGateway({ dev: false, env: { JIM_JWT_SECRET: SECRET, JIM_ADMIN_KEY: "an-admin-key-for-the-tests" } });
  t.after(() => gateway.stop());
  const reasons: string[] = [];
  const alice = client(gateway, "alice", {
    token: (reason) => {
      reasons.push(reason);
      // Expires in 4 s: refreshed 3 s before.
      return jwt({ sub: "alice", name: "Alice", exp: Math.floor(Date.now() / 1000) + 4 });
    },
    refreshBeforeExpiryMs: 3_000,
  });
  const bob = client(gateway, "bob", { token: jwt({ sub: "bob", exp: Math.floor(Date.now() / 1000) + 600 }) });
  const bobs = mailbox(bob);
  const session = await alice.connect();
  await bob.connect();
  await within(
    new Promise<void>((resolve) => {
      const check = alice.on("frame", (f) => {
        if (f.direction === "in" && f.cmd === "B002" && reasons.includes("refresh")) {
          check();
          resolve();
        }
      });
    }),
    "a refreshed session",
  );
  // The refreshed token outlives the first one's exp: the session goes on.
  await alice.send("bob", "from alice");
  const got = await bobs.next();
  assert.equal(got.message.data.sender_name, "Alice", "the token's name claim");
  assert.equal(alice.session?.sessionId, session.sessionId, "the same session");
  assert.deepEqual(reasons.slice(0, 2), ["connect", "refresh"]);

  const forger = client(gateway, "eve", { token: jwt({ sub: "alice", exp: Math.floor(Date.now() / 1000) + 60 }, "another-secret-of-at-least-32-bytes") });
  const closed = event(forger, "close");
  await assert.rejects(forger.connect(), (e: unknown) => e instanceof JimError && e.kind === "auth" && e.code === 4001);
  const info = await closed;
  assert.equal(info.reconnect, false);
  assert.equal(forger.state, "closed");
});

test("a server push (B103) is a message of kind push, with its inbox offset", async (t) => {
  const gateway = await startGateway();
  t.after(() => gateway.stop());
  const bob = client(gateway, "bob");
  const bobs = mailbox(bob);
  await bob.connect();
  const pushed = await gateway.admin("POST", "/v1/push", {
    users: ["bob"],
    sender_id: "ops",
    message: { type: "text", data: { content: "maintenance at 5", severity: "info" } },
  });
  assert.equal(pushed.status, 200, JSON.stringify(pushed.body));
  const got = await bobs.next();
  assert.deepEqual(
    [got.kind, got.senderId, got.receiverId, got.conversation, got.offset],
    ["push", "ops", "bob", "ops", 1],
  );
  assert.equal(got.message.data["severity"], "info");
  assert.deepEqual(bob.inboxPosition?.offset, 1);
});

test("kicked by the admin API: closed, no reconnection", async (t) => {
  const gateway = await startGateway();
  t.after(() => gateway.stop());
  const alice = client(gateway, "alice");
  await alice.connect();
  const closed = event(alice, "close");
  const kicked = await gateway.admin("POST", "/v1/users/alice/kick", {});
  assert.equal(kicked.status, 200, JSON.stringify(kicked.body));
  const info = await closed;
  assert.deepEqual([info.code, info.reason.startsWith("kicked"), info.reconnect], [1008, true, false]);
  assert.equal(alice.state, "closed");
});

test("the gateway restarts: clients reconnect by themselves, a send made meanwhile is acked, and nothing is lost", async (t) => {
  const durable = await startDurableGateway();
  t.after(durable.remove);
  let gateway = durable.gateway;
  t.after(() => gateway.stop());
  const alice = client(gateway, "alice");
  const bob = client(gateway, "bob");
  const bobs = mailbox(bob);
  await Promise.all([alice.connect(), bob.connect()]);
  await alice.send("bob", "before");
  assert.equal((await bobs.next()).offset, 1);

  const aliceClosed = event(alice, "close");
  const bobClosed = event(bob, "close");
  await gateway.stop();
  const lost = await aliceClosed;
  assert.deepEqual([lost.code, lost.reconnect], [1001, true], "shutdown: come back later");
  await bobClosed;
  // Sent while the gateway is down: waits for the connection.
  const waiting = alice.send("bob", "while down");
  assert.ok(alice.state === "reconnecting");

  gateway = await durable.again();
  const resumed = await event(bob, "session");
  assert.equal(resumed.reconnected, true);
  assert.equal(resumed.inbox?.recovered, true, "the disk store kept bob's inbox: nothing missed");
  await reached(alice, "connected");
  await within(waiting, "the ack of the send made while down");
  const got = await bobs.next();
  assert.deepEqual([got.offset, got.message.data["content"]], [2, "while down"]);
  assert.equal(bobs.queued, 0, "no duplicate of what came before");
});

test("messages sent while a user was offline arrive when it comes back, in order, once", async (t) => {
  const gateway = await startGateway();
  t.after(() => gateway.stop());
  const positions = new MemoryPositionStore();
  const alice = client(gateway, "alice");
  await alice.connect();
  const first = client(gateway, "bob", { positions });
  const firstBox = mailbox(first);
  await first.connect();
  await alice.send("bob", "seen");
  assert.equal((await firstBox.next()).message.data["content"], "seen");
  await first.close();

  for (const n of [1, 2, 3]) await alice.send("bob", `while away ${n}`);
  // A new client of bob's (a reloaded page) with the same store.
  const again = client(gateway, "bob", { positions });
  const box = mailbox(again);
  const session = await again.connect();
  assert.equal(session.inbox?.recovered, true);
  const contents = [];
  for (let i = 0; i < 3; i++) contents.push((await box.next()).message.data["content"]);
  assert.deepEqual(contents, ["while away 1", "while away 2", "while away 3"]);
  await alice.send("bob", "live");
  assert.equal((await box.next()).message.data["content"], "live");
  assert.equal(box.queued, 0, "'seen' was not handed over again");
  assert.deepEqual(positions.load("bob")?.offset, 5);
});

test("on Node 20 the ws package's WebSocket can be injected", async (t) => {
  const gateway = await startGateway();
  t.after(() => gateway.stop());
  const alice = client(gateway, "alice", { WebSocket: WebSocketFromWs as unknown as WebSocketConstructor });
  const bob = client(gateway, "bob", { WebSocket: WebSocketFromWs as unknown as WebSocketConstructor });
  const bobs = mailbox(bob);
  await Promise.all([alice.connect(), bob.connect()]);
  await alice.send("bob", "through ws");
  assert.equal((await bobs.next()).message.data["content"], "through ws");
});

test("a client pointed at a closed port keeps trying, and connects once the gateway is there", async (t) => {
  // Take a port, then free it: nothing listens there for now.
  const probe = await startGateway();
  const address = probe.wsAddress;
  await probe.stop();
  const alice = client(`ws://${address}/ws`, "alice");
  const connecting = alice.connect();
  const failed = await event(alice, "close");
  assert.equal(failed.reconnect, true);
  assert.equal(alice.state, "reconnecting");
  const gateway = await startGateway({ ws: address });
  t.after(() => gateway.stop());
  assert.equal((await within(connecting, "connected at last")).userId, "alice");
});

test("conversations: sender copies, receipts (delivered by itself, read by markRead), typing, history and the list", async (t) => {
  const gateway = await startGateway();
  t.after(() => gateway.stop());
  const phone = client(gateway, "alice", { device: "phone" });
  const laptop = client(gateway, "alice", { device: "laptop" });
  const bob = client(gateway, "bob");
  const laptops = mailbox(laptop);
  const bobs = mailbox(bob);
  await Promise.all([phone.connect(), laptop.connect(), bob.connect()]);

  // The phone's message reaches bob and, as alice's own, the laptop.
  const delivered = event(phone, "receipt", (r) => r.status === "delivered");
  const ack = await phone.send("bob", text("from the phone"));
  assert.equal(ack.offset, 1, "the copy's offset in alice's inbox");
  const copy = await laptops.next("the sender copy");
  assert.equal(copy.own, true);
  assert.equal(copy.conversation, "bob");
  assert.equal(copy.messageId, ack.messageId);
  const got = await bobs.next();
  assert.equal(got.own, false);

  // Bob's client marks it delivered by itself, then bob reads it.
  const receipt = await delivered;
  assert.deepEqual(
    { ...receipt, offset: undefined },
    { conversation: { user: "bob" }, status: "delivered", messageId: ack.messageId, readerId: "bob", offset: undefined },
  );
  const read = event(laptop, "receipt", (r) => r.status === "read");
  assert.equal(bob.markRead({ user: "alice" }, got.messageId), true);
  assert.equal((await read).readerId, "bob");

  // Typing: bob types, alice's devices see it with its expiry.
  const typing = event(phone, "typing");
  assert.equal(bob.typing({ user: "alice" }, true), true);
  assert.equal(bob.typing({ user: "alice" }, true), false, "at most one every 2 s");
  const seen = await typing;
  assert.deepEqual([seen.conversation, seen.senderId, seen.on], [{ user: "bob" }, "bob", true]);
  assert.ok(seen.expiresAt > Date.now());

  // History from the laptop: alice's own message, typed; the list has bob's read mark.
  const page = await laptop.history({ user: "bob" }, { limit: 10 });
  assert.equal(page.entries.length, 1);
  assert.equal(page.entries[0]!.body.data["content"], "from the phone");
  assert.equal(page.more, false);
  const list = await bob.conversations();
  assert.deepEqual(list.conversations[0]!.conversation, { user: "alice" });
  assert.equal(list.conversations[0]!.read, got.messageId);
  assert.equal(list.conversations[0]!.unread, 0);
  await assert.rejects(bob.history({ user: "" } as { user: string }), (e: unknown) => e instanceof JimError && e.code === 4000);
});
