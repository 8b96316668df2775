// The filter bar of the event views: session, event type and tool selects, and the text box
// over the loaded events. The selects offer what the events shown hold.

import { filterOptions } from "./model.js";
import { escapeXml as esc } from "./timeline.js";

const $ = (sel, root = document) => root.querySelector(sel);

export class FilterBar {
  /** shown: what the event views show ({store, filters}). onChange(): a filter changed. */
  constructor({ shown, onChange }) {
    this.shown = shown;
    this.onChange = onChange;
    this.selects = { session: $("#filter-session"), type: $("#filter-type"), tool: $("#filter-tool") };
    this.text = $("#search");
    this.optionsKey = { session: "", type: "", tool: "" }; // what each select offers now
    for (const [key, select] of Object.entries(this.selects)) {
      select.addEventListener("change", (e) => { this.shown.filters[key] = e.target.value; onChange(); });
    }
    let timer = 0;
    this.text.addEventListener("input", (e) => {
      clearTimeout(timer);
      const value = e.target.value;
      timer = setTimeout(() => { this.shown.filters.text = value.trim(); onChange(); }, 120);
    });
  }

  _setOptions(key, values, allLabel) {
    const select = this.selects[key];
    const sig = values.map((v) => v.value + "\u0001" + v.label).join("\u0000");
    if (this.optionsKey[key] === sig) return;
    this.optionsKey[key] = sig;
    const current = select.value;
    let html = `<option value="">${esc(allLabel)}</option>`;
    for (const v of values) html += `<option value="${esc(v.value)}">${esc(v.label)}</option>`;
    select.innerHTML = html;
    select.value = current;
    if (select.value !== current) {
      // The selected value is gone from the loaded events: keep it selectable.
      select.insertAdjacentHTML("beforeend", `<option value="${esc(current)}">${esc(current)}</option>`);
      select.value = current;
    }
  }

  renderOptions() {
    const o = filterOptions(this.shown.store);
    this._setOptions("session", o.session, "All sessions");
    this._setOptions("type", o.type, "All event types");
    this._setOptions("tool", o.tool, "All tools");
  }

  /** Follow one session (without telling onChange: the caller redraws). */
  setSession(id) {
    this.shown.filters.session = id;
    this.selects.session.value = id;
  }

  /** Other events are shown: the selects offer their values and show their filters. */
  reset() {
    this.optionsKey = { session: "", type: "", tool: "" };
    this.renderOptions();
    const f = this.shown.filters;
    this.selects.session.value = f.session;
    this.selects.type.value = f.type;
    this.selects.tool.value = f.tool;
    this.text.value = f.text;
  }
}
