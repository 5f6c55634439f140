'use strict';
// A minimal RFC 6455 client for the load generator: one net.Socket, no stream machinery.
// In a 1,000-subscriber fan-out every delivery is its own socket read, so the per-read cost
// of the client decides how much the load generator can receive; the `ws` package spends
// ~10 µs per read here, this ~2-3 µs. It does exactly what a benchmark client needs: the
// upgrade handshake (offering permessage-deflate the way browsers do, and refusing to go on
// if the server accepts it, since frames would then be compressed), unmasked server frames
// (text, binary, continuation, ping → pong, close), masked client text frames.

const net = require('net');
const crypto = require('crypto');

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
// Every socket reads into this one buffer (`onread`: no stream machinery, no allocation per
// read). Handlers get views into it and must use them synchronously; leftovers are copied.
const SHARED = Buffer.allocUnsafe(256 * 1024);

class RawWs {
  // handlers: {open(), text(buf), close(code)}; `text` gets the payload as a Buffer view.
  constructor(host, port, path, handlers, opts = {}) {
    const { offerDeflate = true, allowExtensions = false, timeoutMs = 20000 } = opts;
    this.h = handlers;
    this.allowExtensions = allowExtensions;
    this.extensions = null;
    this.open = false;
    this.closed = false;
    this.pending = null; // unparsed bytes
    this.frags = null; // fragments of a message in progress
    this.key = crypto.randomBytes(16).toString('base64');
    this.sock = net.connect({
      host,
      port,
      onread: {
        buffer: SHARED,
        callback: (n, buf) => {
          const chunk = buf.subarray(0, n);
          if (this.open) this.onFrames(chunk);
          else this.onHandshake(chunk);
        },
      },
    });
    this.sock.setNoDelay(true);
    this.timer = setTimeout(() => this.fail(new Error('handshake timeout')), timeoutMs);
    const ext = offerDeflate
      ? 'Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n'
      : '';
    this.sock.on('connect', () => {
      this.sock.write(
        `GET ${path} HTTP/1.1\r\nHost: ${host}:${port}\r\nUpgrade: websocket\r\n` +
          `Connection: Upgrade\r\nSec-WebSocket-Key: ${this.key}\r\n` +
          `Sec-WebSocket-Version: 13\r\n${ext}\r\n`,
      );
    });
    this.sock.on('error', (e) => this.fail(e));
    this.sock.on('close', () => this.finish(this.closeCode || 1006));
  }

  onHandshake(chunk) {
    const buf = this.pending ? Buffer.concat([this.pending, chunk]) : chunk;
    const end = buf.indexOf('\r\n\r\n');
    if (end < 0) {
      this.pending = Buffer.from(buf);
      return;
    }
    this.pending = null;
    const head = buf.toString('latin1', 0, end);
    const lines = head.split('\r\n');
    if (!/^HTTP\/1\.1 101/.test(lines[0])) return this.fail(new Error(`upgrade refused: ${lines[0]}`));
    const headers = {};
    for (const line of lines.slice(1)) {
      const i = line.indexOf(':');
      headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
    }
    const accept = crypto.createHash('sha1').update(this.key + GUID).digest('base64');
    if (headers['sec-websocket-accept'] !== accept) return this.fail(new Error('bad Sec-WebSocket-Accept'));
    this.extensions = headers['sec-websocket-extensions'] || null;
    if (this.extensions && !this.allowExtensions) {
      return this.fail(new Error(`server accepted an extension: ${headers['sec-websocket-extensions']}`));
    }
    clearTimeout(this.timer);
    this.open = true;
    this.h.open();
    if (buf.length > end + 4) this.onFrames(buf.subarray(end + 4));
  }

  onFrames(chunk) {
    let buf = chunk;
    if (this.pending) {
      buf = Buffer.concat([this.pending, chunk]);
      this.pending = null;
    }
    let off = 0;
    const n = buf.length;
    while (n - off >= 2) {
      const b0 = buf[off];
      let len = buf[off + 1] & 0x7f;
      let hdr = 2;
      if (len === 126) {
        if (n - off < 4) break;
        len = buf.readUInt16BE(off + 2);
        hdr = 4;
      } else if (len === 127) {
        if (n - off < 10) break;
        len = buf.readUInt32BE(off + 2) * 4294967296 + buf.readUInt32BE(off + 6);
        hdr = 10;
      }
      if (n - off < hdr + len) break;
      this.onFrame(b0, buf.subarray(off + hdr, off + hdr + len));
      off += hdr + len;
      if (this.closed) return;
    }
    if (off < n) this.pending = Buffer.from(buf.subarray(off));
  }

