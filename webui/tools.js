// The Tools view: per tool, calls, successes, failures, success rate and median duration of
// the events in view, as a table and a bar chart.

import { toolStats, formatDuration, formatRate } from "./model.js";
import { escapeXml as esc } from "./timeline.js";
import { toolChart } from "./charts.js";

const $ = (sel, root = document) => root.querySelector(sel);

export class Tools {
  /** shown: what the event views show ({store, filters}). */
  constructor({ shown }) {
    this.shown = shown;
  }

  render() {
    const { store, filters } = this.shown;
    const rows = toolStats(store, filters);
    $("#tools-empty").hidden = rows.length > 0;
    $("#tool-rows").innerHTML = rows.map((r) => `<tr data-testid="tool-row" data-tool="${esc(r.tool)}"${r.tool === filters.tool ? ' class="selected"' : ""}>
      <td class="tool mono">${esc(r.tool)}</td><td class="num count">${r.count}</td><td class="num ok">${r.ok}</td>
      <td class="num failed${r.failed ? " bad" : ""}">${r.failed}</td><td class="num open">${r.open}</td>
      <td class="num success-rate">${formatRate(r.successRate)}</td><td class="num median">${formatDuration(r.median)}</td></tr>`).join("");
    const chart = $("#tool-chart");
    const width = Math.max(320, chart.parentElement.clientWidth - 2);
    const { svg, height } = toolChart(rows, width);
    chart.setAttribute("width", width);
    chart.setAttribute("height", height);
    chart.setAttribute("viewBox", `0 0 ${width} ${Math.max(1, height)}`);
    chart.innerHTML = svg;
  }
}
