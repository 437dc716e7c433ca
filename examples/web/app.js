// The Jim web chat: the jim-client SDK (clients/typescript) in a page.
// Conversations and their messages are kept in this browser (localStorage,
// per user); the SDK keeps the inbox position there too, so a reloaded page
// gets only what it has not seen.
import { JimClient, JimError, WebStoragePositionStore, compareIds, summary, text } from "/sdk/index.js";

const $ = (id) => document.getElementById(id);
const MAX_FRAMES = 300;
const MAX_KEPT = 200;

let client = null;
let gatewayUrl = null;
let me = null;
let conversations = new Map(); // id -> { id, kind, messages: [], unread, updated, delivered, read }
let active = null;
let retryTimer = null;
let typingTimer = null;

// Sign-in

function defaultGateway() {
  const asked = new URLSearchParams(location.search).get("gateway");
  if (asked) return asked;
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  return localStorage.getItem("jim.gateway") || `${scheme}://${location.hostname || "127.0.0.1"}:9000/ws`;
}

$("url").value = defaultGateway();
$("user").value = localStorage.getItem("jim.user") || "";

$("signin-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const user = $("user").value.trim();
  const token = $("token").value.trim() || user; // development mode: the token is the user id
  const url = $("url").value.trim();
  $("signin-error").textContent = "";
  try {
    await signIn(url, user, token);
  } catch (error) {
    $("signin-error").textContent = error instanceof JimError ? `Refused: ${error.reason}` : String(error.message || error);
  }
});

async function signIn(url, user, token) {
  client?.close();
  me = user;
  gatewayUrl = url;
  conversations = loadConversations(user);
  // A browser that never signed in here starts from now: its conversation
  // list and each conversation's history come from the server (B105), not
  // from a replay of the whole inbox. One that did resumes where it was.
  client = new JimClient({ url, token, device: "web", positions: new WebStoragePositionStore(), resumeFrom: "now" });
  client.on("state", ({ state }) => showState(state));
  client.on("close", onClose);
  client.on("session", onSession);
  client.on("message", onMessage);
  client.on("receipt", onReceipt);
  client.on("typing", onTyping);
  client.on("frame", logFrame);
  const connecting = client.connect();
  // Signed in or refused: the first answer decides what the page shows.
  await connecting;
  localStorage.setItem("jim.gateway", url);
  localStorage.setItem("jim.user", user);
  $("signin").hidden = true;
  $("app").hidden = false;
  $("signout").hidden = false;
  $("me").hidden = false;
  $("me").textContent = user;
  renderConversations();
  if (active) openConversation(active.id, active.kind);
}

$("signout").addEventListener("click", async () => {
  await client?.close();
  client = null;
  active = null;
  $("app").hidden = true;
  $("signout").hidden = true;
  $("me").hidden = true;
  $("signin").hidden = false;
});

// Connection state

function showState(state, detail) {
  const labels = {
    idle: "Signed out",
    connecting: "Connecting…",
    connected: "Online",
    reconnecting: "Reconnecting…",
    closed: "Offline",
  };
  $("state").dataset.state = state;
  $("state").textContent = detail ? `${labels[state]} ${detail}` : labels[state];
  const usable = state === "connected" || state === "reconnecting";
  $("text").disabled = $("send").disabled = !usable || !active;
  renderFacts();
}

function onClose(info) {
  clearInterval(retryTimer);
  if ($("app").hidden && info.reconnect) {
    // Not signed in yet: say so where the user is looking.
    $("signin-error").textContent = `Cannot reach ${gatewayUrl}: ${info.reason || info.code}. Trying again…`;
  }
  if (info.reconnect) {
    const at = Date.now() + (info.delayMs ?? 0);
    const tick = () => {
      const left = Math.max(0, Math.ceil((at - Date.now()) / 1000));
      if (client?.state === "reconnecting") showState("reconnecting", left > 0 ? `in ${left} s` : "");
      else clearInterval(retryTimer);
    };
    tick();
    retryTimer = setInterval(tick, 500);
  } else {
    showState("closed", `(${info.authError ? info.authError.reason : info.reason || info.code})`);
  }
}