  onFrame(b0, payload) {
    const op = b0 & 0x0f;
    const fin = (b0 & 0x80) !== 0;
    if (op === 1 || op === 2 || op === 0) {
      if (fin && !this.frags) return this.h.text(payload);
      (this.frags ||= []).push(Buffer.from(payload));
      if (fin) {
        const whole = Buffer.concat(this.frags);
        this.frags = null;
        this.h.text(whole);
      }
    } else if (op === 9) {
      this.sendFrame(0x8a, payload);
    } else if (op === 8) {
      this.closeCode = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
      if (!this.closeSent) this.sendFrame(0x88, payload.subarray(0, 2));
      this.sock.end();
      this.finish(this.closeCode);
    }
  }

  sendFrame(b0, payload) {
    if (this.closed || this.sock.destroyed) return;
    const len = payload.length;
    const hdr = len < 126 ? 2 : len < 65536 ? 4 : 10;
    const frame = Buffer.allocUnsafe(hdr + 4 + len);
    frame[0] = b0;
    if (hdr === 2) frame[1] = 0x80 | len;
    else if (hdr === 4) {
      frame[1] = 0x80 | 126;
      frame.writeUInt16BE(len, 2);
    } else {
      frame[1] = 0x80 | 127;
      frame.writeUInt32BE(0, 2);
      frame.writeUInt32BE(len, 6);
    }
    const mask = crypto.randomBytes(4);
    mask.copy(frame, hdr);
    for (let i = 0; i < len; i++) frame[hdr + 4 + i] = payload[i] ^ mask[i & 3];
    this.sock.write(frame);
  }

  send(text) {
    this.sendFrame(0x81, Buffer.from(text));
  }

  close(code = 1000) {
    if (this.closed) return;
    const p = Buffer.alloc(2);
    p.writeUInt16BE(code, 0);
    this.sendFrame(0x88, p);
    this.closeSent = true;
    this.sock.end();
  }

  terminate() {
    this.sock.destroy();
  }

  fail(err) {
    if (this.closed) return;
    this.error = err;
    this.sock.destroy();
    this.finish(1006);
  }

  finish(code) {
    if (this.closed) return;
    this.closed = true;
    this.open = false;
    clearTimeout(this.timer);
    this.h.close(code, this.error);
  }
}

// A minimal Socket.IO (protocol 5, Engine.IO 4) client over RawWs, WebSocket transport only:
// open → CONNECT with auth → events, acks, and pong for the server's pings. Event packets
// are handed over raw (`42["name",…]` as a Buffer view) so the load generator can look for
// its marker without decoding JSON; `socket.io-client` remains available for cross-checks.
class SioLite {
  // handlers: {connect(), event(buf), error(data), close(reason)}
  constructor(host, port, auth, handlers, opts = {}) {
    this.h = handlers;
    this.auth = auth;
    this.acks = new Map();
    this.nextAck = 1;
    this.connected = false;
    // Offers no permessage-deflate (python-socketio would accept it, and frames would
    // then arrive compressed); `probeDeflate` in loadgen.js reports what servers do.
    this.ws = new RawWs(host, port, '/socket.io/?EIO=4&transport=websocket', {
      open: () => {},
      text: (buf) => this.onPacket(buf),
      close: (code, err) => {
        this.connected = false;
        this.h.close(err ? err.message : `transport close ${code}`);
      },
    }, { offerDeflate: false, ...opts });
  }

  onPacket(buf) {
    const t = buf[0];
    if (t === 52) { // '4' message → a Socket.IO packet
      const s = buf[1];
      if (s === 50) return this.h.event(buf); // '2' EVENT
      if (s === 51) return this.onAck(buf); // '3' ACK
      if (s === 48) { // '0' CONNECT
        this.connected = true;
        return this.h.connect();
      }
      if (s === 52) { // '4' CONNECT_ERROR
        this.h.error(JSON.parse(buf.subarray(2)));
        return this.ws.close();
      }
      if (s === 49) return this.ws.close(); // '1' DISCONNECT
    } else if (t === 50) { // '2' ping → '3' pong
      this.ws.send('3');
    } else if (t === 48) { // '0' open → CONNECT to "/" with auth
      this.ws.send('40' + JSON.stringify(this.auth));
    } else if (t === 49) { // '1' close
      this.ws.close();
    }
  }

  onAck(buf) {
    let i = 2;
    let id = 0;
    while (buf[i] >= 48 && buf[i] <= 57) id = id * 10 + (buf[i++] - 48);
    const cb = this.acks.get(id);
    this.acks.delete(id);
    if (cb) cb(...JSON.parse(buf.subarray(i)));
  }

  emit(name, data, ack) {
    let id = '';
    if (ack) {
      id = this.nextAck++;
      this.acks.set(id, ack);
    }
    this.ws.send(`42${id}${JSON.stringify([name, data])}`);
  }

  close() {
    this.ws.close();
  }
}

module.exports = { RawWs, SioLite };
