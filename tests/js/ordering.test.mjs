// Ordering by seq, duplicate suppression, and REST back-fill of gaps.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeWebSocket, fakeFetch, flush, makeClient, msg } from './helpers.mjs';

function established(options = {}, status = {}) {
  const ctx = makeClient(options);
  ctx.client.connect();
  ctx.ws = FakeWebSocket.last;
  ctx.ws.establish({ last_seq: 0, ...status });
  ctx.push = (m) => ctx.ws.receive({ type: 'message', data: m, room_id: 'room-1' });
  ctx.seqs = () => ctx.messages.map((m) => m.seq);
  return ctx;
}

/** A fake REST server holding `stored` messages (seq-sorted), honouring after_seq/limit. */
function restServer(stored) {
  return fakeFetch((url) => {
    assert.equal(url.pathname, '/api/v1/rooms/room-1/messages');
    const after = Number(url.searchParams.get('after_seq'));
    const limit = Number(url.searchParams.get('limit'));
    const rest = stored.filter((m) => m.seq > after);
    return {
      data: rest.slice(0, limit),
      status: 'success',
      pagination: { skip: 0, limit, total: rest.length, has_more: rest.length > limit },
    };
  });
}

test('in-order messages are delivered at once', () => {
  const { push, seqs } = established();
  [1, 2, 3].forEach((s) => push(msg(s)));
  assert.deepEqual(seqs(), [1, 2, 3]);
});

test('out-of-order seqs are delivered in order', () => {
  const { push, seqs, clock } = established();
  push(msg(1));
  push(msg(3));
  push(msg(4));
  assert.deepEqual(seqs(), [1], 'waits for 2');
  push(msg(2));
  assert.deepEqual(seqs(), [1, 2, 3, 4]);
  clock.advance(10_000);
  assert.deepEqual(seqs(), [1, 2, 3, 4]);
});

test('duplicates by seq or id are dropped', () => {
  const { push, seqs } = established();
  push(msg(1));
  push(msg(2));
  push(msg(1));
  push(msg(2, { id: 'other-id' })); // same seq again
  push(msg(3));
  push(msg(3));
  push({ id: 'no-seq', content: 'x' });
  push({ id: 'no-seq', content: 'x' });
  assert.deepEqual(seqs(), [1, 2, 3, undefined]);
});

test('a gap that does not close triggers a REST back-fill with after_seq, delivered in order', async () => {
  const stored = [1, 2, 3, 4, 5, 6].map((s) => msg(s));
  const fetch = restServer(stored);
  const { push, seqs, clock } = established({ fetch });
  push(msg(1));
  push(msg(2));
  push(msg(6));
  assert.deepEqual(seqs(), [1, 2]);
  assert.equal(fetch.calls.length, 0, 'waits a moment for the gap to close by itself');
  await clock.advanceAsync(300);
  assert.equal(fetch.calls.length, 1);
  const call = new URL(fetch.calls[0].url);
  assert.equal(call.origin, 'http://chat.test');
  assert.equal(call.searchParams.get('after_seq'), '2');
  assert.equal(call.searchParams.get('limit'), '100');
  assert.equal(call.searchParams.get('sort'), 'created_at');
  assert.equal(fetch.calls[0].init.headers.Authorization, 'Bearer sk_test_key');
  assert.deepEqual(seqs(), [1, 2, 3, 4, 5, 6]);
});

test('back-fill pages until caught up', async () => {
  const stored = Array.from({ length: 250 }, (_, i) => msg(i + 1));
  const fetch = restServer(stored);
  const { push, seqs, clock } = established({ fetch });
  push(msg(1));
  push(msg(251));
  await clock.advanceAsync(300);
  assert.deepEqual(fetch.calls.map((c) => new URL(c.url).searchParams.get('after_seq')), ['1', '101', '201']);
  assert.deepEqual(seqs(), Array.from({ length: 251 }, (_, i) => i + 1));
});

