/**
 * Errors: what a request can end with, and the protocol's codes.
 *
 * @module
 */

/**
 * Error codes of replies and of `B003` (`docs/protocol.md`, section 5).
 * The names and numbers are the gateway's own (`jim_model::ErrorCode`; a
 * test of the gateway checks they agree).
 */
export const ErrorCode = {
  /** Malformed JSON, unknown type, missing or ill-typed field. */
  BadRequest: 4000,
  /** Not authenticated (or a bad token, in `B003`). */
  NotAuthenticated: 4001,
  /** Not a member of the group. */
  Forbidden: 4003,
  /** Unknown command or group. */
  NotFound: 4004,
  /** Rate limited, or too many sessions (in `B003`). */
  RateLimited: 4029,
  /** Internal error or routing backend unavailable: retry later. */
  Internal: 5000,
  /** @deprecated The same code as {@link ErrorCode.Internal}: the name it had first. */
  Unavailable: 5000,
} as const;

/** Close codes of `A999` (WebSocket close codes). */
export const CloseCode = {
  /** After the client's `A998`. */
  Normal: 1000,
  /** The server is shutting down. */
  GoingAway: 1001,
  /** Protocol error. */
  ProtocolError: 1002,
  /** The connection ended without a close frame (network). */
  Abnormal: 1006,
  /** Policy: authentication, idle, kicked, slow consumer, too many connections. */
  Policy: 1008,
  /** A frame above the maximum body. */
  TooLarge: 1009,
  /** Internal error (or the inbox was reset: reconnect). */
  Internal: 1011,
} as const;

/**
 * How a request ended without an ack:
 * - `rejected`: the server answered with an error (`code` says which).
 * - `timeout`: no answer within `requestTimeoutMs` (it may have been
 *   accepted: send it again with the same `client_msg_id`).
 * - `offline`: not connected and the client is set not to wait.
 * - `closed`: the client was closed, or stopped reconnecting.
 * - `auth`: authentication failed (`code` from `B003`).
 * - `invalid`: refused before sending (too large, not serialisable).
 */
export type JimErrorKind = "rejected" | "timeout" | "offline" | "closed" | "auth" | "invalid";

/**
 * The error every request of the client rejects with.
 *
 * ```ts
 * try {
 *   await client.sendToGroup("team", text("hi"));
 * } catch (e) {
 *   if (e instanceof JimError && e.code === ErrorCode.Forbidden) showNotAMember();
 * }
 * ```
 */
export class JimError extends Error {
  override readonly name = "JimError";
  constructor(
    /** What kind of failure. */
    readonly kind: JimErrorKind,
    /** The protocol's reason, or this library's. */
    readonly reason: string,
    /** The protocol's code, for `rejected` and `auth`. */
    readonly code?: number,
  ) {
    super(code === undefined ? `${kind}: ${reason}` : `${kind} ${code}: ${reason}`);
  }

  /** Whether sending again later may succeed (unavailable, rate limited, timed out, offline). */
  get retryable(): boolean {
    switch (this.kind) {
      case "timeout":
      case "offline":
        return true;
      case "rejected":
        return this.code === ErrorCode.Internal || this.code === ErrorCode.RateLimited;
      default:
        return false;
    }
  }
}
