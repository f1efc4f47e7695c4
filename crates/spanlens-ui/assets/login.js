// The sign-in page (`/login`): a name and a password, posted to /api/v1/session; the server
// sets an HttpOnly session cookie and the page goes back where it came from.

import { ApiError, session } from "./api.js";
import { h, mount, notice } from "./dom.js";

/** Where to go after signing in: a path of this site only (never another origin). */
function nextPath() {
  const next = new URLSearchParams(location.search).get("next") || "/";
  return next.startsWith("/") && !next.startsWith("//") ? next : "/";
}

export async function render(app) {
  let state;
  try {
    state = await session();
  } catch (e) {
    mount(app, notice("error", "Cannot reach the server", e.message));
    return;
  }
  if (state.auth !== "required") {
    mount(app, notice("empty", "No sign-in here", "This server runs without authentication (--auth off, loopback only)."));
    return;
  }
  if (state.account) {
    location.replace(nextPath());
    return;
  }
  const name = h("input", { name: "name", autocomplete: "username", required: true, autofocus: true });
  const password = h("input", { name: "password", type: "password", autocomplete: "current-password", required: true });
  const message = h("div", { class: "login-message", role: "alert" });
  const button = h("button", { type: "submit", class: "primary" }, "Sign in");
  const form = h("form", { class: "login card" },
    h("h1", null, "Sign in to Spanlens"),
    h("label", null, "Name", name),
    h("label", null, "Password", password),
    button, message);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    button.disabled = true;
    mount(message);
    try {
      const resp = await fetch("/api/v1/session", {
        method: "POST",
        credentials: "same-origin",
        headers: { "content-type": "application/json", accept: "application/json" },
        body: JSON.stringify({ name: name.value, password: password.value }),
      });
      if (!resp.ok) {
        const body = await resp.json().catch(() => null);
        throw new ApiError(resp.status, (body && body.error) || `HTTP ${resp.status}`);
      }
      location.replace(nextPath());
    } catch (err) {
      mount(message, notice("error", "Not signed in", err.message));
      password.value = "";
      button.disabled = false;
    }
  });
  mount(app, form);
}
