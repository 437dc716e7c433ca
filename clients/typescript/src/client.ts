/**
 * {@link JimClient}: one user's connection to a Jim gateway over WebSocket.
 *
 * @module
 */

import { backoffDelay, reconnects, type BackoffOptions } from "./reconnect.js";
import { Emitter } from "./emitter.js";
import { CloseCode, ErrorCode, JimError } from "./errors.js";
import { bodyText, Command, DEFAULT_MAX_BODY, decodeFrame, encodeFrame, type Frame, FrameError } from "./frame.js";
import { isMessage, type ChatMessage, text as textMessage } from "./messages.js";
import { InboxCursor } from "./cursor.js";
import {
  type Conversation,
  conversationFields,
  conversationKey,
  type ConversationList,
  type HistoryPage,
  isConversation,
  MarkSender,
  type MarkStatus,
  type Receipt,
  TYPING_EVERY_MS,
  TYPING_EXPIRES_MS,
  type TypingEvent,
} from "./conversations.js";
import { MemoryPositionStore, isPosition, type Position, type PositionStore } from "./position.js";
import { CLOSING, globalWebSocket, messageBytes, OPEN, type WebSocketConstructor, type WebSocketLike } from "./socket.js";
import { jwtClaims } from "./token.js";

/**
 * Where the connection is:
 * - `idle`: {@link JimClient.connect} not called yet.
 * - `connecting`: the first connection is being made (socket, then sign-in).
 * - `connected`: signed in; messages flow.
 * - `reconnecting`: the connection was lost and is being made again.
 * - `closed`: for good (closed by the application, kicked, or refused).
 */
export type ConnectionState = "idle" | "connecting" | "connected" | "reconnecting" | "closed";

/** Why the token function is called. */
export type TokenReason = "connect" | "reconnect" | "refresh";

/** A token, or a function that fetches one (called on every connection and before the token expires). */
export type TokenSource = string | ((reason: TokenReason) => string | Promise<string>);

/** Options of {@link JimClient}. Only `url` and `token` are required. */
export interface ClientOptions {
  /** The gateway's WebSocket URL, e.g. `wss://chat.example.com/ws`. */
  url: string;
  /**
   * The user's token, or a function returning one. A function is called
   * again on each reconnection and, for a JWT with `exp`, `refreshBeforeExpiryMs`
   * before it expires (the session is refreshed in place). With a plain
   * string, a session ends when its token expires.
   */
  token: TokenSource;
  /** A label of this device (`web`, `ios`, ...): default `web`. */
  device?: string;
  /** The WebSocket class (default: the global one; on Node 20 pass the `ws` package's). */
  WebSocket?: WebSocketConstructor;
  /**
   * Where the inbox position is kept (default: in memory; browsers may pass
   * a {@link WebStoragePositionStore}); `null` to not resume at all.
   */
  positions?: PositionStore | null;
  /**
   * With no saved position: `everything` asks for every message the inbox
   * retains (a new device sees what arrived while it was away), `now` for
   * new messages only. Default `everything`.
   */
  resumeFrom?: "everything" | "now";
  /** How long a send waits for its ack, queued time included (default 10,000 ms). */
  requestTimeoutMs?: number;
  /**
   * Sends made while not connected: `wait` queues them (up to
   * `maxQueued`, each within its timeout) and sends them once connected;
   * `fail` rejects them at once (kind `offline`). Default `wait`.
   */
  whileOffline?: "wait" | "fail";
  /** How many sends may wait for a connection (default 1,000). */
  maxQueued?: number;
  /**
   * Whether a send in flight when the connection dropped is sent again
   * after reconnecting, with the same `client_msg_id` so the server
   * recognises a retry (default true). When false, it fails with `closed`.
   */
  resendOnReconnect?: boolean;
  /** Reconnection delays, or `false` to never reconnect. */
  reconnect?: BackoffOptions | false;
  /** Ping interval (default: the server's `heartbeat_secs`). */
  heartbeatMs?: number;
  /** With no frame received this long after a ping, the link is dead (default: the lesser of the interval and 10 s). */
  pongTimeoutMs?: number;
  /** How long opening and signing in may take before trying again (default 10,000 ms). */
  connectTimeoutMs?: number;
  /** Refresh a JWT this long before its `exp` (default 30,000 ms). */
  refreshBeforeExpiryMs?: number;
  /** The largest body sent or accepted (default 64 KiB, the gateway's default). */
  maxBodyBytes?: number;
  /** Makes each message's `client_msg_id` when the application did not set one. */
  newClientMsgId?: () => string;
  /**
   * Sends a `delivered` receipt for the messages others send this user,
   * at most one per conversation a second (only the highest counts).
   * Default true.
   */
  autoDelivered?: boolean;
}

/** The session, as the server described it on sign-in (`B002`). */
export interface SessionInfo {
  userId: string;
  sessionId: string;
  heartbeatSecs: number;
  /** The inbox, when the server keeps one. */
  inbox?: {
    epoch: string;
    /** The newest offset when signing in. */
    head: number;
    /**
     * False when messages may be missing (the position was unknown, too
     * old, or of a lost inbox): reload history from your own backend.
     */
    recovered: boolean;
  };
  /** Whether this session follows a lost one (a reconnection). */
  reconnected: boolean;
}

