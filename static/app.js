/*
 * ChatAPI demo page. Open `/?room=<id>&token=<key-or-jwt>`.
 *
 * Every piece of user-supplied text (names, room names, message content,
 * notifications) goes into the DOM through textContent / text nodes only:
 * the server stores content verbatim, so HTML in it must stay text.
 */
(function () {
  'use strict';

  const { ChatAPIWebSocket, ChatAPIRest, uuid4 } = window.ChatAPI;
  const PAGE_SIZE = 50;
  const GROUP_GAP_MS = 5 * 60 * 1000;
  const TYPING_TTL_MS = 7000;
  const LS = { name: 'chatapi:name', userId: 'chatapi:user_id' };

  const $ = (id) => document.getElementById(id);
  const params = new URLSearchParams(location.search);

  /** Everything the page knows, in one place. */
  const state = {
    token: params.get('token') || '',
    roomId: params.get('room') || '',
    me: { id: null, name: null, fromToken: false },
    rest: null,
    client: null,
    room: null,
    messages: new Map(), // id → message
    elements: new Map(), // id → element
    pending: new Map(), // client_msg_id → element
    names: new Map(), // user_id → display name
    reads: new Map(), // user_id → last read seq
    typing: new Map(), // user_id → {name, timer}
    oldestSeq: null,
    hasMoreHistory: true,
    loadingHistory: false,
    unread: 0,
  };
  window.chatApp = state; // handy in the console and for browser tests

  // ------------------------------------------------------------ DOM helpers

  /**
   * Create an element. Children that are strings become text nodes, so user
   * text can never be parsed as HTML.
   */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v == null || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k === 'text') el.textContent = v;
      else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children.flat()) {
      if (c == null || c === false) continue;
      el.append(typeof c === 'string' ? document.createTextNode(c) : c);
    }
    return el;
  }

  function hueOf(s) {
    let x = 0;
    for (const ch of String(s)) x = (x * 31 + ch.codePointAt(0)) >>> 0;
    return x % 360;
  }

  function initials(name) {
    const parts = String(name || '?').trim().split(/\s+/).filter(Boolean);
    const letters = parts.length > 1 ? [parts[0], parts[parts.length - 1]] : [parts[0] || '?'];
    return letters.map((p) => Array.from(p)[0]).join('').toUpperCase();
  }

  function avatar(userId, name) {
    const el = h('div', { class: 'avatar', 'aria-hidden': 'true' }, initials(name));
    el.style.setProperty('--hue', String(hueOf(userId || name)));
    return el;
  }

  function nameOf(userId) {
    if (userId === state.me.id) return state.me.name || userId;
    return state.names.get(userId) || userId;
  }

  function rememberName(userId, name) {
    if (userId && name) state.names.set(userId, name);
  }

  /** Message text with http(s) links made clickable — still text nodes only. */
  function renderText(container, text) {
    container.textContent = '';
    const re = /\bhttps?:\/\/[^\s<>"']+[^\s<>"'.,;:!?)\]]/g;
    let last = 0;
    for (const m of text.matchAll(re)) {
      if (m.index > last) container.append(text.slice(last, m.index));
      container.append(h('a', { href: m[0], target: '_blank', rel: 'noopener noreferrer nofollow' }, m[0]));
      last = m.index + m[0].length;
    }
    if (last < text.length) container.append(text.slice(last));
  }

  function parseTime(s) {
    const t = Date.parse(s);
    return Number.isNaN(t) ? Date.now() : t;
  }

  function clock(t) {
    return new Date(t).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  }

  function dayLabel(t) {
    const d = new Date(t);
    const today = new Date();
    const yesterday = new Date(Date.now() - 864e5);
    if (d.toDateString() === today.toDateString()) return 'Today';
    if (d.toDateString() === yesterday.toDateString()) return 'Yesterday';
    return d.toLocaleDateString([], { weekday: 'short', month: 'short', day: 'numeric', year: 'numeric' });
  }

  function listNames(names) {
    if (names.length <= 1) return names.join('');
    if (names.length === 2) return names[0] + ' and ' + names[1];
    if (names.length === 3) return names[0] + ', ' + names[1] + ' and ' + names[2];
    return names[0] + ', ' + names[1] + ' and ' + (names.length - 2) + ' others';
  }

  // ----------------------------------------------------------------- toasts

  /**
   * Show a toast. `actionUrl` is only linked when it is http(s) or relative
   * to this page (never `javascript:`).
   */
  function toast({ title, body, priority, actionUrl, error, sticky }) {
    const el = h('div', { class: 'toast' + (error ? ' error' : '') + (priority ? ' priority-' + priority : ''), role: 'status' });
    const close = () => {
      el.classList.add('leaving');
      setTimeout(() => el.remove(), 220);
    };
    el.append(
      h('div', { class: 'toast-title' }, title || 'Notification'),
      h('button', { class: 'toast-close', type: 'button', 'aria-label': 'Dismiss', onclick: close }, '×'),
    );
    if (body) el.append(h('div', { class: 'toast-body' }, body));
    const href = safeUrl(actionUrl);
    if (href) el.append(h('a', { class: 'toast-action', href, rel: 'noopener noreferrer' }, 'Open'));
    $('toasts').append(el);
    while ($('toasts').children.length > 4) $('toasts').firstElementChild.remove();
    if (!sticky) setTimeout(close, priority === 'urgent' ? 15000 : 6000);
    return el;
  }

  function safeUrl(url) {
    if (!url) return null;
    try {
      const u = new URL(String(url), location.href);
      return u.protocol === 'http:' || u.protocol === 'https:' ? u.href : null;
    } catch (e) {
      return null;
    }
  }

  // --------------------------------------------------------------- identity

  /** Claims of a JWT user token, or null for an API key. */
  function jwtClaims(token) {
    const parts = token.split('.');
    if (parts.length !== 3) return null;
    try {
      const b64 = parts[1].replace(/-/g, '+').replace(/_/g, '/');
      const json = decodeURIComponent(Array.from(atob(b64), (c) => '%' + c.charCodeAt(0).toString(16).padStart(2, '0')).join(''));
      const claims = JSON.parse(json);
      return claims && typeof claims.sub === 'string' ? claims : null;
    } catch (e) {
      return null;
    }
  }

  function storedUserId() {
    let id = params.get('user_id') || localStorage.getItem(LS.userId);
    if (!id) {
      id = 'user-' + uuid4().slice(0, 8);
      localStorage.setItem(LS.userId, id);
    }
    return id;
  }

  /** Resolve who we are: from a user token, or a remembered/prompted name with an API key. */
  async function resolveIdentity() {
    const claims = jwtClaims(state.token);
    if (claims) {
      state.me = { id: claims.sub, name: claims.name || claims.sub, fromToken: true };
      return;
    }
    const name = params.get('name') || localStorage.getItem(LS.name) || (await askName(''));
    localStorage.setItem(LS.name, name);
    state.me = { id: storedUserId(), name, fromToken: false };
  }

  function askName(current) {
    return new Promise((resolve) => {
      const dialog = $('name-dialog');
      const input = $('name-input');
      input.value = current;
      dialog.hidden = false;
      input.focus();
      $('name-form').onsubmit = (e) => {
        e.preventDefault();
        const name = input.value.trim();
        if (!name) return;
        dialog.hidden = true;
        resolve(name);
      };
    });
  }

  // ------------------------------------------------------------------ lobby

  function showLobby(error) {
    $('app').hidden = true;
    $('lobby').hidden = false;
    $('lobby-error').hidden = !error;
    $('lobby-error').textContent = error || '';
    if (!state.token) {
      $('token-form').hidden = false;
      $('room-picker').hidden = true;
      $('token-form').onsubmit = (e) => {
        e.preventDefault();
        const token = $('token-input').value.trim();
        if (token) location.search = '?' + new URLSearchParams({ token }).toString();
      };
      $('token-input').focus();
      return;
    }
    $('token-form').hidden = true;
    $('room-picker').hidden = false;
    loadRooms('');
    let timer = null;
    $('room-search').oninput = (e) => {
      clearTimeout(timer);
      timer = setTimeout(() => loadRooms(e.target.value.trim()), 250);
    };
  }

  async function loadRooms(search) {
    const rest = new ChatAPIRest({ token: state.token });
    try {
      const res = await rest.listRooms({ limit: 100, search, sort: 'name' });
      const rooms = res.data || [];
      $('room-list').replaceChildren(...rooms.map(roomItem));
      $('room-list-empty').hidden = rooms.length > 0;
    } catch (err) {
      const msg = err.status === 401 ? 'That key or token was not accepted.' : 'Could not load rooms: ' + err.message;
      $('lobby-error').textContent = msg;
      $('lobby-error').hidden = false;
      if (err.status === 401) {
        $('token-form').hidden = false;
        $('room-picker').hidden = true;
        state.token = '';
        showLobby(msg);
      }
    }
  }

  function roomItem(room) {
    const href = '?' + new URLSearchParams({ room: room.id, token: state.token }).toString();
    const sub = [
      room.description || '',
      room.participant_count != null ? room.participant_count + ' members' : '',
    ].filter(Boolean).join(' · ');
    return h('li', null, h('a', { href },
      h('span', { class: 'room-icon', 'aria-hidden': 'true' }, initials(room.name)),
      h('span', { class: 'room-text' },
        h('div', { class: 'room-name' }, room.name || 'Untitled room', room.is_private ? ' 🔒' : ''),
        h('div', { class: 'muted small' }, sub || 'No description')),
    ));
  }

  // ------------------------------------------------------------------- chat

  async function startChat() {
    state.rest = new ChatAPIRest({ token: state.token });
    let room;
    try {
      room = (await state.rest.getRoom(state.roomId)).data;
    } catch (err) {
      const why = err.status === 401 ? 'That key or token was not accepted.'
        : err.status === 404 ? 'Room not found.'
          : err.status === 403 ? 'You do not have access to that room.'
            : 'Could not open the room: ' + err.message;
      if (err.status === 401) state.token = '';
      showLobby(why);
      return;
    }
    await resolveIdentity();
    state.room = room;
    $('lobby').hidden = true;
    $('app').hidden = false;
    $('room-name').textContent = room.name || 'Room';
    document.title = (room.name || 'Room') + ' · ChatAPI';
    $('room-sub').textContent = room.description || (room.participant_count != null ? room.participant_count + ' members' : '');
    $('me-name').textContent = state.me.name;
    $('rename').hidden = state.me.fromToken;
    $('rooms-link').href = '?' + new URLSearchParams({ token: state.token }).toString();
    wireUi();
    loadParticipants();
    await loadInitialHistory();
    connect();
  }

  function connect() {
    const lastSeq = maxSeq();
    const client = new ChatAPIWebSocket(
      state.roomId,
      state.token,
      state.me.fromToken ? null : state.me.id,
      state.me.fromToken ? null : state.me.name,
      { lastSeq: lastSeq == null ? (state.room.last_seq || 0) : lastSeq },
    );
    state.client = client;
    client.onStateChange = renderStatus;
    client.onConnectionStatus = onConnectionStatus;
    client.onNewMessage = onMessage;
    client.onMessageAck = onAck;
    client.onMessageUpdated = onUpdated;
    client.onMessageDeleted = onDeleted;
    client.onMessageRestored = onRestored;
    client.onUserJoined = (d) => { rememberName(d.user_id, d.user_name); renderPeople(); };
    client.onUserLeft = (d) => { clearTyping(d.user_id); renderPeople(); };
    client.onTyping = onTyping;
    client.onReadReceipt = onReadReceipt;
    client.onNotification = (n) => toast({ title: n.title, body: n.content, priority: n.priority, actionUrl: n.action_url });
    client.onError = onClientError;
    client.on('queuechange', renderOfflineBanner);
    client.connect();
  }

  async function loadParticipants() {
    try {
      const res = await state.rest.getParticipants(state.roomId);
      for (const p of res.data || []) {
        rememberName(p.user_id, p.user_name);
        if (typeof p.last_read_seq === 'number') state.reads.set(p.user_id, p.last_read_seq);
      }
      renderPeople();
      renderSeen();
    } catch (e) {
      /* optional: names fall back to ids */
    }
  }

  // --------------------------------------------------------------- history

  async function loadInitialHistory() {
    await loadOlder(true);
    scrollToBottom();
    // Fill a tall screen.
    while (state.hasMoreHistory && $('scroller').scrollHeight <= $('scroller').clientHeight) {
      const before = state.oldestSeq;
      await loadOlder(false);
      if (state.oldestSeq === before) break;
    }
    scrollToBottom();
  }

  async function loadOlder(initial) {
    if (state.loadingHistory || !state.hasMoreHistory) return;
    state.loadingHistory = true;
    renderHistoryStatus();
    const scroller = $('scroller');
    const prevHeight = scroller.scrollHeight;
    const prevTop = scroller.scrollTop;
    try {
      const res = await state.rest.getMessages(state.roomId, {
        limit: PAGE_SIZE,
        beforeSeq: initial || state.oldestSeq == null ? undefined : state.oldestSeq,
      });
      const page = (res.data || []).filter((m) => typeof m.seq === 'number');
      for (const m of page) insertMessage(m);
      const more = res.pagination ? res.pagination.has_more : page.length === PAGE_SIZE;
      state.hasMoreHistory = Boolean(more) && page.length > 0;
      regroup();
      renderSeen();
      if (!initial) scroller.scrollTop = scroller.scrollHeight - prevHeight + prevTop;
    } catch (err) {
      toast({ title: 'Could not load history', body: err.message, error: true });
    } finally {
      state.loadingHistory = false;
      renderHistoryStatus();
    }
  }

  function renderHistoryStatus() {
    const el = $('history-status');
    if (state.loadingHistory) el.textContent = 'Loading earlier messages…';
    else if (!state.hasMoreHistory) el.textContent = state.messages.size ? 'Beginning of the conversation' : 'No messages yet. Say hello 👋';
    else el.textContent = '';
  }

  function maxSeq() {
    let max = null;
    for (const m of state.messages.values()) if (typeof m.seq === 'number' && (max == null || m.seq > max)) max = m.seq;
    return max;
  }

  // -------------------------------------------------------------- messages

  function messageElement(m) {
    const el = h('div', { class: 'msg', 'data-id': m.id });
    const content = h('div', { class: 'content' });
    const meta = h('div', { class: 'msg-meta' }, h('span', { class: 'sender' }), h('time'));
    const actions = h('div', { class: 'msg-actions' },
      h('button', { type: 'button', class: 'edit', onclick: () => startEdit(el) }, 'Edit'),
      h('button', { type: 'button', class: 'danger delete', onclick: (e) => confirmDelete(el, e.currentTarget) }, 'Delete'));
    el.append(
      h('div', { class: 'day-divider' }, h('span')),
      h('div', { class: 'msg-row' },
        avatar(m.sender_id, m.sender_name),
        h('div', { class: 'msg-body' },
          meta,
          h('div', { class: 'bubble' }, content),
          h('div', { class: 'msg-status' }),
          h('div', { class: 'msg-seen' }),
          actions)));
    fillMessage(el, m);
    return el;
  }

  /** Put a message's fields into its element (used again after edits). */
  function fillMessage(el, m) {
    const mine = m.sender_id === state.me.id;
    const t = parseTime(m.created_at);
    el.dataset.seq = m.seq != null ? String(m.seq) : '';
    el.dataset.sender = m.sender_id || '';
    el.dataset.time = String(t);
    el.classList.toggle('mine', mine);
    el.classList.toggle('deleted', Boolean(m.is_deleted));
    el.querySelector('.sender').textContent = m.sender_name || m.sender_id || 'Someone';
    const time = el.querySelector('time');
    time.textContent = clock(t);
    time.setAttribute('datetime', new Date(t).toISOString());
    el.querySelector('.day-divider span').textContent = dayLabel(t);
    const content = el.querySelector('.content');
    if (m.is_deleted) content.textContent = 'This message was deleted';
    else renderText(content, String(m.content == null ? '' : m.content));
    if (m.edited_at && !m.is_deleted) content.append(h('span', { class: 'edited-tag', title: m.edit_reason || '' }, '(edited)'));
    el.querySelector('.msg-actions').hidden = !mine || Boolean(m.is_deleted);
  }

  /** Insert or replace a stored message, keeping the list sorted by seq (pending ones last). */
  function insertMessage(m) {
    rememberName(m.sender_id, m.sender_name);
    const existing = state.elements.get(m.id);
    if (existing) {
      state.messages.set(m.id, Object.assign(state.messages.get(m.id) || {}, m));
      fillMessage(existing, state.messages.get(m.id));
      return existing;
    }
    let el = m.client_msg_id ? state.pending.get(m.client_msg_id) : null;
    if (el) {
      state.pending.delete(m.client_msg_id);
      el.classList.remove('pending');
      el.dataset.id = m.id;
      el.querySelector('.msg-status').textContent = '';
      fillMessage(el, m);
    } else {
      el = messageElement(m);
    }
    state.messages.set(m.id, m);
    state.elements.set(m.id, el);
    placeBySeq(el, m.seq);
    if (state.oldestSeq == null || m.seq < state.oldestSeq) state.oldestSeq = m.seq;
    return el;
  }

  function placeBySeq(el, seq) {
    const list = $('messages');
    let after = list.lastElementChild;
    while (after && (after === el || after.classList.contains('pending') || Number(after.dataset.seq) > seq)) {
      after = after.previousElementSibling;
    }
    if (after) after.after(el);
    else list.prepend(el);
  }

  /** Consecutive messages from one sender within 5 minutes share a header; days get a divider. */
  function regroup() {
    let prev = null;
    for (const el of $('messages').children) {
      const t = Number(el.dataset.time);
      const newDay = !prev || new Date(t).toDateString() !== new Date(Number(prev.dataset.time)).toDateString();
      const continued = Boolean(prev) && !newDay && prev.dataset.sender === el.dataset.sender &&
        t - Number(prev.dataset.time) < GROUP_GAP_MS;
      el.classList.toggle('new-day', newDay);
      el.classList.toggle('continued', continued);
      prev = el;
    }
  }

  function onMessage(m) {
    const stick = isNearBottom() || m.sender_id === state.me.id;
    clearTyping(m.sender_id);
    insertMessage(m);
    regroup();
    renderSeen();
    renderHistoryStatus();
    if (stick) scrollToBottom();
    else $('jump').hidden = false;
    if (document.visibilityState !== 'visible' && m.sender_id !== state.me.id) {
      state.unread += 1;
      renderTitle();
    }
    maybeMarkRead();
  }

  function onAck(ack) {
    const el = state.pending.get(ack.client_msg_id);
    if (el) el.querySelector('.msg-status').textContent = 'Sent';
  }

  function patch(id, fields) {
    const m = state.messages.get(id);
    const el = state.elements.get(id);
    if (!m || !el) return;
    Object.assign(m, fields);
    fillMessage(el, m);
  }

  function onUpdated(d) {
    patch(d.id, { content: d.content, meta: d.meta, edited_at: d.edited_at || new Date().toISOString(), edit_reason: d.edit_reason });
  }

  function onDeleted(d) {
    patch(d.id, { is_deleted: true, deleted_at: d.deleted_at, deleted_by: d.deleted_by });
  }

  function onRestored(d) {
    patch(d.id, Object.assign({}, d, { is_deleted: false }));
  }

  // --------------------------------------------------------------- sending

  function sendFromComposer() {
    const input = $('input');
    const text = input.value;
    if (!text.trim() || !state.client) return;
    let clientMsgId;
    try {
      clientMsgId = state.client.sendMessage(text);
    } catch (err) {
      toast({ title: 'Message not sent', body: err.message, error: true });
      return;
    }
    input.value = '';
    autoGrow();
    updateSendButton();
    addPending(clientMsgId, text);
  }

  function addPending(clientMsgId, text) {
    const el = messageElement({
      id: 'pending-' + clientMsgId,
      sender_id: state.me.id,
      sender_name: state.me.name,
      content: text,
      created_at: new Date().toISOString(),
    });
    el.classList.add('pending');
    el.dataset.clientMsgId = clientMsgId;
    el.querySelector('.msg-status').textContent = state.client.isConnected ? 'Sending…' : 'Queued — will send when back online';
    state.pending.set(clientMsgId, el);
    $('messages').append(el);
    regroup();
    scrollToBottom();
  }

  function startEdit(el) {
    const m = state.messages.get(el.dataset.id);
    if (!m || el.querySelector('.edit-box')) return;
    const bubble = el.querySelector('.bubble');
    const area = h('textarea', { 'aria-label': 'Edit message', maxlength: '10000' });
    area.value = m.content || '';
    const box = h('div', { class: 'edit-box' }, area, h('div', { class: 'hint' }, 'Enter to save · Esc to cancel'));
    bubble.hidden = true;
    bubble.after(box);
    area.focus();
    const finish = () => { box.remove(); bubble.hidden = false; };
    area.addEventListener('keydown', async (e) => {
      if (e.key === 'Escape') finish();
      if (e.key !== 'Enter' || e.shiftKey || e.isComposing) return;
      e.preventDefault();
      const content = area.value;
      if (!content.trim() || content === m.content) return finish();
      try {
        const res = await state.rest.editMessage(m.id, content);
        finish();
        if (res && res.data) patch(m.id, res.data);
      } catch (err) {
        toast({ title: 'Edit failed', body: err.message, error: true });
      }
    });
  }

  function confirmDelete(el, button) {
    if (!button.classList.contains('confirm')) {
      button.classList.add('confirm');
      button.textContent = 'Delete?';
      setTimeout(() => { button.classList.remove('confirm'); button.textContent = 'Delete'; }, 3000);
      return;
    }
    const id = el.dataset.id;
    state.rest.deleteMessage(id).then(
      () => patch(id, { is_deleted: true }),
      (err) => toast({ title: 'Delete failed', body: err.message, error: true }),
    );
  }

  // --------------------------------------------------- presence & receipts

  function onConnectionStatus(d) {
    if (d.user_id && !state.me.fromToken && d.user_id !== state.me.id) state.me.id = d.user_id;
    renderPeople();
    for (const el of state.pending.values()) el.querySelector('.msg-status').textContent = 'Sending…';
    maybeMarkRead();
  }

  function renderPeople() {
    const ids = state.client ? state.client.onlineUsers.slice() : [];
    if (state.me.id && state.client && state.client.isConnected && !ids.includes(state.me.id)) ids.push(state.me.id);
    ids.sort((a, b) => (a === state.me.id ? -1 : b === state.me.id ? 1 : nameOf(a).localeCompare(nameOf(b))));
    $('online-list').replaceChildren(...ids.map((id) => h('li', { 'data-user-id': id },
      avatar(id, nameOf(id)),
      h('span', { class: 'person-name' }, nameOf(id), id === state.me.id ? h('span', { class: 'you' }, ' (you)') : null),
      state.typing.has(id) ? h('span', { class: 'typing-now' }, 'typing…') : null)));
    if (!ids.length) $('online-list').append(h('li', { class: 'muted small' }, 'Nobody online right now'));
    $('online-count').textContent = String(ids.length);
    $('online-count-2').textContent = '· ' + ids.length;
  }

  function onTyping(d) {
    if (d.user_id === state.me.id) return;
    rememberName(d.user_id, d.user_name);
    if (d.is_typing) {
      clearTimeout(state.typing.has(d.user_id) ? state.typing.get(d.user_id).timer : null);
      const timer = setTimeout(() => clearTyping(d.user_id), TYPING_TTL_MS);
      state.typing.set(d.user_id, { name: d.user_name || nameOf(d.user_id), timer });
    } else {
      clearTyping(d.user_id, true);
    }
    renderTyping();
  }

  function clearTyping(userId, silent) {
    const t = state.typing.get(userId);
    if (!t) return;
    clearTimeout(t.timer);
    state.typing.delete(userId);
    if (!silent) renderTyping();
  }

  function renderTyping() {
    const names = Array.from(state.typing.values(), (t) => t.name);
    const el = $('typing');
    el.textContent = '';
    if (names.length) {
      el.append(h('span', { class: 'dots', 'aria-hidden': 'true' }, h('i'), h('i'), h('i')),
        h('span', null, listNames(names) + (names.length === 1 ? ' is typing…' : ' are typing…')));
    }
    renderPeople();
  }

  function onReadReceipt(d) {
    if (typeof d.seq !== 'number') return;
    state.reads.set(d.user_id, Math.max(state.reads.get(d.user_id) || 0, d.seq));
    renderSeen();
  }

  /** "Seen by …" under the newest message: readers other than me and its sender. */
  function renderSeen() {
    for (const el of $('messages').querySelectorAll('.msg-seen')) el.textContent = '';
    const last = Array.from($('messages').children).reverse().find((el) => el.dataset.seq);
    if (!last) return;
    const seq = Number(last.dataset.seq);
    const readers = [];
    for (const [userId, readSeq] of state.reads) {
      if (readSeq >= seq && userId !== state.me.id && userId !== last.dataset.sender) readers.push(nameOf(userId));
    }
    const seen = last.querySelector('.msg-seen');
    if (readers.length) seen.textContent = 'Seen by ' + listNames(readers.sort());
    else if (last.dataset.sender === state.me.id) seen.textContent = 'Delivered';
  }

  function maybeMarkRead() {
    if (!state.client || document.visibilityState !== 'visible' || !isNearBottom()) return;
    const seq = maxSeq();
    if (seq != null) state.client.markRead(seq);
    state.unread = 0;
    renderTitle();
  }

  function renderTitle() {
    const base = (state.room && state.room.name ? state.room.name : 'Room') + ' · ChatAPI';
    document.title = state.unread ? '(' + state.unread + ') ' + base : base;
  }

  // ------------------------------------------------------------ connection

  let countdownTimer = null;

  const FAILURES = {
    4001: 'Not authorized — check the key or token',
    4002: 'Room not found',
    4003: 'Access to this room was denied',
  };

  function renderStatus(s, info) {
    const status = $('status');
    status.dataset.state = s;
    clearInterval(countdownTimer);
    countdownTimer = null;
    const retry = $('status-retry');
    retry.hidden = !(s === 'reconnecting' || s === 'failed');
    retry.textContent = s === 'failed' ? 'Retry' : 'Retry now';
    if (s === 'reconnecting') {
      const tick = () => {
        $('status-text').textContent = reconnectText();
        renderOfflineBanner();
      };
      tick();
      countdownTimer = setInterval(tick, 250);
    } else {
      const text = {
        connecting: 'Connecting…',
        connected: 'Connected',
        disconnected: 'Offline',
        failed: FAILURES[info && info.code] || 'Disconnected',
      }[s];
      $('status-text').textContent = text;
    }
    if (s !== 'connected') {
      for (const el of state.pending.values()) el.querySelector('.msg-status').textContent = 'Queued — will send when back online';
    }
    renderOfflineBanner();
    renderPeople();
  }

  function reconnectText() {
    const r = state.client && state.client.reconnectInfo;
    const secs = r ? Math.max(0, Math.ceil((r.retryAt - Date.now()) / 1000)) : 0;
    return secs > 0 ? 'Reconnecting in ' + secs + 's' : 'Reconnecting…';
  }

  /** The banner under the header while not connected: why, countdown, queue size, retry. */
  function renderOfflineBanner() {
    const client = state.client;
    const banner = $('offline-banner');
    const firstConnect = client && client.state === 'connecting' && !client.session;
    if (!client || client.isConnected || firstConnect || client.state === 'disconnected') {
      banner.hidden = true;
      return;
    }
    const queued = client.pendingMessages.length;
    const queueText = queued ? queued + (queued === 1 ? ' message' : ' messages') + ' queued.' : 'Messages you send will be queued.';
    const failed = client.state === 'failed';
    banner.hidden = false;
    banner.classList.toggle('failed', failed);
    $('banner-text').textContent = failed
      ? $('status-text').textContent + '. ' + (queued ? queueText : '')
      : 'Connection lost — ' + (client.state === 'reconnecting' ? reconnectText().toLowerCase() : 'connecting…') + '. ' + queueText;
    $('banner-retry').textContent = failed ? 'Retry' : 'Retry now';
    $('banner-retry').hidden = client.state === 'connecting';
  }

  function onClientError(e) {
    if (!e || e.code === 'SOCKET_ERROR') return;
    const el = e.client_msg_id ? state.pending.get(e.client_msg_id) : null;
    if (el && !state.client.pendingMessages.some((p) => p.client_msg_id === e.client_msg_id)) {
      el.classList.add('failed');
      el.querySelector('.msg-status').textContent = 'Not sent: ' + (e.message || e.code);
      state.pending.delete(e.client_msg_id);
    }
    toast({ title: 'Error', body: (e.code ? e.code + ': ' : '') + (e.message || ''), error: true });
  }

  // -------------------------------------------------------------- UI glue

  function isNearBottom() {
    const s = $('scroller');
    return s.scrollHeight - s.scrollTop - s.clientHeight < 120;
  }

  function scrollToBottom() {
    const s = $('scroller');
    s.scrollTop = s.scrollHeight;
    $('jump').hidden = true;
  }

  function autoGrow() {
    const input = $('input');
    input.style.height = 'auto';
    input.style.height = Math.min(input.scrollHeight, 160) + 'px';
  }

  function updateSendButton() {
    $('send').disabled = !$('input').value.trim();
  }

  function setSidebar(open) {
    $('sidebar').classList.toggle('open', open);
    $('people-toggle').setAttribute('aria-expanded', String(open));
  }

  function wireUi() {
    const input = $('input');
    $('composer').addEventListener('submit', (e) => {
      e.preventDefault();
      sendFromComposer();
      input.focus();
    });
    input.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        sendFromComposer();
      }
    });
    input.addEventListener('input', () => {
      autoGrow();
      updateSendButton();
      if (state.client && input.value.trim()) state.client.sendTyping(true);
      else if (state.client) state.client.sendTyping(false);
    });
    $('scroller').addEventListener('scroll', () => {
      if ($('scroller').scrollTop < 150) loadOlder(false);
      if (isNearBottom()) {
        $('jump').hidden = true;
        maybeMarkRead();
      }
    }, { passive: true });
    $('jump').addEventListener('click', () => { scrollToBottom(); maybeMarkRead(); });
    const retry = () => {
      if (state.client.state === 'failed') state.client.connect();
      else state.client.reconnectNow();
    };
    $('status-retry').addEventListener('click', retry);
    $('banner-retry').addEventListener('click', retry);
    $('people-toggle').addEventListener('click', () => setSidebar(!$('sidebar').classList.contains('open')));
    $('people-close').addEventListener('click', () => setSidebar(false));
    $('scroller').addEventListener('click', () => setSidebar(false));
    $('rename').addEventListener('click', async () => {
      const name = await askName(state.me.name);
      localStorage.setItem(LS.name, name);
      state.me.name = name;
      $('me-name').textContent = name;
      state.client.disconnect();
      state.client.userName = name;
      state.client.connect();
    });
    document.addEventListener('visibilitychange', maybeMarkRead);
  }

  // ------------------------------------------------------------------ boot

  if (!state.token || !state.roomId) showLobby('');
  else startChat();
})();
