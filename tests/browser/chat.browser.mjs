// Browser tests of the demo page against a real server, in Debian's Chromium
// through playwright-core (no browser download). Run by tests/browser/test_browser.py,
// which starts the server and passes:
//   CHATAPI_BASE_URL     http://127.0.0.1:<port>
//   CHATAPI_TOKEN        the client API key the server printed on first start
//   CHATAPI_ROOM         the `general` room id
//   CHATAPI_CONTROL_URL  POST /stop and /start restart the server (same port, same db)
//   CHATAPI_CHROMIUM     path to the Chromium binary (default /usr/bin/chromium)
//   CHATAPI_SCREENSHOT   where to write the screenshot
//   CHATAPI_PROFILE_DIR  a fresh directory for browser profiles
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

const BASE = process.env.CHATAPI_BASE_URL;
const TOKEN = process.env.CHATAPI_TOKEN;
const ROOM = process.env.CHATAPI_ROOM;
const CONTROL = process.env.CHATAPI_CONTROL_URL;
const CHROMIUM = process.env.CHATAPI_CHROMIUM || '/usr/bin/chromium';
const SCREENSHOT = process.env.CHATAPI_SCREENSHOT || path.join(tmpdir(), 'chatapi-screenshot.png');
const PROFILES = process.env.CHATAPI_PROFILE_DIR || mkdtempSync(path.join(tmpdir(), 'chatapi-profiles-'));
const WAIT = 15_000;

assert.ok(BASE && TOKEN && ROOM, 'CHATAPI_BASE_URL, CHATAPI_TOKEN and CHATAPI_ROOM are required');

const LAUNCH_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--disable-dev-shm-usage',
];

let contextCount = 0;
const contexts = [];

/** A fresh persistent context (own profile dir → own localStorage). */
async function newContext(viewport = { width: 1280, height: 800 }) {
  const dir = path.join(PROFILES, 'profile-' + ++contextCount);
  const context = await chromium.launchPersistentContext(dir, {
    executablePath: CHROMIUM,
    headless: true,
    args: LAUNCH_ARGS,
    viewport,
  });
  contexts.push(context);
  return context;
}

after(async () => {
  for (const c of contexts) await c.close().catch(() => {});
});

// ----------------------------------------------------------------- helpers

