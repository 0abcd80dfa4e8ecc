// The flows pages: stored flows (/ui/flows) and one flow (/ui/flows/{id}) with its graph and a form to start a run.

import { api } from "./api.js";
import { clear, h, pretty, problem } from "./dom.js";
import { drawGraph, flowGraph } from "./graph.js";

export async function flowsPage(main) {
  clear(main, h("h1", {}, "Flows"), h("p", { class: "muted" }, "Loading…"));
  let answer;
  try {
    answer = await api("/flows?limit=1000");
  } catch (error) {
    clear(main, h("h1", {}, "Flows"), problem(error));
    return;
  }
  const rows = answer.flows.map((flow) => h("tr", {},
    h("td", {}, h("a", { href: `/ui/flows/${flow.flowId}` }, flow.name || "(unnamed)")),
    h("td", { class: "id" }, flow.flowId.slice(0, 16) + "…"),
    h("td", { class: "num" }, String(flow.steps)),
    h("td", {}, flow.description || "")));
  clear(main, h("h1", {}, "Flows"),
    h("p", { class: "muted" }, `${answer.total} stored flows${answer.total > answer.flows.length ? `, the first ${answer.flows.length} shown` : ""}.`),
    h("div", { class: "table-wrap" }, h("table", {}, h("caption", { class: "visually-hidden" }, "Stored flows"),
      h("thead", {}, h("tr", {}, ["Name", "Flow id", "Steps", "Description"].map((name) => h("th", { scope: "col" }, name)))), h("tbody", {}, rows))));
}

function exampleInput(answer) {
  const example = (answer.allExamples || [])[0];
  return example && "input" in example ? example.input : {};
}

function runForm(flowId, initial) {
  const text = h("textarea", { id: "run-input", rows: 8, spellcheck: "false" }, JSON.stringify(initial, null, 2));
  const batch = h("input", { id: "run-batch", type: "checkbox" });
  const message = h("div", { "aria-live": "polite" });
  const form = h("form", { class: "run-form", onsubmit: async (event) => {
    event.preventDefault();
    let input;
    try {
      input = JSON.parse(text.value);
    } catch (error) {
      clear(message, problem(`The input is not valid JSON: ${error.message}`));
      return;
    }
    if (batch.checked && !Array.isArray(input)) {
      clear(message, problem("A batch takes a JSON list with one input per item."));
      return;
    }
    try {
      const run = await api("/runs", { method: "POST", body: { flowId, input: batch.checked ? input : [input], wait: false } });
      location.href = `/ui/runs/${run.runId}`;
    } catch (error) {
      clear(message, problem(error));
    }
  } },
  h("h2", {}, "Start a run"),
  h("label", { for: "run-input" }, "Input (JSON)"), text,
  h("div", { class: "check" }, batch, h("label", { for: "run-batch" }, "The input is a list, one element per item (a batch run)")),
  h("button", { type: "submit" }, "Start run"), message);
  return form;
}

export async function flowPage(main, flowId) {
  let answer;
  try {
    answer = await api(`/flows/${flowId}`);
  } catch (error) {
    clear(main, h("h1", {}, "Flow"), problem(error));
    return;
  }
  const flow = answer.flow;
  const drawn = drawGraph(flowGraph(flow), (step) => ({ status: "none", lines: [step.component], label: `${step.id}: ${step.component}` }), (id) => {
    drawn.select(id);
    const step = (flow.steps || []).find((each) => each.id === id);
    clear(details, h("h2", {}, "Step ", h("code", {}, id)), pretty(step));
  });
  const details = h("section", { class: "details", "aria-live": "polite" });
  clear(main, h("h1", {}, "Flow ", flow.name || "(unnamed)"),
    h("p", { class: "muted" }, flow.description || "", " ", h("code", {}, flowId)),
    h("p", {}, h("a", { href: `/ui/?flow=${encodeURIComponent(flow.name || "")}` }, "Runs of this flow")),
    h("section", {}, h("h2", {}, "Steps"), h("div", { class: "graph-wrap" }, drawn.element)), details,
    runForm(flowId, exampleInput(answer)));
}
