// The fleet page (/ui/fleet): each configured proxy's membership view (pods, instance ids, state, in-flight
// requests, pinned streams when the proxy reports them) and executions per pod; refreshed every second.

import { api } from "./api.js";
import { badge, clear, every, h, problem } from "./dom.js";

function executionsCell(counts) {
  if (!counts) return "0";
  const extra = [counts.failed ? `${counts.failed} failed` : null, counts.retried ? `${counts.retried} retried` : null].filter(Boolean);
  return `${counts.total}${extra.length ? ` (${extra.join(", ")})` : ""}`;
}

const PINNED_FIELDS = ["pinned_streams", "pinned"];

function pinned(member) {
  const name = PINNED_FIELDS.find((field) => field in member);
  return name ? String(member[name]) : "not reported";
}

function proxyCard(proxy, executions) {
  const title = h("h2", {}, "Proxy ", h("code", {}, proxy.url), h("span", { class: "muted" }, ` plugin ${proxy.plugin}`));
  if (proxy.error) return h("section", { class: "card" }, title, problem(`Not reachable: ${proxy.error}`));
  const rows = proxy.members.map((member) => h("tr", { dataset: { instance: member.instance_id, state: member.state } },
    h("td", { class: "id" }, member.instance_id),
    h("td", {}, member.address),
    h("td", {}, badge(member.state)),
    h("td", {}, member.in_dns ? "yes" : "no"),
    h("td", { class: "num" }, String(member.in_flight ?? "–")),
    h("td", { class: "num" }, pinned(member)),
    h("td", { class: "num" }, executionsCell(executions[member.instance_id]))));
  const counts = ["active", "draining", "gone"].map((state) => `${proxy.members.filter((m) => m.state === state).length} ${state}`).join(", ");
  return h("section", { class: "card" }, title,
    h("p", { class: "muted" }, `upstream ${proxy.upstream} · ${counts}`),
    h("div", { class: "table-wrap" }, h("table", { class: "pods" },
      h("caption", { class: "visually-hidden" }, `Pods behind ${proxy.url}`),
      h("thead", {}, h("tr", {}, ["Instance id", "Address", "State", "In DNS", "In flight", "Pinned streams", "Executions"].map((name) => h("th", { scope: "col" }, name)))),
      h("tbody", {}, rows))));
}

export function fleetPage(main) {
  const body = h("div");
  clear(main, h("h1", {}, "Fleet"), body);
  every(1, async () => {
    let fleet;
    try {
      fleet = await api("/fleet");
    } catch (error) {
      clear(body, problem(error));
      throw error;
    }
    const listed = new Set(fleet.proxies.flatMap((proxy) => (proxy.members || []).map((member) => member.instance_id)));
    const pinnedReported = fleet.proxies.some((proxy) => (proxy.members || []).some((member) => PINNED_FIELDS.some((field) => field in member)));
    const others = Object.entries(fleet.executions).filter(([instanceId]) => !listed.has(instanceId));
    clear(body,
      fleet.proxies.length ? fleet.proxies.map((proxy) => proxyCard(proxy, fleet.executions)) : h("p", {}, "The runtime has no remote (type: stepflow) plugin, so no proxy to show."),
      others.length ? h("section", { class: "card" }, h("h2", {}, "Other pods that ran steps"),
        h("p", { class: "muted" }, "Pods no proxy lists now (gone and forgotten); unknown: steps no pod named (builtins, and pods that do not send Stepflow-Instance-Id)."),
        h("ul", {}, others.map(([instanceId, counts]) => h("li", {}, h("code", {}, instanceId), `: ${executionsCell(counts)}`)))) : null,
      h("p", { class: "muted" }, `Executions are counted over the newest ${fleet.countedRuns} runs the runtime keeps.${pinnedReported ? "" : " Pinned streams: the proxies' membership view does not report them."}`));
  });
}
