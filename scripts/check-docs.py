#!/usr/bin/env python3
"""Runs the shell commands of the given Markdown files, as written.

Every ```sh block must say, in an HTML comment on the lines just above it
(invisible on GitHub), how CI treats it:

  <!-- ci: run -->              run the block as one bash script (set -e,
                                from the repository's root); it must exit 0
  <!-- ci: serve "TEXT" -->     start the block in the background and wait
                                until its output shows TEXT; it keeps running
                                (for the blocks after it: one per terminal)
                                until the end of its section (the next "## "
                                or "### " heading), then gets SIGTERM. When its output
                                holds a gateway's start-up banner, a client
                                connects to the banner's TCP listener (with
                                TLS if it says so) and pings.
  <!-- ci: skip REASON -->      not run (say why: a real cluster, a browser)

A block without one is an error, so that a command added to the docs is
checked like code.

Each file is one story, read in order as one shell would: what a block
exports (a secret, a token) is still exported in the blocks after it, in
that file. Every file starts afresh, without the caller's JIM_* settings.
Usage:

  scripts/check-docs.py README.md docs/operations.md
"""

import os
import re
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ANNOTATION = re.compile(r'<!--\s*ci:\s*(run|serve|skip)\b(.*?)-->')
BANNER_TCP = re.compile(r'^\|\s*tcp\s*\|\s*(\S+:\d+)( \(TLS\))?\s*\|', re.M)
# Builds included: the first cargo command of a run may compile for minutes.
TIMEOUT = 1200


class Block:
    def __init__(self, path, line, kind, argument, text, section):
        self.path, self.line, self.kind = path, line, kind
        self.argument, self.text, self.section = argument.strip(), text, section

    def where(self):
        return f"{os.path.relpath(self.path, ROOT)}:{self.line}"


def blocks(path):
    """The sh blocks of a Markdown file, with their annotations."""
    lines = open(path, encoding="utf-8").read().split("\n")
    found, errors, section = [], [], ""
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("## ") or line.startswith("### "):
            section = line
        fence = re.match(r"^```(\S*)", line)
        if not fence:
            i += 1
            continue
        language, start = fence.group(1), i
        i += 1
        body = []
        while i < len(lines) and not lines[i].startswith("```"):
            body.append(lines[i])
            i += 1
        i += 1
        if language != "sh":
            continue
        annotation = None
        back = start - 1
        while back >= 0 and lines[back].strip() == "":
            back -= 1
        if back >= 0:
            annotation = ANNOTATION.search(lines[back])
        if not annotation:
            errors.append(f"{os.path.relpath(path, ROOT)}:{start + 1}: a ```sh block without a "
                          "<!-- ci: run|serve|skip --> annotation above it")
            continue
        found.append(Block(path, start + 1, annotation.group(1), annotation.group(2),
                           "\n".join(body), section))
    return found, errors


def environment():
    env = {k: v for k, v in os.environ.items() if not k.startswith("JIM_")}
    env["CARGO_TERM_COLOR"] = "never"
    return env


def ping(addr, tls=False):
    """A jim1 ping over TCP (over TLS, the certificate unchecked: the docs'
    own commands check it), answered by a pong with the same seq."""
    host, port = addr.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        conn = raw
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            conn = context.wrap_socket(raw)
        conn.sendall(b"jim1A001" + struct.pack(">II", 42, 2) + b"ci")
        reply = b""
        while len(reply) < 18:
            chunk = conn.recv(64)
            if not chunk:
                raise RuntimeError(f"{addr} closed the connection")
            reply += chunk
        if reply[:8] != b"jim1A002" or struct.unpack(">I", reply[8:12])[0] != 42:
            raise RuntimeError(f"{addr} answered {reply!r}")


