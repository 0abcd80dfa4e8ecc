// Every call to the runtime's API: the bearer token (asked once, kept in sessionStorage),
// JSON errors as ApiError, and the run's event stream read with fetch (EventSource cannot send a token).

const TOKEN_KEY = "stepflow-ui-token";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

let asking = null;

/** The dialog cannot be dismissed: nothing on the page works without the token. */
export function setUpTokenDialog() {
  document.getElementById("token-dialog").addEventListener("cancel", (event) => event.preventDefault());
}

function authorization() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  return token ? { Authorization: `Bearer ${token}` } : {};
}

/** Show the token dialog; every caller waiting for a token shares one dialog. */
function askForToken(refused) {
  if (asking) return asking;
  const dialog = document.getElementById("token-dialog");
  const form = document.getElementById("token-form");
  const input = document.getElementById("token-input");
  document.getElementById("token-problem").hidden = !refused;
  asking = new Promise((resolve) => {
    form.addEventListener("submit", () => {
      sessionStorage.setItem(TOKEN_KEY, input.value.trim());
      input.value = "";
      asking = null;
      resolve();
    }, { once: true });
  });
  if (!dialog.open) dialog.showModal();
  input.focus();
  return asking;
}

async function authorized(path, options) {
  for (;;) {
    const response = await fetch(`/api/v1${path}`, { ...options, headers: { ...options.headers, ...authorization() } });
    if (response.status !== 401) return response;
    await askForToken(sessionStorage.getItem(TOKEN_KEY) !== null);
  }
}

/** JSON from GET (or another method with a JSON body); throws ApiError with the API's message. */
export async function api(path, { method = "GET", body, signal } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await authorized(path, { method, headers, signal, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = { message: text };
  }
  if (!response.ok) throw new ApiError(response.status, data?.message || `HTTP ${response.status}`);
  return data;
}

/** Follow a run's events stream: ``onEvent`` gets each journal entry; resolves when the run's journal is complete. */
export async function followEvents(runId, onEvent, signal) {
  const response = await authorized(`/runs/${runId}/events`, { headers: { Accept: "text/event-stream" }, signal });
  if (!response.ok) throw new ApiError(response.status, `events stream: HTTP ${response.status}`);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replaceAll("\r\n", "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = block.split("\n").filter((line) => line.startsWith("data:")).map((line) => line.slice(5).trimStart()).join("\n");
      if (data) onEvent(JSON.parse(data));
    }
  }
}
