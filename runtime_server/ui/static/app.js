// Entry point: the page is chosen by the path (every /ui/ page is the same shell), links are plain links.

import { setUpTokenDialog } from "./api.js";
import { fleetPage } from "./fleet.js";
import { flowPage, flowsPage } from "./flows.js";
import { runPage } from "./run.js";
import { runsPage } from "./runs.js";

const ROUTES = [
  [/^\/ui\/?$/, "runs", (main) => runsPage(main)],
  [/^\/ui\/runs\/([^/]+)$/, "runs", (main, id) => runPage(main, id)],
  [/^\/ui\/fleet$/, "fleet", (main) => fleetPage(main)],
  [/^\/ui\/flows$/, "flows", (main) => flowsPage(main)],
  [/^\/ui\/flows\/([^/]+)$/, "flows", (main, id) => flowPage(main, id)],
];

setUpTokenDialog();
const main = document.getElementById("main");
for (const [pattern, page, show] of ROUTES) {
  const match = location.pathname.match(pattern);
  if (!match) continue;
  document.querySelector(`nav a[data-page="${page}"]`)?.setAttribute("aria-current", "page");
  show(main, ...match.slice(1).map(decodeURIComponent));
  break;
}
