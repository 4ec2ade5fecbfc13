// The web app's entry: where the hub's WebSocket is (config.json), logging in with a token
// (?token= once, taken out of the address bar at once, or the form; kept for this tab in
// sessionStorage until it expires or the user logs out), and the four views.
// window.rthubApp is what the browser tests read; nothing else is global.

import { Hub } from "./sdk/index.js";
import { $, status } from "./dom.js";
import { InboxView } from "./inbox.js";
import { PartyView } from "./party.js";
import { PlaylistView } from "./playlist.js";
import { Rooms } from "./rooms.js";

const VIEWS = ["rooms", "party", "playlist", "inbox"];
const app = { hub: null, ready: false };
window.rthubApp = app;

function tokenFromAddress() {
  const url = new URL(location.href);
  const token = url.searchParams.get("token");
  if (token !== null) {
    url.searchParams.delete("token");
    history.replaceState(history.state, "", url.pathname + url.search + url.hash);
  }
  return token;
}

const KEPT = "rthub.token";
const KEEP_MARGIN_S = 30; // a kept token this close to its exp is not worth a connect

/** The token this tab logged in with, if it is still good for a while (else forgotten). */
function keptToken() {
  let token = null;
  try {
    token = sessionStorage.getItem(KEPT);
  } catch {
    return null; // storage blocked: log in each time
  }
  if (token && (claims(token).exp ?? 0) > Date.now() / 1000 + KEEP_MARGIN_S) return token;
  forget();
  return null;
}

function keep(token) {
  try {
    sessionStorage.setItem(KEPT, token);
  } catch {
    // storage blocked or full: the session still works, a reload asks again
  }
}

function forget() {
  try {
    sessionStorage.removeItem(KEPT);
  } catch {
    // nothing was kept
  }
}

function claims(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part.padEnd(part.length + ((4 - (part.length % 4)) % 4), "=")));
  } catch {
    return {};
  }
}

function showView() {
  const name = VIEWS.includes(location.hash.slice(1)) ? location.hash.slice(1) : "rooms";
  for (const view of VIEWS) $(view).hidden = view !== name;
  for (const link of document.querySelectorAll("nav a")) {
    if (link.getAttribute("href") === `#${name}`) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

async function login(token, wsUrl) {
  status("Connecting…");
  // the SDK's warnings and errors (a listener that threw, say) go to the console
  const logger = { warn: console.warn.bind(console), error: console.error.bind(console) };
  const hub = new Hub({ url: wsUrl, token, logger });
  let welcome;
  try {
    welcome = await hub.connect();
  } catch (err) {
    forget(); // a kept token that no longer works (revoked, say) is not tried again
    status(`Could not log in: ${err.code ? err.code + ": " : ""}${err.message || err}`, true);
    $("login").hidden = false;
    return;
  }
  keep(token);
  hub.on("state", (state) => {
    if (state === "reconnecting") status("Connection lost; reconnecting…", true);
    else if (state === "open") status("Connected.");
    else if (state === "closed") {
      forget(); // closed for good: the token expired or was revoked
      status("Disconnected. Reload the page to log in again.", true);
    }
  });
  const me = welcome.user_id;
  const name = claims(token).name;
  $("who").textContent = `${name && name !== me ? `${name} (${me})` : me} · ${welcome.tenant}`;
  $("login").hidden = true;
  $("nav").hidden = false;
  $("logout").hidden = false;
  Object.assign(app, { hub, me, welcome });
  // a view that fails to start is reported; the others still work
  const broken = [];
  const start = async (name, make) => {
    try {
      app[name] = make();
      if (app[name].start) await app[name].start();
    } catch (err) {
      broken.push(name);
      console.error(`the ${name} view did not start:`, err);
    }
  };
  await start("rooms", () => new Rooms(hub, me));
  await start("party", () => new PartyView(hub));
  await start("playlist", () => new PlaylistView(hub, me));
  await start("inbox", () => new InboxView(hub));
  showView();
  addEventListener("hashchange", showView);
  app.ready = true;
  if (broken.length) status(`Logged in as ${me}; not working: ${broken.join(", ")}.`, true);
  else status(`Logged in as ${me}.`);
}

async function main() {
  let config;
  try {
    const answer = await fetch(new URL("config.json", import.meta.url), { cache: "no-store" });
    config = await answer.json();
  } catch (err) {
    status(`The hub's configuration did not load: ${err.message}`, true);
    return;
  }
  $("logout").addEventListener("click", async () => {
    forget();
    await app.hub?.close();
    location.replace(location.pathname); // a fresh page, at the login form
  });
  $("login").addEventListener("submit", (event) => {
    event.preventDefault();
    $("login").hidden = true;
    login($("token").value.trim(), config.ws_url);
    $("token").value = "";
  });
  const token = tokenFromAddress() ?? keptToken();
  if (token) {
    await login(token, config.ws_url);
  } else {
    $("login").hidden = false;
    status("Log in with a token.");
  }
}

main();
