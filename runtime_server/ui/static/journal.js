// What a run's journal says about each execution of each step: pure functions over the event list.

import { millis } from "./dom.js";

const ENDS = { step_succeeded: "completed", step_failed: "failed" };

/**
 * One entry per (item, step) that started: {item, step, start, end, status, attempt, instanceId, error, retries}.
 * ``item`` null takes every item; retries are {at, attempt, instanceId, error, reason} (reason: which budget the re-run spent).
 */
export function stepExecutions(events, item = null) {
  const runs = new Map();
  for (const event of events) {
    if (!event.stepId || (item !== null && event.itemIndex !== item)) continue;
    const key = `${event.itemIndex ?? 0}:${event.stepId}`;
    let entry = runs.get(key);
    if (event.kind === "step_started") {
      if (!entry) {
        entry = { item: event.itemIndex ?? 0, step: event.stepId, start: millis(event.at), end: null, status: "running", attempt: 1, instanceId: null, error: null, retries: [] };
        runs.set(key, entry);
      }
      continue;
    }
    if (!entry) continue;
    if (event.kind === "step_retried") {
      entry.retries.push({ at: millis(event.at), attempt: event.attempt, instanceId: event.instanceId ?? null, error: event.error || null, reason: event.status || null });
      entry.attempt = Math.max(entry.attempt, event.attempt || entry.attempt + 1);
    } else if (event.kind in ENDS) {
      entry.end = millis(event.at);
      entry.status = ENDS[event.kind];
      entry.instanceId = event.instanceId ?? entry.instanceId;
      entry.error = event.error || null;
      if (event.attempt) entry.attempt = event.attempt;
    }
  }
  return [...runs.values()];
}

/** Journal entries that concern the whole run and are drawn across the timeline (recoveries). */
export function runMarks(events) {
  return events.filter((event) => event.kind === "run_recovered").map((event) => ({ at: millis(event.at), kind: event.kind, label: "run recovered" }));
}

/** The time span of the journal: [first entry, last entry or now while the run is live]. */
export function span(events, live) {
  if (!events.length) return [0, 1];
  const first = millis(events[0].at);
  const last = live ? Math.max(Date.now(), millis(events[events.length - 1].at)) : millis(events[events.length - 1].at);
  return [first, Math.max(last, first + 1)];
}
