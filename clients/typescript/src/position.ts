/**
 * Where a client is in its user's inbox (`docs/protocol.md`, section 8),
 * and where that position is kept between connections and page loads.
 *
 * @module
 */

/** A position in an inbox: everything up to `offset` of `epoch` is processed. */
export interface Position {
  /** The inbox's epoch: changes when the server's store lost the inbox. */
  epoch: string;
  /** The last offset processed. */
  offset: number;
}

/**
 * Keeps positions by key (one per user and gateway URL). `load` and
 * `save` are synchronous so a position is saved before the next message is
 * handed over.
 */
export interface PositionStore {
  /** The position saved under `key`, if any. */
  load(key: string): Position | undefined;
  /** Saves `position` under `key`. */
  save(key: string, position: Position): void;
  /** Forgets `key` (sign-out). */
  remove(key: string): void;
}

/** Positions in memory: kept across reconnections, lost with the page or process. */
export class MemoryPositionStore implements PositionStore {
  private readonly positions = new Map<string, Position>();
  load(key: string): Position | undefined {
    const position = this.positions.get(key);
    return position && { ...position };
  }
  save(key: string, position: Position): void {
    this.positions.set(key, { ...position });
  }
  remove(key: string): void {
    this.positions.delete(key);
  }
}

/** The part of the Web Storage API that {@link WebStoragePositionStore} uses. */
export interface StorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

/**
 * Positions in Web Storage (`localStorage` by default): kept across page
 * loads, so a reopened tab resumes where it was.
 *
 * ```ts
 * const client = new JimClient({ url, token, positions: new WebStoragePositionStore() });
 * ```
 */
export class WebStoragePositionStore implements PositionStore {
  private readonly storage: StorageLike;
  constructor(
    storage?: StorageLike,
    /** Prefix of the storage keys. */
    private readonly prefix = "jim.position.",
  ) {
    const fallback = (globalThis as { localStorage?: StorageLike }).localStorage;
    if (!storage && !fallback) throw new TypeError("no localStorage here: pass a storage");
    this.storage = storage ?? (fallback as StorageLike);
  }
  load(key: string): Position | undefined {
    const text = this.storage.getItem(this.prefix + key);
    if (text === null) return undefined;
    try {
      const value: unknown = JSON.parse(text);
      if (isPosition(value)) return value;
    } catch {
      // Not ours or damaged: start over (the server says recovered: false).
    }
    return undefined;
  }
  save(key: string, position: Position): void {
    this.storage.setItem(this.prefix + key, JSON.stringify({ epoch: position.epoch, offset: position.offset }));
  }
  remove(key: string): void {
    this.storage.removeItem(this.prefix + key);
  }
}

/** Whether `value` is a position as the protocol writes it. */
export function isPosition(value: unknown): value is Position {
  if (typeof value !== "object" || value === null) return false;
  const { epoch, offset } = value as Record<string, unknown>;
  return typeof epoch === "string" && typeof offset === "number" && Number.isInteger(offset) && offset >= 0;
}