test('live messages arriving during a back-fill are not lost or duplicated', async () => {
  const stored = [1, 2, 3, 4, 5].map((s) => msg(s));
  let release;
  const gate = new Promise((r) => (release = r));
  const fetch = fakeFetch(async (url) => {
    const after = Number(url.searchParams.get('after_seq'));
    const snapshot = stored.filter((m) => m.seq > after); // what the server has at request time
    await gate;
    return { data: snapshot, pagination: { has_more: false } };
  });
  const { push, seqs, clock } = established({ fetch });
  push(msg(1));
  push(msg(4));
  await clock.advanceAsync(300);
  assert.equal(fetch.calls.length, 1);
  push(msg(5));
  stored.push(msg(6), msg(7)); // both stored; 7 arrives first (6 is still in flight)
  push(msg(7));
  release();
  await flush();
  assert.equal(fetch.calls.length, 2, 'looks again: 7 arrived while the first page was in flight');
  assert.equal(new URL(fetch.calls[1].url).searchParams.get('after_seq'), '5');
  push(msg(6)); // the late live copy is a duplicate now
  assert.deepEqual(seqs(), [1, 2, 3, 4, 5, 6, 7]);
});

test('deleted messages (absent from REST) do not stall delivery', async () => {
  const stored = [1, 2, 4, 5].map((s) => msg(s)); // 3 was deleted
  const fetch = restServer(stored);
  const { push, seqs, clock } = established({ fetch });
  push(msg(1));
  push(msg(2));
  push(msg(5));
  await clock.advanceAsync(300);
  assert.deepEqual(seqs(), [1, 2, 4, 5]);
  push(msg(6));
  assert.deepEqual(seqs(), [1, 2, 4, 5, 6]);
});

test('connection_status with a higher room last_seq (replay capped) triggers back-fill', async () => {
  const stored = Array.from({ length: 12 }, (_, i) => msg(i + 1));
  const fetch = restServer(stored);
  const ctx = makeClient({ fetch, lastSeq: 2 });
  ctx.client.connect();
  const ws = FakeWebSocket.last;
  assert.equal(new URL(ws.url).searchParams.get('last_seq'), '2');
  ws.open();
  for (const s of [3, 4, 5]) ws.receive({ type: 'message', data: msg(s) }); // replay, capped
  ws.receive({ type: 'connection_status', data: { status: 'connected', last_seq: 12, recovered: false, missed: 3 } });
  await ctx.clock.advanceAsync(50);
  assert.equal(new URL(fetch.calls[0].url).searchParams.get('after_seq'), '5');
  assert.deepEqual(ctx.messages.map((m) => m.seq), [3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
  assert.equal(ctx.client.lastSeq, 12);
});

test('a failing back-fill is retried, then the buffer is released', async () => {
  let calls = 0;
  const errors = [];
  const fetch = fakeFetch(() => {
    calls++;
    throw new Error('offline');
  });
  const { client, push, seqs, clock } = established({ fetch, backfillMaxRetries: 2 });
  client.onError = (e) => errors.push(e.code);
  push(msg(1));
  push(msg(3));
  await clock.advanceAsync(20_000, 100);
  assert.equal(calls, 3);
  assert.deepEqual(errors, ['BACKFILL_FAILED', 'BACKFILL_FAILED', 'BACKFILL_FAILED']);
  assert.deepEqual(seqs(), [1, 3]);
});

test('an edit of a message still waiting in the gap buffer is applied to it', () => {
  const { ws, push, seqs } = established();
  push(msg(1));
  push(msg(3));
  ws.receive({ type: 'message_updated', data: { id: 'm3', content: 'edited', edited_at: 'now' } });
  push(msg(2));
  assert.deepEqual(seqs(), [1, 2, 3]);
});

test('without a known last_seq the first connection_status sets the baseline', () => {
  const ctx = makeClient();
  ctx.client.connect();
  FakeWebSocket.last.establish({ last_seq: 41 });
  assert.equal(ctx.client.lastSeq, 41);
  FakeWebSocket.last.receive({ type: 'message', data: msg(42) });
  assert.deepEqual(ctx.messages.map((m) => m.seq), [42]);
});
