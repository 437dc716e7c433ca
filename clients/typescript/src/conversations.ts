/**
 * Conversations (protocol v1.2): receipts, typing, history and the
 * conversation list, as {@link JimClient} exposes them.
 *
 * @module
 */

import type { ChatMessage } from "./messages.js";

/** A conversation, named from this user's side: one to one, or a group. */
export type Conversation = { user: string } | { group: string };

/** What a receipt says: read, or delivered, up to a message. */
export type MarkStatus = "read" | "delivered";

/** A receipt delivered to this session (another device of this user, or the other side's). */
export interface Receipt {
  /** The conversation, from this user's side. */
  conversation: Conversation;
  status: MarkStatus;
  /** Everything up to this message id (a decimal string). */
  messageId: string;
  /** Who read it: this user (from another device) or the other user. */
  readerId: string;
  /** Its offset in this user's inbox (0: not stored, the inbox is off). */
  offset: number;
}

/** Someone typing (or stopping) in a conversation with this user. */
export interface TypingEvent {
  /** From this user's side: the typist, or the group. */
  conversation: Conversation;
  senderId: string;
  on: boolean;
  /** When an `on` stops counting without another (Unix ms): 6 s after it arrived. */
  expiresAt: number;
}

/** One inbox entry of a history page. */
export interface HistoryEntry {
  offset: number;
  /** `B101`, `B102` or `B103`. */
  cmd: string;
  /** The message as delivered. */
  body: ChatMessage;
}

/** A page of a conversation, newest first. */
export interface HistoryPage {
  epoch: string;
  entries: HistoryEntry[];
  /** Whether older entries of the conversation are held: ask again with `before` = the last offset. */
  more: boolean;
}

/** One conversation of the list. */
export interface ConversationSummary {
  conversation: Conversation;
  last: HistoryEntry;
  /** Messages after this user's read mark that they did not send (from any device). */
  unread: number;
  /** This user's read mark, or null. */
  read: string | null;
}

/** This user's conversations, most recent first. */
export interface ConversationList {
  epoch: string;
  conversations: ConversationSummary[];
}

/** How long a typing `on` lasts without another (the protocol's 6 s). */
export const TYPING_EXPIRES_MS = 6_000;
/** The gateway relays one typing per conversation every 2 s: more are not sent. */
export const TYPING_EVERY_MS = 2_000;

/** `receiver_id` or `group_id`, as a body names a conversation. */
export function conversationFields(conversation: Conversation): { receiver_id: string } | { group_id: string } {
  return "group" in conversation ? { group_id: conversation.group } : { receiver_id: conversation.user };
}

/** A stable key of a conversation (for maps). */
export function conversationKey(conversation: Conversation): string {
  return "group" in conversation ? `g:${conversation.group}` : `u:${conversation.user}`;
}

/** Compares two message ids (decimal strings of any length), as numbers. */
export function compareIds(a: string, b: string): number {
  if (a.length !== b.length) return a.length - b.length;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Whether a value is a conversation object. */
export function isConversation(value: unknown): value is Conversation {
  if (typeof value !== "object" || value === null) return false;
  const keys = Object.keys(value);
  const v = value as Record<string, unknown>;
  return keys.length === 1 && (typeof v["user"] === "string" || typeof v["group"] === "string");
}

/**
 * Keeps each conversation's receipt marks moving forward only, and sends
 * delivered marks at most once per `delayMs` per conversation (only the
 * highest counts), read marks at once.
 */
export class MarkSender {
  private readonly sent = new Map<string, string>();
  private readonly waiting = new Map<string, { conversation: Conversation; messageId: string }>();
  private timer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly send: (conversation: Conversation, status: MarkStatus, messageId: string) => boolean,
    private readonly delayMs: number,
  ) {}

  /** A mark: sent (read) or queued (delivered) if it moves forward. */
  mark(conversation: Conversation, status: MarkStatus, messageId: string): void {
    const key = `${status} ${conversationKey(conversation)}`;
    const last = this.sent.get(key);
    if (last !== undefined && compareIds(messageId, last) <= 0) return;
    if (status === "read") {
      if (this.send(conversation, status, messageId)) this.sent.set(key, messageId);
      return;
    }
    const queued = this.waiting.get(key);
    if (!queued || compareIds(messageId, queued.messageId) > 0) this.waiting.set(key, { conversation, messageId });
    this.timer ??= setTimeout(() => this.flush(), this.delayMs);
  }

  /** Sends every queued mark now. */
  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    for (const [key, { conversation, messageId }] of this.waiting) {
      if (this.send(conversation, "delivered", messageId)) this.sent.set(key, messageId);
    }
    this.waiting.clear();
  }

  /** Drops what is queued (closing). */
  clear(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.waiting.clear();
  }
}
