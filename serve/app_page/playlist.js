// The collaborative playlist editor: a PlaylistEditor (the SDK's PlaylistDoc over the hub)
// applies local ops at once and others' as they arrive, transformed; the list shown is
// always the editor's. Collaborators' presence comes from the playlist's topic.

import { PlaylistEditor } from "./sdk/index.js";
import { $, guard, h, reconcile, status, submitted, trackName } from "./dom.js";

export class PlaylistView {
  constructor(hub, me) {
    this.hub = hub;
    this.me = me;
    this.editor = null;
    this.id = null;
    this.present = new Map();
    this.clientId = `web-${crypto.randomUUID()}`;
    submitted($("playlist-form"), guard("Playlist", (action) =>
      this.enter($("playlist-id").value.trim(), action === "create")));
    $("pl-add").addEventListener("submit", (event) => {
      event.preventDefault();
      guard("Insert", () => this.insertFromForm())();
    });
    $("pl-share").addEventListener("submit", (event) => {
      event.preventDefault();
      guard("Share", () => this.share($("pl-user").value.trim()))();
    });
    hub.on("presence.join", (c, f) => this.onPresence(c, f, true));
    hub.on("presence.leave", (c, f) => this.onPresence(c, f, false));
  }

  async enter(id, create) {
    if (!id) return;
    if (create) await this.hub.request("playlist.create", { playlist_id: id, name: id });
    const editor = new PlaylistEditor(this.hub, id, { clientId: this.clientId });
    editor.on("change", () => this.render());
    editor.on("error", (err) => status(`Playlist edit refused: ${err.code}: ${err.message}`, true));
    await editor.open();
    this.editor = editor;
    this.id = id;
    const found = await this.hub.request("presence.list", { topic: `playlist:${id}` });
    this.present = new Map(found.members.map((m) => [m.user, m.name || m.user]));
    $("playlist-doc").hidden = false;
    $("playlist-title").textContent = `Playlist ${id}`;
    this.render();
    status(`Editing playlist ${id}.`);
  }

  async insertFromForm() {
    const track = $("pl-track").value.trim();
    if (!this.editor || !track) return;
    const at = $("pl-at").value;
    const count = this.editor.items.length;
    const index = at === "" ? count : Math.max(0, Math.min(count, Number(at) - 1));
    $("pl-track").value = "";
    await this.editor.insert(index, track);
  }

  async share(user) {
    if (!user) return;
    await this.hub.request("playlist.share", { playlist: this.id, user, role: "editor" });
    $("pl-user").value = "";
    status(`Shared with ${user}.`);
  }

  onPresence(content, frame, joined) {
    const topic = (frame && frame.topic) || "";
    if (topic !== `playlist:${this.id}`) return;
    if (joined) this.present.set(content.user, content.name || content.user);
    else this.present.delete(content.user);
    this.renderPresence();
  }

  render() {
    const editor = this.editor;
    if (!editor) return;
    $("pl-version").textContent = String(editor.version);
    const items = editor.items;
    // the handlers look the item up when pressed: a remote op may have moved it meanwhile
    const at = (id) => editor.items.findIndex((item) => item.item_id === id);
    reconcile($("pl-items"), items, (item) => item.item_id, (item) => {
      const id = item.item_id;
      const name = trackName(item.track);
      return h("li", { dataset: { item: id, track: name } }, `${name} `,
        h("button", { type: "button", class: "up", "aria-label": `Move ${name} up`,
                      onclick: guard("Move", () => at(id) > 0 && editor.move(id, at(id) - 1)) }, "↑"),
        h("button", { type: "button", class: "down", "aria-label": `Move ${name} down`,
                      onclick: guard("Move", () => at(id) >= 0 && editor.move(id, at(id) + 1)) }, "↓"),
        h("button", { type: "button", "aria-label": `Remove ${name}`,
                      onclick: guard("Remove", () => editor.remove(id)) }, "Remove"));
    }, (li, item, index) => {
      li.querySelector(".up").disabled = index === 0;
      li.querySelector(".down").disabled = index === items.length - 1;
    });
    this.renderPresence();
  }

  renderPresence() {
    const others = [...this.present.entries()].filter(([user]) => user !== this.me)
      .map(([, name]) => name).sort();
    $("pl-presence").textContent = others.length ? others.join(", ") : "nobody else";
  }
}
