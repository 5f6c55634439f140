// Typing debounce: at most one typing:true per ~2 s while typing,
// typing:false after 3 s idle or on send.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeWebSocket, makeClient } from './helpers.mjs';

function connected() {
  const ctx = makeClient();
  ctx.client.connect();
  FakeWebSocket.last.establish();
  ctx.typing = () => FakeWebSocket.last.framesOf('typing').map((f) => f.data.is_typing);
  return ctx;
}

test('a burst of keystrokes sends one typing:true', () => {
  const { client, clock, typing } = connected();
  for (let i = 0; i < 10; i++) {
    client.sendTyping(true);
    clock.advance(100);
  }
  assert.deepEqual(typing(), [true]);
});

test('while typing continuously, typing:true repeats at most every 2 s', () => {
  const { client, clock, typing } = connected();
  for (let t = 0; t < 7000; t += 250) {
    client.sendTyping(true);
    clock.advance(250);
  }
  // keystrokes at 0, 2000, 4000, 6000 ms send a refresh
  assert.deepEqual(typing(), [true, true, true, true]);
});

test('typing:false after 3 s without a keystroke', () => {
  const { client, clock, typing } = connected();
  client.sendTyping(true);
  clock.advance(2999);
  assert.deepEqual(typing(), [true]);
  clock.advance(1);
  assert.deepEqual(typing(), [true, false]);
  clock.advance(10_000);
  assert.deepEqual(typing(), [true, false], 'no repeated false');
});

test('each keystroke pushes the idle stop back', () => {
  const { client, clock, typing } = connected();
  client.sendTyping(true);
  clock.advance(2000);
  client.sendTyping(true);
  clock.advance(2500);
  assert.equal(typing().filter((t) => t === false).length, 0);
  clock.advance(500);
  assert.deepEqual(typing().at(-1), false);
});

test('sending a message stops typing at once', () => {
  const { client, typing } = connected();
  client.sendTyping(true);
  client.sendMessage('hi');
  assert.deepEqual(typing(), [true, false]);
  const types = FakeWebSocket.last.frames.map((f) => f.type).filter((t) => t !== 'ping');
  assert.deepEqual(types, ['typing', 'typing', 'message'], 'typing:false goes out before the message');
});

test('sendTyping(false) is only sent after a true, and only once', () => {
  const { client, typing } = connected();
  client.sendTyping(false);
  assert.deepEqual(typing(), []);
  client.sendTyping(true);
  client.sendTyping(false);
  client.sendTyping(false);
  assert.deepEqual(typing(), [true, false]);
});

test('after a stop, the next keystroke sends typing:true again immediately', () => {
  const { client, clock, typing } = connected();
  client.sendTyping(true);
  clock.advance(500);
  client.sendTyping(false);
  client.sendTyping(true);
  assert.deepEqual(typing(), [true, false, true]);
});

test('typing while offline is not queued', () => {
  const { client, clock } = makeClient();
  client.sendTyping(true);
  clock.advance(5000);
  client.connect();
  FakeWebSocket.last.establish();
  assert.deepEqual(FakeWebSocket.last.framesOf('typing'), []);
});
