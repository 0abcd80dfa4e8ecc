// The run's journal as a waterfall: one bar per step execution from start to end, retries as ticks,
// recoveries as lines across; bars are in a list so a screen reader reads them in order.

import { duration, h } from "./dom.js";

const MAX_ROWS = 400;

export function drawTimeline(executions, marks, [from, to], onSelect) {
  const total = to - from;
  const percent = (at) => `${(((at - from) / total) * 100).toFixed(3)}%`;
  const shown = executions.slice().sort((a, b) => a.start - b.start || a.item - b.item).slice(0, MAX_ROWS);
  const many = new Set(executions.map((e) => e.item)).size > 1;
  const rows = shown.map((execution) => {
    const end = execution.end ?? to;
    const label = `${many ? `item ${execution.item} ` : ""}${execution.step}`;
    const spent = duration(end - execution.start);
    const ticks = execution.retries.map((retry) =>
      h("span", { class: "tick", style: `left:${percent(retry.at)}`, title: `retry: attempt ${retry.attempt}${retry.reason ? ` (${retry.reason})` : ""}${retry.instanceId ? ` after pod ${retry.instanceId}` : ""}` }));
    const bar = h("span", { class: `bar status-${execution.status}`, style: `left:${percent(execution.start)};width:max(2px, calc(${percent(end)} - ${percent(execution.start)}))` });
    const retried = execution.retries.length ? `, ${execution.retries.length} ${execution.retries.length === 1 ? "retry" : "retries"}` : "";
    return h("li", { class: "lane" },
      h("button", { type: "button", class: "lane-label", onclick: () => onSelect(execution.step, execution.item), title: label }, label),
      h("span", { class: "track", "aria-label": `${label}: ${execution.status}, ${spent}${retried}` }, bar, ticks),
      h("span", { class: "lane-time" }, spent + (execution.retries.length ? ` ↻${execution.retries.length}` : "")));
  });
  const lines = marks.map((mark) => h("span", { class: `mark mark-${mark.kind}`, style: `left:${percent(mark.at)}`, title: mark.label }, mark.label));
  const note = executions.length > MAX_ROWS ? h("p", { class: "muted" }, `Showing the first ${MAX_ROWS} of ${executions.length} step executions: choose an item to see its own.`) : null;
  return h("div", { class: "timeline" },
    h("div", { class: "axis" }, h("span", {}, "0"), h("span", {}, duration(total))),
    h("div", { class: "lanes-wrap" }, h("ol", { class: "lanes" }, rows), h("div", { class: "marks", "aria-hidden": "true" }, lines)),
    marks.length ? h("p", { class: "muted" }, marks.map((mark) => mark.label).join(", ")) : null,
    note);
}
