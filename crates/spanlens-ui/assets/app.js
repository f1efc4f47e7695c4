// Client-side router: every page path gets the same shell from the server; this module picks
// the page from location.pathname, and intercepts same-origin links so navigation is instant.

import { h, notice, mount, navigate } from "./dom.js";
import { get, project, setProject, session, send } from "./api.js";
import * as traces from "./traces.js";
import * as trace from "./trace.js";
import * as compare from "./compare.js";
import * as sessions from "./sessions.js";
import * as dashboard from "./dashboard.js";
import * as live from "./live.js";
import * as reliability from "./reliability.js";
import * as login from "./login.js";
import * as admin from "./admin.js";
import * as graph from "./graph.js";
import * as queues from "./queues.js";
import * as prompts from "./prompts.js";

const ROUTES = [
  [/^\/$/, traces.render, "traces"],
  [/^\/traces\/([^/]+)$/, trace.render, "traces"],
  [/^\/compare$/, compare.render, "traces"],
  [/^\/sessions$/, sessions.renderList, "sessions"],
  [/^\/sessions\/([^/]+)$/, sessions.renderOne, "sessions"],
  [/^\/dashboard$/, dashboard.render, "dashboard"],
  [/^\/reliability$/, reliability.render, "reliability"],
  [/^\/live$/, live.render, "live"],
  [/^\/login$/, login.render, "login"],
  [/^\/admin$/, admin.render, "admin"],
  [/^\/graph$/, graph.render, "graph"],
  [/^\/queues$/, queues.render, "queues"],
  [/^\/queues\/([^/]+)$/, queues.renderReview, "queues"],
  [/^\/prompts$/, prompts.render, "prompts"],
];

let cleanup = null;

/** Renders the page of the current URL; a page may return a function that tears it down. */
async function route() {
  const app = document.getElementById("app");
  const path = location.pathname;
  if (cleanup) {
    try {
      cleanup();
    } catch (e) {
      console.error(e);
    }
    cleanup = null;
  }
  for (const [re, render, nav] of ROUTES) {
    const m = path.match(re);
    if (!m) continue;
    document.querySelectorAll("nav a").forEach((a) => a.classList.toggle("active", a.dataset.nav === nav));
    app.dataset.page = nav;
    mount(app);
    try {
      cleanup = (await render(app, ...m.slice(1).map(decodeURIComponent))) || null;
    } catch (e) {
      mount(app, notice("error", "This page failed to load", e.message));
    }
    return;
  }
  app.dataset.page = "";
  mount(app, notice("empty", "Page not found", `Nothing lives at ${path}.`));
}

document.addEventListener("click", (e) => {
  const a = e.target.closest("a[data-link]");
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  e.preventDefault();
  navigate(a.getAttribute("href"));
});
/**
 * The signed-in account in the header, with a sign-out button; an admin of the project sees
 * the Settings link. Signed in, the project shown is one the account has a role in.
 */
async function who() {
  let state;
  try {
    state = await session();
  } catch {
    return null;
  }
  const projects = Object.keys(state.roles || {});
  if (state.account && projects.length && !projects.includes(project())) setProject(projects.sort()[0]);
  const isAdmin = state.auth === "off" || state.roles?.[project()] === "admin";
  document.querySelector("nav a[data-nav=admin]")?.toggleAttribute("hidden", !isAdmin);
  if (state.account) {
    const out = h("button", { type: "button", class: "linklike", onclick: async () => {
      try {
        await send("DELETE", "session", undefined, { project: null });
      } finally {
        location.assign("/login");
      }
    } }, "Sign out");
    mount(document.getElementById("account"), h("span", { class: "muted" }, state.account), " ", out);
  }
  return state;
}

/** The project picker in the header, shown when the server holds more than one project. */
async function projectPicker() {
  const state = await who();
  if (location.pathname === "/login") return;
  let list;
  try {
    list = (await get("projects", { project: null })).projects || [];
  } catch {
    return; // the pages report API errors themselves
  }
  for (const p of Object.keys(state?.roles || {})) if (!list.includes(p)) list.push(p);
  const current = project();
  if (!list.includes(current)) list.push(current);
  if (list.length < 2) return;
  const sel = h("select", { title: "Project", "aria-label": "Project" }, list.sort().map((p) => h("option", { value: p, selected: p === current }, p)));
  sel.addEventListener("change", () => {
    setProject(sel.value);
    route();
  });
  mount(document.getElementById("project"), sel);
}

projectPicker();
window.addEventListener("popstate", route);
window.addEventListener("spanlens:navigate", route);
route();
