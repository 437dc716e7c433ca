// A scripted stand-in for the server's side of a WebSocket, for testing the
// client's state machine frame by frame (the integration tests use the real
// gateway).
import { decodeFrame, encodeFrame, type WebSocketLike } from "../../src/index.js";

export interface Sent {
  cmd: string;
  seq: number;
  body: string;
}

export class FakeSocket implements WebSocketLike {
  static opened: FakeSocket[] = [];
  /** Called with each new socket (tests wait on it). */
  static onCreate: ((socket: FakeSocket) => void) | undefined;
  binaryType = "blob";
  readyState = 0;
  onopen: ((event: unknown) => void) | null = null;
  onmessage: ((event: { data: unknown }) => void) | null = null;
  onclose: ((event: { code: number; reason: string }) => void) | null = null;
  onerror: ((event: unknown) => void) | null = null;
  readonly sent: Sent[] = [];
  private readonly waiting: ((sent: Sent) => void)[] = [];
  closedByClient: number | undefined;

  constructor(readonly url: string) {
    FakeSocket.opened.push(this);
    FakeSocket.onCreate?.(this);
  }

  static reset(): void {
    FakeSocket.opened = [];
    FakeSocket.onCreate = undefined;
  }

  /** Resolves with the next socket the client opens. */
  static next(): Promise<FakeSocket> {
    return new Promise((resolve) => {
      FakeSocket.onCreate = (socket) => {
        FakeSocket.onCreate = undefined;
        resolve(socket);
      };
    });
  }

  send(data: Uint8Array): void {
    const frame = decodeFrame(data);
    const sent = { cmd: frame.cmd, seq: frame.seq, body: new TextDecoder().decode(frame.body) };
    const waiter = this.waiting.shift();
    if (waiter) waiter(sent);
    else this.sent.push(sent);
  }

  /** The next frame the client sends. */
  nextSent(): Promise<Sent> {
    const sent = this.sent.shift();
    if (sent) return Promise.resolve(sent);
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  /** The next frame the client sends with command `cmd` (others are skipped). */
  async nextOf(cmd: string): Promise<Sent> {
    for (;;) {
      const sent = await this.nextSent();
      if (sent.cmd === cmd) return sent;
    }
  }

  close(code?: number): void {
    // As a browser: only the first close says anything.
    if (this.readyState >= 2) return;
    this.closedByClient = code ?? 1005;
    this.readyState = 3;
    queueMicrotask(() => this.onclose?.({ code: code ?? 1005, reason: "" }));
  }

  // The server's side.

  open(): void {
    this.readyState = 1;
    this.onopen?.({});
  }

  /** Delivers raw bytes as one WebSocket message. */
  deliverBytes(bytes: Uint8Array): void {
    const copy = new Uint8Array(bytes);
    this.onmessage?.({ data: copy.buffer });
  }

  deliver(cmd: string, seq: number, body: unknown = ""): void {
    this.deliverBytes(encodeFrame(cmd, seq, typeof body === "string" ? body : JSON.stringify(body)));
  }

  /** Opens, answers the sign-in with `B002` (plus `extra`) and returns the B001 body. */
  async accept(extra: Record<string, unknown> = {}, user = "alice"): Promise<Record<string, unknown>> {
    this.open();
    const auth = await this.nextOf("B001");
    this.deliver("B002", auth.seq, { user_id: user, session_id: "1", heartbeat_secs: 30, ...extra });
    return JSON.parse(auth.body) as Record<string, unknown>;
  }

  /** The server ends the session: `A999`, then the WebSocket close. */
  end(code: number, reason: string): void {
    this.deliver("A999", 0, { code, reason });
    this.drop(code, reason);
  }

  /** The connection closes (no `A999`: the network, or after one). */
  drop(code = 1006, reason = ""): void {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }
}
