// The JSON API client: one place that turns HTTP and network failures into readable errors.

/** An API call that failed; `message` is what the server said. */
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

const PROJECT_KEY = "spanlens.project";

/** The project the UI shows (chosen in the header, remembered by the browser). */
export function project() {
  try {
    return localStorage.getItem(PROJECT_KEY) || "default";
  } catch {
    return "default";
  }
}

/** Switches the project for every later API call. */
export function setProject(name) {
  try {
    localStorage.setItem(PROJECT_KEY, name);
  } catch {
    // Storage disabled: the choice lasts until reload.
  }
}

/** Builds `/api/v1/<path>?<params>`, skipping empty values and repeating arrays. */
export function url(path, params = {}) {
  const q = new URLSearchParams();
  if (project() !== "default" && !("project" in params)) q.set("project", project());
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === "") continue;
    if (Array.isArray(v)) v.forEach((x) => x !== "" && q.append(k, x));
    else q.set(k, v);
  }
  const s = q.toString();
  return `/api/v1/${path}${s ? `?${s}` : ""}`;
}

let sessionPromise;

/**
 * Who the browser is signed in as: `{auth, account, roles, csrf}` (`/api/v1/session`), fetched
 * once per page load. With `auth: "required"` every API call goes through the session cookie;
 * the page never holds a key.
 */
export function session() {
  sessionPromise ??= get("session", { project: null }).catch((e) => {
    sessionPromise = undefined;
    throw e;
  });
  return sessionPromise;
}

/** Sends the browser to the sign-in page, to come back here afterwards. */
export function toSignIn() {
  if (location.pathname === "/login") return;
  const next = location.pathname + location.search;
  location.assign(`/login?next=${encodeURIComponent(next)}`);
}

/** GETs JSON from the API; throws ApiError with the server's message on failure. */
export async function get(path, params, signal) {
  return call("GET", path, params, undefined, signal);
}

/**
 * Sends `body` as JSON with `method` (POST, PUT, DELETE) and the session's CSRF token; throws
 * ApiError with the server's message on failure.
 */
export async function send(method, path, body, params) {
  const s = await session();
  return call(method, path, params, body, undefined, s.csrf);
}

async function call(method, path, params, payload, signal, csrf) {
  let resp;
  const headers = { accept: "application/json" };
  if (payload !== undefined) headers["content-type"] = "application/json";
  if (csrf) headers["x-csrf-token"] = csrf;
  try {
    resp = await fetch(url(path, params), {
      method,
      signal,
      headers,
      credentials: "same-origin",
      body: payload === undefined ? undefined : JSON.stringify(payload),
    });
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new ApiError(0, `cannot reach the Spanlens server (${e.message})`);
  }
  // Signed out (or never signed in) on a server that needs it: sign in, then come back.
  if (resp.status === 401 && path !== "session") toSignIn();
  if (resp.status === 204) return null;
  const text = await resp.text();
  let body;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    throw new ApiError(resp.status, `the server answered ${resp.status} with something that is not JSON`);
  }
  if (!resp.ok) throw new ApiError(resp.status, (body && body.error) || `HTTP ${resp.status}`);
  return body;
}

let modelsPromise;

/** The price catalog (`/api/v1/models`), fetched once per page load. */
export function models() {
  modelsPromise ??= get("models").catch((e) => {
    modelsPromise = undefined;
    throw e;
  });
  return modelsPromise;
}

/** The catalog entry for `model` (by pricing id first, else by its match pattern). */
export function priceFor(catalog, { pricingId, model, at }) {
  const when = at ? at.slice(0, 10) : "9999";
  const inForce = (list) =>
    list.filter((m) => !m.valid_from || m.valid_from <= when).sort((a, b) => (a.valid_from < b.valid_from ? 1 : -1))[0];
  if (pricingId) {
    const hit = inForce(catalog.models.filter((m) => m.id === pricingId));
    if (hit) return hit;
  }
  if (!model) return undefined;
  const bare = model.toLowerCase().replace(/^.*\//, "").replace(/:.*$/, "");
  const hits = catalog.models.filter((m) => {
    try {
      const pat = m.match.replace(/^\(\?i\)/, "");
      return new RegExp(`^(?:${pat})$`, "i").test(bare);
    } catch {
      return false;
    }
  });
  return inForce(hits);
}

/**
 * What the cached input would have cost at the full input price, minus what it did cost.
 * Cache writes usually cost more than plain input, so their part is negative.
 */
export function cacheSavings(price, usage, cost) {
  if (!price || !usage) return null;
  const full = price.input_per_million_usd / 1e6;
  const read = usage.cache_read_tokens || 0;
  const write = usage.cache_write_tokens || 0;
  const readCost = cost ? cost.cache_read_usd : read * ((price.cache_read_per_million_usd ?? price.input_per_million_usd) / 1e6);
  const writeCost = cost ? cost.cache_write_usd : write * ((price.cache_write_per_million_usd ?? price.input_per_million_usd) / 1e6);
  const readSaved = read * full - readCost;
  const writeSaved = write * full - writeCost;
  return { read: readSaved, write: writeSaved, net: readSaved + writeSaved, fullPrice: price.input_per_million_usd };
}
