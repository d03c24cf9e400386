// debug_page.cpp: the HTML page that gort::debug::serve answers "/" with.
// Self-contained (no external script, style or font): it polls /metrics
// once a second, keeps the last two minutes, and draws each chart as an
// inline SVG polyline. Each chart's <svg> carries data-points (samples
// drawn), which is what a headless browser test reads.

#include <string_view>

namespace gort::debug::detail {

extern const std::string_view kDebugPage = R"PAGE(<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>gort</title>
<style>
body { font: 14px system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.3em; } .grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(360px, 1fr)); gap: 1em; }
.chart { border: 1px solid #ddd; border-radius: 6px; padding: .5em .8em; }
.chart h2 { font-size: 1em; margin: 0 0 .3em 0; } .now { float: right; font-weight: normal; color: #555; }
svg { width: 100%; height: 120px; background: #fafafa; } polyline { fill: none; stroke-width: 1.5; vector-effect: non-scaling-stroke; }
#status { color: #555; }
</style></head><body>
<h1>gort runtime <span id="status">connecting...</span></h1>
<div class="grid" id="charts"></div>
<script>
"use strict";
const keep = 120, palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"];
// Each chart: a title and how to get its series from two successive scrapes.
const charts = [
  { id: "fibers", title: "fibers", series: (m) => ({ live: one(m, "gort_fibers"),
      parked: one(m, 'gort_fibers_by_state{state="parked"}'), runnable: one(m, 'gort_fibers_by_state{state="runnable"}') }) },
  { id: "switches", title: "context switches / s", rate: true, series: (m) => ({ switches: one(m, "gort_context_switches_total") }) },
  { id: "runq", title: "run queue depth per worker", series: (m) => byWorker(m, "gort_worker_run_queue_fibers") },
  { id: "wakeups", title: "network wake-ups / s", rate: true, series: (m) => ({ wakeups: one(m, "gort_netpoll_wakeups_total") }) },
  { id: "netwait", title: "fibers waiting on the network", series: (m) => ({ waiting: one(m, "gort_netpoll_waiting_fibers") }) },
  { id: "stacks", title: "committed stack MiB", series: (m) => ({ MiB: one(m, "gort_stack_committed_bytes") / 1048576 }) },
  { id: "stuck", title: "stuck episodes", series: (m) => ({ stuck: one(m, "gort_stuck_episodes_total") }) },
];
function parse(text) {
  const m = new Map();
  for (const line of text.split("\n")) {
    if (!line || line[0] === "#") continue;
    const at = line.lastIndexOf(" ");
    m.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return m;
}
function one(m, name) { return m.has(name) ? m.get(name) : NaN; }
function byWorker(m, name) {
  const out = {};
  for (const [k, v] of m) if (k.startsWith(name + "{")) out["w" + (k.match(/worker="(\d+)"/) || [0, "?"])[1]] = v;
  return out;
}
const history = {}; let last = null, lastTime = 0;
const grid = document.getElementById("charts");
for (const c of charts) {
  history[c.id] = [];
  const div = document.createElement("div");
  div.className = "chart";
  div.innerHTML = `<h2>${c.title}<span class="now" id="now-${c.id}"></span></h2>` +
    `<svg id="svg-${c.id}" data-points="0" viewBox="0 0 ${keep} 100" preserveAspectRatio="none"></svg>`;
  grid.appendChild(div);
}
function draw(c) {
  const h = history[c.id], svg = document.getElementById("svg-" + c.id);
  const names = [...new Set(h.flatMap((p) => Object.keys(p)))];
  let max = 0;
  for (const p of h) for (const n of names) if (isFinite(p[n])) max = Math.max(max, p[n]);
  max = max || 1;
  // The x axis spans the samples so far (at least 10 s), up to `keep`.
  const span = Math.max(10, h.length - 1);
  svg.setAttribute("viewBox", `0 0 ${span} 100`);
  svg.innerHTML = names.map((n, i) => {
    const pts = h.map((p, x) => isFinite(p[n]) ? `${x + span - (h.length - 1)},${(100 - 95 * p[n] / max).toFixed(1)}` : "").filter(Boolean);
    return `<polyline stroke="${palette[i % palette.length]}" points="${pts.join(" ")}"><title>${n}</title></polyline>`;
  }).join("");
  svg.setAttribute("data-points", String(h.length));
  const latest = h[h.length - 1] || {};
  document.getElementById("now-" + c.id).textContent =
    names.map((n) => `${names.length > 1 ? n + " " : ""}${Math.round(latest[n] * 10) / 10}`).join("  ");
}
async function tick() {
  try {
    const text = await (await fetch("/metrics", { cache: "no-store" })).text();
    const m = parse(text), now = one(m, "gort_clock_seconds") * 1000;  // the program's clock, not ours
    for (const c of charts) {
      const cur = c.series(m);
      if (c.rate) {
        if (!last) continue;
        const prev = c.series(last), dt = (now - lastTime) / 1000, point = {};
        for (const k in cur) point[k] = dt > 0 ? Math.max(0, (cur[k] - prev[k]) / dt) : 0;
        history[c.id].push(point);
      } else {
        history[c.id].push(cur);
      }
      if (history[c.id].length > keep) history[c.id].shift();
      draw(c);
    }
    last = m; lastTime = now;
    document.getElementById("status").textContent = "live, " + new Date().toLocaleTimeString();
  } catch (e) {
    document.getElementById("status").textContent = "no answer from the program: " + e;
  }
  setTimeout(tick, 1000);
}
tick();
</script></body></html>
)PAGE";

}  // namespace gort::debug::detail
