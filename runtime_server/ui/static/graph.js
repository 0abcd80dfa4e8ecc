// A flow's steps as a graph: edges from the $step references in each step's input (and skipIf),
// laid out in columns by depth; nodes are buttons (keyboard: Tab, Enter), edges one SVG underneath.

import { h } from "./dom.js";

const NODE_WIDTH = 236;
const NODE_HEIGHT = 64;
const COLUMN_GAP = 56;
const ROW_GAP = 14;
const PAD = 12;

/** Every step id referenced with $step anywhere inside ``value`` ($literal contents are data, not references). */
export function stepReferences(value, found = new Set()) {
  if (Array.isArray(value)) {
    for (const item of value) stepReferences(item, found);
  } else if (value && typeof value === "object") {
    if ("$literal" in value) return found;
    if (typeof value.$step === "string") found.add(value.$step);
    for (const item of Object.values(value)) stepReferences(item, found);
  }
  return found;
}

/** {steps: [{id, component, depends: [ids]}], edges: [[from, to]], outputDepends: [ids]} */
export function flowGraph(flow) {
  const steps = (flow.steps || []).map((step) => ({ id: step.id, component: step.component, depends: [] }));
  const known = new Set(steps.map((step) => step.id));
  const edges = [];
  (flow.steps || []).forEach((step, index) => {
    const references = stepReferences([step.input, step.skipIf]);
    for (const from of references) {
      if (known.has(from) && from !== step.id) {
        steps[index].depends.push(from);
        edges.push([from, step.id]);
      }
    }
  });
  return { steps, edges, outputDepends: [...stepReferences(flow.output)].filter((id) => known.has(id)) };
}

/** Column of each step: 0 for steps that depend on none, else one past the deepest dependency. */
export function columns(steps) {
  const byId = new Map(steps.map((step) => [step.id, step]));
  const column = new Map();
  const visiting = new Set();
  const depth = (id) => {
    if (column.has(id)) return column.get(id);
    if (visiting.has(id)) return 0; // a cycle: the flow is invalid anyway, draw it flat
    visiting.add(id);
    const step = byId.get(id);
    const value = step.depends.length ? 1 + Math.max(...step.depends.map(depth)) : 0;
    visiting.delete(id);
    column.set(id, value);
    return value;
  };
  steps.forEach((step) => depth(step.id));
  return column;
}

/**
 * Draw ``graph``; ``describe(step)`` gives {status, lines: [text], label} for each node, ``onSelect(id)`` is
 * called on click or Enter. Returns {element, update(describe)} so a live page recolours without re-laying out.
 */
export function drawGraph(graph, describe, onSelect) {
  const column = columns(graph.steps);
  const rows = [];
  const position = new Map();
  for (const step of graph.steps) {
    const c = column.get(step.id);
    rows[c] = (rows[c] || 0) + 1;
    position.set(step.id, { x: PAD + c * (NODE_WIDTH + COLUMN_GAP), y: PAD + (rows[c] - 1) * (NODE_HEIGHT + ROW_GAP) });
  }
  const width = PAD * 2 + Math.max(1, rows.length) * (NODE_WIDTH + COLUMN_GAP) - COLUMN_GAP;
  const height = PAD * 2 + Math.max(1, ...rows.filter(Boolean)) * (NODE_HEIGHT + ROW_GAP) - ROW_GAP;
  const svgNs = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(svgNs, "svg");
  svg.setAttribute("width", width);
  svg.setAttribute("height", height);
  svg.setAttribute("aria-hidden", "true");
  for (const [from, to] of graph.edges) {
    const a = position.get(from);
    const b = position.get(to);
    const path = document.createElementNS(svgNs, "path");
    const x1 = a.x + NODE_WIDTH;
    const y1 = a.y + NODE_HEIGHT / 2;
    const x2 = b.x;
    const y2 = b.y + NODE_HEIGHT / 2;
    const bend = Math.max(24, (x2 - x1) / 2);
    path.setAttribute("d", `M${x1},${y1} C${x1 + bend},${y1} ${x2 - bend},${y2} ${x2},${y2}`);
    path.setAttribute("class", "edge");
    svg.append(path);
  }
  const nodes = new Map();
  const canvas = h("div", { class: "graph-canvas", style: `width:${width}px;height:${height}px` }, svg);
  for (const step of graph.steps) {
    const { x, y } = position.get(step.id);
    const node = h("button", { type: "button", class: "node", style: `left:${x}px;top:${y}px;width:${NODE_WIDTH}px;height:${NODE_HEIGHT}px`, dataset: { step: step.id }, onclick: () => onSelect(step.id) });
    nodes.set(step.id, node);
    canvas.append(node);
  }
  let selected = null;
  const update = (describeNow) => {
    for (const step of graph.steps) {
      const { status, lines, label } = describeNow(step);
      const node = nodes.get(step.id);
      node.className = `node status-${status || "none"}${step.id === selected ? " selected" : ""}`;
      node.setAttribute("aria-label", label);
      node.replaceChildren(h("strong", {}, step.id), ...lines.map((line) => h("span", {}, line)));
    }
  };
  update(describe);
  const dependsText = graph.steps.length ? `${graph.steps.length} steps, ${graph.edges.length} edges` : "no steps";
  const element = h("div", { class: "graph", role: "group", "aria-label": `Step graph: ${dependsText}` }, canvas);
  const select = (id) => {
    selected = id;
    nodes.forEach((node, stepId) => node.classList.toggle("selected", stepId === id));
  };
  return { element, update, select };
}
