// Two users chat through a Jim gateway in development mode (any token is the
// user id): bob listens, alice sends, both print what happened.
//
//   node --experimental-websocket hello.mjs ws://127.0.0.1:9000/ws
//
// (Node 22 and browsers have WebSocket built in; on Node 20 the flag turns it
// on, or pass `WebSocket` from the `ws` package in the options.)
import { JimClient, text } from "jim-client";

const url = process.argv[2] ?? "ws://127.0.0.1:9000/ws";
const alice = new JimClient({ url, token: "alice" });
const bob = new JimClient({ url, token: "bob", resumeFrom: "now" });

const received = new Promise((resolve) =>
  bob.on("message", ({ senderId, message, offset }) => {
    console.log(`bob got from ${senderId}: ${message.data.content} (inbox offset ${offset})`);
    resolve();
  }),
);
await Promise.all([alice.connect(), bob.connect()]);
const ack = await alice.send("bob", text("hello bob"));
console.log(`alice's message was acked: message_id ${ack.messageId}`);
await received;
await Promise.all([alice.close(), bob.close()]);
