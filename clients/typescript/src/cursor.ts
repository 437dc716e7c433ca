/**
 * A client's place in its user's inbox (`docs/protocol.md`, section 8):
 * the `since` to sign in with, which deliveries are new, and keeping the
 * position in its store.
 *
 * @module
 */

import type { Position, PositionStore } from "./position.js";

/** What `B002` says of the inbox. */
export interface InboxHead {
  epoch: string;
  /** The newest offset. */
  offset: number;
  recovered: boolean;
}

/**
 * The contract's position rule, the same as the gateway's and the Rust
 * client's (`jim_model::position`), checked against the same test vectors
 * (`crates/jim-model/tests/vectors/inbox-position.json`).
 *
 * What a client counts from after a `B002` whose inbox is `head`, having
 * asked with `asked`: without `asked` nothing is replayed (from the head
 * on); with `recovered`, what was asked; else the replay is everything the
 * inbox holds, whose offsets follow (nothing of this epoch is counted as
 * had: the application reloads its history).
 */
export function resumed(asked: Position | undefined, head: InboxHead): Position {
  if (!asked) return { epoch: head.epoch, offset: head.offset };
  return { epoch: head.epoch, offset: head.recovered ? asked.offset : 0 };
}

/** Whether the delivery at `offset` (0: not an inbox entry) is new at `position`. */
export function isNew(position: Position | undefined, offset: number): boolean {
  return offset === 0 || !position || offset > position.offset;
}

/**
 * A group message of the client's own session at `offset` (from its ack):
 * the session is not sent it, so the position moves past it if it is the
 * next one. Whether it moved.
 */
export function skipOwn(position: Position, offset: number): boolean {
  if (offset !== position.offset + 1) return false;
  position.offset = offset;
  return true;
}

/** Follows one user's inbox across connections (used by {@link JimClient}). */
export class InboxCursor {
  private position: Position | undefined;
  private asked: Position | undefined;
  private user: string | undefined;

  constructor(
    private readonly store: PositionStore | null,
    private readonly resumeFrom: "everything" | "now",
    private readonly storeFailed: (error: Error) => void,
  ) {}

  /** Where everything was handed over up to. */
  get current(): Position | undefined {
    return this.position && { ...this.position };
  }

  /**
   * The `since` to sign in with as `user` (as far as the client knows
   * before the server says), or `undefined` to ask for nothing.
   */
  since(user: string | undefined): Position | undefined {
    if (this.store === null) {
      this.asked = undefined;
    } else {
      const saved = user === undefined ? undefined : user === this.user && this.position ? this.position : this.store.load(user);
      this.asked = saved ?? (this.resumeFrom === "everything" ? { epoch: "", offset: 0 } : undefined);
    }
    return this.asked && { ...this.asked };
  }

  /** Signed in as `user`; `head` is the inbox's `B002` said (none: the server keeps no inbox). */
  signedIn(user: string, head: InboxHead | undefined): void {
    this.user = user;
    this.position = head && this.resumed(head);
    this.save();
  }

  private resumed(head: InboxHead): Position {
    return resumed(this.asked, head);
  }

  /** Whether the delivery at `offset` (0: not an inbox entry) was not handed over yet. */
  isNew(offset: number): boolean {
    return isNew(this.position, offset);
  }

  /** The delivery at `offset` was handed over. */
  handed(offset: number): void {
    if (offset === 0 || !this.position) return;
    this.position.offset = offset;
    this.save();
  }

  /**
   * A group message of this session's own, at `offset` (from its ack): the
   * session is not sent it, so the position moves past it, if it is next.
   */
  skipOwn(offset: number): void {
    if (this.position && skipOwn(this.position, offset)) this.save();
  }

  /** Forgets the position of the signed-in user, here and in the store (sign-out). */
  forget(): void {
    if (this.user !== undefined) this.store?.remove(this.user);
    this.position = undefined;
  }

  /**
   * A store that fails (a full localStorage) costs only the resume after a
   * page reload: reconnections use the position in memory.
   */
  private save(): void {
    if (!this.position || this.user === undefined) return;
    try {
      this.store?.save(this.user, this.position);
    } catch (error) {
      this.storeFailed(error instanceof Error ? error : new Error(String(error)));
    }
  }
}