async function api(method, urlPath, body) {
  const res = await fetch(BASE + urlPath, {
    method,
    headers: { 'X-API-Key': TOKEN, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await res.json().catch(() => null);
  if (!res.ok) throw new Error(`${method} ${urlPath} → ${res.status} ${JSON.stringify(json)}`);
  return json;
}

async function createRoom(name) {
  return (await api('POST', '/api/v1/rooms', { name, description: 'Browser test room' })).data;
}

async function control(action) {
  assert.ok(CONTROL, 'CHATAPI_CONTROL_URL is required for server restarts');
  const res = await fetch(CONTROL + '/' + action, { method: 'POST' });
  assert.equal(res.status, 200, `control ${action} failed: ${await res.text()}`);
}

/** Open the chat page as `name` in its own browser profile. */
async function openChat(name, { room = ROOM, viewport, userId } = {}) {
  const context = await newContext(viewport);
  const page = context.pages()[0] || (await context.newPage());
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(e.message));
  page.on('dialog', (d) => {
    page.errors.push('unexpected dialog: ' + d.message());
    d.dismiss();
  });
  const q = new URLSearchParams({ room, token: TOKEN, name });
  if (userId) q.set('user_id', userId);
  await page.goto(BASE + '/?' + q.toString());
  await waitConnected(page);
  return page;
}

async function waitConnected(page, timeout = WAIT) {
  await page.waitForSelector('#status[data-state="connected"]', { timeout });
}

/** Texts of the rendered messages (content only, without the "(edited)" tag). */
async function contents(page) {
  return page.$$eval('#messages .msg .content', (els) => els.map((el) => {
    const clone = el.cloneNode(true);
    clone.querySelectorAll('.edited-tag').forEach((t) => t.remove());
    return clone.textContent;
  }));
}

async function waitForContent(page, text, timeout = WAIT) {
  await page.waitForFunction(
    (t) => Array.from(document.querySelectorAll('#messages .msg .content')).some((el) => el.textContent.includes(t)),
    text,
    { timeout },
  );
}

async function countContent(page, text) {
  return (await contents(page)).filter((c) => c === text).length;
}

async function send(page, text) {
  await page.fill('#input', text);
  await page.press('#input', 'Enter');
}

// ------------------------------------------------------------------- tests

test('the client loads as an ES module in the browser too', { timeout: 30_000 }, async () => {
  const context = await newContext();
  const page = context.pages()[0] || (await context.newPage());
  await page.goto(BASE + '/static/chatapi.js');
  const result = await page.evaluate(async (base) => {
    const mod = await import(base + '/static/chatapi.mjs');
    return { type: typeof mod.ChatAPIWebSocket, state: mod.STATES.CONNECTED, global: typeof window.ChatAPIWebSocket };
  }, BASE);
  assert.deepEqual(result, { type: 'function', state: 'connected', global: 'function' });
  await context.close();
});

test('two pages exchange messages both ways and see typing, presence and receipts', { timeout: 90_000 }, async () => {
  const room = await createRoom('Two pages');
  const ana = await openChat('Ana Lopez', { room: room.id });
  const ben = await openChat('Ben Carter', { room: room.id });

  // Presence: each sees the other online.
  await ana.waitForSelector('#online-list li:has-text("Ben Carter")', { timeout: WAIT });
  await ben.waitForSelector('#online-list li:has-text("Ana Lopez")', { timeout: WAIT });

  // Typing: Ana types, Ben sees it; sending clears it.
  await ana.type('#input', 'Hi Ben, how', { delay: 40 });
  await ben.waitForFunction(() => document.querySelector('#typing').textContent.includes('Ana Lopez is typing'), null, { timeout: WAIT });
  await ana.type('#input', ' are you?', { delay: 20 });
  await ana.press('#input', 'Enter');
  await waitForContent(ben, 'Hi Ben, how are you?');
  await ben.waitForFunction(() => document.querySelector('#typing').textContent === '', null, { timeout: WAIT });
  await waitForContent(ana, 'Hi Ben, how are you?');
  assert.equal(await ana.$$eval('#messages .msg.mine:not(.pending)', (els) => els.length), 1);

  // The other way round.
  await send(ben, 'Great, thanks Ana! 🎉');
  await waitForContent(ana, 'Great, thanks Ana! 🎉');
  assert.equal(await countContent(ana, 'Great, thanks Ana! 🎉'), 1);
  assert.equal(await countContent(ben, 'Great, thanks Ana! 🎉'), 1);
  assert.equal(await countContent(ben, 'Hi Ben, how are you?'), 1);

  // Read receipts: Ben has read Ana's... and Ana sees that Ben read up to his own reply.
  await send(ana, 'Did you see this?');
  await ana.waitForFunction(
    () => Array.from(document.querySelectorAll('.msg-seen')).some((e) => e.textContent.includes('Seen by Ben Carter')),
    null,
    { timeout: WAIT },
  );

  // Edit and delete own messages; the other page follows.
  const last = ana.locator('#messages .msg.mine', { hasText: 'Did you see this?' });
  await last.hover();
  await last.locator('button.edit').click();
  await last.locator('.edit-box textarea').fill('Did you see this? (edited text)');
  await last.locator('.edit-box textarea').press('Enter');
  await waitForContent(ben, 'Did you see this? (edited text)');
  await ben.waitForSelector('#messages .msg:has-text("Did you see this? (edited text)") .edited-tag', { timeout: WAIT });

  const first = ana.locator('#messages .msg.mine', { hasText: 'Hi Ben, how are you?' });
  await first.hover();
  await first.locator('button.delete').click();
  await first.locator('button.delete').click(); // confirm
  await ben.waitForSelector('#messages .msg.deleted:has-text("This message was deleted")', { timeout: WAIT });
  assert.equal(await countContent(ben, 'Hi Ben, how are you?'), 0);

  // Notifications show as toasts.
  await api('POST', '/api/v1/notifications', { title: 'Deploy finished', content: 'v1.2.3 is live', room_id: room.id, priority: 'high' });
  await ana.waitForSelector('.toast:has-text("Deploy finished")', { timeout: WAIT });
  await ben.waitForSelector('.toast:has-text("v1.2.3 is live")', { timeout: WAIT });

  // Leaving: Ana sees Ben go.
  await ben.context().close();
  await ana.waitForFunction(() => !document.querySelector('#online-list').textContent.includes('Ben Carter'), null, { timeout: 30_000 });
  assert.deepEqual(ana.errors, []);
  await ana.context().close();
});

test('several users typing are listed together', { timeout: 60_000 }, async () => {
  const room = await createRoom('Typing room');
  const ana = await openChat('Ana', { room: room.id });
  const ben = await openChat('Ben', { room: room.id });
  const cy = await openChat('Cy', { room: room.id });
  await ben.type('#input', 'hello', { delay: 30 });
  await cy.type('#input', 'hey', { delay: 30 });
  await ana.waitForFunction(() => /^(Ben and Cy|Cy and Ben) are typing…$/.test(document.querySelector('#typing').textContent), null, { timeout: WAIT });
  // After 3 s idle the clients send typing:false.
  await ana.waitForFunction(() => document.querySelector('#typing').textContent === '', null, { timeout: WAIT });
  for (const p of [ana, ben, cy]) await p.context().close();
});

test('user text is never executed (XSS probe)', { timeout: 60_000 }, async () => {
  const room = await createRoom('<img src=x onerror="window.__xss=\'room\'">');
  const probes = [
    '<img src=x onerror="window.__xss=\'img\'">',
    '<script>window.__xss=\'script\'</script>',
    '<svg onload="window.__xss=\'svg\'"></svg>',
    '"><iframe src="javascript:window.top.__xss=\'iframe\'"></iframe>',
  ];
  for (const content of probes.slice(0, 2)) {
    await api('POST', `/api/v1/rooms/${room.id}/messages`, {
      sender_id: 'mallory', sender_name: '<b onmouseover="window.__xss=\'name\'">Mallory</b>', content,
    });
  }
  const page = await openChat('<img src=x onerror="window.__xss=\'self\'">', { room: room.id });
  const other = await openChat('Victim', { room: room.id });
  for (const content of probes.slice(2)) await send(page, content);
  await api('POST', '/api/v1/notifications', {
    title: '<img src=x onerror="window.__xss=\'toast\'">', content: '<script>window.__xss=1</script>',
    room_id: room.id, action_url: 'javascript:window.__xss=\'action\'',
  });
  for (const p of [page, other]) {
    for (const content of probes) await waitForContent(p, content);
    await p.waitForSelector('.toast', { timeout: WAIT });
    await p.hover('#messages .msg >> nth=0');
    await p.waitForTimeout(300);
    const result = await p.evaluate(() => ({
      xss: window.__xss,
      injected: document.querySelectorAll('#messages img, #messages script, #messages svg:not(.icon), #messages iframe, #messages b, .toast img, #room-name *').length,
      roomName: document.querySelector('#room-name').textContent,
      toastLinks: Array.from(document.querySelectorAll('.toast a'), (a) => a.href),
    }));
    assert.equal(result.xss, undefined);
    assert.equal(result.injected, 0);
    assert.equal(result.roomName, room.name);
    assert.deepEqual(result.toastLinks, [], 'a javascript: action_url is not linked');
    assert.deepEqual(p.errors, []);
  }
  for (const p of [page, other]) await p.context().close();
});

test('lobby: pick a room from the list, then asked for a display name once', { timeout: 60_000 }, async () => {
  const room = await createRoom('Lobby pick me');
  const context = await newContext();
  const page = context.pages()[0] || (await context.newPage());
  await page.goto(BASE + '/?' + new URLSearchParams({ token: TOKEN }));
  await page.fill('#room-search', 'Lobby pick');
  await page.click('#room-list a:has-text("Lobby pick me")');
  await page.waitForSelector('#name-dialog:not([hidden])', { timeout: WAIT });
  await page.fill('#name-input', 'Dana Lobby');
  await page.click('#name-form button[type=submit]');
  await waitConnected(page);
  assert.equal(await page.textContent('#room-name'), 'Lobby pick me');
  assert.equal(await page.textContent('#me-name'), 'Dana Lobby');
  // Remembered: a reload does not ask again and keeps the same user id.
  const userId = await page.evaluate(() => window.chatApp.me.id);
  await page.reload();
  await waitConnected(page);
  assert.equal(await page.isVisible('#name-dialog'), false);
  assert.equal(await page.evaluate(() => window.chatApp.me.id), userId);
  // A bad token is reported, not crashed on.
  await page.goto(BASE + '/?' + new URLSearchParams({ token: 'sk_test_wrong', room: room.id }));
  await page.waitForSelector('#lobby-error:has-text("not accepted")', { timeout: WAIT });
  await context.close();
});

test('a user token (JWT) brings its own identity and can edit its messages', { timeout: 60_000 }, async () => {
  const room = await createRoom('JWT room');
  const minted = (await api('POST', '/api/v1/tokens', { user_id: 'jay', user_name: 'Jay Token' })).data;
  const context = await newContext();
  const page = context.pages()[0] || (await context.newPage());
  await page.goto(BASE + '/?' + new URLSearchParams({ room: room.id, token: minted.token }));
  await waitConnected(page);
  assert.equal(await page.isVisible('#name-dialog'), false);
  assert.equal(await page.textContent('#me-name'), 'Jay Token');
  await send(page, 'signed in with a token');
  await page.waitForSelector('#messages .msg.mine:not(.pending):has-text("signed in with a token")', { timeout: WAIT });
  const msg = page.locator('#messages .msg.mine', { hasText: 'signed in with a token' });
  await msg.hover();
  await msg.locator('button.edit').click();
  await msg.locator('.edit-box textarea').fill('signed in with a token, edited');
  await msg.locator('.edit-box textarea').press('Enter');
  await waitForContent(page, 'signed in with a token, edited');
  const stored = (await api('GET', `/api/v1/rooms/${room.id}/messages`)).data;
  assert.equal(stored[0].sender_id, 'jay');
  assert.equal(stored[0].content, 'signed in with a token, edited');
  await context.close();
});

test('history scrolls back through 120 messages', { timeout: 90_000 }, async () => {
  const room = await createRoom('History');
  for (let i = 1; i <= 120; i++) {
    await api('POST', `/api/v1/rooms/${room.id}/messages`, {
      sender_id: i % 3 ? 'ana' : 'ben', sender_name: i % 3 ? 'Ana' : 'Ben', content: 'History message #' + i,
    });
  }
  const page = await openChat('Reader', { room: room.id });
  const initial = await page.$$eval('#messages .msg', (els) => els.length);
  assert.ok(initial >= 50 && initial < 120, `first page only (${initial})`);
  assert.equal((await contents(page)).at(-1), 'History message #120');
  for (let i = 0; i < 10; i++) {
    await page.evaluate(() => { document.querySelector('#scroller').scrollTop = 0; });
    await page.waitForFunction(() => !document.querySelector('#history-status').textContent.startsWith('Loading'), null, { timeout: WAIT });
    if ((await page.textContent('#history-status')).includes('Beginning')) break;
    await page.waitForTimeout(100);
  }
  await page.waitForSelector('#history-status:has-text("Beginning of the conversation")', { timeout: WAIT });
  const seqs = await page.$$eval('#messages .msg', (els) => els.map((el) => Number(el.dataset.seq)));
  assert.deepEqual(seqs, Array.from({ length: 120 }, (_, i) => i + 1));
  assert.deepEqual(await contents(page), Array.from({ length: 120 }, (_, i) => 'History message #' + (i + 1)));
  // Loading older pages keeps the reader's place: not thrown back to the bottom.
  const top = await page.evaluate(() => document.querySelector('#scroller').scrollTop);
  const height = await page.evaluate(() => document.querySelector('#scroller').scrollHeight);
  assert.ok(top < height / 2, `scroll position kept near the top (${top} of ${height})`);
  await page.context().close();
});

test('a message sent while offline arrives exactly once after the server comes back', { timeout: 180_000 }, async () => {
  const room = await createRoom('Offline');
  const ana = await openChat('Ana', { room: room.id });
  const ben = await openChat('Ben', { room: room.id });
  await send(ana, 'before the restart');
  await waitForContent(ben, 'before the restart');

  await control('stop');
  await ana.waitForSelector('#status:not([data-state="connected"])', { timeout: WAIT });
  await ana.waitForSelector('#offline-banner:not([hidden])', { timeout: WAIT });
  const text = 'sent while the server was down';
  await send(ana, text);
  await ana.waitForSelector('#messages .msg.pending:has-text("Queued")', { timeout: WAIT });
  assert.equal(await ana.evaluate(() => window.chatApp.client.pendingMessages.length), 1);

  await control('start');
  await waitConnected(ana, 60_000);
  await waitConnected(ben, 60_000);
  await waitForContent(ben, text, 30_000);
  await ana.waitForFunction(() => window.chatApp.client.pendingMessages.length === 0, null, { timeout: WAIT });
  await ana.waitForSelector('#messages .msg.pending', { state: 'detached', timeout: WAIT });

  // Two more restarts (reconnects with last_seq): still exactly one copy everywhere.
  for (let i = 0; i < 2; i++) {
    await control('stop');
    await ana.waitForSelector('#status:not([data-state="connected"])', { timeout: WAIT });
    await control('start');
    await waitConnected(ana, 60_000);
    await waitConnected(ben, 60_000);
  }
  await send(ben, 'after the restart');
  await waitForContent(ana, 'after the restart');
  for (const p of [ana, ben]) {
    assert.equal(await countContent(p, text), 1);
    assert.equal(await countContent(p, 'before the restart'), 1);
  }
  const stored = (await api('GET', `/api/v1/rooms/${room.id}/messages?limit=100`)).data;
  assert.equal(stored.filter((m) => m.content === text).length, 1);
  assert.deepEqual(ana.errors, []);
  for (const p of [ana, ben]) await p.context().close();
});

test('phone-sized viewport: no horizontal overflow, people drawer opens', { timeout: 60_000 }, async () => {
  const page = await openChat('Phone User', { viewport: { width: 390, height: 844 } });
  await send(page, 'Hello from a phone, with a fairly long line of text that must wrap nicely on small screens');
  await waitForContent(page, 'Hello from a phone');
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `page is ${overflow}px wider than the viewport`);
  assert.equal(await page.isVisible('#sidebar.open'), false);
  await page.click('#people-toggle');
  await page.waitForSelector('#sidebar.open #online-list li:has-text("Phone User")', { timeout: WAIT });
  await page.waitForTimeout(400); // let the drawer finish sliding in
  await page.screenshot({ path: SCREENSHOT.replace(/\.png$/, '') + '-mobile.png' });
  await page.context().close();
});

test('screenshot of a lively conversation', { timeout: 90_000 }, async () => {
  const room = await api('POST', '/api/v1/rooms', { name: 'design-team', description: 'Launch planning · 4 members' });
  const post = (sender_id, sender_name, content) => api('POST', `/api/v1/rooms/${room.data.id}/messages`, { sender_id, sender_name, content });
  await post('maya', 'Maya Chen', 'Morning all! The new onboarding flow is up on staging.');
  await post('leo', 'Leo Martins', 'Nice! Trying it now. The empty states look so much better.');
  await post('maya', 'Maya Chen', 'Thanks! Still polishing the mobile layout.');
  await post('leo', 'Leo Martins', 'One thing: the "Skip" link is hard to tap on small screens.');
  const ana = await openChat('Ana Lopez', { room: room.data.id, userId: 'ana' });
  await send(ana, 'Good catch — I can bump it to a full-width button.');
  const maya = await openChat('Maya Chen', { room: room.data.id, userId: 'maya' });
  const leo = await openChat('Leo Martins', { room: room.data.id, userId: 'leo' });
  await waitForContent(leo, 'full-width button');
  await send(maya, 'Perfect, ship it before the demo on Thursday?');
  await waitForContent(ana, 'ship it before the demo');
  await send(ana, 'Yes! PR will be up in an hour: https://example.com/pr/128');
  await waitForContent(maya, 'PR will be up');
  await waitForContent(leo, 'PR will be up');
  await ana.waitForFunction(() => document.querySelector('.msg-seen') && /Seen by/.test(Array.from(document.querySelectorAll('.msg-seen')).map((e) => e.textContent).join('')), null, { timeout: WAIT });
  await leo.type('#input', 'Sounds good', { delay: 40 });
  await ana.waitForFunction(() => document.querySelector('#typing').textContent.includes('typing'), null, { timeout: WAIT });
  await ana.screenshot({ path: SCREENSHOT });
  for (const p of [ana, maya, leo]) await p.context().close();
});
