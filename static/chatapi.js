/**
 * ChatAPI browser/Node client — dependency free.
 *
 * Works as a plain script (`<script src="/static/chatapi.js">` sets
 * `window.ChatAPI` and `window.ChatAPIWebSocket`), as a CommonJS module
 * (`require('./chatapi.js')`), and as an ES module through the tiny wrapper
 * `chatapi.mjs` (`import { ChatAPIWebSocket } from '/static/chatapi.mjs'`).
 *
 * `ChatAPIWebSocket` keeps the seed documentation's public surface (same
 * constructor, `connect`, `send`, `sendTyping`, `getOnlineUsers`, `ping`,
 * `disconnect` and `on…` handler properties) and adds what the seed's best
 * practices ask for: reconnection with capped exponential backoff and full
 * jitter, an observable connection state, `last_seq` resume, an offline queue
 * with `client_msg_id` de-duplication, seq ordering with gap back-fill over
 * REST, typing debounce and heartbeats.
 *
 * @module chatapi
 */
(function (root, factory) {
  'use strict';
  var api = factory();
  if (typeof module === 'object' && module && module.exports) module.exports = api;
  if (root) {
    root.ChatAPI = api;
    root.ChatAPIWebSocket = api.ChatAPIWebSocket;
  }
})(typeof globalThis !== 'undefined' ? globalThis : this, function () {
  'use strict';

  const VERSION = '1.0.0';
  const DEFAULT_BASE_URL = 'http://localhost:8000';
  const WS_OPEN = 1;

  /**
   * Connection states (seed: "Connection Lifecycle").
   * - `disconnected`: not connected and not trying (initial state, after `disconnect()` or close 1000)
   * - `connecting`: a socket is being opened (first connect or a reconnect attempt)
   * - `connected`: the server sent `connection_status`
   * - `reconnecting`: the connection dropped; waiting for the next attempt
   * - `failed`: will not retry (4001/4002/4003, or too many attempts); call `connect()` to try again
   * @readonly
   * @enum {string}
   */
  const STATES = Object.freeze({
    DISCONNECTED: 'disconnected',
    CONNECTING: 'connecting',
    CONNECTED: 'connected',
    RECONNECTING: 'reconnecting',
    FAILED: 'failed',
  });

  /** Close codes after which the client must not reconnect on its own. */
  const FATAL_CLOSE_CODES = Object.freeze({
    1000: 'Normal closure',
    4001: 'Unauthorized',
    4002: 'Room not found',
    4003: 'Room access denied',
  });

  /** Close codes that mean "come back later": retried with a longer base wait. */
  const SLOW_RETRY_CODES = Object.freeze({ 4004: 'Rate limit exceeded', 1013: 'Try again later' });

  /**
   * Server error codes after which a rejected message is worth sending again
   * (it stays queued); any other error naming a `client_msg_id` drops it.
   */
  const RETRYABLE_ERRORS = Object.freeze(['SERVICE_UNAVAILABLE', 'RATE_LIMIT_EXCEEDED', 'INTERNAL_ERROR']);

  /** Frame type → handler property name (seed names first, then the extras). */
  const HANDLERS = Object.freeze({
    message: 'onNewMessage',
    message_updated: 'onMessageUpdated',
    message_deleted: 'onMessageDeleted',
    message_restored: 'onMessageRestored',
    user_joined: 'onUserJoined',
    user_left: 'onUserLeft',
    typing: 'onTyping',
    notification: 'onNotification',
    connection_status: 'onConnectionStatus',
    pong: 'onPong',
    read_receipt: 'onReadReceipt',
    message_ack: 'onMessageAck',
    error: 'onError',
  });

  /**
   * Default tuning. Every value can be overridden through the constructor's
   * options object.
   */
  const DEFAULTS = Object.freeze({
    reconnectBaseMs: 1000,
    reconnectSlowBaseMs: 5000,
    reconnectCapMs: 30000,
    maxReconnectAttempts: 50,
    pingIntervalMs: 25000,
    idleTimeoutMs: 60000,
    typingThrottleMs: 2000,
    typingIdleMs: 3000,
    gapFillDelayMs: 250,
    backfillPageSize: 100,
    backfillMaxRetries: 3,
    maxContentLength: 10000,
    seenIdsLimit: 2000,
  });

  // ---------------------------------------------------------------- helpers

  /**
   * Full-jitter exponential backoff: a uniform random wait in
   * `[0, min(capMs, baseMs * 2^attempt))`.
   * @param {number} attempt 0 for the first retry, 1 for the second, …
   * @param {{baseMs?: number, capMs?: number, random?: () => number}} [opts]
   * @returns {number} milliseconds to wait
   */
  function computeBackoff(attempt, opts) {
    const o = opts || {};
    const base = o.baseMs != null ? o.baseMs : DEFAULTS.reconnectBaseMs;
    const cap = o.capMs != null ? o.capMs : DEFAULTS.reconnectCapMs;
    const random = o.random || Math.random;
    const ceiling = Math.min(cap, base * Math.pow(2, Math.max(0, attempt)));
    return Math.floor(random() * ceiling);
  }

  /**
   * What to do after the socket closed with `code`.
   * @param {number} code WebSocket close code
   * @param {{baseMs?: number, slowBaseMs?: number}} [opts]
   * @returns {{retry: boolean, baseMs: number, reason: string}}
   */
  function closePolicy(code, opts) {
    const o = opts || {};
    const base = o.baseMs != null ? o.baseMs : DEFAULTS.reconnectBaseMs;
    const slow = o.slowBaseMs != null ? o.slowBaseMs : DEFAULTS.reconnectSlowBaseMs;
    if (Object.prototype.hasOwnProperty.call(FATAL_CLOSE_CODES, code)) {
      return { retry: false, baseMs: 0, reason: FATAL_CLOSE_CODES[code] };
    }
    if (Object.prototype.hasOwnProperty.call(SLOW_RETRY_CODES, code)) {
      return { retry: true, baseMs: slow, reason: SLOW_RETRY_CODES[code] };
    }
    return { retry: true, baseMs: base, reason: 'Connection lost' };
  }

  /**
   * A random RFC 4122 v4 UUID. Uses `crypto.randomUUID` where available
   * (secure contexts), else `crypto.getRandomValues`, else `Math.random`.
   * @returns {string}
   */
  function uuid4() {
    const c = typeof globalThis !== 'undefined' ? globalThis.crypto : undefined;
    if (c && typeof c.randomUUID === 'function') return c.randomUUID();
    const bytes = new Uint8Array(16);
    if (c && typeof c.getRandomValues === 'function') c.getRandomValues(bytes);
    else for (let i = 0; i < 16; i++) bytes[i] = Math.floor(Math.random() * 256);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
    return hex.slice(0, 8) + '-' + hex.slice(8, 12) + '-' + hex.slice(12, 16) + '-' +
      hex.slice(16, 20) + '-' + hex.slice(20);
  }

  /**
   * The HTTP base URL: `explicit` if given, else the page's origin in a
   * browser, else `http://localhost:8000` (the seed's host).
   * @param {string} [explicit]
   * @returns {string} without a trailing slash
   */
  function resolveBaseUrl(explicit) {
    if (explicit) return String(explicit).replace(/\/+$/, '');
    const loc = typeof location !== 'undefined' ? location : null;
    if (loc && /^https?:$/.test(loc.protocol) && loc.host) return loc.protocol + '//' + loc.host;
    return DEFAULT_BASE_URL;
  }

  /**
   * `http(s)://host` → `ws(s)://host`.
   * @param {string} baseUrl
   * @returns {string}
   */
  function toWsUrl(baseUrl) {
    return baseUrl.replace(/^http(s?):\/\//i, 'ws$1://');
  }

  /** Timers and clock from options, defaulting to the globals (late bound). */
  function resolveTimers(t) {
    const g = globalThis;
    const timers = t || {};
    return {
      setTimeout: timers.setTimeout || ((fn, ms) => g.setTimeout(fn, ms)),
      clearTimeout: timers.clearTimeout || ((id) => g.clearTimeout(id)),
      setInterval: timers.setInterval || ((fn, ms) => g.setInterval(fn, ms)),
      clearInterval: timers.clearInterval || ((id) => g.clearInterval(id)),
      now: timers.now || (() => Date.now()),
    };
  }

  /** Number of Unicode code points (what the server's length limit counts). */
  function codePointLength(s) {
    let n = 0;
    for (const _ of s) n++; // eslint-disable-line no-unused-vars
    return n;
  }

  /**
   * Minimal event emitter shared by both classes: `on(type, fn)` returns an
   * unsubscribe function; `addEventListener`/`removeEventListener` are aliases.
   */
  class Emitter {
    constructor() {
      /** @private */ this._listeners = new Map();
    }

    /**
     * Subscribe to an event. Event types are the protocol's frame types
     * (`message`, `typing`, …) plus `statechange` and `queuechange`.
     * @param {string} type
     * @param {(data: any, extra?: any) => void} fn
     * @returns {() => void} unsubscribe
     */
    on(type, fn) {
      if (!this._listeners.has(type)) this._listeners.set(type, new Set());
      this._listeners.get(type).add(fn);
      return () => this.off(type, fn);
    }

    /**
     * Remove a listener added with `on`.
     * @param {string} type
     * @param {Function} fn
     */
    off(type, fn) {
      const set = this._listeners.get(type);
      if (set) set.delete(fn);
    }

    /** Alias of `on` (DOM style). */
    addEventListener(type, fn) { this.on(type, fn); }

    /** Alias of `off` (DOM style). */
    removeEventListener(type, fn) { this.off(type, fn); }

    /** @protected */
    _emitTo(type, args) {
      const set = this._listeners.get(type);
      if (!set) return;
      for (const fn of Array.from(set)) this._safeCall(fn, args);
    }

    /** @protected — a throwing user handler must not break the client. */
    _safeCall(fn, args) {
      try {
        fn.apply(this, args);
      } catch (err) {
        const logger = this._logger || (typeof console !== 'undefined' ? console : null);
        if (logger && logger.error) logger.error('ChatAPI: handler threw', err);
      }
    }
  }

  // ------------------------------------------------------------------ REST

  /** Error thrown by `ChatAPIRest` for non-2xx responses. */
  class ChatAPIError extends Error {
    /**
     * @param {string} message
     * @param {{status?: number, code?: string, body?: any}} [info]
     */
    constructor(message, info) {
      super(message);
      this.name = 'ChatAPIError';
      const i = info || {};
      /** HTTP status (0 for network failures). */
      this.status = i.status || 0;
      /** The server's `error_code`, e.g. `ROOM_NOT_FOUND`. */
      this.code = i.code || 'NETWORK_ERROR';
      /** The parsed error body, if any. */
      this.body = i.body || null;
    }
  }

  /**
   * Thin REST client for the endpoints a chat page needs (SPEC §3). Sends the
   * credential as `Authorization: Bearer <key-or-token>`.
   */
  class ChatAPIRest {
    /**
     * @param {{baseUrl?: string, token: string, fetch?: Function}} options
     */
    constructor(options) {
      const o = options || {};
      /** HTTP base URL without trailing slash. */
      this.baseUrl = resolveBaseUrl(o.baseUrl);
      /** API key or user token. */
      this.token = o.token;
      /** @private */
      this._fetch = o.fetch || ((...args) => globalThis.fetch(...args));
    }

    /**
     * Perform a request and return the parsed JSON envelope.
     * @param {string} method
     * @param {string} path starting with `/api/v1/…`
     * @param {{query?: Object<string, any>, body?: any}} [opts]
     * @returns {Promise<any>} the `{data, status, …}` envelope
     * @throws {ChatAPIError}
     */
    async request(method, path, opts) {
      const o = opts || {};
      const url = this.baseUrl + path + buildQuery(o.query);
      const headers = { Accept: 'application/json' };
      if (this.token) headers.Authorization = 'Bearer ' + this.token;
      const init = { method, headers };
      if (o.body !== undefined) {
        headers['Content-Type'] = 'application/json';
        init.body = JSON.stringify(o.body);
      }
      let res;
      try {
        res = await this._fetch(url, init);
      } catch (err) {
        throw new ChatAPIError('Network error: ' + (err && err.message), { status: 0 });
      }
      const body = await res.json().catch(() => null);
      if (!res.ok) {
        const detail = (body && (body.detail || body.message)) || 'HTTP ' + res.status;
        throw new ChatAPIError(detail, { status: res.status, code: body && body.error_code, body });
      }
      return body;
    }

    /**
     * `GET /rooms`.
     * @param {{skip?: number, limit?: number, search?: string, sort?: string}} [params]
     */
    listRooms(params) { return this.request('GET', '/api/v1/rooms', { query: params }); }

    /** `GET /rooms/{id}`. @param {string} roomId */
    getRoom(roomId) { return this.request('GET', '/api/v1/rooms/' + enc(roomId)); }

    /**
     * `GET /rooms/{id}/messages` with the seq cursors.
     * @param {string} roomId
     * @param {{beforeSeq?: number, afterSeq?: number, limit?: number, sort?: string}} [params]
     * @returns {Promise<{data: Array<Object>, pagination?: Object}>}
     */
    getMessages(roomId, params) {
      const p = params || {};
      const query = { limit: p.limit, sort: p.sort, before_seq: p.beforeSeq, after_seq: p.afterSeq };
      return this.request('GET', '/api/v1/rooms/' + enc(roomId) + '/messages', { query });
    }

    /**
     * `POST /rooms/{id}/messages`.
     * @param {string} roomId
     * @param {{sender_id: string, sender_name?: string, content: string, message_type?: string, meta?: Object, client_msg_id?: string}} message
     */
    postMessage(roomId, message) {
      return this.request('POST', '/api/v1/rooms/' + enc(roomId) + '/messages', { body: message });
    }

    /**
     * `PUT /messages/{id}`.
     * @param {string} messageId
     * @param {string} content
     * @param {{meta?: Object, edit_reason?: string}} [extra]
     */
    editMessage(messageId, content, extra) {
      const body = Object.assign({ content }, extra || {});
      return this.request('PUT', '/api/v1/messages/' + enc(messageId), { body });
    }

    /** `DELETE /messages/{id}` (soft delete). @param {string} messageId */
    deleteMessage(messageId) { return this.request('DELETE', '/api/v1/messages/' + enc(messageId)); }

    /** `POST /messages/{id}/restore`. @param {string} messageId */
    restoreMessage(messageId) {
      return this.request('POST', '/api/v1/messages/' + enc(messageId) + '/restore');
    }

    /** `GET /rooms/{id}/online` (seed utility). @param {string} roomId */
    getOnlineUsers(roomId) { return this.request('GET', '/api/v1/rooms/' + enc(roomId) + '/online'); }

    /** `GET /rooms/{id}/participants`. @param {string} roomId */
    getParticipants(roomId) {
      return this.request('GET', '/api/v1/rooms/' + enc(roomId) + '/participants');
    }
  }

  function enc(s) { return encodeURIComponent(String(s)); }

  function buildQuery(query) {
    if (!query) return '';
    const parts = [];
    for (const key of Object.keys(query)) {
      const v = query[key];
      if (v === undefined || v === null || v === '') continue;
      parts.push(enc(key) + '=' + enc(v));
    }
    return parts.length ? '?' + parts.join('&') : '';
  }

  // ------------------------------------------------------------- WebSocket

  /**
   * Real-time connection to one room over the raw WebSocket protocol
   * (seed: "JavaScript Client Example"; SPEC §4).
   *
   * Override the `on…` properties or subscribe with `on(type, fn)`.
   *
   * @example
   * const chat = new ChatAPIWebSocket(roomId, apiKey, 'user_123', 'John Doe');
   * chat.onNewMessage = (m) => addMessageToUI(m);
   * chat.onStateChange = (state, info) => showStatus(state, info);
   * chat.connect();
   * chat.sendMessage('Hello!');
   */
  class ChatAPIWebSocket extends Emitter {
    /**
     * @param {string} roomId room UUID
     * @param {string} apiKey client API key or user token (JWT)
     * @param {?string} [userId] who connects (ignored by the server with a user token)
     * @param {?string} [userName] display name
     * @param {Object} [options]
     * @param {string} [options.baseUrl] HTTP base URL; default: the page origin, else http://localhost:8000
     * @param {number} [options.lastSeq] highest message seq already shown; resumes from there
     * @param {Function} [options.WebSocket] WebSocket constructor (default: the global one)
     * @param {Function} [options.fetch] fetch implementation for REST back-fill
     * @param {Object} [options.timers] `{setTimeout, clearTimeout, setInterval, clearInterval, now}`
     * @param {() => number} [options.random] random source for jitter (default Math.random)
     * @param {?Object} [options.logger] console-like object for handler failures
     * @param {number} [options.reconnectBaseMs=1000] backoff base
     * @param {number} [options.reconnectSlowBaseMs=5000] backoff base after 4004/1013
     * @param {number} [options.reconnectCapMs=30000] backoff cap
     * @param {number} [options.maxReconnectAttempts=50] attempts before `failed` (Infinity: never give up)
     * @param {number} [options.pingIntervalMs=25000] heartbeat ping interval
     * @param {number} [options.idleTimeoutMs=60000] reconnect when nothing was received for this long
     * @param {number} [options.typingThrottleMs=2000] at most one `typing:true` per interval
     * @param {number} [options.typingIdleMs=3000] send `typing:false` after this much silence
     * @param {number} [options.gapFillDelayMs=250] wait for a late message before back-filling a gap
     * @param {number} [options.backfillPageSize=100] REST page size for back-fill
     * @param {boolean} [options.watchNetwork=true] in a browser, retry at once on the `online` event
     */
    constructor(roomId, apiKey, userId, userName, options) {
      super();
      const o = Object.assign({}, DEFAULTS, options || {});
      // Seed fields.
      this.roomId = roomId;
      this.apiKey = apiKey;
      this.userId = userId == null ? null : userId;
      this.userName = userName == null ? null : userName;
      /** The current WebSocket, or null. */
      this.ws = null;
      /** Reconnect attempts since the last successful connection. */
      this.reconnectAttempts = 0;
      this.maxReconnectAttempts = o.maxReconnectAttempts;
      this.reconnectDelay = o.reconnectBaseMs;
      /** HTTP base URL (no trailing slash). */
      this.baseUrl = resolveBaseUrl(o.baseUrl);
      /** Highest message seq delivered in order; sent as `last_seq` on (re)connect. */
      this.lastSeq = typeof o.lastSeq === 'number' ? o.lastSeq : null;
      /** @type {string} one of STATES */
      this.state = STATES.DISCONNECTED;
      /** Details of the pending reconnect: `{attempt, delayMs, retryAt, code, reason}` or null. */
      this.reconnectInfo = null;
      /** The data of the last `connection_status` frame, or null. */
      this.session = null;
      /** User ids currently online in the room (kept from connection_status / joins / leaves). */
      this.onlineUsers = [];
      /** REST client used for back-fill (also handy for pages). */
      this.rest = new ChatAPIRest({ baseUrl: this.baseUrl, token: apiKey, fetch: o.fetch });

      /** @private */ this._opts = o;
      /** @private */ this._WebSocket = o.WebSocket || null;
      /** @private */ this._timers = resolveTimers(o.timers);
      /** @private */ this._random = o.random || Math.random;
      /** @private */ this._logger = o.logger === undefined ? null : o.logger;
      this._initPrivateState();
    }

    /** @private */
    _initPrivateState() {
      this._manualClose = false;
      this._established = false; // connection_status seen on the current socket
      this._generation = 0; // increments per socket, marks which socket sent a queued message
      this._retryTimer = null;
      this._pingTimer = null;
      this._idleTimer = null;
      this._queue = []; // offline queue: [{client_msg_id, data, sentGeneration}]
      this._pendingRead = null; // highest seq to mark read once connected
      this._sentRead = 0;
      this._typing = false;
      this._typingSentAt = 0;
      this._typingTimer = null;
      this._buffer = new Map(); // seq → message waiting for a gap to close
      this._seenIds = new Set();
      this._gapTimer = null;
      this._backfilling = false;
      this._backfillTarget = 0;
      this._backfillFailures = 0;
      this._bufferStamp = 0; // counts buffer insertions, to spot arrivals during a back-fill
      this._onOnline = null;
    }

    // ------------------------------------------------------- connection

    /**
     * The WebSocket URL for the next attempt, including `last_seq`.
     * @returns {string}
     */
    get url() {
      const params = new URLSearchParams({ token: this.apiKey });
      if (this.userId) params.set('user_id', this.userId);
      if (this.userName) params.set('user_name', this.userName);
      if (this.lastSeq != null) params.set('last_seq', String(this.lastSeq));
      return toWsUrl(this.baseUrl) + '/ws/' + enc(this.roomId) + '?' + params.toString();
    }

    /** True when the socket is open and the server has confirmed the connection. */
    get isConnected() { return this.state === STATES.CONNECTED; }

    /**
     * Open the connection (no-op while connecting or connected). After
     * `failed` or `disconnect()` it starts over with a fresh attempt count.
     */
    connect() {
      if (this.ws && this.state !== STATES.RECONNECTING) return;
      this._manualClose = false;
      this.reconnectAttempts = 0;
      this._openSocket();
    }

    /** Skip the remaining reconnect wait and try now. */
    reconnectNow() {
      if (this.state === STATES.RECONNECTING || this.state === STATES.FAILED) {
        this._clearRetryTimer();
        this._openSocket();
      }
    }

    /**
     * Close with 1000 and stop reconnecting. The offline queue is kept: it
     * is flushed by the next `connect()`.
     * @param {number} [code=1000]
     * @param {string} [reason='Client disconnect']
     */
    disconnect(code, reason) {
      this._manualClose = true;
      this._stopTypingTimer();
      this._typing = false;
      this._clearRetryTimer();
      this._watchNetwork(false);
      const ws = this._detachSocket();
      if (ws) safeClose(ws, code || 1000, reason || 'Client disconnect');
      this.reconnectInfo = null;
      this._setState(STATES.DISCONNECTED, { code: code || 1000, reason: reason || 'Client disconnect' });
    }

    /** @private */
    _openSocket() {
      const WS = this._WebSocket || globalThis.WebSocket;
      if (!WS) throw new Error('ChatAPI: no WebSocket implementation (pass options.WebSocket)');
      this._clearRetryTimer();
      this._detachSocket();
      this._watchNetwork(true);
      this._generation += 1;
      this.reconnectInfo = null;
      this._setState(STATES.CONNECTING, { attempt: this.reconnectAttempts });
      let ws;
      try {
        ws = new WS(this.url);
      } catch (err) {
        this._handleClose({ code: 1006, reason: String(err && err.message) });
        return;
      }
      this.ws = ws;
      ws.onopen = () => { if (this.ws === ws) this._handleOpen(); };
      ws.onmessage = (ev) => { if (this.ws === ws) this._handleRaw(ev.data); };
      ws.onclose = (ev) => { if (this.ws === ws) this._handleClose(ev || {}); };
      ws.onerror = () => {
        if (this.ws === ws) this._emit('error', { code: 'SOCKET_ERROR', message: 'WebSocket error' });
      };
    }

    /**
     * @private
     * In a browser, retry at once when the network comes back instead of
     * waiting out the backoff.
     */
    _watchNetwork(on) {
      const target = typeof window !== 'undefined' && window && window.addEventListener ? window : null;
      if (!target || this._opts.watchNetwork === false) return;
      if (!this._onOnline) this._onOnline = () => { this.reconnectAttempts = 0; this.reconnectNow(); };
      if (on) target.addEventListener('online', this._onOnline);
      else target.removeEventListener('online', this._onOnline);
    }

    /** @private — forget the current socket so its late events are ignored. */
    _detachSocket() {
      const ws = this.ws;
      this.ws = null;
      this._established = false;
      this._stopHeartbeat();
      if (ws) {
        ws.onopen = ws.onmessage = ws.onerror = null;
        ws.onclose = null;
      }
      return ws;
    }

    /** @private */
    _handleOpen() {
      this._startHeartbeat();
    }

    /** @private */
    _handleClose(ev) {
      const code = typeof ev.code === 'number' ? ev.code : 1006;
      const reason = ev.reason || '';
      this._detachSocket();
      if (this._manualClose) return;
      const policy = closePolicy(code, {
        baseMs: this._opts.reconnectBaseMs,
        slowBaseMs: this._opts.reconnectSlowBaseMs,
      });
      if (!policy.retry) {
        const state = code === 1000 ? STATES.DISCONNECTED : STATES.FAILED;
        this._setState(state, { code, reason: reason || policy.reason });
        return;
      }
      if (this.reconnectAttempts >= this.maxReconnectAttempts) {
        this._setState(STATES.FAILED, { code, reason: 'Too many reconnect attempts' });
        return;
      }
      this._scheduleReconnect(code, reason || policy.reason, policy.baseMs);
    }

    /** @private */
    _scheduleReconnect(code, reason, baseMs) {
      const attempt = this.reconnectAttempts;
      const delayMs = computeBackoff(attempt, {
        baseMs,
        capMs: this._opts.reconnectCapMs,
        random: this._random,
      });
      this.reconnectAttempts = attempt + 1;
      const retryAt = this._timers.now() + delayMs;
      this.reconnectInfo = { attempt: attempt + 1, delayMs, retryAt, code, reason };
      this._retryTimer = this._timers.setTimeout(() => {
        this._retryTimer = null;
        this._openSocket();
      }, delayMs);
      this._setState(STATES.RECONNECTING, this.reconnectInfo);
    }

    /** @private */
    _clearRetryTimer() {
      if (this._retryTimer != null) this._timers.clearTimeout(this._retryTimer);
      this._retryTimer = null;
    }

    /** @private */
    _setState(state, info) {
      const previous = this.state;
      if (previous === state && state !== STATES.RECONNECTING) return;
      this.state = state;
      const detail = Object.assign({ previous }, info || {});
      this._emit('statechange', state, detail);
    }

    // -------------------------------------------------------- heartbeat

    /** @private */
    _startHeartbeat() {
      this._stopHeartbeat();
      this._pingTimer = this._timers.setInterval(() => this.ping(), this._opts.pingIntervalMs);
      this._armIdleTimer();
    }

    /** @private */
    _stopHeartbeat() {
      if (this._pingTimer != null) this._timers.clearInterval(this._pingTimer);
      if (this._idleTimer != null) this._timers.clearTimeout(this._idleTimer);
      this._pingTimer = null;
      this._idleTimer = null;
    }

    /** @private — (re)start the "nothing received" watchdog. */
    _armIdleTimer() {
      if (this._idleTimer != null) this._timers.clearTimeout(this._idleTimer);
      this._idleTimer = this._timers.setTimeout(() => this._onIdleTimeout(), this._opts.idleTimeoutMs);
    }

    /** @private — the server went silent: drop the socket and reconnect. */
    _onIdleTimeout() {
      this._idleTimer = null;
      const ws = this.ws;
      if (!ws) return;
      this._detachSocket();
      safeClose(ws, 4000, 'Heartbeat timeout');
      this._handleClose({ code: 1006, reason: 'Heartbeat timeout' });
    }

    // ---------------------------------------------------------- inbound

    /** @private */
    _handleRaw(raw) {
      this._armIdleTimer();
      let frame;
      try {
        frame = JSON.parse(raw);
      } catch (err) {
        this._emit('error', { code: 'INVALID_JSON', message: 'Unparseable frame from server' });
        return;
      }
      if (frame && typeof frame === 'object') this.handleMessage(frame);
    }

    /**
     * Dispatch one parsed server frame (seed: `handleMessage`).
     * @param {{type: string, data: any, timestamp?: string, room_id?: string}} frame
     */
    handleMessage(frame) {
      const data = frame.data || {};
      switch (frame.type) {
        case 'connection_status': return this._onConnectionStatus(data, frame);
        case 'message': return this._ingestMessage(data, false);
        case 'message_ack': return this._onAck(data, frame);
        case 'message_updated':
        case 'message_restored': return this._onMessagePatch(frame.type, data, frame);
        case 'user_joined': return this._onPresence(data, true, frame);
        case 'user_left': return this._onPresence(data, false, frame);
        case 'error': return this._onServerError(data, frame);
        default: return this._emit(frame.type, data, frame);
      }
    }

    /** @private */
    _onConnectionStatus(data, frame) {
      this.session = data;
      if (Array.isArray(data.online_users)) this.onlineUsers = data.online_users.slice();
      const first = !this._established && this.ws !== null;
      if (first) {
        this._established = true;
        this.reconnectAttempts = 0;
        this._setState(STATES.CONNECTED, { connectionId: data.connection_id });
      }
      this._emit('connection_status', data, frame);
      if (!first) return;
      this._catchUpAfterConnect(data);
      this._flushQueue();
      this._flushRead();
    }

    /** @private — replay covered only part of what we missed: page the rest over REST. */
    _catchUpAfterConnect(data) {
      const roomSeq = data.last_seq;
      if (typeof roomSeq !== 'number') return;
      if (this.lastSeq == null) {
        this.lastSeq = roomSeq;
        return;
      }
      if (roomSeq > this.lastSeq) this._startBackfill(roomSeq);
    }

    /** @private */
    _onPresence(data, joined, frame) {
      const id = data.user_id;
      if (id != null) {
        const rest = this.onlineUsers.filter((u) => u !== id);
        this.onlineUsers = joined ? rest.concat([id]) : rest;
      }
      this._emit(joined ? 'user_joined' : 'user_left', data, frame);
    }

    /**
     * @private
     * An error naming a queued message: drop it if the server refused it for
     * good, else send it again a little later.
     */
    _onServerError(data, frame) {
      const id = data.client_msg_id;
      if (id && RETRYABLE_ERRORS.indexOf(data.code) >= 0) this._retryEntryLater(id);
      else if (id) this._removeFromQueue(id);
      this._emit('error', data, frame);
    }

    /** @private */
    _retryEntryLater(clientMsgId) {
      const entry = this._queue.find((e) => e.client_msg_id === clientMsgId);
      if (!entry) return;
      entry.sentGeneration = 0;
      const delay = computeBackoff(1, { baseMs: this._opts.reconnectBaseMs, capMs: this._opts.reconnectCapMs, random: this._random });
      this._timers.setTimeout(() => { if (this.isConnected) this._flushQueue(); }, delay);
    }

    /** @private — edits of a message still waiting in the gap buffer are merged into it. */
    _onMessagePatch(type, data, frame) {
      for (const msg of this._buffer.values()) {
        if (msg.id === data.id) Object.assign(msg, data, type === 'message_restored' ? { is_deleted: false } : {});
      }
      this._emit(type, data, frame);
    }

    /** @private */
    _emit(type, a, b) {
      const name = type === 'statechange' ? 'onStateChange' : HANDLERS[type];
      const handler = name ? this[name] : null;
      if (typeof handler === 'function') this._safeCall(handler, [a, b]);
      this._emitTo(type, [a, b]);
    }

    // --------------------------------------------------------- ordering

    /**
     * @private
     * Deliver messages in seq order exactly once. A message beyond
     * `lastSeq + 1` waits in a buffer; if the gap does not close within
     * `gapFillDelayMs`, the missing range is fetched over REST.
     * @param {Object} msg
     * @param {boolean} authoritative from back-fill: any earlier gap is final
     */
    _ingestMessage(msg, authoritative) {
      if (!msg || (msg.id != null && this._seenIds.has(msg.id))) return;
      const seq = msg.seq;
      if (typeof seq !== 'number') return this._deliver(msg);
      if (this.lastSeq == null) this.lastSeq = seq - 1;
      if (seq <= this.lastSeq) return;
      if (seq === this.lastSeq + 1 || authoritative) {
        this._flushBufferBelow(seq);
        this._deliver(msg);
        this._drainBuffer();
        return;
      }
      this._buffer.set(seq, msg);
      this._bufferStamp += 1;
      this._scheduleGapFill();
    }

    /** @private */
    _deliver(msg) {
      if (typeof msg.seq === 'number' && (this.lastSeq == null || msg.seq > this.lastSeq)) {
        this.lastSeq = msg.seq;
      }
      this._buffer.delete(msg.seq);
      if (msg.id != null) this._remember(msg.id);
      this._emit('message', msg, { type: 'message', data: msg, room_id: msg.room_id });
    }

    /** @private — bounded memory of delivered ids. */
    _remember(id) {
      this._seenIds.add(id);
      if (this._seenIds.size > this._opts.seenIdsLimit) {
        this._seenIds.delete(this._seenIds.values().next().value);
      }
    }

    /** @private — deliver the buffered run that now continues `lastSeq`. */
    _drainBuffer() {
      for (const seq of Array.from(this._buffer.keys())) {
        if (seq <= this.lastSeq) this._buffer.delete(seq);
      }
      while (this._buffer.has(this.lastSeq + 1)) this._deliver(this._buffer.get(this.lastSeq + 1));
      if (this._buffer.size === 0) this._clearGapTimer();
    }

    /** @private — deliver, in order, every buffered message below `seq`. */
    _flushBufferBelow(seq) {
      const below = Array.from(this._buffer.keys()).filter((s) => s < seq).sort((a, b) => a - b);
      for (const s of below) {
        const msg = this._buffer.get(s);
        if (s > this.lastSeq && !(msg.id != null && this._seenIds.has(msg.id))) this._deliver(msg);
        else this._buffer.delete(s);
      }
    }

    /** @private */
    _scheduleGapFill() {
      if (this._gapTimer != null || this._backfilling) return;
      this._gapTimer = this._timers.setTimeout(() => {
        this._gapTimer = null;
        if (this._buffer.size) this._startBackfill(Math.max(...this._buffer.keys()));
      }, this._opts.gapFillDelayMs);
    }

    /** @private */
    _clearGapTimer() {
      if (this._gapTimer != null) this._timers.clearTimeout(this._gapTimer);
      this._gapTimer = null;
    }

    /**
     * @private
     * Page `GET /rooms/{id}/messages?after_seq=N&sort=created_at` until
     * caught up to `targetSeq`, delivering in order; then flush the buffer.
     * @param {number} targetSeq
     */
    _startBackfill(targetSeq) {
      this._backfillTarget = Math.max(this._backfillTarget, targetSeq);
      if (this._backfilling) return undefined;
      this._clearGapTimer();
      this._backfilling = true;
      const stamp = this._bufferStamp;
      return this._runBackfill().then(
        () => this._finishBackfill(true, null, stamp),
        (err) => this._finishBackfill(false, err, stamp),
      );
    }

    /** @private */
    async _runBackfill() {
      const size = this._opts.backfillPageSize;
      let after = this.lastSeq == null ? 0 : this.lastSeq;
      for (;;) {
        const page = await this.rest.getMessages(this.roomId, {
          afterSeq: after,
          limit: size,
          sort: 'created_at',
        });
        const items = (page && Array.isArray(page.data) ? page.data : [])
          .filter((m) => typeof m.seq === 'number')
          .sort((a, b) => a.seq - b.seq);
        for (const msg of items) this._ingestMessage(msg, true);
        const top = items.length ? items[items.length - 1].seq : after;
        const more = page && page.pagination && page.pagination.has_more;
        if (items.length < size && !more) return;
        if (top <= after) return; // no progress: stop rather than loop
        after = top;
      }
    }

    /** @private */
    _finishBackfill(ok, err, stamp) {
      this._backfilling = false;
      if (ok && this._buffer.size && stamp !== this._bufferStamp) {
        // Messages were buffered while the pages were in flight: their
        // predecessors may be newer than what we fetched, so look once more.
        this._startBackfill(this._backfillTarget);
        return;
      }
      if (!ok) {
        this._backfillFailures += 1;
        this._emit('error', { code: 'BACKFILL_FAILED', message: String(err && err.message) });
        if (this._backfillFailures <= this._opts.backfillMaxRetries) {
          const wait = computeBackoff(this._backfillFailures, { baseMs: 500, capMs: 8000, random: () => 1 });
          this._gapTimer = this._timers.setTimeout(() => {
            this._gapTimer = null;
            this._startBackfill(this._backfillTarget);
          }, wait);
          return;
        }
      }
      this._backfillFailures = 0;
      // The server's answer is final: a seq it did not return (deleted) is skipped.
      this._flushBufferBelow(Infinity);
      if (this._backfillTarget > (this.lastSeq || 0)) this.lastSeq = this._backfillTarget;
      this._backfillTarget = 0;
    }

    // --------------------------------------------------------- outbound

    /**
     * Send a raw client frame `{type, data}` (seed API).
     * @param {string} type
     * @param {Object} data
     * @returns {boolean} true when written to an open socket
     */
    send(type, data) {
      const ws = this.ws;
      if (!ws || ws.readyState !== WS_OPEN) {
        if (this._logger && this._logger.warn) this._logger.warn('ChatAPI: WebSocket not connected');
        return false;
      }
      ws.send(JSON.stringify({ type, data: data || {} }));
      return true;
    }

    /**
     * Send a chat message. It gets a `client_msg_id` and sits in the offline
     * queue until the server's `message_ack` for it arrives: sent now when
     * connected, otherwise (and again after every reconnect until acked) once
     * the connection is back. The server de-duplicates by `client_msg_id`.
     * @param {string} content
     * @param {{messageType?: string, meta?: Object, clientMsgId?: string}} [options]
     * @returns {string} the message's client_msg_id
     * @throws {TypeError|RangeError} empty or too long content
     */
    sendMessage(content, options) {
      const o = options || {};
      if (typeof content !== 'string' || content.trim() === '') {
        throw new TypeError('ChatAPI: message content must be a non-empty string');
      }
      if (codePointLength(content) > this._opts.maxContentLength) {
        throw new RangeError('ChatAPI: message content over ' + this._opts.maxContentLength + ' characters');
      }
      const clientMsgId = o.clientMsgId || uuid4();
      const data = { content, message_type: o.messageType || 'text', client_msg_id: clientMsgId };
      if (o.meta !== undefined) data.meta = o.meta;
      const entry = { client_msg_id: clientMsgId, data, sentGeneration: 0 };
      this._queue.push(entry);
      this.sendTyping(false);
      this._emitQueueChange();
      if (this.isConnected) this._sendEntry(entry);
      return clientMsgId;
    }

    /** Messages sent but not yet acknowledged: `[{client_msg_id, data}]` (copies). */
    get pendingMessages() {
      return this._queue.map((e) => ({ client_msg_id: e.client_msg_id, data: Object.assign({}, e.data) }));
    }

    /** @private */
    _sendEntry(entry) {
      if (this.send('message', entry.data)) entry.sentGeneration = this._generation;
    }

    /** @private — send each unacked message once per connection. */
    _flushQueue() {
      for (const entry of this._queue.slice()) {
        if (entry.sentGeneration !== this._generation) this._sendEntry(entry);
      }
    }

    /** @private */
    _onAck(data, frame) {
      this._removeFromQueue(data.client_msg_id);
      this._emit('message_ack', data, frame);
    }

    /** @private */
    _removeFromQueue(clientMsgId) {
      const before = this._queue.length;
      this._queue = this._queue.filter((e) => e.client_msg_id !== clientMsgId);
      if (this._queue.length !== before) this._emitQueueChange();
    }

    /** @private */
    _emitQueueChange() {
      this._emitTo('queuechange', [this.pendingMessages]);
    }

    /**
     * Tell the room you read up to `seq` (sent now, or once connected; never
     * goes backwards).
     * @param {number} seq
     */
    markRead(seq) {
      if (typeof seq !== 'number' || !(seq > this._sentRead)) return;
      this._pendingRead = Math.max(this._pendingRead || 0, seq);
      if (this.isConnected) this._flushRead();
    }

    /** @private */
    _flushRead() {
      const seq = this._pendingRead;
      if (seq == null || seq <= this._sentRead) return;
      if (this.send('mark_read', { seq })) {
        this._sentRead = seq;
        this._pendingRead = null;
      }
    }

    /**
     * Typing indicator, debounced as the seed advises: call
     * `sendTyping(true)` on every keystroke; at most one `typing:true` goes
     * out per `typingThrottleMs`, and `typing:false` follows after
     * `typingIdleMs` without a keystroke, on `sendTyping(false)` or when a
     * message is sent.
     * @param {boolean} [isTyping=true]
     */
    sendTyping(isTyping) {
      if (isTyping === false) return this._stopTyping();
      const now = this._timers.now();
      if (!this._typing || now - this._typingSentAt >= this._opts.typingThrottleMs) {
        if (this.send('typing', { is_typing: true })) this._typingSentAt = now;
      }
      this._typing = true;
      this._stopTypingTimer();
      this._typingTimer = this._timers.setTimeout(() => {
        this._typingTimer = null;
        this._stopTyping();
      }, this._opts.typingIdleMs);
      return undefined;
    }

    /** @private */
    _stopTyping() {
      this._stopTypingTimer();
      if (!this._typing) return;
      this._typing = false;
      this._typingSentAt = 0;
      this.send('typing', { is_typing: false });
    }

    /** @private */
    _stopTypingTimer() {
      if (this._typingTimer != null) this._timers.clearTimeout(this._typingTimer);
      this._typingTimer = null;
    }

    /** Ask for the online users; the answer is a `connection_status` frame (seed). */
    getOnlineUsers() { return this.send('get_online_users', {}); }

    /** Heartbeat; the answer is a `pong` frame (seed). */
    ping() { return this.send('ping', {}); }

    // ------------------------------------------- default handlers (seed)

    /** Called for each `message`, in seq order, once. @param {Object} data */
    onNewMessage(data) {} // eslint-disable-line no-unused-vars
    /** @param {{id: string, content: string, meta?: Object, edited_at: string, edit_reason?: string}} data */
    onMessageUpdated(data) {} // eslint-disable-line no-unused-vars
    /** @param {{id: string, deleted_by: string, deleted_at: string}} data */
    onMessageDeleted(data) {} // eslint-disable-line no-unused-vars
    /** @param {{id: string, content: string}} data */
    onMessageRestored(data) {} // eslint-disable-line no-unused-vars
    /** @param {{user_id: string, user_name: string, joined_at: string, meta?: Object}} data */
    onUserJoined(data) {} // eslint-disable-line no-unused-vars
    /** @param {{user_id: string, user_name: string, left_at: string}} data */
    onUserLeft(data) {} // eslint-disable-line no-unused-vars
    /** @param {{user_id: string, user_name: string, is_typing: boolean}} data */
    onTyping(data) {} // eslint-disable-line no-unused-vars
    /** @param {{id: string, title: string, content: string, action_url?: string, priority?: string, icon?: string}} data */
    onNotification(data) {} // eslint-disable-line no-unused-vars
    /** First frame of every connection, and the reply to `getOnlineUsers()`. @param {Object} data */
    onConnectionStatus(data) {} // eslint-disable-line no-unused-vars
    /** @param {{server_time: string}} data */
    onPong(data) {} // eslint-disable-line no-unused-vars
    /** @param {{user_id: string, seq: number, read_at: string}} data */
    onReadReceipt(data) {} // eslint-disable-line no-unused-vars
    /** @param {{client_msg_id: string, id: string, seq: number, created_at: string}} data */
    onMessageAck(data) {} // eslint-disable-line no-unused-vars
    /** Server `error` frames and client-side failures. @param {{code: string, message: string}} data */
    onError(data) {} // eslint-disable-line no-unused-vars
    /**
     * @param {string} state one of STATES
     * @param {{previous: string, code?: number, reason?: string, attempt?: number, delayMs?: number, retryAt?: number}} info
     */
    onStateChange(state, info) {} // eslint-disable-line no-unused-vars
  }

  function safeClose(ws, code, reason) {
    try {
      ws.close(code, reason);
    } catch (err) {
      try { ws.close(); } catch (err2) { /* already closed */ }
    }
  }

  return {
    VERSION,
    STATES,
    DEFAULTS,
    FATAL_CLOSE_CODES,
    SLOW_RETRY_CODES,
    RETRYABLE_ERRORS,
    ChatAPIWebSocket,
    ChatAPIRest,
    ChatAPIError,
    computeBackoff,
    closePolicy,
    resolveBaseUrl,
    toWsUrl,
    uuid4,
  };
});
