// chatapi.js works as a plain <script>, as CommonJS, and (via chatapi.mjs) as an ES module.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import vm from 'node:vm';

const scriptPath = fileURLToPath(new URL('../../static/chatapi.js', import.meta.url));
const source = readFileSync(scriptPath, 'utf8');

test('plain script: defines window.ChatAPI and window.ChatAPIWebSocket', () => {
  // A browser-like global: `window` is the global object, no module/require/exports.
  const sandbox = { console, URLSearchParams, location: { protocol: 'http:', host: 'demo.local:8000' } };
  sandbox.window = sandbox;
  vm.createContext(sandbox);
  vm.runInContext(source, sandbox, { filename: 'chatapi.js' });
  assert.equal(typeof sandbox.window.ChatAPI, 'object');
  assert.equal(typeof sandbox.window.ChatAPIWebSocket, 'function');
  assert.equal(sandbox.window.ChatAPIWebSocket, sandbox.window.ChatAPI.ChatAPIWebSocket);
  const chat = vm.runInContext(
    "new ChatAPIWebSocket('room', 'key', 'user_123', 'John Doe', { WebSocket: function () {} })",
    sandbox,
  );
  assert.equal(chat.url, 'ws://demo.local:8000/ws/room?token=key&user_id=user_123&user_name=John+Doe');
  assert.equal(sandbox.module, undefined, 'no CommonJS leakage');
});

test('plain script in strict/module-like evaluation (no `this`) still installs globals', () => {
  const sandbox = { console, URLSearchParams };
  sandbox.window = sandbox;
  vm.createContext(sandbox);
  vm.runInContext('"use strict";\n' + source, sandbox);
  assert.equal(typeof sandbox.ChatAPIWebSocket, 'function');
});

test('CommonJS: require() returns the API', () => {
  const api = createRequire(import.meta.url)('../../static/chatapi.js');
  assert.equal(typeof api.ChatAPIWebSocket, 'function');
  assert.equal(typeof api.ChatAPIRest, 'function');
  assert.deepEqual(Object.values(api.STATES).sort(), ['connected', 'connecting', 'disconnected', 'failed', 'reconnecting']);
});

test('ES module: chatapi.mjs exports named members and a default', async () => {
  const mod = await import('../../static/chatapi.mjs');
  assert.equal(typeof mod.ChatAPIWebSocket, 'function');
  assert.equal(typeof mod.computeBackoff, 'function');
  assert.equal(mod.default.ChatAPIWebSocket, mod.ChatAPIWebSocket);
  const chat = new mod.ChatAPIWebSocket('r', 'k', null, null, { WebSocket: class {} });
  assert.equal(chat.state, mod.STATES.DISCONNECTED);
});

test('the seed example surface is present', () => {
  const { ChatAPIWebSocket } = createRequire(import.meta.url)('../../static/chatapi.js');
  const chat = new ChatAPIWebSocket('550e8400-e29b-41d4-a716-446655440001', 'sk_test_1234567890abcdef', 'user_123', 'John Doe');
  for (const m of ['connect', 'send', 'sendTyping', 'getOnlineUsers', 'ping', 'disconnect', 'handleMessage',
    'onNewMessage', 'onMessageUpdated', 'onMessageDeleted', 'onUserJoined', 'onUserLeft', 'onTyping',
    'onNotification', 'onConnectionStatus', 'onPong', 'onMessageRestored', 'onReadReceipt', 'onMessageAck',
    'onError', 'onStateChange', 'sendMessage', 'markRead']) {
    assert.equal(typeof chat[m], 'function', m);
  }
  assert.equal(chat.roomId, '550e8400-e29b-41d4-a716-446655440001');
  assert.equal(chat.apiKey, 'sk_test_1234567890abcdef');
  assert.equal(chat.userId, 'user_123');
  assert.equal(chat.userName, 'John Doe');
  assert.equal(chat.ws, null);
  assert.equal(chat.reconnectAttempts, 0);
});

test('ChatAPIRest sends Bearer auth and surfaces error codes', async () => {
  const { ChatAPIRest, ChatAPIError } = createRequire(import.meta.url)('../../static/chatapi.js');
  const calls = [];
  const rest = new ChatAPIRest({
    baseUrl: 'http://h',
    token: 'tok',
    fetch: async (url, init) => {
      calls.push({ url, init });
      if (init.method === 'DELETE') {
        return { ok: false, status: 403, json: async () => ({ detail: 'Not yours', error_code: 'UNAUTHORIZED_EDIT' }) };
      }
      return { ok: true, status: 200, json: async () => ({ data: [], status: 'success' }) };
    },
  });
  await rest.getMessages('room 1', { beforeSeq: 51, limit: 50 });
  assert.equal(calls[0].url, 'http://h/api/v1/rooms/room%201/messages?limit=50&before_seq=51');
  assert.equal(calls[0].init.headers.Authorization, 'Bearer tok');
  await rest.editMessage('m1', 'new');
  assert.equal(calls[1].init.method, 'PUT');
  assert.deepEqual(JSON.parse(calls[1].init.body), { content: 'new' });
  assert.equal(calls[1].init.headers['Content-Type'], 'application/json');
  await assert.rejects(rest.deleteMessage('m1'), (err) => {
    assert.ok(err instanceof ChatAPIError);
    assert.equal(err.status, 403);
    assert.equal(err.code, 'UNAUTHORIZED_EDIT');
    assert.equal(err.message, 'Not yours');
    return true;
  });
});
