// socket.io-client 4 (the bench's pinned copy) against ChatAPI: one WebSocket-only client and
// one that starts on polling and upgrades. Bursts of room events (written by the server's
// direct frame path) interleave with acks and pings; every event must arrive, in seq order.
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, "../../bench/loadgen/package.json"));
const { io } = require("socket.io-client");

const { PORT, ROOM_ID, API_KEY } = process.env;
const URL = `http://127.0.0.1:${PORT}`;
const BURST = 60;

function client(userId, transports) {
  const socket = io(URL, { auth: { token: API_KEY, user_id: userId, user_name: userId },
                           transports, reconnection: false, forceNew: true });
  const seen = { message: [], user_joined: [] };
  socket.on("message", (env) => seen.message.push(env.data.seq));
  socket.on("user_joined", (env) => seen.user_joined.push(env.data.user_id));
  return { socket, seen };
}

const ack = (socket, event, data) => new Promise((resolve, reject) => {
  const timer = setTimeout(() => reject(new Error(`no ack for ${event}`)), 10000);
  socket.emit(event, data, (reply) => { clearTimeout(timer); resolve(reply); });
});

const until = async (check, label) => {
  for (let i = 0; i < 500 && !check(); i++) await new Promise((r) => setTimeout(r, 20));
  if (!check()) throw new Error(`timed out waiting for ${label}`);
};

async function main() {
  const a = client("alice", ["websocket"]);
  const joinA = await ack(a.socket, "join", { room_id: ROOM_ID });
  const b = client("bob", ["polling", "websocket"]);
  const joinB = await ack(b.socket, "join", { room_id: ROOM_ID });
  await until(() => b.socket.io.engine.transport.name === "websocket", "bob's upgrade");
  await until(() => a.seen.user_joined.includes("bob"), "bob's user_joined");
  const sends = [];
  const pings = [];
  for (let i = 0; i < BURST; i++) {
    sends.push(ack(b.socket, "message", { room_id: ROOM_ID, content: `burst ${i}` }));
    if (i % 10 === 0) pings.push(ack(a.socket, "ping", {}));
  }
  const acks = await Promise.all(sends);
  const pongs = await Promise.all(pings);
  await until(() => a.seen.message.length >= BURST && b.seen.message.length >= BURST, "burst");
  const result = {
    join: [joinA.status, joinB.status],
    acks: acks.map((r) => r.status),
    acked_seqs: acks.map((r) => r.data.seq),
    pongs: pongs.map((r) => r.status),
    alice: a.seen.message, bob: b.seen.message,
    alice_transport: a.socket.io.engine.transport.name,
  };
  a.socket.close();
  b.socket.close();
  console.log(JSON.stringify({ ok: true, result }));
}

main().catch((err) => { console.log(JSON.stringify({ ok: false, error: String(err) })); process.exit(1); });
