/**
 * The business messages of `jim1` (`docs/protocol.md`, section 4): a
 * `{"type","data"}` envelope of one of seven kinds. Builders make the
 * outgoing ones, guards narrow the incoming ones; fields this library does
 * not know are kept both ways, so applications can extend messages.
 *
 * @module
 */

/** Fields every chat message may carry. The server sets the sender's and its stamps. */
export interface CommonFields {
  /** The sender's user id, set by the server from the sender's token. */
  sender_id?: string;
  /** The sender's display name, from the token's `name` claim. */
  sender_name?: string;
  /** The sender's avatar URL, from the token's `avatar` claim. */
  sender_avatar?: string;
  /** A user id (one-to-one, push) or a group id (group message). */
  receiver_id?: string;
  /** The server's id of the message: a decimal string (beyond 2^53: never a Number). */
  message_id?: string;
  /** When the server accepted it, in Unix milliseconds. */
  timestamp?: number;
  /** The sender's own id of the message, which makes a retry safe (1 to 64 bytes). */
  client_msg_id?: string;
  /** Fields of the application's own, delivered as sent. */
  [extra: string]: unknown;
}

/** `text`: `content`. */
export interface TextData extends CommonFields {
  content: string;
}
/** `location`: `lat`, `lng`, and a description. */
export interface LocationData extends CommonFields {
  lat: number;
  lng: number;
  cover_image?: string;
  map_link?: string;
  desc?: string;
}
/** `face`: an emoticon's symbol, e.g. `[:smile]`. */
export interface FaceData extends CommonFields {
  symbol: string;
}
/** `sound`: a recording's URL, size in bytes and length in seconds. */
export interface SoundData extends CommonFields {
  url: string;
  size?: number;
  seconds?: number;
}
/** `image`: the full image's URL, its thumbnail and dimensions. */
export interface ImageData extends CommonFields {
  big_url: string;
  icon_url?: string;
  format?: ImageFormatCode;
  size?: number;
  width?: number;
  height?: number;
}
/** `file`: a document's URL and name. */
export interface FileData extends CommonFields {
  url: string;
  name: string;
  size?: number;
  format?: FileFormatCode;
  thumb_url?: string;
}
/** `video`: a video's URL and its thumbnail. */
export interface VideoData extends CommonFields {
  url: string;
  size?: number;
  seconds?: number;
  format?: VideoFormatCode;
  thumb_url?: string;
  thumb_size?: number;
  thumb_width?: number;
  thumb_height?: number;
  thumb_format?: ImageFormatCode;
}

/** Image formats (image `format`, video `thumb_format`). */
export const ImageFormat = { jpg: 0, gif: 1, png: 2, bmp: 3 } as const;
/** One of {@link ImageFormat}'s numbers. */
export type ImageFormatCode = (typeof ImageFormat)[keyof typeof ImageFormat];
/** File formats (file `format`). */
export const FileFormat = { doc: 0, docx: 1, ppt: 2, xls: 3 } as const;
/** One of {@link FileFormat}'s numbers. */
export type FileFormatCode = (typeof FileFormat)[keyof typeof FileFormat];
/** Video containers (video `format`). */
export const VideoFormat = { mp4: 0, mov: 1, wmv: 2, flv: 3, avi: 4, mkv: 5 } as const;
/** One of {@link VideoFormat}'s numbers. */
export type VideoFormatCode = (typeof VideoFormat)[keyof typeof VideoFormat];

/** The data of each kind of chat message. */
export interface MessageKinds {
  text: TextData;
  location: LocationData;
  face: FaceData;
  sound: SoundData;
  image: ImageData;
  file: FileData;
  video: VideoData;
}

/** A kind of chat message. */
export type MessageType = keyof MessageKinds;

/** The kinds, in the contract's order. */
export const MESSAGE_TYPES: readonly MessageType[] = ["text", "location", "face", "sound", "image", "file", "video"];

/** A chat message of kind `T` (any kind when not narrowed). Unknown fields beside `type` and `data` are kept. */
export type ChatMessage<T extends MessageType = MessageType> = {
  [K in T]: { type: K; data: MessageKinds[K]; [extra: string]: unknown };
}[T];

/** What the builders take: a kind's fields, without the ones the server or `send` sets. */
export type Fields<T extends MessageType> = Omit<
  MessageKinds[T],
  "sender_id" | "sender_name" | "sender_avatar" | "receiver_id" | "message_id" | "timestamp"
