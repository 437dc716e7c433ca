// The web chat (examples/web, on this SDK) in Debian's Chromium, headless:
// two people chat through the real gateway, a group, a failed send, the
// gateway restarting under them, and messages that arrive while one is away.
// Screenshots go to test-artifacts/ (JIM_ARTIFACTS to put them elsewhere).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { createInterface } from "node:readline";
import { join, resolve } from "node:path";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";
import { binary, REPO, startDurableGateway, startGateway, within, type Gateway } from "../integration/gateway.js";

const CHROMIUM = process.env["CHROMIUM"] ?? "/usr/bin/chromium";
const ARTIFACTS = resolve(process.env["JIM_ARTIFACTS"] ?? join(REPO, "clients", "typescript", "test-artifacts"));
const UI_WAIT_MS = 15_000;

let browser: Browser;
let web: { url: string; child: ChildProcess };

/** The page server (examples/src/bin/web.rs) with this package's dist/. */
async function startWeb(): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(
    binary("web"),
    ["--listen", "127.0.0.1:0", "--sdk", join(REPO, "clients", "typescript", "dist")],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  const lines = createInterface({ input: child.stdout! });
  const url = await within(
    new Promise<string>((found) =>
      lines.on("line", (line) => {
        const match = /open (http:\/\/\S+)/.exec(line);
        if (match) found(match[1]!);
      }),
    ),
    "the web server's address",
  );
  return { url, child };
}

before(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: install Debian's chromium (apt-get install chromium), or set CHROMIUM`);
  }
  mkdirSync(ARTIFACTS, { recursive: true });
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox"] });
  web = await startWeb();
});

after(async () => {
  await browser?.close();
  web?.child.kill("SIGTERM");
});

const PHONE = { width: 390, height: 780 };
const LAPTOP = { width: 1100, height: 700 };

async function signIn(context: BrowserContext, gateway: Gateway, user: string): Promise<Page> {
  const page = await context.newPage();
  page.on("pageerror", (error) => console.error(`[${user}'s page]`, error));
  await page.goto(`${web.url}/?gateway=${encodeURIComponent(gateway.wsUrl)}`);
  if (user === "bob") await screenshot(page, "0-phone-sign-in");
  await page.fill("#user", user);
  await page.click("#signin-form button[type=submit]");
  await connected(page);
  return page;
}

const connected = (page: Page) => page.waitForSelector('#state[data-state="connected"]', { timeout: UI_WAIT_MS });

async function open(page: Page, kind: "user" | "group", id: string): Promise<void> {
  const listed = page.locator(`[data-conversation="${kind}:${id}"]`);
  if ((await listed.count()) > 0) {
    await listed.click();
  } else {
    await page.selectOption("#new-kind", kind);
    await page.fill("#new-id", id);
    await page.click("#new-chat button");
  }
  await page.waitForSelector("#text:not([disabled])", { timeout: UI_WAIT_MS });
}

async function say(page: Page, content: string): Promise<void> {
  await page.fill("#text", content);
  await page.press("#text", "Enter");
}

/** Waits for a bubble with this text (and state), returns how many bubbles have it. */
async function bubble(page: Page, content: string, state?: string): Promise<number> {
  const selector = `.bubble${state ? `[data-state="${state}"]` : ""}`;
  await page.locator(selector, { hasText: content }).first().waitFor({ timeout: UI_WAIT_MS });
  return page.locator(".bubble", { hasText: content }).count();
}

async function screenshot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
}

test("a gateway that cannot be reached is said so on the sign-in page, which keeps trying", async () => {
  const context = await browser.newContext({ viewport: PHONE });
  const page = await context.newPage();
  // A loopback port where nothing listens.
  const probe = await startGateway();
  const closed = probe.wsUrl;
  await probe.stop();
  await page.goto(`${web.url}/?gateway=${encodeURIComponent(closed)}`);
  await page.fill("#user", "carol");
  await page.click("#signin-form button[type=submit]");
  const error = page.locator("#signin-error", { hasText: `Cannot reach ${closed}: no connection` });
  await error.waitFor({ timeout: UI_WAIT_MS });
  // Said once, with the address it tried.
  assert.match(await error.innerText(), /^Cannot reach ws:\/\/127\.0\.0\.1:\d+\/ws: no connection \(refused, unreachable, or not a WebSocket server\)\. Trying again…$/);
  assert.equal(await page.getAttribute("#state", "data-state"), "reconnecting");
  await context.close();
});

