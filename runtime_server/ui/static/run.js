// The run page (/ui/runs/{id}): the step graph coloured by status with each step's duration, attempt and pod,
// a step's details on click, the journal as a timeline, sub-runs, batch items; live runs follow the events stream.

import { api, followEvents } from "./api.js";
import { badge, clear, duration, h, millis, perFrame, pretty, problem, runDuration, when } from "./dom.js";
import { drawGraph, flowGraph } from "./graph.js";
import { runMarks, span, stepExecutions } from "./journal.js";
import { drawTimeline } from "./timeline.js";

const SUB_RUNS_SHOWN = 200;
const STEPS_REFRESH_MS = 400;

function pod(instanceId) {
  return instanceId ? instanceId : "unknown";
}

function outcomeOf(result) {
  if (!result) return null;
  return result.outcome === "failed" ? { error: result.error } : { output: result.result };
}

/** What the graph shows for a step: from /steps for the whole run, from the journal for one item. */
function describeStep(state, step) {
  const entry = state.steps[step.id] || {};
  const executions = state.byStep.get(step.id) || [];
  const last = executions[executions.length - 1];
  const failedItems = executions.filter((e) => e.status === "failed").map((e) => e.item);
  const status = state.item === null ? (failedItems.length ? "failed" : entry.status || last?.status || "blocked") : last?.status || "blocked";
  const start = millis(entry.startedAt) ?? (executions.length ? Math.min(...executions.map((e) => e.start)) : null);
  const ends = executions.map((e) => e.end).filter((end) => end !== null);
  const end = state.item === null && entry.completedAt ? millis(entry.completedAt) : ends.length ? Math.max(...ends) : null;
  const attempt = state.item === null && entry.attempt ? entry.attempt : Math.max(1, ...executions.map((e) => e.attempt));
  const instanceId = (state.item === null ? entry.instanceId : null) ?? last?.instanceId ?? null;
  const spent = start !== null && end !== null ? duration(end - start) : status === "running" ? "running" : "–";
  const lines = [`${spent} · attempt ${attempt}`, `pod ${pod(instanceId)}`];
  if (state.item === null && state.run.items.total > 1 && failedItems.length) lines.push(`failed on ${failedItems.length} of ${state.run.items.total} items`);
  return { status, lines, label: `${step.id}: ${status}, ${spent}, attempt ${attempt}, pod ${pod(instanceId)}`, attempt, instanceId, start, end, executions, failedItems };
}

function header(run) {
  const counts = run.items;
  return h("div", { class: "run-head" },
    h("h1", {}, "Run ", h("code", {}, run.runId)),
    h("dl", { class: "facts" },
      h("dt", {}, "Status"), h("dd", { id: "run-status" }, badge(run.status)),
      h("dt", {}, "Flow"), h("dd", {}, h("a", { href: `/ui/flows/${run.flowId}` }, run.flowName || run.flowId.slice(0, 12))),
      h("dt", {}, "Items"), h("dd", {}, `${counts.completed} completed, ${counts.failed} failed, ${counts.running} running of ${counts.total}`),
      h("dt", {}, "Created"), h("dd", {}, when(run.createdAt)),
      h("dt", {}, "Duration"), h("dd", {}, duration(runDuration(run))),
      run.parentRunId ? [h("dt", {}, "Parent run"), h("dd", {}, h("a", { href: `/ui/runs/${run.parentRunId}` }, run.parentRunId))] : null,
      run.traceId ? [h("dt", {}, "Trace"), h("dd", {}, h("code", {}, run.traceId))] : null));
}

function itemPicker(run, state, onChange) {
  if (run.items.total < 2) return null;
  const input = h("input", { id: "item-index", type: "number", min: 0, max: run.items.total - 1, value: state.item ?? "", placeholder: "all" });
  return h("form", { class: "filters", onsubmit: (event) => {
    event.preventDefault();
    onChange(input.value === "" ? null : Math.min(run.items.total - 1, Math.max(0, Number(input.value))));
  } },
  h("label", { for: "item-index" }, `Item (0–${run.items.total - 1}, empty for all)`), input, h("button", { type: "submit" }, "Show"));
}

/** The whole run's view of a step: its kept result, or the first failing item's error when the kept one succeeded. */
function runOutcome(entry, seen) {
  const kept = outcomeOf(entry.result);
  if (!seen.failedItems.length || kept?.error) return kept;
  return { error: seen.executions.find((execution) => execution.status === "failed").error };
}

/** One item's view of a step: the journal has the error's headline; the item's result has its whole stack when it came from this step. */
function itemOutcome(state, seen) {
  const headline = seen.executions.find((execution) => execution.error)?.error;
  if (!headline) return null;
  const itemError = state.itemResult?.result?.error;
  return { error: itemError && itemError.message === headline.message ? itemError : headline };
}

