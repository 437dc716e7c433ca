/**
 * The `jim1` client for browsers and Node 20+: connect to a Jim gateway over
 * WebSocket, sign in, send with acks, receive, reconnect, and resume the
 * inbox where it left off. No runtime dependency.
 *
 * ```ts
 * import { JimClient, text } from "jim-client";
 *
 * const client = new JimClient({ url: "ws://127.0.0.1:9000/ws", token: "alice" });
 * client.on("message", ({ senderId, message }) => console.log(senderId, message.data));
 * await client.connect();
 * const { messageId } = await client.send("bob", text("hello"));
 * ```
 *
 * @packageDocumentation
 */

export { backoffDelay, reconnects, type BackoffOptions } from "./reconnect.js";
export {
  JimClient,
  type Ack,
  type ClientEvents,
  type ClientOptions,
  type CloseInfo,
  type ConnectionState,
  type FrameEvent,
  type IncomingMessage,
  type MessageKind,
  type SessionInfo,
  type TokenReason,
  type TokenSource,
} from "./client.js";
export {
  compareIds,
  type Conversation,
  type ConversationList,
  type ConversationSummary,
  type HistoryEntry,
  type HistoryPage,
  type MarkStatus,
  type Receipt,
  TYPING_EXPIRES_MS,
  type TypingEvent,
} from "./conversations.js";
export { Emitter, type Unsubscribe } from "./emitter.js";
export { CloseCode, ErrorCode, JimError, type JimErrorKind } from "./errors.js";
export {
  bodyText,
  Command,
  type CommandCode,
  DEFAULT_MAX_BODY,
  decodeFrame,
  encodeFrame,
  type Frame,
  FrameDecoder,
  FrameError,
  HEADER_LENGTH,
  MAGIC,
} from "./frame.js";
export {
  type ChatMessage,
  type CommonFields,
  face,
  type FaceData,
  type Fields,
  file,
  type FileData,
  FileFormat,
  type FileFormatCode,
  image,
  type ImageData,
  ImageFormat,
  type ImageFormatCode,
  isFace,
  isFile,
  isImage,
  isLocation,
  isMessage,
  isSound,
  isText,
  isVideo,
  location,
  type LocationData,
  MESSAGE_TYPES,
  type MessageKinds,
  type MessageType,
  sound,
  type SoundData,
  summary,
  text,
  type TextData,
  video,
  type VideoData,
  VideoFormat,
  type VideoFormatCode,
} from "./messages.js";
export {
  isPosition,
  MemoryPositionStore,
  type Position,
  type PositionStore,
  type StorageLike,
  WebStoragePositionStore,
} from "./position.js";
export { type WebSocketConstructor, type WebSocketLike } from "./socket.js";
