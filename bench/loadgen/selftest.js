'use strict';
// Self-test of the load generator's minimal clients against the `ws` package's server:
// frame lengths (7-bit, 16-bit, 64-bit), fragmented messages, several frames per read,
// ping → pong, close codes, the permessage-deflate refusal, and the Socket.IO packet layer.
// Run: node bench/loadgen/selftest.js   (exits non-zero on the first failure)

const assert = require('assert');
const { WebSocketServer } = require('ws');
const { RawWs, SioLite } = require('./rawws');

function server(opts, onConn) {
  return new Promise((resolve) => {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, ...opts }, () => resolve(wss));
    wss.on('connection', onConn);
  });
}

function client(port, path, opts = {}) {
  const got = [];
  let closeCode = null;
  let opened = false;
  let closeErr = null;
  const done = new Promise((resolve) => {
    const ws = new RawWs('127.0.0.1', port, path, {
      open: () => { opened = true; },
      text: (buf) => got.push(buf.toString()),
      close: (code, err) => { closeCode = code; closeErr = err; resolve(); },
    }, opts);
    client.last = ws;
  });
  return { got, done, get code() { return closeCode; }, get opened() { return opened; },
    get err() { return closeErr; } };
}

async function testFrames() {
  const sizes = [5, 125, 126, 1000, 65535, 65536, 200000];
  let pongs = 0;
  const wss = await server({ perMessageDeflate: false }, (ws) => {
    ws.on('pong', () => pongs++);
    ws.on('message', (data) => ws.send(`echo:${data}`));
    ws.ping('p');
    for (const n of sizes) ws.send('x'.repeat(n));
    // one message in three fragments
    ws.send('ab', { fin: false });
    ws.send('cd', { fin: false });
    ws.send('ef', { fin: true });
    setTimeout(() => ws.close(4002, 'bye'), 200);
  });
  const c = client(wss.address().port, '/ws/room?token=t');
  setTimeout(() => client.last.send('hello'), 50);
  await c.done;
  wss.close();
  assert.deepStrictEqual(c.got.slice(0, sizes.length).map((s) => s.length), sizes);
  assert.ok(c.got.includes('abcdef'), 'fragmented message reassembled');
  assert.ok(c.got.includes('echo:hello'), 'masked client frame understood by the server');
  assert.strictEqual(pongs, 1, 'ping answered');
  assert.strictEqual(c.code, 4002, 'close code seen');
}

async function testDeflateRefused() {
  const wss = await server({ perMessageDeflate: true }, (ws) => ws.send('hi'));
  const c = client(wss.address().port, '/');
  await c.done;
  wss.close();
  assert.ok(!c.opened && /extension/.test(String(c.err)), 'accepting deflate is reported');
}

async function testSio() {
  // A hand-written Engine.IO 4 / Socket.IO 5 server side of the exchange.
  const wss = await server({ perMessageDeflate: false }, (ws) => {
    ws.send('0{"sid":"e1","upgrades":[],"pingInterval":25000,"pingTimeout":20000}');
    ws.on('message', (data) => {
      const s = data.toString();
      if (s.startsWith('40')) {
        assert.deepStrictEqual(JSON.parse(s.slice(2)), { token: 'k', user_id: 'u' });
        ws.send('40{"sid":"s1"}');
        ws.send('2');
      } else if (s === '3') {
        ws.send('42["message",{"type":"message","data":{"content":"BNCH~0~0~1~"}}]');
      } else if (s.startsWith('421[')) {
        const [name, payload] = JSON.parse(s.slice(3));
        assert.strictEqual(name, 'join');
        ws.send(`431[{"status":"ok","data":${JSON.stringify(payload)}}]`);
      }
    });
  });
  const events = [];
  let ack = null;
  await new Promise((resolve) => {
    const sio = new SioLite('127.0.0.1', wss.address().port, { token: 'k', user_id: 'u' }, {
      connect: () => sio.emit('join', { room_id: 'r' }, (a) => { ack = a; }),
      event: (buf) => {
        events.push(buf.toString());
        setTimeout(() => sio.close(), 20);
      },
      error: (e) => assert.fail(`connect_error ${JSON.stringify(e)}`),
      close: () => resolve(),
    });
  });
  wss.close();
  assert.deepStrictEqual(ack, { status: 'ok', data: { room_id: 'r' } });
  assert.strictEqual(events.length, 1);
  assert.ok(events[0].startsWith('42["message"'));
}

(async () => {
  for (const t of [testFrames, testDeflateRefused, testSio]) {
    await t();
    console.log(`ok ${t.name}`);
  }
  console.log('3 passed, 0 failed');
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
