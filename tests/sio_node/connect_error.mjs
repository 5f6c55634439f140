// socket.io-client 4 refused at CONNECT: what `connect_error` hands the application, as the
// README's example reads it (`err.message`, `err.data`), over WebSocket and over polling.
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, "../../bench/loadgen/package.json"));
const { io } = require("socket.io-client");

const { PORT, API_KEY } = process.env;
const URL = `http://127.0.0.1:${PORT}`;

const refusal = (auth, transports) => new Promise((resolve, reject) => {
  const socket = io(URL, { auth, transports, reconnection: false, forceNew: true });
  const timer = setTimeout(() => reject(new Error("no connect_error")), 10000);
  socket.on("connect", () => reject(new Error("connected")));
  socket.on("connect_error", (err) => {
    clearTimeout(timer);
    socket.close();
    resolve({ message: err.message, data: err.data ?? null });
  });
});

async function main() {
  const result = {
    bad_token: await refusal({ token: "sk_wrong" }, ["websocket"]),
    bad_token_polling: await refusal({ token: "sk_wrong" }, ["polling"]),
  };
  console.log(JSON.stringify({ ok: true, result }));
  process.exit(0);
}

main().catch((err) => { console.log(JSON.stringify({ ok: false, error: String(err) })); process.exit(1); });
