// The runs list (/ui/): newest first, filtered by status and flow, paged like the API, refreshed on its own.
// Only the rows in view are in the document, so a page of 10,000 runs scrolls and refreshes without freezing.

import { api } from "./api.js";
import { badge, clear, duration, every, h, problem, runDuration, when } from "./dom.js";

const STATUSES = ["", "running", "completed", "failed", "cancelled", "paused"];
const PAGE_SIZES = [50, 100, 1000, 10000];
const ROW_HEIGHT = 36; // style.css: .runs tbody tr
const OVERSCAN = 20;

function query() {
  const params = new URLSearchParams(location.search);
  return {
    status: params.get("status") || "",
    flow: params.get("flow") || "",
    limit: Number(params.get("limit")) || 100,
    offset: Number(params.get("offset")) || 0,
  };
}

function href(changes) {
  const next = { ...query(), ...changes };
  const params = new URLSearchParams();
  if (next.status) params.set("status", next.status);
  if (next.flow) params.set("flow", next.flow);
  if (next.limit !== 100) params.set("limit", next.limit);
  if (next.offset) params.set("offset", next.offset);
  const text = params.toString();
  return `/ui/${text ? `?${text}` : ""}`;
}

function items(counts) {
  const parts = [`${counts.completed}/${counts.total}`];
  if (counts.failed) parts.push(`${counts.failed} failed`);
  if (counts.running) parts.push(`${counts.running} running`);
  return parts.join(", ");
}

function row(run) {
  return h("tr", { dataset: { run: run.runId } },
    h("td", { class: "id" }, h("a", { href: `/ui/runs/${run.runId}`, "aria-label": `run ${run.runId}` },
      h("span", { class: "id-head" }, run.runId.slice(0, -12)), h("span", { class: "id-tail" }, run.runId.slice(-12)))),
    h("td", {}, run.flowName || "(unnamed)"),
    h("td", {}, badge(run.status)),
    h("td", { class: "wide-only" }, items(run.items)),
    h("td", { class: "wide-only" }, when(run.createdAt)),
    h("td", { class: "num" }, duration(runDuration(run))),
  );
}

function filters(current) {
  const status = h("select", { id: "status-filter", name: "status" }, STATUSES.map((value) => h("option", { value, selected: value === current.status }, value || "any")));
  const flow = h("input", { id: "flow-filter", name: "flow", value: current.flow, placeholder: "flow name", list: "flow-names" });
  const limit = h("select", { id: "limit", name: "limit" }, PAGE_SIZES.map((value) => h("option", { value, selected: value === current.limit }, String(value))));
  const form = h("form", { class: "filters", role: "search", onsubmit: (event) => {
    event.preventDefault();
    location.href = href({ status: status.value, flow: flow.value.trim(), limit: Number(limit.value), offset: 0 });
  } },
  h("label", { for: "status-filter" }, "Status"), status,
  h("label", { for: "flow-filter" }, "Flow"), flow, h("datalist", { id: "flow-names" }),
  h("label", { for: "limit" }, "Per page"), limit,
  h("button", { type: "submit" }, "Apply"));
  return form;
}

export function runsPage(main) {
  const current = query();
  const body = h("tbody");
  const table = h("table", { class: "runs" },
    h("caption", { class: "visually-hidden" }, "Runs, newest first"),
    h("thead", {}, h("tr", {}, ["Run", "Flow", "Status", "Items", "Created", "Duration"].map((name, index) =>
      h("th", { scope: "col", class: index === 3 || index === 4 ? "wide-only" : null }, name)))),
    body);
  const summary = h("p", { class: "muted", id: "runs-summary" });
  const pager = h("nav", { class: "pager", "aria-label": "Pages of runs" },
    current.offset > 0 ? h("a", { href: href({ offset: Math.max(0, current.offset - current.limit) }), rel: "prev" }, "← Newer") : null,
    h("a", { href: href({ offset: current.offset + current.limit }), rel: "next", id: "older" }, "Older →"));
  const failure = h("div");
  clear(main, h("h1", {}, "Runs"), filters(current), summary, failure, h("div", { class: "table-wrap" }, table), pager);

  let runs = [];
  const byId = new Map();
  let shown = [-1, -1];

  const renderWindow = (force) => {
    const top = body.getBoundingClientRect().top;
    const first = Math.max(0, Math.floor(-top / ROW_HEIGHT) - OVERSCAN);
    const last = Math.min(runs.length, Math.ceil((innerHeight - top) / ROW_HEIGHT) + OVERSCAN);
    if (!force && first === shown[0] && last === shown[1]) return;
    shown = [first, last];
    const before = h("tr", { class: "spacer", style: `height:${first * ROW_HEIGHT}px`, "aria-hidden": "true" });
    const after = h("tr", { class: "spacer", style: `height:${(runs.length - last) * ROW_HEIGHT}px`, "aria-hidden": "true" });
    body.replaceChildren(before, ...runs.slice(first, last).map(row), after);
    table.setAttribute("aria-rowcount", runs.length + 1);
  };
  let scheduled = false;
  const onScroll = () => {
    if (scheduled) return;
    scheduled = true;
    requestAnimationFrame(() => {
      scheduled = false;
      renderWindow(false);
    });
  };
  addEventListener("scroll", onScroll, { passive: true });
  addEventListener("resize", onScroll);

  const refresh = async () => {
    const params = new URLSearchParams({ limit: current.limit, offset: current.offset });
    if (current.status) params.set("status", current.status);
    if (current.flow) params.set("flowName", current.flow);
    const started = performance.now();
    try {
      const answer = await api(`/runs?${params}`);
      clear(failure);
      runs = answer.runs;
    } catch (error) {
      clear(failure, problem(error));
      throw error;
    }
    byId.clear();
    runs.forEach((run) => byId.set(run.runId, run));
    const names = [...new Set(runs.map((run) => run.flowName).filter(Boolean))].sort();
    clear(document.getElementById("flow-names"), names.map((name) => h("option", { value: name })));
    summary.textContent = runs.length
      ? `Runs ${current.offset + 1}–${current.offset + runs.length}${current.status ? `, status ${current.status}` : ""}${current.flow ? `, flow ${current.flow}` : ""}`
      : "No runs match.";
    document.getElementById("older").hidden = runs.length < current.limit;
    renderWindow(true);
    main.dataset.renderMs = Math.round(performance.now() - started);
    main.dataset.rows = String(runs.length);
  };
  every(() => (current.limit > 1000 ? 5 : 2), refresh);
}
