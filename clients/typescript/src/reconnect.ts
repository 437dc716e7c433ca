/**
 * When to reconnect (the close codes' rules) and how soon (exponential
 * backoff with jitter).
 *
 * @module
 */

import { CloseCode, ErrorCode, type JimError } from "./errors.js";

/** How the client waits between reconnection attempts. */
export interface BackoffOptions {
  /** The first delay's ceiling, in ms (default 250). */
  initialDelayMs?: number;
  /** No delay is longer than this, in ms (default 15,000). */
  maxDelayMs?: number;
  /** Each attempt multiplies the ceiling by this (default 2). */
  factor?: number;
  /**
   * The share of each delay drawn at random (default 0.5): a delay is
   * between `(1 - jitter) * ceiling` and `ceiling`, so clients dropped
   * together do not come back together.
   */
  jitter?: number;
}

/**
 * The delay before reconnection attempt `attempt` (0 for the first), in ms.
 *
 * ```ts
 * backoffDelay(0, {}, () => 1); // 250
 * backoffDelay(10, {}, () => 1); // 15000
 * ```
 *
 * @param random - a source of numbers in [0, 1) (default `Math.random`).
 */
export function backoffDelay(attempt: number, options: BackoffOptions = {}, random: () => number = Math.random): number {
  const initial = options.initialDelayMs ?? 250;
  const max = options.maxDelayMs ?? 15_000;
  const factor = options.factor ?? 2;
  const jitter = Math.min(Math.max(options.jitter ?? 0.5, 0), 1);
  const ceiling = Math.min(max, initial * Math.pow(factor, Math.max(0, attempt)));
  return Math.round(ceiling * (1 - jitter * random()));
}

/**
 * Whether a close is worth reconnecting after (`docs/protocol.md`, section 5):
 * not after a refused sign-in (unless the server was in trouble, 5000), not
 * when kicked, not for an expired token that cannot be renewed; after
 * anything else (shutdown, network, idle, slow consumer, too many
 * connections, internal error, a reset inbox) yes.
 *
 * ```ts
 * reconnects({ code: 1001, reason: "server shutting down" }, undefined, { enabled: true, canRenewToken: false }); // true
 * reconnects({ code: 1008, reason: "kicked" }, undefined, { enabled: true, canRenewToken: true }); // false
 * ```
 */
export function reconnects(
  close: { code: number; reason: string },
  authError: JimError | undefined,
  options: { enabled: boolean; canRenewToken: boolean },
): boolean {
  if (!options.enabled) return false;
  if (authError) return authError.code === ErrorCode.Internal;
  if (close.code === CloseCode.Policy) {
    if (close.reason.startsWith("kicked")) return false;
    if (close.reason.startsWith("authentication failed")) return false;
    if (close.reason.startsWith("token expired")) return options.canRenewToken;
  }
  return true;
}
