/**
 * ES module entry point for the ChatAPI client.
 *
 * `chatapi.js` is a classic script (so a plain `<script>` tag works); imported
 * for its side effect it installs `globalThis.ChatAPI`, which this wrapper
 * re-exports. Works in browsers (`import … from '/static/chatapi.mjs'`) and in
 * Node (where `chatapi.js` loads as CommonJS).
 *
 * @module chatapi
 */
import './chatapi.js';

const api = globalThis.ChatAPI;

export const {
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
} = api;

export default api;
