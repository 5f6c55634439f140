// The seed's React hook (seed/websockets.md, "React Hook Example"), verbatim except the base
// URL's port, driven by a minimal fake React. Everything outside the marked block is harness.
// Run: PORT=… ROOM_ID=… API_KEY=… node --experimental-websocket seed_react_hook.mjs
const PORT = process.env.PORT;
const { ROOM_ID, API_KEY } = process.env;

// -- a minimal React: one component instance at a time, state kept between "renders" ------
function makeReact() {
  const slots = [];
  let index = 0;
  const cleanups = [];
  const react = {
    state: slots,
    render(component, ...args) { index = 0; return component(...args); },
    unmount() { for (const fn of cleanups) if (typeof fn === "function") fn(); },
    useState(initial) {
      const i = index++;
      if (!(i in slots)) slots[i] = initial;
      const set = (next) => { slots[i] = typeof next === "function" ? next(slots[i]) : next; };
      return [slots[i], set];
    },
    useRef(initial) {
      const i = index++;
      if (!(i in slots)) slots[i] = { current: initial };
      return slots[i];
    },
    useCallback(fn) { return fn; },
    useEffect(fn) { cleanups.push(fn()); },
  };
  return react;
}

let React = makeReact();
const useState = (v) => React.useState(v);
const useRef = (v) => React.useRef(v);
const useCallback = (f, deps) => React.useCallback(f, deps);
const useEffect = (f, deps) => React.useEffect(f, deps);

// ---- seed: begin (verbatim) ---------------------------------------------------------------
function useChatWebSocket(roomId, apiKey, userId, userName) {
	const [isConnected, setIsConnected] = useState(false);
	const [onlineUsers, setOnlineUsers] = useState([]);
	const [messages, setMessages] = useState([]);
	const [typingUsers, setTypingUsers] = useState([]);

	const ws = useRef(null);
	const reconnectAttempts = useRef(0);

	const connect = useCallback(() => {
		const params = new URLSearchParams({
			token: apiKey,
			user_id: userId,
			user_name: userName,
		});

		ws.current = new WebSocket(`ws://localhost:${PORT}/ws/${roomId}?${params}`);

		ws.current.onopen = () => {
			setIsConnected(true);
			reconnectAttempts.current = 0;
		};

		ws.current.onmessage = (event) => {
			const message = JSON.parse(event.data);

			switch (message.type) {
				case "message":
					setMessages((prev) => [...prev, message.data]);
					break;
				case "user_joined":
					setOnlineUsers((prev) => [...prev, message.data.user_id]);
					break;
				case "user_left":
					setOnlineUsers((prev) =>
						prev.filter((id) => id !== message.data.user_id)
					);
					break;
				case "typing":
					if (message.data.is_typing) {
						setTypingUsers((prev) => [...prev, message.data.user_name]);
					} else {
						setTypingUsers((prev) =>
							prev.filter((name) => name !== message.data.user_name)
						);
					}
					break;
				case "connection_status":
					setOnlineUsers(message.data.online_users);
					break;
			}
		};

		ws.current.onclose = () => {
			setIsConnected(false);

			if (reconnectAttempts.current < 5) {
				reconnectAttempts.current++;
				setTimeout(connect, 1000 * reconnectAttempts.current);
			}
		};
	}, [roomId, apiKey, userId, userName]);

	useEffect(() => {
		connect();

		return () => {
			if (ws.current) {
				ws.current.close();
			}
		};
	}, [connect]);

	const sendTyping = useCallback((isTyping) => {
		if (ws.current && ws.current.readyState === WebSocket.OPEN) {
			ws.current.send(
				JSON.stringify({
					type: "typing",
					data: { is_typing: isTyping },
				})
			);
		}
	}, []);

	return {
		isConnected,
		onlineUsers,
		messages,
		typingUsers,
		sendTyping,
	};
}
// ---- seed: end ------------------------------------------------------------------------------

function mount(userId, userName) {
  React = makeReact();
  const react = React;
  const hook = react.render(useChatWebSocket, ROOM_ID, API_KEY, userId, userName);
  // state slots in hook order: isConnected, onlineUsers, messages, typingUsers, ws, attempts
  const view = {
    get isConnected() { return react.state[0]; },
    get onlineUsers() { return react.state[1]; },
    get messages() { return react.state[2]; },
    get typingUsers() { return react.state[3]; },
    get ws() { return react.state[4].current; },
    unmount: () => react.unmount(),
    sendTyping: hook.sendTyping,
  };
  return view;
}

function until(test, what, ms = 5000) {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const poll = () => {
      if (test()) return resolve();
      if (Date.now() - started > ms) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(poll, 10);
    };
    poll();
  });
}

const result = {};
const timer = setTimeout(() => { console.log(JSON.stringify({ error: "harness timeout", result })); process.exit(1); }, 20000);
try {
  const john = mount("user_123", "John Doe");
  await until(() => john.isConnected && john.onlineUsers.includes("user_123"), "john connected");
  result.john_online_at_start = [...john.onlineUsers];
  const jane = mount("user_789", "Jane Smith");
  await until(() => jane.isConnected && jane.onlineUsers.length === 2, "jane connected");
  await until(() => john.onlineUsers.includes("user_789"), "john sees jane join");
  result.john_online_after_join = [...john.onlineUsers];
  jane.sendTyping(true);
  await until(() => john.typingUsers.includes("Jane Smith"), "typing shown");
  result.typing_shown = [...john.typingUsers];
  jane.sendTyping(false);
  await until(() => john.typingUsers.length === 0, "typing cleared");
  const resp = await fetch(`http://localhost:${PORT}/api/v1/rooms/${ROOM_ID}/messages`, {
    method: "POST", headers: { "Content-Type": "application/json", "X-API-Key": API_KEY },
    body: JSON.stringify({ sender_id: "user_789", sender_name: "Jane Smith", content: "hi from jane" }),
  });
  result.sent_status = resp.status;
  await until(() => john.messages.length === 1 && jane.messages.length === 1, "message state");
  result.john_messages = john.messages.map((m) => `${m.sender_name}: ${m.content}`);
  result.message_has_id = typeof john.messages[0].id === "string";
  jane.unmount();
  await until(() => !john.onlineUsers.includes("user_789"), "john sees jane leave");
  result.john_online_after_leave = [...john.onlineUsers];
  clearTimeout(timer);
  console.log(JSON.stringify({ ok: true, result }));
  process.exit(0);
} catch (error) {
  console.log(JSON.stringify({ error: String(error), result }));
  process.exit(1);
}