/** The server's ack of a sent message. */
export interface Ack {
  /** The server's id of the message (a decimal string). */
  messageId: string;
  /** The user or group it went to. */
  receiverId: string;
  /** The `client_msg_id` it was sent with (a retry was acked with the original `messageId`). */
  clientMsgId: string;
  /** Its offset in the sender's own inbox (a group message, or a one-to-one message's sender copy): this session is not sent it. */
  offset?: number;
  /** The ack's `data`, as received. */
  data: Record<string, unknown>;
}

/** Who a message came through. */
export type MessageKind = "c2c" | "c2g" | "push";

/** A message delivered to this session. */
export interface IncomingMessage {
  /** One-to-one, group, or server push. */
  kind: MessageKind;
  /** The message with every field as received (unknown ones included). */
  message: ChatMessage;
  /** Its offset in this user's inbox, or 0 when it is not an inbox entry. */
  offset: number;
  messageId: string;
  senderId: string;
  /** A user id (one-to-one, push) or a group id (group). */
  receiverId: string;
  /** Unix milliseconds. */
  timestamp: number;
  /** The conversation it belongs to: the group, or the other user (for a push, the pusher). */
  conversation: string;
  /** Whether this user sent it (from another device: a sender copy). */
  own: boolean;
}

/** A close of the connection. */
export interface CloseInfo {
  /** `A999`'s code, or the WebSocket's (1006 when the network dropped). */
  code: number;
  reason: string;
  /** Whether the client will reconnect. */
  reconnect: boolean;
  /** In how long, when it does. */
  delayMs?: number;
  /** When the server refused the sign-in (`B003`). */
  authError?: JimError;
}

/** A frame as sent or received, for debug views. */
export interface FrameEvent {
  direction: "in" | "out";
  cmd: string;
  seq: number;
  body: string;
}

/** Events of {@link JimClient}. */
export interface ClientEvents {
  /** The connection state changed. */
  state: { state: ConnectionState; previous: ConnectionState };
  /** Signed in (on each connection). */
  session: SessionInfo;
  /** A message for this user (never the same inbox offset twice). */
  message: IncomingMessage;
  /** The connection closed (and whether it will be made again). */
  close: CloseInfo;
  /** Something the server sent that this client could not read (it reconnects). */
  protocolError: Error;
  /** The position store failed to save (the position is kept in memory meanwhile). */
  storeError: Error;
  /** Every frame in and out (for debugging; free when nobody listens). */
  frame: FrameEvent;
  /** A receipt: the other side (or this user on another device) read or had delivered up to a message. */
  receipt: Receipt;
  /** Someone is typing (or stopped) in a conversation with this user. */
  typing: TypingEvent;
}

/** A send waiting for its ack. */
interface Request {
  cmd: string;
  body: string;
  receiverId: string;
  clientMsgId: string;
  resolve: (ack: Ack) => void;
  reject: (error: JimError) => void;
  timer: ReturnType<typeof setTimeout>;
  seq?: number;
}

const DEFAULT_TIMEOUT_MS = 10_000;
/** How long {@link JimClient.close} waits for the server's goodbye. */
const CLOSE_WAIT_MS = 2_000;
/** The largest u32, where `seq` wraps. */
const MAX_SEQ = 0xffff_ffff;

/**
 * A connection to a Jim gateway that stays up: it signs in, pings, reconnects
 * with backoff, resumes the inbox where it left off, and turns each send
 * into a promise of the server's ack.
 *
 * ```ts
 * import { JimClient, text } from "jim-client";
 *
 * const client = new JimClient({ url: "ws://127.0.0.1:9000/ws", token: "alice" });
 * client.on("message", (m) => console.log(m.senderId, m.message));
 * client.on("state", ({ state }) => console.log(state));
 * await client.connect();
 * const ack = await client.send("bob", text("hello"));
 * console.log(ack.messageId); // "7302..." (a string, exact)
 * ```
 */
