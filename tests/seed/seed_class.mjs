// The seed's ChatAPIWebSocket class (seed/websockets.md, "Basic Connection"), verbatim except
// the base URL's port. Everything outside the marked block is harness code.
// Run: PORT=… ROOM_ID=… API_KEY=… node --experimental-websocket seed_class.mjs
const PORT = process.env.PORT;
const { ROOM_ID, API_KEY } = process.env;
const API = `http://localhost:${PORT}/api/v1`;

// ---- seed: begin (verbatim) ---------------------------------------------------------------
class ChatAPIWebSocket {
	constructor(roomId, apiKey, userId = null, userName = null) {
		this.roomId = roomId;
		this.apiKey = apiKey;
		this.userId = userId;
		this.userName = userName;
		this.ws = null;
		this.reconnectAttempts = 0;
		this.maxReconnectAttempts = 5;
		this.reconnectDelay = 1000;
	}

	connect() {
		const params = new URLSearchParams({
			token: this.apiKey,
			...(this.userId && { user_id: this.userId }),
			...(this.userName && { user_name: this.userName }),
		});

		const wsUrl = `ws://localhost:${PORT}/ws/${this.roomId}?${params}`;
		this.ws = new WebSocket(wsUrl);

		this.ws.onopen = this.onOpen.bind(this);
		this.ws.onmessage = this.onMessage.bind(this);
		this.ws.onclose = this.onClose.bind(this);
		this.ws.onerror = this.onError.bind(this);
	}

	onOpen(event) {
		console.log("Connected to ChatAPI WebSocket");
		this.reconnectAttempts = 0;

		// Request current online users
		this.send("get_online_users", {});
	}

	onMessage(event) {
		try {
			const message = JSON.parse(event.data);
			this.handleMessage(message);
		} catch (error) {
			console.error("Failed to parse WebSocket message:", error);
		}
	}

	onClose(event) {
		console.log("WebSocket connection closed:", event.code, event.reason);

		if (
			event.code !== 1000 &&
			this.reconnectAttempts < this.maxReconnectAttempts
		) {
			this.reconnect();
		}
	}

	onError(event) {
		console.error("WebSocket error:", event);
	}

	handleMessage(message) {
		switch (message.type) {
			case "message":
				this.onNewMessage(message.data);
				break;
			case "message_updated":
				this.onMessageUpdated(message.data);
				break;
			case "message_deleted":
				this.onMessageDeleted(message.data);
				break;
			case "user_joined":
				this.onUserJoined(message.data);
				break;
			case "user_left":
				this.onUserLeft(message.data);
				break;
			case "typing":
				this.onTyping(message.data);
				break;
			case "notification":
				this.onNotification(message.data);
				break;
			case "connection_status":
				this.onConnectionStatus(message.data);
				break;
			case "pong":
				this.onPong(message.data);
				break;
			default:
				console.log("Unknown message type:", message.type);
		}
	}

	send(type, data) {
		if (this.ws && this.ws.readyState === WebSocket.OPEN) {
			this.ws.send(JSON.stringify({ type, data }));
		} else {
			console.warn("WebSocket not connected");
		}
	}

	sendTyping(isTyping) {
		this.send("typing", { is_typing: isTyping });
	}

	getOnlineUsers() {
		this.send("get_online_users", {});
	}

	ping() {
		this.send("ping", {});
	}

	reconnect() {
		this.reconnectAttempts++;
		const delay = this.reconnectDelay * Math.pow(2, this.reconnectAttempts - 1);

		console.log(
			`Reconnecting in ${delay}ms (attempt ${this.reconnectAttempts})`
		);

		setTimeout(() => {
			this.connect();
		}, delay);
	}

	disconnect() {
		if (this.ws) {
			this.ws.close(1000, "Client disconnect");
		}
	}

	// Event handlers (override these in your implementation)
	onNewMessage(data) {
		console.log("New message:", data);
	}

	onMessageUpdated(data) {
		console.log("Message updated:", data);
	}

	onMessageDeleted(data) {
		console.log("Message deleted:", data);
	}

	onUserJoined(data) {
		console.log("User joined:", data);
	}

