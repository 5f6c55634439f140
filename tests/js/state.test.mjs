// Connection state machine, handlers, heartbeats and base URL resolution.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ChatAPI, FakeWebSocket, makeClient } from './helpers.mjs';

test('initial state is disconnected', () => {
  const { client } = makeClient();
  assert.equal(client.state, 'disconnected');
  assert.equal(client.isConnected, false);
});

test('connect → connecting; connected only after connection_status', () => {
  const { client, states } = makeClient();
  client.connect();
  assert.equal(client.state, 'connecting');
  FakeWebSocket.last.open();
  assert.equal(client.state, 'connecting', 'an accepted socket may still be refused (4001…)');
  FakeWebSocket.last.establish();
  assert.equal(client.state, 'connected');
  assert.deepEqual(states.map((s) => s.state), ['connecting', 'connected']);
  assert.equal(states[1].previous, 'connecting');
});

test('full cycle: connected → reconnecting → connecting → connected → disconnected', () => {
  const { client, clock, states } = makeClient();
  client.connect();
  FakeWebSocket.last.establish();
  FakeWebSocket.last.serverClose(1006);
  clock.advance(states.at(-1).delayMs);
  FakeWebSocket.last.establish();
  client.disconnect();
  assert.deepEqual(states.map((s) => s.state), [
    'connecting', 'connected', 'reconnecting', 'connecting', 'connected', 'disconnected',
  ]);
  assert.deepEqual(FakeWebSocket.last.closedWith, { code: 1000, reason: 'Client disconnect' });
  clock.advance(600_000);
  assert.equal(FakeWebSocket.instances.length, 2, 'no reconnect after disconnect()');
});

test('onStateChange property and on("statechange") both fire; unsubscribe works', () => {
  const { client } = makeClient();
  const a = [];
  const b = [];
  client.onStateChange = (s, info) => a.push([s, info.previous]);
  const off = client.on('statechange', (s) => b.push(s));
  client.addEventListener('statechange', () => {});
  client.connect();
  off();
  FakeWebSocket.last.establish();
  assert.deepEqual(a, [['connecting', 'disconnected'], ['connected', 'connecting']]);
  assert.deepEqual(b, ['connecting']);
});

test('a throwing handler does not break the client', () => {
  const errors = [];
  const { client, messages } = makeClient({ logger: { error: (...a) => errors.push(a), warn() {} } });
  client.onNewMessage = () => { throw new Error('boom'); };
  client.connect();
  FakeWebSocket.last.establish({ last_seq: 0 });
  FakeWebSocket.last.receive({ type: 'message', data: { id: 'a', seq: 1 } });
  FakeWebSocket.last.receive({ type: 'message', data: { id: 'b', seq: 2 } });
  assert.equal(messages.length, 2);
  assert.equal(errors.length, 2);
});

test('seed handler names receive their frames', () => {
  const { client } = makeClient();
  const got = {};
  const names = {
    message_updated: 'onMessageUpdated', message_deleted: 'onMessageDeleted',
    message_restored: 'onMessageRestored', user_joined: 'onUserJoined', user_left: 'onUserLeft',
    typing: 'onTyping', notification: 'onNotification', pong: 'onPong',
    read_receipt: 'onReadReceipt', message_ack: 'onMessageAck', error: 'onError',
    connection_status: 'onConnectionStatus', message: 'onNewMessage',
  };
  for (const [type, name] of Object.entries(names)) client[name] = (d) => { got[type] = d; };
  client.connect();
  FakeWebSocket.last.open();
  for (const type of Object.keys(names)) {
    FakeWebSocket.last.receive({ type, data: { marker: type, id: 'x-' + type, user_id: 'u9' } });
  }
  for (const type of Object.keys(names)) assert.equal(got[type] && got[type].marker, type, type);
});

test('online users follow connection_status, user_joined and user_left', () => {
  const { client } = makeClient();
  client.connect();
  const ws = FakeWebSocket.last;
  ws.establish({ online_users: ['u1', 'u2'] });
  ws.receive({ type: 'user_joined', data: { user_id: 'u3', user_name: 'Cy' } });
  ws.receive({ type: 'user_joined', data: { user_id: 'u3', user_name: 'Cy' } });
  ws.receive({ type: 'user_left', data: { user_id: 'u2', user_name: 'Ben' } });
  assert.deepEqual(client.onlineUsers, ['u1', 'u3']);
});

