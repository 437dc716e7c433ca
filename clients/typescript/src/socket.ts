/**
 * The WebSocket the client needs: the browser's, Node 22's global one, or
 * the `ws` package's on Node 20, all of which have this shape.
 *
 * @module
 */

/* eslint-disable @typescript-eslint/no-explicit-any -- each implementation types its events its own way */

/** The part of the WebSocket API the client uses. */
export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  onopen: ((event: any) => void) | null;
  onmessage: ((event: any) => void) | null;
  onclose: ((event: any) => void) | null;
  onerror: ((event: any) => void) | null;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
}

/** A WebSocket class: `WebSocket` in browsers, `(await import("ws")).default` on Node 20. */
export type WebSocketConstructor = new (url: string) => WebSocketLike;

/** `readyState` of an open socket. */
export const OPEN = 1;
/** `readyState` of a socket closing or closed from here on. */
export const CLOSING = 2;

/** The global WebSocket class, if this runtime has one. */
export function globalWebSocket(): WebSocketConstructor | undefined {
  return (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
}

/** The bytes of a WebSocket message, or `undefined` for a text message (a protocol error here). */
export function messageBytes(data: unknown): Uint8Array | undefined {
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  // `ws` hands a list of chunks to "fragments" binaryType only; never set here.
  return undefined;
}