>;

function build<T extends MessageType>(type: T, data: Fields<T>): ChatMessage<T> {
  return { type, data: { ...data } } as unknown as ChatMessage<T>;
}

/**
 * A text message.
 *
 * ```ts
 * await client.send("bob", text("hello"));
 * await client.send("bob", text("hi", { client_msg_id: crypto.randomUUID(), reply_to: "7302" }));
 * ```
 */
export function text(content: string, extra: Partial<Fields<"text">> = {}): ChatMessage<"text"> {
  return build("text", { ...extra, content });
}
/** A location. */
export function location(fields: Fields<"location">): ChatMessage<"location"> {
  return build("location", fields);
}
/** An emoticon: `face("[:smile]")`. */
export function face(symbol: string, extra: Partial<Fields<"face">> = {}): ChatMessage<"face"> {
  return build("face", { ...extra, symbol });
}
/** A sound recording. */
export function sound(fields: Fields<"sound">): ChatMessage<"sound"> {
  return build("sound", fields);
}
/** An image: `image({ big_url, icon_url, format: ImageFormat.png })`. */
export function image(fields: Fields<"image">): ChatMessage<"image"> {
  return build("image", fields);
}
/** A file. */
export function file(fields: Fields<"file">): ChatMessage<"file"> {
  return build("file", fields);
}
/** A video. */
export function video(fields: Fields<"video">): ChatMessage<"video"> {
  return build("video", fields);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

const isString = (v: unknown): v is string => typeof v === "string";
const isNumber = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);

/** What each kind requires (the contract's "required in data"). */
const REQUIRED: { [K in MessageType]: (data: Record<string, unknown>) => boolean } = {
  text: (d) => isString(d["content"]),
  location: (d) => isNumber(d["lat"]) && isNumber(d["lng"]),
  face: (d) => isString(d["symbol"]),
  sound: (d) => isString(d["url"]),
  image: (d) => isString(d["big_url"]),
  file: (d) => isString(d["url"]) && isString(d["name"]),
  video: (d) => isString(d["url"]),
};

/**
 * Whether `value` is a chat message of kind `type` (or of any kind), with
 * that kind's required fields.
 *
 * ```ts
 * client.on("message", (m) => {
 *   if (isMessage(m.message, "text")) console.log(m.message.data.content);
 * });
 * ```
 */
export function isMessage<T extends MessageType>(value: unknown, type?: T): value is ChatMessage<T> {
  if (!isObject(value) || !isObject(value["data"]) || !isString(value["type"])) return false;
  const kind = value["type"] as MessageType;
  if (type !== undefined && kind !== type) return false;
  const required = REQUIRED[kind];
  return required !== undefined && required(value["data"]);
}

/** Whether `value` is a text message. */
export const isText = (value: unknown): value is ChatMessage<"text"> => isMessage(value, "text");
/** Whether `value` is a location. */
export const isLocation = (value: unknown): value is ChatMessage<"location"> => isMessage(value, "location");
/** Whether `value` is an emoticon. */
export const isFace = (value: unknown): value is ChatMessage<"face"> => isMessage(value, "face");
/** Whether `value` is a sound recording. */
export const isSound = (value: unknown): value is ChatMessage<"sound"> => isMessage(value, "sound");
/** Whether `value` is an image. */
export const isImage = (value: unknown): value is ChatMessage<"image"> => isMessage(value, "image");
/** Whether `value` is a file. */
export const isFile = (value: unknown): value is ChatMessage<"file"> => isMessage(value, "file");
/** Whether `value` is a video. */
export const isVideo = (value: unknown): value is ChatMessage<"video"> => isMessage(value, "video");

/** A short human summary of a message, for notifications and conversation lists. */
export function summary(message: ChatMessage): string {
  switch (message.type) {
    case "text":
      return message.data.content;
    case "face":
      return message.data.symbol;
    case "location":
      return message.data.desc ? `📍 ${message.data.desc}` : "📍 location";
    case "sound":
      return message.data.seconds !== undefined ? `🔊 ${message.data.seconds} s` : "🔊 sound";
    case "image":
      return "🖼 image";
    case "file":
      return `📄 ${message.data.name}`;
    case "video":
      return "🎬 video";
  }
}