	onUserLeft(data) {
		console.log("User left:", data);
	}

	onTyping(data) {
		console.log("Typing indicator:", data);
	}

	onNotification(data) {
		console.log("Notification:", data);
	}

	onConnectionStatus(data) {
		console.log("Connection status:", data);
	}

	onPong(data) {
		console.log("Pong received");
	}
}
// ---- seed: end ------------------------------------------------------------------------------

const quiet = console.log;
console.log = () => {}; // the class logs a lot; stdout carries only the result line

function recorder(chat, name) {
  const seen = [];
  const kinds = ["onNewMessage", "onMessageUpdated", "onMessageDeleted", "onUserJoined",
    "onUserLeft", "onTyping", "onNotification", "onConnectionStatus", "onPong"];
  for (const kind of kinds) chat[kind] = (data) => seen.push({ kind, data, who: name });
  return seen;
}

function until(seen, kind, test = () => true, ms = 5000) {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const poll = () => {
      const hit = seen.find((e) => e.kind === kind && test(e.data));
      if (hit) return resolve(hit.data);
      if (Date.now() - started > ms) return reject(new Error(`no ${kind} within ${ms}ms`));
      setTimeout(poll, 10);
    };
    poll();
  });
}

async function rest(method, path, body) {
  const resp = await fetch(API + path, {
    method, headers: { "Content-Type": "application/json", "X-API-Key": API_KEY },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: resp.status, body: await resp.json() };
}

const result = {};
const timer = setTimeout(() => { quiet(JSON.stringify({ error: "harness timeout", result })); process.exit(1); }, 20000);
try {
  const chat = new ChatAPIWebSocket(ROOM_ID, API_KEY, "user_123", "John Doe");
  const a = recorder(chat, "john");
  chat.connect();
  result.first_status = await until(a, "onConnectionStatus");
  // onOpen asked for the online users: a second connection_status answers it
  await until(a, "onConnectionStatus", () => a.filter((e) => e.kind === "onConnectionStatus").length >= 2);

  const jane = new ChatAPIWebSocket(ROOM_ID, API_KEY, "user_789", "Jane Smith");
  const b = recorder(jane, "jane");
  jane.connect();
  await until(b, "onConnectionStatus");
  result.joined = await until(a, "onUserJoined");

  jane.sendTyping(true);
  result.typing = await until(a, "onTyping");
  const sent = await rest("POST", `/rooms/${ROOM_ID}/messages`,
    { sender_id: "user_789", sender_name: "Jane Smith", content: "Hello everyone! 👋",
      message_type: "text", meta: { mentions: ["user_123"], priority: "normal" } });
  result.sent_status = sent.status;
  result.message = await until(a, "onNewMessage");
  result.jane_message = await until(b, "onNewMessage");
  const id = sent.body.data.id;
  await rest("PUT", `/messages/${id}`, { content: "Updated message content! 🎉", edit_reason: "Fixed typo" });
  result.updated = await until(a, "onMessageUpdated");
  await rest("DELETE", `/messages/${id}?user_id=user_789`);
  result.deleted = await until(a, "onMessageDeleted");
  const note = await rest("POST", "/notifications", { room_id: ROOM_ID, title: "New Message",
    content: "You have a new message from John Doe", action_url: `/rooms/${ROOM_ID}`,
    priority: "normal", icon: "message" });
  result.notification_status = note.status;
  result.notification = await until(a, "onNotification");
  chat.ping();
  result.pong = await until(a, "onPong");
  chat.getOnlineUsers();
  result.online = (await until(a, "onConnectionStatus", (d) => d.online_users.length === 2)).online_users;
  jane.disconnect();
  result.left = await until(a, "onUserLeft");
  result.jane_reconnects = jane.reconnectAttempts;
  chat.disconnect();
  await new Promise((r) => setTimeout(r, 200));
  result.john_ready_state = chat.ws.readyState;
  result.john_reconnects = chat.reconnectAttempts;
  clearTimeout(timer);
  quiet(JSON.stringify({ ok: true, result }));
  process.exit(0);
} catch (error) {
  quiet(JSON.stringify({ error: String(error), result }));
  process.exit(1);
}