function stepDetails(state, stepId, flowStep) {
  const step = { id: stepId };
  const seen = describeStep(state, step);
  const entry = state.steps[stepId] || {};
  const outcome = state.item === null ? runOutcome(entry, seen) : itemOutcome(state, seen);
  const subRuns = state.subRuns.filter((sub) => seen.start !== null && millis(sub.createdAt) >= seen.start && (seen.end === null || millis(sub.createdAt) <= seen.end));
  const retries = seen.executions.flatMap((execution) => execution.retries.map((retry) => ({ ...retry, item: execution.item })));
  return h("section", { class: "details", "aria-labelledby": "details-title" },
    h("h2", { id: "details-title" }, "Step ", h("code", {}, stepId), " ", badge(seen.status)),
    h("dl", { class: "facts" },
      h("dt", {}, "Component"), h("dd", {}, h("code", {}, flowStep?.component || entry.component || "–")),
      h("dt", {}, "Attempt"), h("dd", {}, String(seen.attempt)),
      h("dt", {}, "Pod"), h("dd", { class: "pod" }, pod(seen.instanceId)),
      h("dt", {}, "Started"), h("dd", {}, seen.start ? when(new Date(seen.start).toISOString()) : "–"),
      h("dt", {}, "Duration"), h("dd", {}, seen.start !== null && seen.end !== null ? duration(seen.end - seen.start) : "–")),
    h("h3", {}, "Input (as the flow writes it)"), pretty(flowStep?.input ?? null),
    outcome?.error ? [h("h3", {}, "Error"), h("div", { class: "error-box", role: "alert" }, h("p", {}, h("strong", {}, `${outcome.error.code ?? ""} `), outcome.error.message || ""), pretty(outcome.error))] : null,
    outcome && "output" in outcome ? [h("h3", {}, "Output"), pretty(outcome.output)] : null,
    state.item === null && state.run.items.total > 1
      ? h("p", { class: "muted" }, `A batch run keeps one output per step (the last item's)${seen.failedItems.length ? `; it failed on item ${seen.failedItems.slice(0, 10).join(", ")}` : ""}: choose an item for its own.`)
      : null,
    h("h3", {}, "Callbacks"),
    callbackSummary(entry.callbacks, seen.instanceId),
    subRuns.length ? h("ul", {}, subRuns.map((sub) => h("li", {}, "sub-run ", h("a", { href: `/ui/runs/${sub.runId}` }, sub.runId), " ", badge(sub.status)))) : h("p", { class: "muted" }, "No sub-runs started while it ran."),
    retries.length ? [h("h3", {}, "Retries"), h("ul", {}, retries.map((retry) =>
      h("li", {}, `item ${retry.item}: attempt ${retry.attempt} after ${retry.error?.message || "a failure"} on pod ${pod(retry.instanceId)}${retry.reason ? ` (${retry.reason})` : ""}`)))] : null);
}

function callbackSummary(callbacks, instanceId) {
  const made = Object.entries(callbacks || {});
  if (!made.length) return h("p", { class: "muted" }, "Its last execution made no callbacks.");
  const total = made.reduce((sum, [, count]) => sum + count, 0);
  const where = instanceId ? ["pinned to pod ", h("code", {}, instanceId)] : ["on a stream whose pod did not name itself"];
  return h("p", {}, `${total} callback${total === 1 ? "" : "s"} (${made.map(([method, count]) => `${method} ×${count}`).join(", ")}), `, ...where, ".");
}

function subRunList(subRuns) {
  if (!subRuns.length) return h("p", { class: "muted" }, "None.");
  return h("ul", { class: "sub-runs" }, subRuns.slice(0, SUB_RUNS_SHOWN).map((sub) =>
    h("li", {}, h("a", { href: `/ui/runs/${sub.runId}` }, sub.runId), " ", sub.flowName || "", " ", badge(sub.status))));
}

function journalEntries(events) {
  return h("ol", {}, events.slice(-1000).map((event) => h("li", {},
    h("code", {}, event.at), " ", event.kind,
    event.itemIndex !== undefined && event.itemIndex !== null ? ` item ${event.itemIndex}` : "",
    event.stepId ? ` ${event.stepId}` : "", event.attempt ? ` attempt ${event.attempt}` : "",
    event.instanceId ? ` pod ${event.instanceId}` : "", event.status ? ` ${event.status}` : "",
    event.error ? ` — ${event.error.message}` : "")));
}

/** The journal's entries are built only while it is open (a run of 200 steps has ~600). */
function journalList(state) {
  const details = h("details", { class: "journal", open: state.journalOpen }, h("summary", {}, `Journal (${state.events.length} entries)`));
  const fill = () => {
    state.journalOpen = details.open;
    details.querySelector("ol")?.remove();
    if (details.open) details.append(journalEntries(state.events));
  };
  details.addEventListener("toggle", fill);
  if (state.journalOpen) fill();
  return details;
}

