// Drives the seed's "Simple Chat Client" page (served from another origin) in Debian's
// Chromium with playwright-core (installed by tests/browser; no browser download).
// Run: PAGE_URL=… PORT=… ROOM_ID=… API_KEY=… CHROMIUM=… node --experimental-websocket seed_page.browser.mjs
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, "..", "browser", "package.json"));
const { chromium } = require("playwright-core");
const { PAGE_URL, PORT, ROOM_ID, API_KEY, CHROMIUM } = process.env;
const API = `http://localhost:${PORT}/api/v1`;

const result = { page_errors: [], console_errors: [] };
const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
const timer = setTimeout(async () => {
  console.log(JSON.stringify({ error: "harness timeout", result }));
  process.exit(1);
}, 40000);
try {
  const page = await browser.newPage();
  page.on("pageerror", (e) => result.page_errors.push(String(e)));
  page.on("console", (m) => { if (m.type() === "error") result.console_errors.push(m.text()); });
  await page.goto(PAGE_URL);
  await page.waitForFunction(() => document.getElementById("status").textContent === "Connected",
    null, { timeout: 10000 });
  result.status = await page.textContent("#status");

  // Someone else's typing and message show up on the page.
  const other = new WebSocket(`ws://localhost:${PORT}/ws/${ROOM_ID}?token=${API_KEY}&user_id=other&user_name=Other`);
  await new Promise((resolve, reject) => { other.onopen = resolve; other.onerror = reject; });
  other.send(JSON.stringify({ type: "typing", data: { is_typing: true } }));
  await page.waitForFunction(() => document.getElementById("typing").textContent === "Other is typing...",
    null, { timeout: 5000 });
  result.typing_shown = await page.textContent("#typing");
  const resp = await fetch(`${API}/rooms/${ROOM_ID}/messages`, {
    method: "POST", headers: { "Content-Type": "application/json", "X-API-Key": API_KEY },
    body: JSON.stringify({ sender_id: "other", sender_name: "Other", content: "hello page" }),
  });
  result.rest_status = resp.status;
  await page.waitForFunction(() => document.getElementById("messages").textContent.includes("Other: hello page"),
    null, { timeout: 5000 });

  // The page's own typing (input event) and its cross-origin REST send.
  await page.type("#messageInput", "hi from the page");
  await page.click("button");
  await page.waitForFunction(() => document.getElementById("messages").textContent.includes("Demo User: hi from the page"),
    null, { timeout: 5000 });
  result.messages = await page.textContent("#messages");
  result.input_after_send = await page.inputValue("#messageInput");
  other.close();
  clearTimeout(timer);
  await browser.close();
  console.log(JSON.stringify({ ok: true, result }));
  process.exit(0);
} catch (error) {
  console.log(JSON.stringify({ error: String(error), result }));
  await browser.close();
  process.exit(1);
}