test("two people chat in Chromium, through a gateway restart and while one is away", async (t) => {
  const durable = await startDurableGateway();
  t.after(durable.remove);
  let gateway = durable.gateway;
  t.after(() => gateway.stop());
  assert.equal((await gateway.admin("POST", "/v1/groups/team/members", { users: ["alice", "bob"] })).status, 200);

  const aliceContext = await browser.newContext({ viewport: LAPTOP });
  const bobContext = await browser.newContext({ viewport: PHONE, isMobile: true, hasTouch: true });
  const alice = await signIn(aliceContext, gateway, "alice");
  const bob = await signIn(bobContext, gateway, "bob");

  // One to one, both ways.
  await open(alice, "user", "bob");
  await say(alice, "Hi Bob! Lunch at noon?");
  assert.equal(await bubble(alice, "Lunch at noon?", "acked"), 1);
  await bob.locator('[data-conversation="user:alice"] .unread').waitFor({ timeout: UI_WAIT_MS });
  await screenshot(bob, "1-phone-conversation-list-with-unread");
  await open(bob, "user", "alice");
  assert.equal(await bubble(bob, "Lunch at noon?"), 1);
  await say(bob, "Sure, see you there");
  assert.equal(await bubble(alice, "see you there"), 1);

  // A group, and a send the gateway refuses (the group does not exist yet):
  // failed, with Retry; once the group is made, Retry delivers it. Alice's
  // other device (a phone) gets her group message, and never counts it
  // unread: it is her own.
  const alicePhoneContext = await browser.newContext({ viewport: PHONE, isMobile: true, hasTouch: true });
  const alicePhone = await signIn(alicePhoneContext, gateway, "alice");
  await open(alice, "group", "team");
  await say(alice, "Team: the demo is at 3");
  await bubble(alice, "the demo is at 3", "acked");
  const mine = alicePhone.locator('[data-conversation="group:team"]');
  await mine.waitFor({ timeout: UI_WAIT_MS });
  assert.match((await mine.textContent()) ?? "", /the demo is at 3/);
  assert.equal(await mine.locator(".unread").count(), 0, "one's own message is never unread");
  await alicePhoneContext.close();
  await open(alice, "group", "newgroup");
  await say(alice, "is anyone here?");
  await bubble(alice, "is anyone here?", "failed");
  assert.match((await alice.locator('.bubble[data-state="failed"] .meta').textContent()) ?? "", /failed: .*newgroup.*Retry/);
  await screenshot(alice, "2-laptop-failed-send-with-retry");
  assert.equal((await gateway.admin("POST", "/v1/groups/newgroup/members", { users: ["alice"] })).status, 200);
  await alice.click('.bubble[data-state="failed"] .retry');
  assert.equal(await bubble(alice, "is anyone here?", "acked"), 1, "the same bubble, now sent");
  await bob.click("#back");
  await open(bob, "group", "team");
  assert.equal(await bubble(bob, "the demo is at 3"), 1);
  await screenshot(bob, "3-phone-group-chat");

  // The gateway restarts: both pages say so, come back by themselves, and a
  // message typed meanwhile waits, then goes.
  await gateway.stop();
  await alice.waitForSelector('#state[data-state="reconnecting"]', { timeout: UI_WAIT_MS });
  await bob.waitForSelector('#state[data-state="reconnecting"]', { timeout: UI_WAIT_MS });
  await open(alice, "user", "bob");
  await say(alice, "typed while the server was down");
  await bubble(alice, "typed while the server was down", "sending");
  await screenshot(alice, "4-laptop-reconnecting-message-sending");
  gateway = await durable.again();
  await connected(alice);
  await connected(bob);
  await bubble(alice, "typed while the server was down", "acked");
  await bob.click("#back");
  await open(bob, "user", "alice");
  assert.equal(await bubble(bob, "typed while the server was down"), 1);

  // Bob closes the page; Alice writes; Bob opens the page again (same
  // browser storage): he gets what he missed, once, and nothing twice.
  await bob.close();
  await say(alice, "you missed this one");
  await bubble(alice, "you missed this one", "acked");
  const bobAgain = await bobContext.newPage();
  await bobAgain.goto(`${web.url}/?gateway=${encodeURIComponent(gateway.wsUrl)}`);
  assert.equal(await bobAgain.inputValue("#user"), "bob", "the page remembers who signed in");
  await bobAgain.click("#signin-form button[type=submit]");
  await connected(bobAgain);
  await open(bobAgain, "user", "alice");
  assert.equal(await bubble(bobAgain, "you missed this one"), 1);
  for (const earlier of ["Lunch at noon?", "see you there", "typed while the server was down"]) {
    assert.equal(await bobAgain.locator(".bubble", { hasText: earlier }).count(), 1, `${earlier}: once`);
  }
  assert.equal(await bobAgain.locator("#recovery").isHidden(), true, "nothing was missing");
  await bobAgain.click("#debug summary");
  await bobAgain.locator("#frames li", { hasText: "B002" }).first().waitFor({ timeout: UI_WAIT_MS });
  await screenshot(bobAgain, "5-phone-back-with-missed-message-and-debug-panel");
  await screenshot(alice, "6-laptop-conversation");
  await aliceContext.close();
  await bobContext.close();
});

