// The real gateway binary, started by the tests on ephemeral loopback ports.
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { within } from "../support.js";

export { within };

/** The repository's root (this file is clients/typescript/build/test/integration/gateway.js). */
export const REPO = resolve(fileURLToPath(import.meta.url), "../../../../../..");

/**
 * A binary of the workspace: `JIM_<NAME>_BIN`, else debug/ in cargo's target
 * directory (`CARGO_TARGET_DIR`, relative to the repository, or target/),
 * where `cargo test` built it.
 */
export function binary(name: string): string {
  const env = process.env[`JIM_${name.toUpperCase().replace(/-/g, "_")}_BIN`];
  const targetDir = resolve(REPO, process.env.CARGO_TARGET_DIR ?? "target");
  const path = env ?? join(targetDir, "debug", name);
  if (!existsSync(path)) {
    throw new Error(`${path} is missing: build it first (cargo build -p jim-gateway -p jim-examples), or set JIM_${name.toUpperCase().replace(/-/g, "_")}_BIN`);
  }
  return path;
}

export interface Gateway {
  wsUrl: string;
  adminUrl: string;
  /** The WebSocket listener's address, to start the next gateway on it. */
  wsAddress: string;
  /** Stops with SIGTERM and waits for the exit. */
  stop(): Promise<void>;
  /** Calls the admin API; returns the status and the JSON body (or text). */
  admin(method: string, path: string, body?: unknown): Promise<{ status: number; body: unknown }>;
}

export interface GatewayOptions {
  /** The WebSocket address (default 127.0.0.1:0). */
  ws?: string;
  /** More arguments. */
  args?: string[];
  /** Environment variables. */
  env?: Record<string, string>;
  /** Development mode (default true). */
  dev?: boolean;
}

const started = new Set<ChildProcess>();
process.on("exit", () => {
  for (const child of started) child.kill("SIGKILL");
});

/** Starts a gateway (local mode) and waits for its banner. */
export async function startGateway(options: GatewayOptions = {}): Promise<Gateway> {
  const args = [
    ...(options.dev === false ? [] : ["--dev"]),
    "--tcp",
    "off",
    "--ws",
    options.ws ?? "127.0.0.1:0",
    "--admin",
    "127.0.0.1:0",
    "--log",
    "warn",
    ...(options.args ?? []),
  ];
  const child = spawn(binary("jim-gateway"), args, {
    stdio: ["ignore", "pipe", "pipe"],
    // Only what the test sets: none of the caller's JIM_* settings.
    env: { ...Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith("JIM_"))), ...options.env },
  });
  started.add(child);
  let stderr = "";
  child.stderr!.on("data", (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4_000);
    if (process.env["JIM_TEST_LOGS"]) process.stderr.write(chunk);
  });
  const exited = new Promise<number | null>((done) => child.once("exit", (code) => done(code)));
  const rows = await new Promise<Map<string, string>>((resolveRows, reject) => {
    const rows = new Map<string, string>();
    const lines = createInterface({ input: child.stdout! });
    const timer = setTimeout(() => reject(new Error(`no banner within 15 s; stderr: ${stderr}`)), 15_000);
    void exited.then((code) => reject(new Error(`the gateway exited (${code}) before its banner: ${stderr}`)));
    lines.on("line", (line) => {
      const cells = line.split("|").map((cell) => cell.trim());
      if (cells.length >= 3 && cells[1]) rows.set(cells[1], cells[2] ?? "");
      if (rows.has("admin api") && rows.has("websocket")) {
        clearTimeout(timer);
        resolveRows(rows);
      }
    });
  });
  const wsUrl = rows.get("websocket")!;
  const adminUrl = rows.get("admin api")!;
  return {
    wsUrl,
    adminUrl,
    wsAddress: new URL(wsUrl).host,
    async stop() {
      if (child.exitCode === null) child.kill("SIGTERM");
      await exited;
      started.delete(child);
    },
    async admin(method, path, body) {
      const response = await fetch(adminUrl + path, {
        method,
        headers: body === undefined ? {} : { "content-type": "application/json" },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      const text = await response.text();
      let parsed: unknown = text;
      try {
        parsed = JSON.parse(text);
      } catch {
        // Plain text.
      }
      return { status: response.status, body: parsed };
    },
  };
}

/**
 * A gateway whose inbox is on disk (a temporary directory), and `again()`,
 * which starts the next one at the same address with the same inbox: a
 * restart as clients see it. `remove` deletes the directory.
 */
export async function startDurableGateway(): Promise<{
  gateway: Gateway;
  again: () => Promise<Gateway>;
  remove: () => void;
}> {
  const dir = tempDir("jim-inbox-");
  const args = ["--inbox", "disk", "--inbox-dir", dir.path];
  const gateway = await startGateway({ args });
  return {
    gateway,
    again: () => startGateway({ ws: gateway.wsAddress, args }),
    remove: dir.remove,
  };
}

/** A temporary directory removed by the returned function. */
export function tempDir(prefix: string): { path: string; remove: () => void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}