export async function runPage(main, runId) {
  const failure = h("div");
  clear(main, h("p", { class: "muted" }, "Loading run…"));
  let run, flowAnswer, stepsAnswer, journal, subRuns;
  try {
    [run, flowAnswer, stepsAnswer, journal, subRuns] = await Promise.all([
      api(`/runs/${runId}`), api(`/runs/${runId}/flow`), api(`/runs/${runId}/steps`), api(`/runs/${runId}/events`),
      api(`/runs?parentRunId=${runId}&limit=${SUB_RUNS_SHOWN}`),
    ]);
  } catch (error) {
    clear(main, h("h1", {}, "Run ", h("code", {}, runId)), problem(error));
    return;
  }
  const flow = flowAnswer.flow;
  const flowSteps = new Map((flow.steps || []).map((step) => [step.id, step]));
  const graph = flowGraph(flow);
  const state = { run, steps: stepsAnswer.steps, events: journal.events, subRuns: subRuns.runs, item: null, itemResult: null, executions: [], byStep: new Map(), selected: null, journalOpen: false };
  const head = h("div");
  const picker = h("div");
  const timeline = h("div");
  const details = h("div", { id: "step-details", "aria-live": "polite" });
  const subRunsBox = h("div");
  const journalBox = h("div");
  const itemBox = h("div");
  const select = async (stepId, item) => {
    if (item !== undefined && state.run.items.total > 1 && item !== state.item) await setItem(item);
    state.selected = stepId;
    drawn.select(stepId);
    clear(details, stepDetails(state, stepId, flowSteps.get(stepId)));
  };
  const drawn = drawGraph(graph, (step) => describeStep(state, step), select);
  const render = () => {
    state.executions = stepExecutions(state.events, state.item);
    state.byStep = Map.groupBy(state.executions, (execution) => execution.step);
    clear(head, header(state.run));
    drawn.update((step) => describeStep(state, step));
    clear(timeline, drawTimeline(state.executions, runMarks(state.events), span(state.events, state.run.status === "running"), select));
    clear(subRunsBox, subRunList(state.subRuns));
    clear(journalBox, journalList(state));
    if (state.selected) clear(details, stepDetails(state, state.selected, flowSteps.get(state.selected)));
  };
  const setItem = async (item) => {
    state.item = item;
    state.itemResult = item === null ? null : (await api(`/runs/${runId}/items?offset=${item}&limit=1`)).items[0] ?? null;
    clear(picker, itemPicker(state.run, state, setItem));
    clear(itemBox, item === null ? null : h("section", { "aria-labelledby": "item-title" }, h("h2", { id: "item-title" }, `Item ${item}`), pretty(state.itemResult)));
    render();
  };
  details.append(h("p", { class: "muted" }, "Choose a step (click, or Tab and Enter) to see its input, output or error, its pod and its callbacks."));
  clear(main, head, failure, picker,
    h("div", { class: "run-body" },
      h("div", {},
        h("section", { "aria-labelledby": "graph-title" }, h("h2", { id: "graph-title" }, "Steps"), h("div", { class: "graph-wrap" }, drawn.element)),
        h("section", { "aria-labelledby": "timeline-title" }, h("h2", { id: "timeline-title" }, "Timeline"), timeline),
        h("section", { "aria-labelledby": "sub-runs-title" }, h("h2", { id: "sub-runs-title" }, "Sub-runs"), subRunsBox),
        journalBox),
      h("div", { class: "side" }, details, itemBox)));
  clear(picker, itemPicker(state.run, state, setItem));
  render();
  main.dataset.ready = "true";
  if (state.run.status === "running") follow(state, runId, render, failure);
}

/** Follow the live run: journal entries as they come, steps (outputs, pods) shortly after, everything at its end. */
async function follow(state, runId, render, failure) {
  const live = document.getElementById("live");
  const redraw = perFrame(render);
  let stepsTimer = null;
  const refreshSteps = () => {
    if (stepsTimer) return;
    stepsTimer = setTimeout(async () => {
      stepsTimer = null;
      state.steps = (await api(`/runs/${runId}/steps`)).steps;
      redraw();
    }, STEPS_REFRESH_MS);
  };
  const clock = setInterval(redraw, 1000); // the live bars grow
  live.textContent = "following the run live";
  try {
    await followEvents(runId, (event) => {
      if (event.seq < state.events.length) return; // the stream starts from the first entry
      state.events.push(event);
      if (event.stepId) refreshSteps();
      redraw();
    });
    const [run, steps, subRuns] = await Promise.all([api(`/runs/${runId}`), api(`/runs/${runId}/steps`), api(`/runs?parentRunId=${runId}&limit=${SUB_RUNS_SHOWN}`)]);
    Object.assign(state, { run, steps: steps.steps, subRuns: subRuns.runs });
    live.textContent = `run ${run.status}`;
  } catch (error) {
    clear(failure, problem(error));
  } finally {
    clearInterval(clock);
    render();
  }
}