export class JimClient extends Emitter<ClientEvents> {
  private readonly options: ClientOptions;
  private readonly WebSocketClass: WebSocketConstructor;
  private readonly inbox: InboxCursor;
  private currentState: ConnectionState = "idle";
  private socket: WebSocketLike | undefined;
  /** Bumped per socket: events of an older socket are ignored. */
  private generation = 0;
  private nextSeq = 1;
  /** Sent on this connection, waiting for their ack, by seq (in sending order). */
  private readonly inFlight = new Map<number, Request>();
  /** Waiting for a connection, in order. */
  private queue: Request[] = [];
  private authSeq: number | undefined;
  private refreshSeq: number | undefined;
  private serverClose: { code: number; reason: string } | undefined;
  private authError: JimError | undefined;
  private attempt = 0;
  private everConnected = false;
  /** Whether the connection being made replaces a lost one. */
  private resuming = false;
  private closing: (() => void) | undefined;
  /** The close in progress, which a second `close()` waits for too. */
  private leaving: Promise<void> | undefined;
  private currentSession: SessionInfo | undefined;
  private userId: string | undefined;
  private readonly waiters: { resolve: (s: SessionInfo) => void; reject: (e: JimError) => void }[] = [];
  private heartbeatTimer: ReturnType<typeof setInterval> | undefined;
  private pongTimer: ReturnType<typeof setTimeout> | undefined;
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  private refreshTimer: ReturnType<typeof setTimeout> | undefined;
  private connectTimer: ReturnType<typeof setTimeout> | undefined;
  private tokenExp: number | undefined;
  /** The last heartbeat's round trip, in ms. */
  rttMs: number | undefined;
  /** History and conversation-list requests waiting for their B105 reply, by seq. */
  private readonly queries = new Map<
    number,
    { resolve: (body: Record<string, unknown>) => void; reject: (e: JimError) => void; timer: ReturnType<typeof setTimeout> }
  >();
  /** Receipts sent forward only; delivered ones coalesced. */
  private readonly marks = new MarkSender((conversation, status, messageId) => this.sendMark(conversation, status, messageId), 1_000);
  /** When typing `on` was last sent, per conversation. */
  private readonly typingSent = new Map<string, number>();

  constructor(options: ClientOptions) {
    super();
    const WebSocketClass = options.WebSocket ?? globalWebSocket();
    if (!WebSocketClass) {
      throw new TypeError('no WebSocket in this runtime: pass one, e.g. { WebSocket: (await import("ws")).default }');
    }
    if (!/^wss?:\/\//.test(options.url)) {
      throw new TypeError(`the gateway URL must start with ws:// or wss://, not ${JSON.stringify(options.url)}`);
    }
    this.options = options;
    this.WebSocketClass = WebSocketClass;
    this.inbox = new InboxCursor(
      options.positions === undefined ? new MemoryPositionStore() : options.positions,
      options.resumeFrom ?? "everything",
      (error) => this.emit("storeError", error),
    );
  }

  /** The connection state. */
  get state(): ConnectionState {
    return this.currentState;
  }

  /** The current session, while connected. */
  get session(): SessionInfo | undefined {
    return this.currentState === "connected" ? this.currentSession : undefined;
  }

  /** The inbox position: everything up to it was handed to the application. */
  get inboxPosition(): Position | undefined {
    return this.inbox.current;
  }

  /** How many sends wait for a connection or an ack. */
  get pendingSends(): number {
    return this.queue.length + this.inFlight.size;
  }

  /**
   * Connects and signs in; resolves with the session once signed in. If the
   * gateway cannot be reached it keeps trying (state `reconnecting`); it
   * rejects only when it stops for good (the token was refused, or
   * {@link close} was called).
   */
  connect(): Promise<SessionInfo> {
    if (this.currentState === "connected" && this.currentSession) return Promise.resolve(this.currentSession);
    const signedIn = new Promise<SessionInfo>((resolve, reject) => this.waiters.push({ resolve, reject }));
    if (this.currentState === "idle" || this.currentState === "closed") {
      this.closing = undefined;
      this.authError = undefined;
      this.attempt = 0;
      this.resuming = false;
      this.setState("connecting");
      this.open("connect");
    }
    return signedIn;
  }

  /**
   * Sends a one-to-one message; resolves with the server's ack.
   *
   * @param to - the receiver's user id.
   * @param message - a message from a builder ({@link text}, {@link image}, ...), or a string for a text.
   * @throws {@link JimError} (as a rejection): `rejected` with the server's
   * code, `timeout`, `offline`, `closed` or `invalid`.
   */
  send(to: string, message: ChatMessage | string): Promise<Ack> {
    return this.request(Command.C2C, to, message);
  }

  /** Sends a message to a group; resolves with the server's ack (with the message's `offset`). */
  sendToGroup(group: string, message: ChatMessage | string): Promise<Ack> {
    return this.request(Command.C2G, group, message);
  }

  /**
   * Tells the sender that a message was received (a client `ack`, which the
   * server hands to its observers for read receipts). Returns false when
   * not connected (nothing sent).
   */
  ack(message: IncomingMessage): boolean {
    if (this.currentState !== "connected") return false;
    const body = JSON.stringify({
      type: "ack",
      data: { receiver_id: message.senderId, message_id: message.messageId, request_id: message.offset },
    });
    this.write(Command.C2C, this.takeSeq(), body);
    return true;
  }

  /**
   * Marks everything up to `messageId` in `conversation` as read: the
   * server keeps the mark (forward only) and tells this user's other
   * devices and, one to one, the other user. Returns false when not
   * connected or the mark would not move.
   */
  markRead(conversation: Conversation, messageId: string): boolean {
    if (this.currentState !== "connected") return false;
    this.marks.mark(conversation, "read", messageId);
    return true;
  }

