// Fakes for unit-testing static/chatapi.js in Node without a server:
// a manual clock, a scriptable WebSocket and a recording fetch.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
export const ChatAPI = require('../../static/chatapi.js');
export const CHATAPI_PATH = require.resolve('../../static/chatapi.js');

/** Manual clock: timers fire only when the test advances time. */
export class FakeClock {
  constructor(start = 1_000_000) {
    this.time = start;
    this.nextId = 1;
    this.timers = new Map(); // id → {at, fn, interval}
  }

  api() {
    return {
      setTimeout: (fn, ms) => this._add(fn, ms, 0),
      clearTimeout: (id) => this.timers.delete(id),
      setInterval: (fn, ms) => this._add(fn, ms, ms),
      clearInterval: (id) => this.timers.delete(id),
      now: () => this.time,
    };
  }

  _add(fn, ms, interval) {
    const id = this.nextId++;
    this.timers.set(id, { at: this.time + Math.max(0, ms || 0), fn, interval });
    return id;
  }

  /** Timers still scheduled, soonest first: [{id, at, in}]. */
  pending() {
    return [...this.timers.entries()]
      .map(([id, t]) => ({ id, at: t.at, in: t.at - this.time, interval: t.interval }))
      .sort((a, b) => a.at - b.at);
  }

  /** Move time forward by `ms`, firing due timers in time order. */
  advance(ms) {
    const end = this.time + ms;
    for (;;) {
      const due = this.pending().find((t) => t.at <= end);
      if (!due) break;
      const t = this.timers.get(due.id);
      this.time = t.at;
      if (t.interval) t.at += t.interval;
      else this.timers.delete(due.id);
      t.fn();
    }
    this.time = end;
  }

  /** Like advance, letting promise callbacks (fetch) run between timers. */
  async advanceAsync(ms, step = 10) {
    for (let done = 0; done < ms; done += step) {
      this.advance(Math.min(step, ms - done));
      await flush();
    }
  }
}

/** Let pending promise callbacks run. */
export async function flush(rounds = 10) {
  for (let i = 0; i < rounds; i++) await new Promise((r) => setImmediate(r));
}

/** Scriptable WebSocket: the test plays the server. */
export class FakeWebSocket {
  static instances = [];

  static reset() {
    FakeWebSocket.instances = [];
  }

  static get last() {
    return FakeWebSocket.instances[FakeWebSocket.instances.length - 1];
  }

  constructor(url) {
    this.url = url;
    this.readyState = 0;
    this.sent = [];
    this.closedWith = null;
    FakeWebSocket.instances.push(this);
  }

  /** Frames the client sent, parsed. */
  get frames() {
    return this.sent.map((s) => JSON.parse(s));
  }

  framesOf(type) {
    return this.frames.filter((f) => f.type === type);
  }

  send(data) {
    if (this.readyState !== 1) throw new Error('send on a socket that is not open');
    this.sent.push(data);
  }

  close(code, reason) {
    this.closedWith = { code, reason };
    this.readyState = 3;
  }

  // --- server side
  open() {
    this.readyState = 1;
    this.onopen && this.onopen({});
  }

  receive(frame) {
    this.onmessage && this.onmessage({ data: typeof frame === 'string' ? frame : JSON.stringify(frame) });
  }

  serverClose(code, reason = '') {
    this.readyState = 3;
    this.onclose && this.onclose({ code, reason, wasClean: code !== 1006 });
  }

  /** Open and send connection_status, as the server does. */
  establish(data = {}) {
    this.open();
    this.receive({
      type: 'connection_status',
      data: {
        status: 'connected',
        user_id: 'u1',
        room_id: 'room-1',
        online_users: ['u1'],
        total_participants: 1,
        connection_id: 'c' + FakeWebSocket.instances.length,
        recovered: true,
        missed: 0,
        ...data,
      },
      timestamp: '2024-01-01T12:00:00Z',
      room_id: 'room-1',
    });
  }
}

/** Recording fetch: `handler(url, init)` returns a JSON body (or throws). */
export function fakeFetch(handler) {
  const calls = [];
  const fn = async (url, init) => {
    calls.push({ url: String(url), init });
    const body = await handler(new URL(String(url)), init);
    const status = body && body.__status ? body.__status : 200;
    return {
      ok: status >= 200 && status < 300,
      status,
      json: async () => body,
    };
  };
  fn.calls = calls;
  return fn;
}

/** A stored message as the server would send it. */
export function msg(seq, extra = {}) {
  return {
    id: 'm' + seq,
    room_id: 'room-1',
    seq,
    sender_id: 'u2',
    sender_name: 'Ben',
    content: 'message ' + seq,
    message_type: 'text',
    meta: {},
    client_msg_id: null,
    created_at: '2024-01-01T12:00:00Z',
    is_deleted: false,
    ...extra,
  };
}

/** A client wired to the fakes; returns {client, clock, states, messages}. */
export function makeClient(options = {}) {
  FakeWebSocket.reset();
  const clock = new FakeClock();
  const client = new ChatAPI.ChatAPIWebSocket('room-1', 'sk_test_key', 'u1', 'Ana', {
    baseUrl: 'http://chat.test',
    WebSocket: FakeWebSocket,
    timers: clock.api(),
    random: () => 0.5,
    fetch: fakeFetch(() => ({ data: [], pagination: { has_more: false } })),
    logger: { error() {}, warn() {} },
    ...options,
  });
  const states = [];
  const messages = [];
  client.on('statechange', (s, info) => states.push({ state: s, ...info }));
  client.on('message', (m) => messages.push(m));
  return { client, clock, states, messages };
}
