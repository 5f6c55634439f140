// Offline queue: client_msg_id, queued while offline, flushed once per
// connection, kept until message_ack, never duplicated across reconnects.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeWebSocket, makeClient } from './helpers.mjs';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

function reconnect(client, clock, states, code = 1006) {
  FakeWebSocket.last.serverClose(code);
  clock.advance(states.at(-1).delayMs);
}

test('sendMessage while connected sends at once with a client_msg_id', () => {
  const { client } = makeClient();
  client.connect();
  FakeWebSocket.last.establish();
  const id = client.sendMessage('hello', { messageType: 'text', meta: { priority: 'high' } });
  assert.match(id, UUID);
  assert.deepEqual(FakeWebSocket.last.framesOf('message'), [
    { type: 'message', data: { content: 'hello', message_type: 'text', client_msg_id: id, meta: { priority: 'high' } } },
  ]);
  assert.equal(client.pendingMessages.length, 1);
});

test('each message gets a distinct client_msg_id', () => {
  const { client } = makeClient();
  const ids = new Set(Array.from({ length: 50 }, (_, i) => client.sendMessage('m' + i)));
  assert.equal(ids.size, 50);
});

test('queued while offline, flushed in order after connection_status (not on open)', () => {
  const { client } = makeClient();
  const a = client.sendMessage('first');
  const b = client.sendMessage('second');
  client.connect();
  const ws = FakeWebSocket.last;
  ws.open();
  assert.deepEqual(ws.framesOf('message'), [], 'nothing before connection_status');
  ws.establish();
  assert.deepEqual(ws.framesOf('message').map((f) => f.data.client_msg_id), [a, b]);
});

test('acked entries leave the queue; unacked ones are resent once per reconnect', () => {
  const { client, clock, states } = makeClient();
  client.connect();
  FakeWebSocket.last.establish();
  const a = client.sendMessage('a');
  const b = client.sendMessage('b');
  FakeWebSocket.last.receive({ type: 'message_ack', data: { client_msg_id: a, id: 'm1', seq: 1 } });
  assert.deepEqual(client.pendingMessages.map((p) => p.client_msg_id), [b]);

  for (let i = 0; i < 4; i++) {
    reconnect(client, clock, states);
    const ws = FakeWebSocket.last;
    ws.establish();
    ws.receive({ type: 'connection_status', data: { status: 'connected', online_users: [] } }); // get_online_users reply
    assert.deepEqual(ws.framesOf('message').map((f) => f.data.client_msg_id), [b], `reconnect ${i}`);
  }
  FakeWebSocket.last.receive({ type: 'message_ack', data: { client_msg_id: b, id: 'm2', seq: 2 } });
  assert.equal(client.pendingMessages.length, 0);
  reconnect(client, clock, states);
  FakeWebSocket.last.establish();
  assert.deepEqual(FakeWebSocket.last.framesOf('message'), []);
});

test('a message sent while reconnecting goes out exactly once when back', () => {
  const { client, clock, states } = makeClient();
  client.connect();
  FakeWebSocket.last.establish();
  FakeWebSocket.last.serverClose(1001);
  const id = client.sendMessage('while offline');
  clock.advance(states.at(-1).delayMs);
  const ws = FakeWebSocket.last;
  ws.establish();
  assert.deepEqual(ws.framesOf('message').map((f) => f.data.client_msg_id), [id]);
  ws.receive({ type: 'message_ack', data: { client_msg_id: id, id: 'm1', seq: 1 } });
  assert.equal(client.pendingMessages.length, 0);
  // Every message frame sent across all sockets carried that one id.
  const all = FakeWebSocket.instances.flatMap((w) => w.framesOf('message'));
  assert.equal(all.length, 1);
});

test('the same client_msg_id is reused on every resend (server de-duplicates)', () => {
  const { client, clock, states } = makeClient();
  client.sendMessage('x', { clientMsgId: 'fixed-id' });
  client.connect();
  for (let i = 0; i < 3; i++) {
    FakeWebSocket.last.establish();
    reconnect(client, clock, states);
  }
  const ids = FakeWebSocket.instances.flatMap((w) => w.framesOf('message').map((f) => f.data.client_msg_id));
  assert.deepEqual(ids, ['fixed-id', 'fixed-id', 'fixed-id']);
});

test('disconnect keeps the queue for the next connect()', () => {
  const { client } = makeClient();
  client.connect();
  FakeWebSocket.last.establish();
  client.disconnect();
  const id = client.sendMessage('later');
  client.connect();
  FakeWebSocket.last.establish();
  assert.deepEqual(FakeWebSocket.last.framesOf('message').map((f) => f.data.client_msg_id), [id]);
});

test('queuechange reports the pending list', () => {
  const { client } = makeClient();
  const seen = [];
  client.on('queuechange', (list) => seen.push(list.length));
  client.connect();
  FakeWebSocket.last.establish();
  const id = client.sendMessage('x');
  FakeWebSocket.last.receive({ type: 'message_ack', data: { client_msg_id: id } });
  assert.deepEqual(seen, [1, 0]);
});

test('an error naming a client_msg_id drops that entry', () => {
  const { client } = makeClient();
  const errors = [];
  client.onError = (e) => errors.push(e.code);
  client.connect();
  FakeWebSocket.last.establish();
  const id = client.sendMessage('x');
  FakeWebSocket.last.receive({ type: 'error', data: { code: 'VALIDATION_ERROR', message: 'bad', client_msg_id: id } });
  assert.equal(client.pendingMessages.length, 0);
  assert.deepEqual(errors, ['VALIDATION_ERROR']);
});

test('empty or too long content is refused before queuing', () => {
  const { client } = makeClient();
  assert.throws(() => client.sendMessage('   '), TypeError);
  assert.throws(() => client.sendMessage('x'.repeat(10001)), RangeError);
  client.sendMessage('😀'.repeat(10000)); // 10,000 code points is fine
  assert.equal(client.pendingMessages.length, 1);
});

test('markRead is sent once connected and never goes backwards', () => {
  const { client, clock, states } = makeClient();
  client.markRead(5);
  client.connect();
  FakeWebSocket.last.establish();
  client.markRead(3);
  client.markRead(9);
  assert.deepEqual(FakeWebSocket.last.framesOf('mark_read').map((f) => f.data.seq), [5, 9]);
  reconnect(client, clock, states);
  FakeWebSocket.last.establish();
  assert.deepEqual(FakeWebSocket.last.framesOf('mark_read'), []);
});

test('a retryable error keeps the message and sends it again shortly', () => {
  const { client, clock } = makeClient();
  client.connect();
  FakeWebSocket.last.establish();
  const id = client.sendMessage('x');
  FakeWebSocket.last.receive({ type: 'error', data: { code: 'SERVICE_UNAVAILABLE', message: 'db down', client_msg_id: id } });
  assert.equal(client.pendingMessages.length, 1);
  clock.advance(2000);
  assert.deepEqual(FakeWebSocket.last.framesOf('message').map((f) => f.data.client_msg_id), [id, id]);
  FakeWebSocket.last.receive({ type: 'message_ack', data: { client_msg_id: id } });
  assert.equal(client.pendingMessages.length, 0);
});