  /** Marks everything up to `messageId` as delivered (sent within a second, coalesced). */
  markDelivered(conversation: Conversation, messageId: string): void {
    this.marks.mark(conversation, "delivered", messageId);
  }

  /**
   * Tells the other side of `conversation` that this user types (`on`) or
   * stopped. An `on` is sent at most once every 2 s per conversation (the
   * gateway relays no more); returns whether it was sent.
   */
  typing(conversation: Conversation, on: boolean): boolean {
    if (this.currentState !== "connected" || !isConversation(conversation)) return false;
    const key = conversationKey(conversation);
    const now = Date.now();
    if (on && now - (this.typingSent.get(key) ?? -Infinity) < TYPING_EVERY_MS) return false;
    if (on) this.typingSent.set(key, now);
    else this.typingSent.delete(key);
    const body = JSON.stringify({ type: "typing", data: { ...conversationFields(conversation), state: on ? "on" : "off" } });
    this.write(Command.Typing, this.takeSeq(), body);
    return true;
  }

  /**
   * A page of `conversation`'s history, newest first: entries with offsets
   * below `before` (default: from the newest), at most `limit` (default 50,
   * at most 100). Page back with `before` = the last entry's offset.
   *
   * @throws {@link JimError} `rejected` (4004 when the gateway keeps no inbox), `offline`, `timeout`.
   */
  history(conversation: Conversation, options: { before?: number; limit?: number } = {}): Promise<HistoryPage> {
    const request: Record<string, unknown> = { op: "history", conversation };
    if (options.before !== undefined) request["before"] = options.before;
    if (options.limit !== undefined) request["limit"] = options.limit;
    return this.query(request) as unknown as Promise<HistoryPage>;
  }

  /** This user's conversations, most recent first, with unread counts and read marks. */
  conversations(options: { limit?: number } = {}): Promise<ConversationList> {
    const request: Record<string, unknown> = { op: "conversations" };
    if (options.limit !== undefined) request["limit"] = options.limit;
    return this.query(request) as unknown as Promise<ConversationList>;
  }