test('heartbeat: a ping every 25 s', () => {
  const { client, clock } = makeClient();
  client.connect();
  const ws = FakeWebSocket.last;
  ws.establish();
  clock.advance(24_999);
  assert.equal(ws.framesOf('ping').length, 0);
  clock.advance(1);
  assert.equal(ws.framesOf('ping').length, 1);
  ws.receive({ type: 'pong', data: { server_time: 'now' } });
  clock.advance(25_000);
  assert.equal(ws.framesOf('ping').length, 2);
});

test('heartbeat: 60 s of silence closes the socket and reconnects', () => {
  const { client, clock, states } = makeClient();
  client.connect();
  const ws = FakeWebSocket.last;
  ws.establish();
  clock.advance(30_000);
  ws.receive({ type: 'pong', data: {} }); // traffic resets the watchdog
  clock.advance(59_999);
  assert.equal(client.state, 'connected');
  clock.advance(1);
  assert.equal(client.state, 'reconnecting');
  assert.equal(ws.closedWith.code, 4000);
  assert.equal(states.at(-1).reason, 'Heartbeat timeout');
  clock.advance(states.at(-1).delayMs);
  assert.equal(FakeWebSocket.instances.length, 2);
});

test('no timers are left running after disconnect()', () => {
  const { client, clock } = makeClient();
  client.connect();
  FakeWebSocket.last.establish();
  client.sendTyping(true);
  client.disconnect();
  assert.deepEqual(clock.pending(), []);
});

test('events from an old socket are ignored', () => {
  const { client, clock, states, messages } = makeClient();
  client.connect();
  const old = FakeWebSocket.last;
  old.establish({ last_seq: 0 });
  old.serverClose(1006);
  clock.advance(states.at(-1).delayMs);
  old.onmessage && old.onmessage({ data: JSON.stringify({ type: 'message', data: { seq: 1, id: 'z' } }) });
  assert.equal(messages.length, 0);
  assert.equal(client.state, 'connecting');
});

test('send() refuses when not open (seed behaviour) and writes {type, data} when open', () => {
  const { client } = makeClient();
  assert.equal(client.send('ping', {}), false);
  client.connect();
  FakeWebSocket.last.establish();
  assert.equal(client.getOnlineUsers(), true);
  assert.equal(client.ping(), true);
  assert.deepEqual(FakeWebSocket.last.frames, [
    { type: 'get_online_users', data: {} },
    { type: 'ping', data: {} },
  ]);
});

test('base URL: explicit option, http→ws and https→wss, default localhost:8000', () => {
  assert.equal(ChatAPI.resolveBaseUrl('https://chat.example/'), 'https://chat.example');
  assert.equal(ChatAPI.toWsUrl('https://chat.example'), 'wss://chat.example');
  assert.equal(ChatAPI.toWsUrl('http://h:1'), 'ws://h:1');
  assert.equal(ChatAPI.resolveBaseUrl(), 'http://localhost:8000');
  const c = new ChatAPI.ChatAPIWebSocket('r 1', 'k&x', null, null, { WebSocket: class {} });
  assert.equal(c.url, 'ws://localhost:8000/ws/r%201?token=k%26x');
});

test('base URL comes from location in a browser', () => {
  const saved = Object.getOwnPropertyDescriptor(globalThis, 'location');
  globalThis.location = { protocol: 'https:', host: 'chat.example:8443' };
  try {
    assert.equal(ChatAPI.resolveBaseUrl(), 'https://chat.example:8443');
    const c = new ChatAPI.ChatAPIWebSocket('r', 'k', 'u', 'N', { WebSocket: class {} });
    assert.equal(c.url, 'wss://chat.example:8443/ws/r?token=k&user_id=u&user_name=N');
  } finally {
    if (saved) Object.defineProperty(globalThis, 'location', saved);
    else delete globalThis.location;
  }
});

test('in a browser, the online event retries at once', () => {
  const listeners = {};
  globalThis.window = {
    addEventListener: (type, fn) => { listeners[type] = fn; },
    removeEventListener: (type, fn) => { if (listeners[type] === fn) delete listeners[type]; },
  };
  try {
    const { client, states } = makeClient();
    client.connect();
    FakeWebSocket.last.establish();
    FakeWebSocket.last.serverClose(1006);
    assert.equal(client.state, 'reconnecting');
    assert.ok(states.at(-1).delayMs > 0);
    listeners.online();
    assert.equal(client.state, 'connecting');
    assert.equal(FakeWebSocket.instances.length, 2);
    client.disconnect();
    assert.equal(listeners.online, undefined, 'listener removed on disconnect');
  } finally {
    delete globalThis.window;
  }
});