class Story:
    """One file's shell environment, carried from block to block: each
    block starts with what the blocks before it exported and leaves what it
    exports for the blocks after it."""

    def __init__(self):
        self.state = tempfile.NamedTemporaryFile(mode="w", prefix="check-docs-", suffix=".env")

    def script(self, text, serving):
        state = self.state.name
        # A served block ends only when stopped: its exports are saved
        # before each command it runs (the last one being the server).
        save = "DEBUG" if serving else "EXIT"
        # Not where the shell stands: each block starts at the repository's root.
        keep = f'export -p | grep -vE "^declare -x (PWD|OLDPWD|SHLVL|_)=" > {state}'
        return f"[ -s {state} ] && . {state}\ntrap '{keep}' {save}\n{text}"


class Server:
    def __init__(self, block, story):
        self.block = block
        self.log = tempfile.NamedTemporaryFile(mode="w+b", prefix="check-docs-", suffix=".log")
        self.process = subprocess.Popen(
            ["bash", "-e", "-c", story.script(block.text, serving=True)], cwd=ROOT, env=environment(),
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)

    def output(self):
        self.log.seek(0)
        return self.log.read().decode("utf-8", "replace")

    def wait_ready(self, ready):
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            text = self.output()
            if ready in text:
                banner = BANNER_TCP.search(text)
                if banner:
                    ping(banner.group(1), tls=bool(banner.group(2)))
                return
            if self.process.poll() is not None:
                raise RuntimeError(f"exited ({self.process.returncode}) before showing {ready!r}")
            time.sleep(0.2)
        raise RuntimeError(f"did not show {ready!r} within {TIMEOUT} s")

    def stop(self):
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
                raise RuntimeError("did not stop within 30 s of SIGTERM")
        # bash reports a child ended by the TERM it forwarded as 143.
        if self.process.returncode not in (0, 143, -signal.SIGTERM):
            raise RuntimeError(f"stopped with status {self.process.returncode}")


def tail(text, lines=30):
    return "\n".join("    " + l for l in text.rstrip().split("\n")[-lines:])


def main(paths):
    all_blocks, errors = [], []
    for path in paths:
        found, bad = blocks(os.path.join(ROOT, path) if not os.path.isabs(path) else path)
        all_blocks += found
        errors += bad
    for error in errors:
        print(f"FAIL {error}")
    failures = len(errors)
    servers = []

    def stop_servers():
        nonlocal failures
        while servers:
            server = servers.pop()
            try:
                server.stop()
            except RuntimeError as e:
                failures += 1
                print(f"FAIL {server.block.where()} serve: {e}\n{tail(server.output())}")

    current, stories = None, {}
    for block in all_blocks:
        if (block.path, block.section) != current:
            stop_servers()
            current = (block.path, block.section)
        story = stories.setdefault(block.path, Story())
        started = time.monotonic()
        if block.kind == "skip":
            print(f"skip {block.where()}: {block.argument}")
            continue
        if block.kind == "serve":
            ready = re.match(r'"([^"]*)"', block.argument)
            if not ready:
                failures += 1
                print(f"FAIL {block.where()}: serve needs the text that says it is ready, in quotes")
                continue
            server = Server(block, story)
            try:
                server.wait_ready(ready.group(1))
                servers.append(server)
                print(f"ok   {block.where()} serve ({time.monotonic() - started:.1f} s to {ready.group(1)!r})")
            except (RuntimeError, OSError) as e:
                failures += 1
                print(f"FAIL {block.where()} serve: {e}\n{tail(server.output())}")
                try:
                    server.stop()
                except RuntimeError:
                    pass
            continue
        try:
            run = subprocess.run(["bash", "-e", "-c", story.script(block.text, serving=False)],
                                 cwd=ROOT, env=environment(),
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, timeout=TIMEOUT)
            output, status = run.stdout.decode("utf-8", "replace"), run.returncode
        except subprocess.TimeoutExpired as e:
            output, status = (e.stdout or b"").decode("utf-8", "replace"), "timeout"
        if status == 0:
            print(f"ok   {block.where()} run ({time.monotonic() - started:.1f} s)")
        else:
            failures += 1
            print(f"FAIL {block.where()} run: exit {status}\n{tail(output)}")
    stop_servers()
    checked = sum(1 for b in all_blocks if b.kind != "skip")
    print(f"==> docs: {checked} blocks run, {len(all_blocks) - checked} skipped, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["README.md", "docs/operations.md"]))