  private query(request: Record<string, unknown>): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      if (this.currentState !== "connected") {
        reject(new JimError("offline", "not connected"));
        return;
      }
      const seq = this.takeSeq();
      const timeoutMs = this.options.requestTimeoutMs ?? DEFAULT_TIMEOUT_MS;
      const timer = setTimeout(() => {
        this.queries.delete(seq);
        reject(new JimError("timeout", `no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.queries.set(seq, { resolve, reject, timer });
      this.write(Command.History, seq, JSON.stringify(request));
    });
  }

  private sendMark(conversation: Conversation, status: MarkStatus, messageId: string): boolean {
    if (this.currentState !== "connected") return false;
    const body = JSON.stringify({ type: "ack", data: { ...conversationFields(conversation), message_id: messageId, status } });
    this.write(Command.C2C, this.takeSeq(), body);
    return true;
  }

  /**
   * Leaves: tells the server (`A998`), waits for the answers to what was
   * already sent, and closes. Sends still queued fail with `closed`.
   */
  close(): Promise<void> {
    if (this.currentState === "closed" || this.currentState === "idle") {
      this.setState("closed");
      return Promise.resolve();
    }
    this.leaving ??= this.leave().finally(() => (this.leaving = undefined));
    return this.leaving;
  }

  private async leave(): Promise<void> {
    clearTimeout(this.reconnectTimer);
    this.rejectQueued(new JimError("closed", "the client was closed"));
    const socket = this.socket;
    const finished = new Promise<void>((resolve) => (this.closing = resolve));
    if (socket && socket.readyState === OPEN && this.currentState === "connected") {
      this.write(Command.Leave, this.takeSeq(), "");
      const forced = setTimeout(() => this.closed(this.generation, CloseCode.Normal, "client closed"), CLOSE_WAIT_MS);
      await finished;
      clearTimeout(forced);
    } else {
      this.closed(this.generation, CloseCode.Normal, "client closed");
      await finished;
    }
  }

  /** Forgets the saved inbox position of the signed-in user (on sign-out). */
  forgetPosition(): void {
    this.inbox.forget();
  }

  private request(cmd: string, receiverId: string, content: ChatMessage | string): Promise<Ack> {
    return new Promise<Ack>((resolve, reject) => {
      const message = typeof content === "string" ? textMessage(content) : content;
      if (!isMessage(message)) {
        reject(new JimError("invalid", `not a chat message with its required fields: ${safeJson(message)}`));
        return;
      }
      if (typeof receiverId !== "string" || receiverId === "") {
        reject(new JimError("invalid", "the receiver must be a non-empty string"));
        return;
      }
      if (this.currentState === "closed") {
        reject(new JimError("closed", "the client is closed"));
        return;
      }
      const existing = message.data.client_msg_id;
      const clientMsgId = typeof existing === "string" && existing !== "" ? existing : this.newClientMsgId();
      const body = JSON.stringify({ ...message, data: { ...message.data, receiver_id: receiverId, client_msg_id: clientMsgId } });
      const size = new TextEncoder().encode(body).length;
      const max = this.options.maxBodyBytes ?? DEFAULT_MAX_BODY;
      if (size > max) {
        reject(new JimError("invalid", `the message is ${size} bytes, above the maximum body of ${max}`));
        return;
      }
      const request: Request = {
        cmd,
        body,
        receiverId,
        clientMsgId,
        resolve,
        reject,
        timer: setTimeout(() => this.timedOut(request), this.options.requestTimeoutMs ?? DEFAULT_TIMEOUT_MS),
      };
      if (this.currentState === "connected") {
        this.transmit(request);
      } else if ((this.options.whileOffline ?? "wait") === "fail") {
        clearTimeout(request.timer);
        reject(new JimError("offline", `not connected (${this.currentState})`));
      } else if (this.queue.length >= (this.options.maxQueued ?? 1_000)) {
        clearTimeout(request.timer);
        reject(new JimError("offline", "not connected, and the queue of sends waiting for a connection is full"));
      } else {
        this.queue.push(request);
      }
    });
  }

  private newClientMsgId(): string {
    if (this.options.newClientMsgId) return this.options.newClientMsgId();
    // getRandomValues works where randomUUID does not (pages served over plain http from a LAN address).
    const bytes = new Uint8Array(16);
    globalThis.crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  private timedOut(request: Request): void {
    this.queue = this.queue.filter((queued) => queued !== request);
    if (request.seq !== undefined && this.inFlight.get(request.seq) === request) this.inFlight.delete(request.seq);
    request.reject(
      new JimError(
        "timeout",
        `no ack within ${this.options.requestTimeoutMs ?? DEFAULT_TIMEOUT_MS} ms (it may have been accepted: send it again with the same client_msg_id)`,
      ),
    );
  }

  private transmit(request: Request): void {
    const seq = this.takeSeq();
    request.seq = seq;
    this.inFlight.set(seq, request);
    this.write(request.cmd, seq, request.body);
  }

  private takeSeq(): number {
    const seq = this.nextSeq;
    this.nextSeq = seq === MAX_SEQ ? 1 : seq + 1;
    return seq;
  }

  private write(cmd: string, seq: number, body: string): void {
    const socket = this.socket;
    if (!socket || socket.readyState !== OPEN) return;
    if (this.listening("frame")) this.emit("frame", { direction: "out", cmd, seq, body });
    socket.send(encodeFrame(cmd, seq, body));
  }

  private setState(state: ConnectionState): void {
    const previous = this.currentState;
    if (previous === state) return;
    this.currentState = state;
    this.emit("state", { state, previous });
  }

  /** Opens a socket and signs in on it. */
  private open(reason: "connect" | "reconnect"): void {
    const generation = ++this.generation;
    this.nextSeq = 1;
    this.serverClose = undefined;
    this.authSeq = undefined;
    this.refreshSeq = undefined;
    let socket: WebSocketLike;
    try {
      socket = new this.WebSocketClass(this.options.url);
    } catch (error) {
      queueMicrotask(() => this.closed(generation, CloseCode.Abnormal, `cannot open the WebSocket: ${errorText(error)}`));
      return;
    }
    this.socket = socket;
    socket.binaryType = "arraybuffer";
    this.connectTimer = setTimeout(() => {
      this.drop(generation, `not signed in within ${this.options.connectTimeoutMs ?? DEFAULT_TIMEOUT_MS} ms`);
    }, this.options.connectTimeoutMs ?? DEFAULT_TIMEOUT_MS);
    socket.onopen = () => void this.signIn(generation, reason);
    socket.onmessage = (event: { data: unknown }) => this.received(generation, event.data);
    socket.onclose = (event: { code?: number; reason?: string }) =>
      this.closed(generation, event.code ?? CloseCode.Abnormal, event.reason || "connection lost");
    // On an open socket an error is followed by a close, which decides what
    // to do. A connection that failed may never say close (Node 20's WebSocket).
    socket.onerror = () => {
      if (socket.readyState !== OPEN) this.drop(generation, "no connection (refused, unreachable, or not a WebSocket server)");
    };
  }

  private async token(reason: TokenReason): Promise<string> {
    const source = this.options.token;
    const token = typeof source === "string" ? source : await source(reason);
    if (typeof token !== "string" || token === "") throw new Error("the token function gave no token");
    this.tokenExp = jwtClaims(token)?.exp;
    return token;
  }

  private async signIn(generation: number, reason: TokenReason): Promise<void> {
    let token: string;
    try {
      token = await this.token(reason);
    } catch (error) {
      this.drop(generation, `the token function failed: ${errorText(error)}`);
      return;
    }
    if (generation !== this.generation) return;
    // The user as far as known before the server says: the last session's, the JWT's subject, or a development token.
    const user = this.userId ?? jwtClaims(token)?.sub ?? (token.includes(".") ? undefined : token);
    const since = this.inbox.since(user);
    const body: Record<string, unknown> = { token, device: this.options.device ?? "web" };
    if (since) body["since"] = since;
    this.authSeq = this.takeSeq();
    this.write(Command.Auth, this.authSeq, JSON.stringify(body));
  }

  /** Gives up on this socket (dead link, no sign-in in time) as if it had closed. */
  private drop(generation: number, reason: string): void {
    if (generation !== this.generation) return;
    this.closed(generation, CloseCode.Abnormal, reason);
  }

  private received(generation: number, data: unknown): void {
    if (generation !== this.generation) return;
    clearTimeout(this.pongTimer);
    this.pongTimer = undefined;
    const bytes = messageBytes(data);
    let frame: Frame;
    try {
      if (!bytes) throw new FrameError("a text WebSocket message (jim1 frames are binary)", 1002);
      frame = decodeFrame(bytes, this.options.maxBodyBytes ?? DEFAULT_MAX_BODY);
    } catch (error) {
      this.protocolError(generation, error);
      return;
    }
    let body: string;
    try {
      body = bodyText(frame);
    } catch (error) {
      this.protocolError(generation, error);
      return;
    }
    if (this.listening("frame")) this.emit("frame", { direction: "in", cmd: frame.cmd, seq: frame.seq, body });
    switch (frame.cmd) {
      case Command.Pong:
        this.ponged(body);
        return;
      case Command.Ping:
        this.write(Command.Pong, frame.seq, body);
        return;
      case Command.Closing:
        this.serverClose = closeBody(body);
        return;
      case Command.AuthOk:
        this.signedIn(generation, frame.seq, body);
        return;
      case Command.AuthFailed:
        this.refused(frame.seq, body);
        return;
      case Command.C2C:
      case Command.C2G:
      case Command.Push:
        this.business(frame.cmd, frame.seq, body);
        return;
      case Command.Typing:
        this.typed(body);
        return;
      case Command.History:
        this.answered(frame.seq, body);
        return;
      default:
        // A command of a later protocol version: nothing to do with it.
        return;
    }
  }

  private protocolError(generation: number, error: unknown): void {
    const problem = error instanceof Error ? error : new Error(String(error));
    this.emit("protocolError", problem);
    const code = error instanceof FrameError ? error.closeCode : CloseCode.ProtocolError;
    // With the code first: the close in closed() would say none.
    try {
      this.socket?.close(code === 1009 ? 1009 : 1002, "protocol error");
    } catch {
      // Already closing.
    }
    this.closed(generation, code, `could not read the server: ${problem.message}`);
  }

  private ponged(body: string): void {
    const sent = Number(body);
    if (Number.isFinite(sent) && sent > 0) this.rttMs = Date.now() - sent;
  }

  private signedIn(generation: number, seq: number, body: string): void {
    let ok: Record<string, unknown>;
    try {
      ok = JSON.parse(body) as Record<string, unknown>;
    } catch (error) {
      this.protocolError(generation, error);
      return;
    }
    if (seq === this.refreshSeq) {
      this.refreshSeq = undefined;
      this.scheduleRefresh();
      return;
    }
    if (seq !== this.authSeq) return;
    clearTimeout(this.connectTimer);
    const userId = String(ok["user_id"] ?? "");
    const session: SessionInfo = {
      userId,
      sessionId: String(ok["session_id"] ?? ""),
      heartbeatSecs: typeof ok["heartbeat_secs"] === "number" ? ok["heartbeat_secs"] : 30,
      reconnected: this.resuming,
    };
    this.userId = userId;
    const inbox = ok["inbox"];
    if (typeof inbox === "object" && inbox !== null && isPosition(inbox)) {
      const recovered = (inbox as { recovered?: unknown }).recovered === true;
      session.inbox = { epoch: inbox.epoch, head: inbox.offset, recovered };
      this.inbox.signedIn(userId, { epoch: inbox.epoch, offset: inbox.offset, recovered });
    } else {
      this.inbox.signedIn(userId, undefined);
    }
    this.currentSession = session;
    this.everConnected = true;
    this.attempt = 0;
    this.setState("connected");
    this.startHeartbeat(session.heartbeatSecs);
    this.scheduleRefresh();
    // What waited: first the sends the last connection lost, then the new ones, in order.
    const waiting = this.queue;
    this.queue = [];
    for (const request of waiting) this.transmit(request);
    this.emit("session", session);
    for (const waiter of this.waiters.splice(0)) waiter.resolve(session);
  }

  private refused(seq: number, body: string): void {
    const { code, reason } = closeBody(body);
    this.authError = new JimError("auth", reason, code);
    if (seq === this.refreshSeq) this.refreshSeq = undefined;
  }

  private business(cmd: string, seq: number, body: string): void {
    let parsed: unknown;
    try {
      parsed = JSON.parse(body);
    } catch (error) {
      this.emit("protocolError", new Error(`a ${cmd} body that is not JSON: ${errorText(error)}`));
      return;
    }
    const envelope = parsed as { type?: unknown; data?: Record<string, unknown> };
    const data = typeof envelope.data === "object" && envelope.data !== null ? envelope.data : {};
    if (envelope.type === "ack" && typeof data["status"] === "string") {
      this.receipt(seq, data);
      return;
    }
    if (envelope.type === "ack" || envelope.type === "error") {
      this.replied(seq, envelope.type, data);
      return;
    }
    if (!isMessage(parsed)) {
      this.emit("protocolError", new Error(`a ${cmd} message this client does not know: ${body.slice(0, 200)}`));
      return;
    }
    // Already handed over (a replay and a live delivery overlapped).
    if (!this.inbox.isNew(seq)) return;
    const kind: MessageKind = cmd === Command.C2G ? "c2g" : cmd === Command.Push ? "push" : "c2c";
    const senderId = String(data["sender_id"] ?? "");
    const receiverId = String(data["receiver_id"] ?? "");
    const incoming: IncomingMessage = {
      kind,
      message: parsed,
      offset: seq,
      messageId: String(data["message_id"] ?? ""),
      senderId,
      receiverId,
      timestamp: typeof data["timestamp"] === "number" ? data["timestamp"] : Date.now(),
      conversation: kind === "c2g" ? receiverId : senderId === this.userId ? receiverId : senderId,
      own: senderId === this.userId,
    };
    this.emit("message", incoming);
    this.inbox.handed(seq);
    if (!incoming.own && incoming.messageId !== "" && (this.options.autoDelivered ?? true)) {
      const conversation: Conversation = kind === "c2g" ? { group: receiverId } : { user: incoming.conversation };
      this.marks.mark(conversation, "delivered", incoming.messageId);
    }
  }

  /** A receipt delivered as an inbox entry. */
  private receipt(seq: number, data: Record<string, unknown>): void {
    if (!this.inbox.isNew(seq)) return;
    const readerId = String(data["sender_id"] ?? "");
    const status = data["status"] === "read" ? "read" : "delivered";
    const group = data["group_id"];
    const conversation: Conversation =
      typeof group === "string"
        ? { group }
        : { user: readerId === this.userId ? String(data["receiver_id"] ?? "") : readerId };
    const messageId = String(data["message_id"] ?? "");
    // This user's own mark from another device: no need to send it again.
    if (readerId === this.userId) this.marks.mark(conversation, status, messageId);
    this.emit("receipt", { conversation, status, messageId, readerId, offset: seq });
    this.inbox.handed(seq);
  }

  /** A relayed B104. */
  private typed(body: string): void {
    let parsed: { data?: Record<string, unknown> };
    try {
      parsed = JSON.parse(body) as { data?: Record<string, unknown> };
    } catch {
      return;
    }
    const data = parsed.data ?? {};
    const senderId = String(data["sender_id"] ?? "");
    const group = data["group_id"];
    const conversation: Conversation = typeof group === "string" ? { group } : { user: senderId };
    const on = data["state"] === "on";
    this.emit("typing", { conversation, senderId, on, expiresAt: on ? Date.now() + TYPING_EXPIRES_MS : Date.now() });
  }

  /** The B105 reply to a history or conversation-list request. */
  private answered(seq: number, body: string): void {
    const query = this.queries.get(seq);
    if (!query) return;
    this.queries.delete(seq);
    clearTimeout(query.timer);
    let parsed: Record<string, unknown>;
    try {
      parsed = JSON.parse(body) as Record<string, unknown>;
    } catch (error) {
      query.reject(new JimError("rejected", `an unreadable B105 reply: ${errorText(error)}`));
      return;
    }
    if (parsed["type"] === "error") {
      const data = (parsed["data"] ?? {}) as Record<string, unknown>;
      const code = typeof data["code"] === "number" ? data["code"] : ErrorCode.Internal;
      query.reject(new JimError("rejected", String(data["reason"] ?? "refused"), code));
      return;
    }
    query.resolve(parsed);
  }

  private replied(seq: number, type: "ack" | "error", data: Record<string, unknown>): void {
    const request = this.inFlight.get(seq);
    if (!request) return;
    this.inFlight.delete(seq);
    clearTimeout(request.timer);
    if (type === "error") {
      const code = typeof data["code"] === "number" ? data["code"] : ErrorCode.Internal;
      request.reject(new JimError("rejected", String(data["reason"] ?? "refused"), code));
      return;
    }
    const offset = typeof data["offset"] === "number" ? data["offset"] : undefined;
    if (offset !== undefined) this.inbox.skipOwn(offset);
    request.resolve({
      messageId: String(data["message_id"] ?? ""),
      receiverId: String(data["receiver_id"] ?? request.receiverId),
      clientMsgId: request.clientMsgId,
      ...(offset !== undefined ? { offset } : {}),
      data,
    });
  }

  private startHeartbeat(heartbeatSecs: number): void {
    clearInterval(this.heartbeatTimer);
    const interval = this.options.heartbeatMs ?? heartbeatSecs * 1000;
    const patience = this.options.pongTimeoutMs ?? Math.min(interval, 10_000);
    const generation = this.generation;
    this.heartbeatTimer = setInterval(() => {
      this.write(Command.Ping, this.takeSeq(), String(Date.now()));
      // Counted from the first ping left unanswered: later pings do not push it back.
      this.pongTimer ??= setTimeout(() => this.drop(generation, `no answer to a ping within ${patience} ms`), patience);
    }, interval);
  }

  private scheduleRefresh(): void {
    clearTimeout(this.refreshTimer);
    if (typeof this.options.token === "string" || this.tokenExp === undefined) return;
    const margin = this.options.refreshBeforeExpiryMs ?? 30_000;
    const delay = Math.max(1_000, this.tokenExp * 1000 - margin - Date.now());
    const generation = this.generation;
    this.refreshTimer = setTimeout(() => void this.refresh(generation), delay);
  }

  private async refresh(generation: number): Promise<void> {
    let token: string;
    try {
      token = await this.token("refresh");
    } catch {
      // Try again shortly; the session lasts until the old token's exp.
      this.refreshTimer = setTimeout(() => void this.refresh(generation), 5_000);
      return;
    }
    if (generation !== this.generation || this.currentState !== "connected") return;
    this.refreshSeq = this.takeSeq();
    this.write(Command.Auth, this.refreshSeq, JSON.stringify({ token }));
  }

  private stopTimers(): void {
    clearInterval(this.heartbeatTimer);
    clearTimeout(this.pongTimer);
    clearTimeout(this.refreshTimer);
    clearTimeout(this.connectTimer);
    this.heartbeatTimer = this.pongTimer = this.refreshTimer = this.connectTimer = undefined;
  }

  /** The socket of `generation` is gone: decide whether to come back. */
  private closed(generation: number, code: number, reason: string): void {
    if (generation !== this.generation) return;
    this.generation++; // later events of that socket are stale
    this.stopTimers();
    const socket = this.socket;
    this.socket = undefined;
    if (socket) {
      socket.onopen = socket.onmessage = socket.onclose = socket.onerror = null;
      // Given up on rather than closed by the server (no goodbye in time, a dead link, still connecting).
      if (socket.readyState < CLOSING) {
        try {
          socket.close();
        } catch {
          // Already closing.
        }
      }
    }
    const close = this.serverClose ?? { code, reason };
    const authError = this.authError;
    this.authError = undefined;
    if (this.closing) {
      this.finish(new JimError("closed", "the client was closed"));
      this.emit("close", { ...close, reconnect: false });
      this.closing();
      this.closing = undefined;
      return;
    }
    const again = this.shouldReconnect(close, authError);
    const delayMs = again ? backoffDelay(this.attempt++, this.options.reconnect || {}) : undefined;
    // What was in flight goes again first (same client_msg_id: a retry the server recognises).
    const lost = [...this.inFlight.values()];
    this.inFlight.clear();
    if (again && (this.options.resendOnReconnect ?? true)) {
      for (const request of lost) request.seq = undefined;
      this.queue = [...lost, ...this.queue];
    } else {
      for (const request of lost) {
        clearTimeout(request.timer);
        request.reject(new JimError("closed", `the connection closed before the ack: ${close.reason}`));
      }
    }
    const info: CloseInfo = {
      ...close,
      reconnect: again,
      ...(delayMs !== undefined ? { delayMs } : {}),
      ...(authError ? { authError } : {}),
    };
    if (again && delayMs !== undefined) {
      this.resuming ||= this.everConnected;
      this.setState("reconnecting");
      this.emit("close", info);
      // A first connection that failed is still a first connection for the token function.
      this.reconnectTimer = setTimeout(() => this.open(this.everConnected ? "reconnect" : "connect"), delayMs);
    } else {
      this.finish(authError ?? new JimError("closed", `${close.code} ${close.reason}`, close.code));
      this.emit("close", info);
    }
  }

  /** Stops for good: everything waiting fails with `error`. */
  private finish(error: JimError): void {
    clearTimeout(this.reconnectTimer);
    this.rejectQueued(error);
    for (const request of this.inFlight.values()) {
      clearTimeout(request.timer);
      request.reject(error);
    }
    this.inFlight.clear();
    for (const waiter of this.waiters.splice(0)) waiter.reject(error);
    this.setState("closed");
  }

  private rejectQueued(error: JimError): void {
    for (const request of this.queue) {
      clearTimeout(request.timer);
      request.reject(error);
    }
    this.queue = [];
  }

  private shouldReconnect(close: { code: number; reason: string }, authError: JimError | undefined): boolean {
    return reconnects(close, authError, {
      enabled: this.options.reconnect !== false,
      canRenewToken: typeof this.options.token !== "string",
    });
  }
}

function closeBody(body: string): { code: number; reason: string } {
  try {
    const value = JSON.parse(body) as { code?: unknown; reason?: unknown };
    return {
      code: typeof value.code === "number" ? value.code : CloseCode.Internal,
      reason: typeof value.reason === "string" ? value.reason : "",
    };
  } catch {
    return { code: CloseCode.Internal, reason: body };
  }
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function safeJson(value: unknown): string {
  try {
    return JSON.stringify(value)?.slice(0, 200) ?? String(value);
  } catch {
    return String(value);
  }
}
