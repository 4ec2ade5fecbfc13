// The notification inbox: the SDK's Inbox loads the list and follows user:<id>; the unread
// count in the navigation is live, and a new notification is announced.

import { Inbox } from "./sdk/index.js";
import { $, guard, h, hourMinute } from "./dom.js";

const PRIORITY = ["low", "normal", "high", "critical"];

export class InboxView {
  constructor(hub) {
    this.inbox = new Inbox(hub);
    this.inbox.on("change", () => this.render());
    this.inbox.on("notification", () => this.render());
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
    badge.setAttribute("aria-label", `${unread} unread notification${unread === 1 ? "" : "s"}`);
    $("notes").replaceChildren(...this.inbox.items.map((note) => {
      const read = note.state === "read" || note.state === "archived";
      return h("li", { class: `note${read ? "" : " unread"}`, dataset: { id: note.id, state: note.state || "" } },
        h("span", { class: "title" }, note.title || "(no title)"), " ",
        h("span", { class: "body" }, note.content || ""),
        h("time", { datetime: note.ts }, hourMinute(note.ts)), " ",
        h("span", { class: "muted" }, PRIORITY[note.priority] || ""), " ",
        read ? null : h("button", { type: "button", "aria-label": `Mark ${note.title || "notification"} read`,
                                    onclick: guard("Mark read", () => this.inbox.ack(note.id, "read")) },
          "Mark read"));
    }));
  }
}