function onSession(session) {
  const hadHistory = [...conversations.values()].some((c) => c.messages.length > 0);
  // Messages may be missing only for a device that had seen some before.
  $("recovery").hidden = !(session.inbox && !session.inbox.recovered && hadHistory);
  $("recovery").textContent =
    "Some earlier messages may be missing: the gateway could not tell what this device had seen. Showing what it still holds.";
  renderFacts();
  // Unread counts from the server: they never count one's own messages,
  // and a read on another device clears them here too.
  client.conversations({ limit: 100 }).then((list) => {
    for (const summary of list.conversations) {
      const kind = "group" in summary.conversation ? "group" : "user";
      const c = conversation(kind, summary.conversation.group ?? summary.conversation.user);
      c.unread = c === active ? 0 : summary.unread;
      if (c.messages.length === 0) {
        merge(c, [summary.last]);
      }
    }
    save();
    renderConversations();
  }, () => {});
}

function conversationOf(c) {
  return c.kind === "group" ? { group: c.id } : { user: c.id };
}

// Conversations

function storageKey(user) {
  return `jim.chat.${user}`;
}

function loadConversations(user) {
  try {
    const saved = JSON.parse(localStorage.getItem(storageKey(user)) || "[]");
    return new Map(saved.map((c) => [key(c.kind, c.id), c]));
  } catch {
    return new Map();
  }
}

function save() {
  const kept = [...conversations.values()].map((c) => ({ ...c, messages: c.messages.slice(-MAX_KEPT) }));
  localStorage.setItem(storageKey(me), JSON.stringify(kept));
}

function key(kind, id) {
  return `${kind}:${id}`;
}

function conversation(kind, id) {
  let found = conversations.get(key(kind, id));
  if (!found) {
    found = { id, kind, messages: [], unread: 0, updated: Date.now() };
    conversations.set(key(kind, id), found);
  }
  return found;
}

$("new-chat").addEventListener("submit", (event) => {
  event.preventDefault();
  const id = $("new-id").value.trim();
  if (!id) return;
  $("new-id").value = "";
  openConversation(id, $("new-kind").value);
});

$("back").addEventListener("click", () => {
  $("app").classList.remove("in-chat");
  active = null;
  renderConversations();
});

function openConversation(id, kind) {
  active = conversation(kind, id);
  active.unread = 0;
  markRead(active);
  loadHistory(active);
  hideTyping();
  save();
  $("app").classList.add("in-chat");
  $("chat-title").textContent = kind === "group" ? `# ${id}` : id;
  showState(client?.state ?? "idle");
  renderConversations();
  renderMessages();
  $("text").focus();
}

function renderConversations() {
  const list = $("conversations");
  list.replaceChildren();
  const sorted = [...conversations.values()].sort((a, b) => b.updated - a.updated);
  $("no-conversations").hidden = sorted.length > 0;
  for (const c of sorted) {
    const item = document.createElement("li");
    item.dataset.conversation = key(c.kind, c.id);
    if (active === c) item.classList.add("active");
    const last = c.messages[c.messages.length - 1];
    item.append(
      span("title", c.kind === "group" ? `# ${c.id}` : c.id),
      span("when", last ? clock(last.timestamp) : ""),
      span("last", last ? `${last.mine ? "You: " : ""}${last.content}` : "No messages yet"),
    );
    if (c.unread > 0) item.append(span("unread", String(c.unread)));
    item.addEventListener("click", () => openConversation(c.id, c.kind));
    list.append(item);
  }
}

// Messages

function onMessage(incoming) {
  const kind = incoming.kind === "c2g" ? "group" : "user";
  const c = conversation(kind, incoming.conversation);
  const data = incoming.message.data;
  // Our own message from another device, or one already shown: once only.
  if (c.messages.some((m) => m.messageId === incoming.messageId || (data.client_msg_id && m.clientMsgId === data.client_msg_id && m.mine && incoming.senderId === me))) {
    return;
  }
  c.messages.push({
    messageId: incoming.messageId,
    clientMsgId: data.client_msg_id,
    mine: incoming.senderId === me,
    sender: data.sender_name || incoming.senderId,
    content: summary(incoming.message),
    timestamp: incoming.timestamp,
    state: "acked",
  });
  c.updated = Date.now();
  c.messages[c.messages.length - 1].offset = incoming.offset;
  // One's own messages (from another device) are never unread.
  if (c !== active && incoming.senderId !== me) c.unread++;
  if (c === active && incoming.senderId !== me) markRead(c);
  save();
  renderConversations();
  if (c === active) renderMessages();
}