test("two devices of one user and one of another stay in step: copies, receipts, typing, history, unread", async (t) => {
  const gateway = await startGateway();
  t.after(() => gateway.stop());
  const laptopContext = await browser.newContext({ viewport: LAPTOP });
  const phoneContext = await browser.newContext({ viewport: PHONE, isMobile: true, hasTouch: true });
  const bobContext = await browser.newContext({ viewport: PHONE, isMobile: true, hasTouch: true });
  t.after(() => Promise.all([laptopContext.close(), phoneContext.close(), bobContext.close()]).then(() => undefined));
  const laptop = await signIn(laptopContext, gateway, "alice");
  const phone = await signIn(phoneContext, gateway, "alice");
  const bob = await signIn(bobContext, gateway, "bob");

  // Sent from the laptop: ✓ sent, then ✓✓ delivered once bob's page has it
  // (his client says so by itself), and it appears on the phone as alice's own.
  await open(laptop, "user", "bob");
  await say(laptop, "sent from the laptop");
  await laptop.locator('.bubble.mine[data-receipt="delivered"]', { hasText: "sent from the laptop" }).waitFor({ timeout: UI_WAIT_MS });
  assert.match((await laptop.locator(".bubble.mine .meta").last().textContent()) ?? "", /✓✓ delivered/);
  const onPhone = phone.locator('[data-conversation="user:bob"]');
  await onPhone.waitFor({ timeout: UI_WAIT_MS });
  assert.match((await onPhone.textContent()) ?? "", /You: sent from the laptop/);
  assert.equal(await onPhone.locator(".unread").count(), 0, "one's own message is never unread");

  // Bob opens it: read, on the laptop.
  await open(bob, "user", "alice");
  await bubble(bob, "sent from the laptop");
  await laptop.locator('.bubble.mine[data-receipt="read"]', { hasText: "sent from the laptop" }).waitFor({ timeout: UI_WAIT_MS });
  assert.match((await laptop.locator(".bubble.mine .meta").last().textContent()) ?? "", /✓✓ read/);

  // Bob types: "bob is typing…" on the laptop, in the open conversation.
  await bob.fill("#text", "a reply is com");
  await laptop.locator("#typing", { hasText: "bob is typing…" }).waitFor({ timeout: UI_WAIT_MS });
  await screenshot(laptop, "7-laptop-read-receipt-and-typing");
  await bob.press("#text", "Enter");
  await bubble(laptop, "a reply is com");

  // The phone (its list showing) counts bob's reply unread; the laptop has
  // it open and reads it, which clears the phone's badge too.
  const badge = phone.locator('[data-conversation="user:bob"] .unread');
  await phone.locator('[data-conversation="user:bob"]', { hasText: "a reply is com" }).waitFor({ timeout: UI_WAIT_MS });
  await badge.waitFor({ state: "detached", timeout: UI_WAIT_MS });
  await screenshot(phone, "8-phone-list-in-step");

  // The phone opens the conversation: its own message from the laptop is in
  // place, on its own side.
  await open(phone, "user", "bob");
  assert.equal(await phone.locator(".bubble.mine", { hasText: "sent from the laptop" }).count(), 1);
  assert.equal(await phone.locator(".bubble:not(.mine)", { hasText: "a reply is com" }).count(), 1);

  // A new device (a fresh browser): the list and the history come from the server.
  const tabletContext = await browser.newContext({ viewport: LAPTOP });
  t.after(() => tabletContext.close());
  const tablet = await signIn(tabletContext, gateway, "alice");
  const listed = tablet.locator('[data-conversation="user:bob"]');
  await listed.waitFor({ timeout: UI_WAIT_MS });
  assert.equal(await listed.locator(".unread").count(), 0, "read on another device: nothing unread");
  await open(tablet, "user", "bob");
  assert.equal(await bubble(tablet, "sent from the laptop"), 1);
  assert.equal(await bubble(tablet, "a reply is com"), 1);
  await screenshot(tablet, "9-new-device-history");
});

test("a long conversation's history loads a page when it opens and the next when scrolled up", async (t) => {
  const gateway = await startGateway();
  t.after(() => gateway.stop());
  // 60 messages from "shop" to carol (pushes), while carol is away.
  for (let i = 1; i <= 60; i++) {
    const pushed = await gateway.admin("POST", "/v1/push", {
      users: ["carol"],
      sender_id: "shop",
      message: { type: "text", data: { content: `update ${i} of 60` } },
    });
    assert.equal(pushed.status, 200);
  }
  const context = await browser.newContext({ viewport: LAPTOP });
  t.after(() => context.close());
  const carol = await signIn(context, gateway, "carol");
  await open(carol, "user", "shop");
  assert.equal(await bubble(carol, "update 60 of 60"), 1);
  // A new browser replays nothing: the newest page of 50 is the history's.
  await carol.locator(".bubble", { hasText: "update 11 of 60" }).waitFor({ timeout: UI_WAIT_MS });
  const shown = await carol.locator(".bubble").count();
  assert.equal(await carol.locator(".bubble", { hasText: "update 10 of 60" }).count(), 0, `not on the first page (${shown} bubbles)`);
  // Scrolled up: the top of the list offers the earlier ones.
  await carol.locator("#older").scrollIntoViewIfNeeded();
  await carol.click("#older");
  assert.equal(await bubble(carol, "update 1 of 60"), 1, "the older page, once");
  assert.equal(await carol.locator("#older").count(), 0, "nothing older left");
  for (const n of [1, 10, 11, 50, 60]) {
    assert.equal(await carol.locator(".bubble", { hasText: `update ${n} of 60` }).count(), 1, `update ${n}: once`);
  }
});
