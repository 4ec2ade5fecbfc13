// The listening party: a PartyClient for state and queue, a PartyScheduler to plan the start
// and judge drift, and a TonePlayer that plays on the AudioContext's clock. The position
// shown is the party's (its last state, through this device's clock estimate); the drift is
// the audible player's position minus it.

import { PartyClient, PartyScheduler } from "./sdk/index.js";
import { $, clockTime, guard, h, reconcile, signedMs, status, submitted, trackName } from "./dom.js";
import { localNow, TonePlayer } from "./player.js";

const CORRECT_EVERY_MS = 1000;
const SYNC_EVERY_MS = 10000;

export class PartyView {
  constructor(hub) {
    this.hub = hub;
    this.party = null;
    this.scheduler = null;
    this.player = new TonePlayer();
    this.drift = null;
    this.recommended = [];
    this.timers = [];
    this.playing = null; // the state the player follows: {key, track, position_ms, at_server_ms}
    submitted($("party-form"), (action) => {
      this.player.unlock().catch(() => {}); // inside the click: the browser allows audio now
      guard("Party", () => this.enter($("party-id").value.trim(), action === "create"))();
    });
    for (const button of document.querySelectorAll("#party-room [data-action]")) {
      button.addEventListener("click", () => {
        this.player.unlock().catch(() => {});
        guard(button.textContent, () => this.control(button.dataset.action))();
      });
    }
    $("queue-form").addEventListener("submit", (event) => {
      event.preventDefault();
      guard("Add", () => this.add($("queue-track").value.trim()))();
    });
  }

  async enter(id, create) {
    if (!id) return;
    if (create) await this.hub.request("party.create", { party_id: id, name: id, mode: "everyone" });
    if (this.party) await this.party.leave().catch(() => {});
    this.stopTimers();
    const party = new PartyClient(this.hub, id);
    this.party = party;
    this.scheduler = new PartyScheduler(party, { nudgeBelowMs: 400 });
    party.on("state", () => this.follow());
    party.on("queue", () => {
      this.renderQueue();
      this.renderRecs();
    });
    party.on("recommendations", (content) => {
      const tracks = Array.isArray(content) ? content : (content && content.tracks) || [];
      this.recommended = tracks.map((t) => (t && typeof t === "object" && "track" in t ? t.track : t));
      this.renderRecs();
    });
    await party.join();
    await this.hub.syncClock(8);
    $("party-room").hidden = false;
    $("party-title").textContent = `Party ${id}`;
    this.follow();
    this.renderQueue();
    this.renderRecs();
    this.timers.push(setInterval(() => this.correct(), CORRECT_EVERY_MS));
    this.timers.push(setInterval(() => this.hub.syncClock(4).catch(() => {}), SYNC_EVERY_MS));
    const frame = () => {
      if (this.party !== party) return;
      this.renderClock();
      requestAnimationFrame(frame);
    };
    requestAnimationFrame(frame);
    status(`In party ${id}.`);
  }

  stopTimers() {
    for (const timer of this.timers) clearInterval(timer);
    this.timers = [];
    this.player.stop();
  }

  async control(action) {
    if (!this.party) return;
    const options = {};
    if (action === "seek") options.position_ms = Math.round(Number($("seek-s").value) * 1000);
    await this.party.control(action, options);
  }

  async add(track) {
    if (!this.party || !track) return;
    $("queue-track").value = "";
    await this.party.queue("add", { track });
  }

  // A new state: start the player where the party will be, or stop it.
  follow() {
    const s = this.party && this.party.state;
    this.renderState();
    if (!s || !s.playing || s.track === null || s.track === undefined) {
      this.playing = null;
      this.player.stop();
      return;
    }
    const key = `${s.item_id || ""}/${trackName(s.track)}`;
    const same = this.playing && this.playing.key === key && this.playing.position_ms === s.position_ms
      && this.playing.at_server_ms === s.at_server_ms;
    if (same && this.player.source) return;
    this.playing = { key, name: trackName(s.track), position_ms: s.position_ms,
                     at_server_ms: s.at_server_ms };
    const plan = this.scheduler.plan(localNow());
    this.player.start(key, plan.offsetMs, plan.startAtLocalMs);
  }

  // Once a second: the audible position against the party's; nudge the rate or seek.
  correct() {
    const now = localNow();
    const heard = this.player.positionAt(now);
    if (heard === null || !this.playing || !this.player.started()) {
      this.drift = null;
      return;
    }
    const verdict = this.scheduler.correct(heard, now);
    this.drift = verdict.driftMs;
    if (verdict.action === "seek") {
      const plan = this.scheduler.plan(localNow());
      this.player.start(this.playing.key, plan.offsetMs, plan.startAtLocalMs);
    } else {
      this.player.setRate(verdict.action === "nudge" ? verdict.rate : 1);
    }
  }

  // For the browser tests: the party's position at a server instant, by this page's clock.
  positionAt(serverMs) {
    if (!this.party || !this.party.state) return null;
    return this.party.positionAt(this.hub.clock.toLocal(serverMs));
  }

  playerPositionAt(serverMs) {
    return this.player.positionAt(this.hub.clock.toLocal(serverMs));
  }

  renderState() {
    const s = this.party && this.party.state;
    $("p-track").textContent = s ? trackName(s.track) : "none";
    $("p-playing").textContent = s && s.playing ? "playing" : "paused";
  }

  renderClock() {
    const s = this.party.state;
    const position = s ? this.party.positionAt(localNow()) : 0;
    $("p-position").textContent = clockTime(position || 0);
    const clock = this.hub.clock;
    $("p-offset").textContent = `${signedMs(clock.offsetMs)} (± ${Number(clock.errorBoundMs).toFixed(1)} ms)`;
    $("p-drift").textContent = signedMs(this.drift);
    $("p-audio").textContent = this.player.source ? `${this.player.state}, a tone for ${this.playing.name}`
      : this.player.state;
  }

  renderQueue() {
    const items = (this.party && this.party.queueItems) || [];
    reconcile($("queue"), items, (item) => item.item_id, (item) => {
      const name = trackName(item.track);
      return h("li", { dataset: { item: item.item_id } }, `${name} `,
        h("span", { class: "muted votes" }),
        h("button", { type: "button", "aria-label": `Vote for ${name}`,
                      onclick: guard("Vote", () => this.party.queue("vote", { item_id: item.item_id })) },
          "Vote"));
    }, (li, item) => {
      li.querySelector(".votes").textContent = `${item.votes} vote${item.votes === 1 ? "" : "s"} `;
    });
  }

  renderRecs() {
    // what someone queued meanwhile (from this list or not) is no longer offered
    const queued = new Set(((this.party && this.party.queueItems) || []).map((i) => trackName(i.track)));
    const offered = this.recommended.filter((track) => !queued.has(trackName(track)));
    reconcile($("recs"), offered, (track) => trackName(track), (track) => h("li", {},
      `${trackName(track)} `,
      h("button", { type: "button", "aria-label": `Add ${trackName(track)} to the queue`,
                    onclick: guard("Add", async () => {
                      await this.party.queue("add", { track });
                      this.recommended = this.recommended.filter((t) => t !== track);
                      this.renderRecs();
                    }) }, "Add")));
  }
}