$("composer").addEventListener("submit", (event) => {
  event.preventDefault();
  const content = $("text").value.trim();
  if (!content || !active) return;
  $("text").value = "";
  const message = { clientMsgId: newId(), mine: true, content, timestamp: Date.now(), state: "sending" };
  active.messages.push(message);
  active.updated = Date.now();
  deliver(active, message);
});

/** Sends (or sends again, with the same client_msg_id) and shows how it went. */
async function deliver(c, message) {
  message.state = "sending";
  message.error = undefined;
  save();
  renderConversations();
  renderMessages();
  const body = text(message.content, { client_msg_id: message.clientMsgId });
  try {
    const ack = c.kind === "group" ? await client.sendToGroup(c.id, body) : await client.send(c.id, body);
    message.state = "acked";
    message.messageId = ack.messageId;
    message.offset = ack.offset;
  } catch (error) {
    message.state = "failed";
    message.error = error instanceof JimError ? error.reason : String(error);
  }
  save();
  if (c === active) renderMessages();
}

function renderMessages(toBottom = true) {
  const list = $("messages");
  list.replaceChildren();
  if (!active) return;
  if (active.more) {
    const older = document.createElement("li");
    older.className = "older";
    const button = document.createElement("button");
    button.id = "older";
    button.className = "link";
    button.textContent = "Earlier messages";
    button.addEventListener("click", loadOlder);
    older.append(button);
    list.append(older);
  }
  for (const m of active.messages) {
    const bubble = document.createElement("li");
    bubble.className = m.mine ? "bubble mine" : "bubble";
    bubble.dataset.state = m.state;
    if (m.mine && m.state === "acked") bubble.dataset.receipt = receiptOf(active, m);
    if (active.kind === "group" && !m.mine) bubble.append(div("who", m.sender));
    bubble.append(div("content", m.content));
    const meta = div("meta", `${clock(m.timestamp)}${m.mine ? ` · ${deliveryLabel(m)}` : ""}`);
    if (m.state === "failed") {
      const retry = document.createElement("button");
      retry.className = "retry";
      retry.textContent = "Retry";
      retry.addEventListener("click", () => deliver(active, m));
      meta.append(retry);
    }
    bubble.append(meta);
    list.append(bubble);
  }
  if (toBottom) list.scrollTop = list.scrollHeight;
}

function deliveryLabel(m) {
  if (m.state === "sending") return "sending…";
  if (m.state === "acked") return { sent: "✓ sent", delivered: "✓✓ delivered", read: "✓✓ read" }[receiptOf(active, m)];
  return `failed: ${m.error}`;
}

/** How far the other side got with one's own message: sent, delivered or read. */
function receiptOf(c, m) {
  if (!c || !m.messageId) return "sent";
  if (c.read && compareIds(m.messageId, c.read) <= 0) return "read";
  if (c.delivered && compareIds(m.messageId, c.delivered) <= 0) return "delivered";
  return "sent";
}

/** Marks the newest message from the other side read (the SDK sends it only if it moves). */
function markRead(c) {
  const last = [...c.messages].reverse().find((m) => !m.mine && m.messageId);
  if (last && client?.state === "connected") client.markRead(conversationOf(c), last.messageId);
}

/** Adds history entries (or a conversation's last entry) not shown yet, in order. */
function merge(c, entries) {
  for (const entry of entries) {
    const data = entry.body.data;
    if (c.messages.some((m) => m.messageId === data.message_id)) continue;
    c.messages.push({
      messageId: data.message_id,
      clientMsgId: data.client_msg_id,
      mine: data.sender_id === me,
      sender: data.sender_name || data.sender_id,
      content: summary(entry.body),
      timestamp: data.timestamp ?? Date.now(),
      state: "acked",
      offset: entry.offset,
    });
  }
  c.messages.sort((a, b) => (a.offset && b.offset ? a.offset - b.offset : a.timestamp - b.timestamp));
}

