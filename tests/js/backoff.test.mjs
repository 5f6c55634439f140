// Reconnection: backoff growth, full-jitter bounds, cap, and which close codes retry.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ChatAPI, FakeWebSocket, makeClient } from './helpers.mjs';

const { computeBackoff, closePolicy } = ChatAPI;

test('backoff ceiling doubles per attempt', () => {
  const top = (n) => computeBackoff(n, { baseMs: 1000, capMs: 1e9, random: () => 0.999999 });
  assert.deepEqual([0, 1, 2, 3, 4].map(top), [999, 1999, 3999, 7999, 15999]);
});

test('full jitter stays within [0, min(cap, base * 2^n))', () => {
  let seed = 42;
  const random = () => ((seed = (seed * 16807) % 2147483647) / 2147483647);
  for (let attempt = 0; attempt < 12; attempt++) {
    const ceiling = Math.min(30000, 1000 * 2 ** attempt);
    const seen = [];
    for (let i = 0; i < 200; i++) {
      const d = computeBackoff(attempt, { baseMs: 1000, capMs: 30000, random });
      assert.ok(d >= 0 && d < ceiling, `attempt ${attempt}: ${d} outside [0, ${ceiling})`);
      seen.push(d);
    }
    // Full jitter really spreads: both halves of the range are used.
    assert.ok(seen.some((d) => d < ceiling / 2) && seen.some((d) => d >= ceiling / 2));
  }
});

test('backoff is capped', () => {
  const d = computeBackoff(40, { baseMs: 1000, capMs: 30000, random: () => 0.999999 });
  assert.equal(d, 29999);
  assert.equal(computeBackoff(40, { baseMs: 1000, capMs: 30000, random: () => 0 }), 0);
});

test('close policy: 1000 and 4001-4003 stop, others retry; 4004/1013 wait longer', () => {
  for (const code of [1000, 4001, 4002, 4003]) assert.equal(closePolicy(code).retry, false, code);
  for (const code of [1001, 1006, 1011, 1013, 4004]) assert.equal(closePolicy(code).retry, true, code);
  assert.equal(closePolicy(1006).baseMs, 1000);
  assert.equal(closePolicy(1001).baseMs, 1000);
  assert.equal(closePolicy(1011).baseMs, 1000);
  assert.equal(closePolicy(4004).baseMs, 5000);
  assert.equal(closePolicy(1013).baseMs, 5000);
});

for (const code of [4001, 4002, 4003]) {
  test(`close ${code} → failed, no reconnect`, () => {
    const { client, clock, states } = makeClient();
    client.connect();
    FakeWebSocket.last.open();
    FakeWebSocket.last.serverClose(code, 'nope');
    assert.equal(client.state, 'failed');
    assert.equal(states.at(-1).code, code);
    clock.advance(600_000);
    assert.equal(FakeWebSocket.instances.length, 1);
  });
}

test('close 1000 from the server → disconnected, no reconnect', () => {
  const { client, clock } = makeClient();
  client.connect();
  FakeWebSocket.last.establish();
  FakeWebSocket.last.serverClose(1000);
  assert.equal(client.state, 'disconnected');
  clock.advance(600_000);
  assert.equal(FakeWebSocket.instances.length, 1);
});

for (const [code, base] of [[1006, 1000], [1001, 1000], [1011, 1000], [4004, 5000], [1013, 5000]]) {
  test(`close ${code} → reconnect after jittered wait on a ${base} ms base`, () => {
    const { client, clock, states } = makeClient({ random: () => 0.5 });
    client.connect();
    FakeWebSocket.last.establish();
    FakeWebSocket.last.serverClose(code);
    assert.equal(client.state, 'reconnecting');
    const info = states.at(-1);
    assert.equal(info.delayMs, base / 2);
    assert.equal(info.code, code);
    assert.equal(info.retryAt, clock.time + base / 2);
    clock.advance(base / 2 - 1);
    assert.equal(FakeWebSocket.instances.length, 1);
    clock.advance(1);
    assert.equal(FakeWebSocket.instances.length, 2);
    assert.equal(client.state, 'connecting');
  });
}

test('consecutive failures grow the wait; success resets it', () => {
  const { client, clock, states } = makeClient({ random: () => 0.999 });
  client.connect();
  const delays = [];
  for (let i = 0; i < 7; i++) {
    FakeWebSocket.last.serverClose(1006);
    delays.push(states.at(-1).delayMs);
    clock.advance(states.at(-1).delayMs);
  }
  assert.deepEqual(delays, [999, 1998, 3996, 7992, 15984, 29970, 29970]);
  FakeWebSocket.last.establish();
  assert.equal(client.reconnectAttempts, 0);
  FakeWebSocket.last.serverClose(1006);
  assert.equal(states.at(-1).delayMs, 999);
});

test('an accepted socket closed before connection_status does not reset the attempts', () => {
  const { client, clock, states } = makeClient({ random: () => 0.999 });
  client.connect();
  FakeWebSocket.last.open();
  FakeWebSocket.last.serverClose(4004);
  clock.advance(states.at(-1).delayMs);
  FakeWebSocket.last.open();
  FakeWebSocket.last.serverClose(4004);
  assert.equal(states.at(-1).delayMs, 9990); // 5000 * 2 * 0.999
});

test('gives up after maxReconnectAttempts → failed; connect() starts over', () => {
  const { client, clock, states } = makeClient({ maxReconnectAttempts: 3 });
  client.connect();
  for (let i = 0; i < 3; i++) {
    FakeWebSocket.last.serverClose(1006);
    clock.advance(states.at(-1).delayMs);
  }
  FakeWebSocket.last.serverClose(1006);
  assert.equal(client.state, 'failed');
  assert.equal(FakeWebSocket.instances.length, 4);
  client.connect();
  assert.equal(client.state, 'connecting');
  assert.equal(FakeWebSocket.instances.length, 5);
});

test('reconnect URL resumes from the highest seq seen', () => {
  const { client, clock, states } = makeClient();
  client.connect();
  const first = new URL(FakeWebSocket.last.url);
  assert.equal(first.protocol, 'ws:');
  assert.equal(first.host, 'chat.test');
  assert.equal(first.pathname, '/ws/room-1');
  assert.equal(first.searchParams.get('token'), 'sk_test_key');
  assert.equal(first.searchParams.get('user_id'), 'u1');
  assert.equal(first.searchParams.get('user_name'), 'Ana');
  assert.equal(first.searchParams.get('last_seq'), null);
  FakeWebSocket.last.establish({ last_seq: 7 });
  FakeWebSocket.last.receive({ type: 'message', data: { id: 'm8', seq: 8, content: 'x' } });
  FakeWebSocket.last.serverClose(1006);
  clock.advance(states.at(-1).delayMs);
  assert.equal(new URL(FakeWebSocket.last.url).searchParams.get('last_seq'), '8');
});

test('reconnectNow skips the wait', () => {
  const { client } = makeClient();
  client.connect();
  FakeWebSocket.last.establish();
  FakeWebSocket.last.serverClose(4004);
  assert.equal(client.state, 'reconnecting');
  client.reconnectNow();
  assert.equal(client.state, 'connecting');
  assert.equal(FakeWebSocket.instances.length, 2);
});
