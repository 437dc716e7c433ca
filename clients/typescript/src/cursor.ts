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

  /** Where to count from, given what was asked and what the server holds. */
  private resumed({ epoch, offset: head, recovered }: InboxHead): Position {
    const asked = this.asked;
    if (!asked) return { epoch, offset: head }; // nothing replayed: live from head + 1
    if (asked.epoch === epoch && (recovered || asked.offset <= head)) return { epoch, offset: asked.offset };
    // Another epoch, or a position this inbox never had: the replay starts at its oldest.
    return { epoch, offset: 0 };
  }

  /** Whether the delivery at `offset` (0: not an inbox entry) was not handed over yet. */
  isNew(offset: number): boolean {
    return offset === 0 || !this.position || offset > this.position.offset;
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
    if (!this.position || offset !== this.position.offset + 1) return;
    this.position.offset = offset;
    this.save();
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
