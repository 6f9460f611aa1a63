// The API client: relative URLs only (the page may be served behind a path prefix), the token
// asked for once on a 401 and kept in sessionStorage, sent as Bearer and as ?token= on the socket.
// A token the server refuses is forgotten and asked for again, saying so.

const TOKEN_KEY = "claudomator.token";
let asking = null; // one token prompt at a time, shared by every request that got a 401

export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.code = error.code || "";
    this.details = error.details || [];
  }
}

export function url(path, params = {}) {
  const u = new URL(path, document.baseURI);
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") u.searchParams.set(key, value);
  }
  return u;
}

function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

// `refused`: the server answered 401 to the token given before; the dialog says so.
function askToken(refused = false) {
  if (!asking) {
    asking = new Promise((resolve) => {
      const dialog = document.getElementById("token-dialog");
      const input = document.getElementById("token");
      const error = document.getElementById("token-error");
      input.value = "";
      if (error) {
        error.textContent = refused
          ? "The server refused that token (401). Check it with `claudomator token`, and paste it again."
          : "";
        error.hidden = !refused;
      }
      input.setAttribute("aria-invalid", String(refused));
      dialog.addEventListener(
        "close",
        () => {
          sessionStorage.setItem(TOKEN_KEY, input.value.trim());
          asking = null;
          resolve();
        },
        { once: true },
      );
      dialog.showModal();
      input.focus();
    });
  }
  return asking;
}

// `text`: the answer's text (a diff), not JSON; its errors are JSON all the same.
export async function api(path, { method = "GET", params, body, type, text } = {}) {
  if (document.documentElement.dataset.auth === "on" && !token()) await askToken();
  for (;;) {
    const headers = { Accept: text ? `${text}, application/json` : "application/json" };
    if (token()) headers.Authorization = `Bearer ${token()}`;
    if (type) headers["Content-Type"] = type;
    const response = await fetch(url(path, params), { method, headers, body });
    if (text && response.ok) return response.text();
    const data = await response.json().catch(() => null);
    if (response.status === 401) {
      const refused = Boolean(token());
      sessionStorage.removeItem(TOKEN_KEY);
      await askToken(refused);
      continue;
    }
    if (!response.ok) throw new ApiError(response.status, data);
    return data;
  }
}

// The event stream: reconnects with ?after= the last id seen, so nothing is missed or repeated.
export function events(onEvent, onState) {
  let last = null;
  let retry = 500;
  const open = () => {
    const u = url("api/ws", { after: last, token: token() });
    u.protocol = u.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(u);
    socket.addEventListener("open", () => {
      retry = 500;
      onState(true);
    });
    socket.addEventListener("message", (message) => {
      const event = JSON.parse(message.data);
      if (typeof event.id === "number") last = event.id;
      if (event.type === "ws.overflow") last = event.after;
      onEvent(event);
    });
    socket.addEventListener("close", () => {
      onState(false);
      setTimeout(open, retry);
      retry = Math.min(retry * 2, 10000);
    });
  };
  open();
}
