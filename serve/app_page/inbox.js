// The notification inbox: the SDK's Inbox loads the list and follows user:<id>; the unread
// count in the navigation is live, and a new notification is announced.

import { Inbox } from "./sdk/index.js";
import { $, announce, guard, h, hourMinute, reconcile } from "./dom.js";

const PRIORITY = ["low", "normal", "high", "critical"];

export class InboxView {
  constructor(hub) {
    this.inbox = new Inbox(hub);
    this.inbox.on("change", () => this.render());
    this.inbox.on("notification", (note) => announce(`New notification: ${note.title || ""}`));
    $("read-all").addEventListener("click", guard("Mark read", () => this.readAll()));
  }

  async start() {
    await this.inbox.load();
    this.render();
  }

  async readAll() {
    for (const note of this.inbox.items) {
      if (note.state !== "read" && note.state !== "archived") await this.inbox.ack(note.id, "read");
    }
  }

  render() {
    const unread = this.inbox.unread || 0;
    const badge = $("unread");
    badge.textContent = String(unread);
    badge.classList.toggle("on", unread > 0);
    $("inbox-link").setAttribute("aria-label", `Inbox, ${unread} unread`);
    reconcile($("notes"), this.inbox.items, (note) => note.id, (note) => {
      const title = note.title || "(no title)";
      return h("li", { class: "note", dataset: { id: note.id } },
        h("span", { class: "title" }, title), " ", h("span", { class: "body" }, note.content || ""),
        h("time", { datetime: note.ts }, hourMinute(note.ts)), " ",
        h("span", { class: "muted" }, PRIORITY[note.priority] || ""), " ",
        h("button", { type: "button", "aria-label": `Mark ${title} read`,
                      onclick: guard("Mark read", () => this.inbox.ack(note.id, "read")) }, "Mark read"));
    }, (li, note) => {
      const read = note.state === "read" || note.state === "archived";
      li.classList.toggle("unread", !read);
      li.dataset.state = note.state || "";
      li.querySelector("button").hidden = read;
    });
  }
}
