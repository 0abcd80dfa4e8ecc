// Small helpers shared by the pages: element building, formatting, status badges, polling.

/** h("a", {href: "/x", class: "y"}, "text", child, ...): attributes starting with "on" become listeners. */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(element.dataset, value);
    else element.setAttribute(name, value === true ? "" : value);
  }
  element.append(...children.flat().filter((child) => child !== null && child !== undefined && child !== false));
  return element;
}

export function clear(element, ...children) {
  element.replaceChildren(...children.flat().filter((child) => child !== null && child !== undefined && child !== false));
  return element;
}

export function badge(status) {
  return h("span", { class: `badge status-${status}` }, status);
}

export function millis(iso) {
  return iso ? Date.parse(iso) : null;
}

export function duration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "–";
  if (ms < 1) return "<1 ms";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
  const minutes = Math.floor(ms / 60_000);
  return `${minutes} min ${Math.round((ms % 60_000) / 1000)} s`;
}

export function when(iso) {
  if (!iso) return "–";
  const date = new Date(iso);
  return date.toLocaleString(undefined, { hour12: false });
}

/** A run's duration: to its end, or to now while it runs. */
export function runDuration(run) {
  const start = millis(run.createdAt);
  const end = run.completedAt ? millis(run.completedAt) : Date.now();
  return start === null ? null : end - start;
}

export function pretty(value) {
  return h("pre", { class: "json" }, JSON.stringify(value, null, 2));
}

export function problem(error) {
  return h("p", { class: "problem", role: "alert" }, error instanceof Error ? error.message : String(error));
}

/** Run ``task`` now and every ``seconds``; a failure is announced (the live region), a refresh only shown, and polling goes on. */
export function every(seconds, task) {
  let timer = null;
  const live = document.getElementById("live");
  const updated = document.getElementById("updated");
  const tick = async () => {
    try {
      await task();
      if (live.textContent.startsWith("update failed")) live.textContent = "updates resumed";
      updated.textContent = `updated ${new Date().toLocaleTimeString(undefined, { hour12: false })}`;
    } catch (error) {
      live.textContent = `update failed: ${error.message}`;
    }
    timer = setTimeout(tick, (typeof seconds === "function" ? seconds() : seconds) * 1000);
  };
  tick();
  return () => clearTimeout(timer);
}

/** Coalesce bursts (events from a stream) into one call per animation frame. */
export function perFrame(task) {
  let pending = false;
  return () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      task();
    });
  };
}
