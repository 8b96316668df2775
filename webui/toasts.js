// Toasts (failures, refusals, small confirmations) and the optional desktop notifications.

import { escapeXml as esc } from "./timeline.js";
import { permissionNotice, approvalNotice } from "./model.js";

const TOAST_MS = 8000;
const MAX_TOASTS = 5;
const NOTIFY_KEY = "mpmd-notify";

export class Toasts {
  constructor(box) {
    this.box = box;
  }

  /** Shows one toast until clicked or TOAST_MS; `seq`: the event it is about. */
  show({ kind = "info", title = "", text = "", detail = "", seq = null }) {
    const el = document.createElement("div");
    el.className = `toast k-${kind}`;
    el.setAttribute("data-testid", "toast");
    el.dataset.kind = kind;
    el.setAttribute("role", kind === "error" ? "alert" : "status");
    el.title = "Click to dismiss";
    el.innerHTML = `<div class="toast-title">${esc(title)}</div>`
      + (text ? `<div class="toast-text mono">${esc(text)}</div>` : "")
      + (detail ? `<div class="toast-detail muted mono">${esc(detail)}</div>` : "");
    if (seq !== null) el.dataset.seq = seq;
    const dismiss = () => {
      clearTimeout(timer);
      el.classList.add("leaving");
      setTimeout(() => el.remove(), 160);
    };
    const timer = setTimeout(dismiss, TOAST_MS);
    el.addEventListener("click", dismiss);
    this.box.appendChild(el);
    while (this.box.children.length > MAX_TOASTS) this.box.firstElementChild.remove();
  }
}

/** Desktop notifications, off until the person turns them on (the choice is remembered). */
export class Notifications {
  /**
   * button: the on/off toggle. toasts: where a refusal is explained. onPick(sessionId): a
   * notification was clicked.
   */
  constructor({ button, toasts, onPick }) {
    this.on = false;
    this.button = button;
    this.toasts = toasts;
    this.onPick = onPick;
    button.addEventListener("click", () => this.toggle());
  }

  /** On again when it was on last time and the browser still allows it. */
  restore() {
    try {
      if (localStorage.getItem(NOTIFY_KEY) === "1" && "Notification" in window
          && Notification.permission === "granted") this.set(true);
    } catch { /* ignore */ }
  }

  set(on) {
    this.on = on;
    this.button.setAttribute("aria-pressed", String(on));
    this.button.querySelector(".label").textContent = on ? "Notifications on" : "Notifications off";
    try { localStorage.setItem(NOTIFY_KEY, on ? "1" : "0"); } catch { /* ignore */ }
  }

  async toggle() {
    if (this.on) { this.set(false); return; }
    if (!("Notification" in window)) {
      this.toasts.show({ kind: "info", title: "This browser has no desktop notifications" });
      return;
    }
    let perm = Notification.permission;
    if (perm === "default") {
      try { perm = await Notification.requestPermission(); } catch { perm = "denied"; }
    }
    if (perm !== "granted") {
      this.toasts.show({ kind: "info", title: "Notifications are blocked", text: "Allow notifications for this page in the browser's site settings." });
      this.set(false);
      return;
    }
    this.set(true);
  }

  send(title, body, sessionId, tag) {
    if (!this.on || !("Notification" in window) || Notification.permission !== "granted") return;
    try {
      const n = new Notification(title, { body, tag, icon: "favicon.svg" });
      n.onclick = () => { window.focus(); if (sessionId) this.onPick(sessionId); n.close(); };
    } catch { /* some platforms only allow notifications from a service worker */ }
  }

  /** A failure toast of failureToasts() that asks for a notification too. */
  failure(toast) {
    if (toast.notify) this.send(toast.title, toast.text, toast.sessionId, `fail-${toast.seq}`);
  }

  /** A session started waiting for a permission or for input. */
  permission(session, project) {
    const n = permissionNotice(session, project);
    this.send(n.title, n.body, session.session_id, n.tag);
  }

  /** A request is held for an answer from this page. */
  approval(approval, project) {
    const n = approvalNotice(approval, project);
    this.send(n.title, n.body, approval.session_id, n.tag);
  }
}