/** Loads a conversation's newest page from the server (the inbox keeps it). */
function loadHistory(c) {
  if (client?.state !== "connected") return;
  client.history(conversationOf(c), { limit: 50 }).then((page) => {
    merge(c, page.entries);
    c.more = page.more;
    save();
    if (c === active) renderMessages();
  }, () => {});
}

/** The page before the oldest message shown. */
function loadOlder() {
  const c = active;
  if (!c || !c.more || client?.state !== "connected") return;
  const oldest = Math.min(...c.messages.filter((m) => m.offset).map((m) => m.offset));
  if (!Number.isFinite(oldest)) return;
  c.more = false;
  client.history(conversationOf(c), { before: oldest, limit: 50 }).then((page) => {
    merge(c, page.entries);
    c.more = page.more;
    save();
    if (c === active) renderMessages(false);
  }, () => {});
}

// Scrolled up to the top by the user (wheel or touch: not the page's own
// scrolling as it renders), or "Earlier messages" at the top: the page before.
for (const kind of ["wheel", "touchmove"]) {
  $("messages").addEventListener(kind, () => {
    if ($("messages").scrollTop === 0) loadOlder();
  }, { passive: true });
}

function onReceipt(receipt) {
  const kind = "group" in receipt.conversation ? "group" : "user";
  const c = conversation(kind, receipt.conversation.group ?? receipt.conversation.user);
  if (receipt.readerId === me) {
    // Read on another device: nothing is unread here either.
    if (receipt.status === "read") c.unread = 0;
  } else if (!c[receipt.status] || compareIds(receipt.messageId, c[receipt.status]) > 0) {
    c[receipt.status] = receipt.messageId;
  }
  save();
  renderConversations();
  if (c === active) renderMessages(false);
}

// Typing

$("text").addEventListener("input", () => {
  if (active && $("text").value.trim() !== "") client?.typing(conversationOf(active), true);
});

function onTyping(typing) {
  const kind = "group" in typing.conversation ? "group" : "user";
  const id = typing.conversation.group ?? typing.conversation.user;
  if (!active || active.kind !== kind || active.id !== id) return;
  if (!typing.on) return hideTyping();
  $("typing").textContent = `${typing.senderId} is typing…`;
  $("typing").hidden = false;
  clearTimeout(typingTimer);
  typingTimer = setTimeout(hideTyping, Math.max(0, typing.expiresAt - Date.now()));
}

function hideTyping() {
  clearTimeout(typingTimer);
  $("typing").hidden = true;
}

// The debug panel

function logFrame(frame) {
  const list = $("frames");
  const line = document.createElement("li");
  line.className = frame.direction;
  const body = frame.body.length > 300 ? `${frame.body.slice(0, 300)}…` : frame.body;
  line.textContent = `${frame.direction === "in" ? "←" : "→"} ${frame.cmd} seq=${frame.seq} ${body}`;
  list.append(line);
  while (list.childElementCount > MAX_FRAMES) list.firstElementChild.remove();
  if (frame.cmd === "A002" || frame.cmd === "B002") renderFacts();
}

function renderFacts() {
  const facts = $("session-facts");
  facts.replaceChildren();
  const session = client?.session;
  const position = client?.inboxPosition;
  const rows = [
    ["state", client?.state ?? "signed out"],
    ["user", session?.userId ?? "–"],
    ["session", session?.sessionId ?? "–"],
    ["inbox", position ? `epoch ${position.epoch}, offset ${position.offset}` : "–"],
    ["recovered", session?.inbox ? String(session.inbox.recovered) : "–"],
    ["round trip", client?.rttMs !== undefined ? `${client.rttMs} ms` : "–"],
    ["waiting sends", String(client?.pendingSends ?? 0)],
  ];
  for (const [name, value] of rows) {
    const dt = document.createElement("dt");
    dt.textContent = name;
    const dd = document.createElement("dd");
    dd.textContent = value;
    facts.append(dt, dd);
  }
}

// Helpers

function span(className, content) {
  const element = document.createElement("span");
  element.className = className;
  element.textContent = content;
  return element;
}

function div(className, content) {
  const element = document.createElement("div");
  element.className = className;
  element.textContent = content;
  return element;
}

function clock(timestamp) {
  return new Date(timestamp).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function newId() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

renderFacts();
