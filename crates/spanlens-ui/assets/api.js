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

/** GETs JSON from the API; throws ApiError with the server's message on failure. */
export async function get(path, params, signal) {
  let resp;
  try {
    resp = await fetch(url(path, params), { signal, headers: { accept: "application/json" } });
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new ApiError(0, `cannot reach the Spanlens server (${e.message})`);
  }
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
