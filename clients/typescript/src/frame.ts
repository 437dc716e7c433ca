/**
 * `jim1` frames: a 16-byte header (`jim1`, a 4-letter command, a u32
 * sequence number and a u32 body length, big-endian) and a body.
 *
 * @module
 */

/** The 4 bytes every frame starts with. */
export const MAGIC = "jim1";
/** Header length in bytes. */
export const HEADER_LENGTH = 16;
/** The gateway's default maximum body (64 KiB). */
export const DEFAULT_MAX_BODY = 64 * 1024;

/** The commands of the protocol (`docs/protocol.md`, section 2). */
export const Command = {
  /** Ping (either side). */
  Ping: "A001",
  /** Pong, with the ping's `seq` and body. */
  Pong: "A002",
  /** The client is leaving. */
  Leave: "A998",
  /** The server is closing this connection: `{"code","reason"}`. */
  Closing: "A999",
  /** Authenticate. */
  Auth: "B001",
  /** Authenticated. */
  AuthOk: "B002",
  /** Authentication failed; the server closes. */
  AuthFailed: "B003",
  /** A one-to-one message, or its ack or error. */
  C2C: "B101",
  /** A group message, or its ack or error. */
  C2G: "B102",
  /** A server push. */
  Push: "B103",
  /** Typing: sent, and relayed to the conversation's other side (ephemeral, `seq` 0). */
  Typing: "B104",
  /** A history or conversation-list request, and its reply. */
  History: "B105",
} as const;

/** One of {@link Command}'s codes, or any other 4-letter code. */
export type CommandCode = (typeof Command)[keyof typeof Command] | (string & {});

/** One decoded frame. */
export interface Frame {
  /** The 4-letter command, e.g. `"B101"`. */
  cmd: CommandCode;
  /** The sequence number (u32). */
  seq: number;
  /** The body's bytes (UTF-8 JSON, empty, or a short text). */
  body: Uint8Array;
}

/**
 * A frame that cannot be read. `closeCode` is what the protocol closes
 * the connection with: 1002 (not a frame) or 1009 (body too large).
 */
export class FrameError extends Error {
  override readonly name = "FrameError";
  constructor(
    message: string,
    /** 1002 protocol error or 1009 too large. */
    readonly closeCode: 1002 | 1009,
  ) {
    super(message);
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/**
 * Encodes one frame.
 *
 * ```ts
 * const bytes = encodeFrame("A001", 7, "");
 * bytes.length; // 16
 * ```
 */
export function encodeFrame(cmd: CommandCode, seq: number, body: string | Uint8Array = ""): Uint8Array {
  if (cmd.length !== 4 || !/^[\x20-\x7e]{4}$/.test(cmd)) {
    throw new TypeError(`a command is 4 ASCII characters, not ${JSON.stringify(cmd)}`);
  }
  if (!Number.isInteger(seq) || seq < 0 || seq > 0xffff_ffff) {
    throw new RangeError(`seq must be a u32, not ${seq}`);
  }
  const bytes = typeof body === "string" ? encoder.encode(body) : body;
  const frame = new Uint8Array(HEADER_LENGTH + bytes.length);
  for (let i = 0; i < 4; i++) {
    frame[i] = MAGIC.charCodeAt(i);
    frame[4 + i] = cmd.charCodeAt(i);
  }
  const view = new DataView(frame.buffer);
  view.setUint32(8, seq, false);
  view.setUint32(12, bytes.length, false);
  frame.set(bytes, HEADER_LENGTH);
  return frame;
}

/** Reads the header at the start of `bytes` (which holds at least 16 bytes). */
function readHeader(bytes: Uint8Array, maxBody: number): { cmd: string; seq: number; length: number } {
  for (let i = 0; i < 4; i++) {
    if (bytes[i] !== MAGIC.charCodeAt(i)) {
      throw new FrameError("not a jim1 frame (bad magic)", 1002);
    }
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, HEADER_LENGTH);
  const cmd = String.fromCharCode(bytes[4]!, bytes[5]!, bytes[6]!, bytes[7]!);
  const seq = view.getUint32(8, false);
  const length = view.getUint32(12, false);
  if (length > maxBody) {
    throw new FrameError(`declared body of ${length} bytes is above the maximum of ${maxBody}`, 1009);
  }
  return { cmd, seq, length };
}

/**
 * Decodes a buffer that holds exactly one frame, as one WebSocket message
 * must.
 *
 * @throws {@link FrameError} when it holds less or more than one frame.
 */
export function decodeFrame(bytes: Uint8Array, maxBody: number = DEFAULT_MAX_BODY): Frame {
  if (bytes.length < HEADER_LENGTH) {
    throw new FrameError(`a message of ${bytes.length} bytes is shorter than a frame header`, 1002);
  }
  const { cmd, seq, length } = readHeader(bytes, maxBody);
  if (bytes.length !== HEADER_LENGTH + length) {
    throw new FrameError(
      `a message must hold exactly one frame: ${bytes.length} bytes for a frame of ${HEADER_LENGTH + length}`,
      1002,
    );
  }
  return { cmd, seq, body: bytes.subarray(HEADER_LENGTH) };
}

/**
 * Reads frames from a stream of chunks split anywhere (a TCP socket, say):
 * push each chunk, get every frame it completes.
 *
 * ```ts
 * const decoder = new FrameDecoder();
 * const bytes = encodeFrame("A001", 1, "hi");
 * decoder.push(bytes.subarray(0, 5)); // []
 * decoder.push(bytes.subarray(5));    // [{ cmd: "A001", seq: 1, ... }]
 * ```
 */
export class FrameDecoder {
  private buffer: Uint8Array = new Uint8Array(0);

  constructor(private readonly maxBody: number = DEFAULT_MAX_BODY) {}

  /**
   * Adds a chunk; returns the frames it completes, in order.
   *
   * @throws {@link FrameError} on a bad magic (checked as soon as 4 bytes are
   * in) or an oversized length (from the header alone). The stream cannot
   * be resynchronised after either.
   */
  push(chunk: Uint8Array): Frame[] {
    this.buffer = this.buffer.length === 0 ? chunk : concat(this.buffer, chunk);
    const frames: Frame[] = [];
    for (;;) {
      const prefix = Math.min(this.buffer.length, 4);
      for (let i = 0; i < prefix; i++) {
        if (this.buffer[i] !== MAGIC.charCodeAt(i)) {
          throw new FrameError("not a jim1 frame (bad magic)", 1002);
        }
      }
      if (this.buffer.length < HEADER_LENGTH) break;
      const { cmd, seq, length } = readHeader(this.buffer, this.maxBody);
      const end = HEADER_LENGTH + length;
      if (this.buffer.length < end) break;
      // A copy: the caller may keep the body after the next push.
      frames.push({ cmd, seq, body: this.buffer.slice(HEADER_LENGTH, end) });
      this.buffer = this.buffer.subarray(end);
    }
    return frames;
  }

  /** Bytes received that do not make a whole frame yet. */
  get pending(): number {
    return this.buffer.length;
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const joined = new Uint8Array(a.length + b.length);
  joined.set(a, 0);
  joined.set(b, a.length);
  return joined;
}

/**
 * A body as text.
 *
 * @throws {@link FrameError} (1002) when it is not UTF-8.
 */
export function bodyText(frame: Frame): string {
  try {
    return decoder.decode(frame.body);
  } catch {
    throw new FrameError(`the body of ${frame.cmd} is not UTF-8`, 1002);
  }
}
