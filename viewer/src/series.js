// An index's time series of the selected project: a chart (median, p10–p90 band, clear fraction),
// cloudy dates marked, a click on a date shows that date's index layers and their legend on the map.
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { api, query } from "./api.js";
import { indexLegend } from "./legend.js";
import { showTiles } from "./map.js";

const DAY = 86400;
const LINE = "#1a7f37";
const BAND = "rgba(26, 127, 55, 0.18)";
const CLEAR = "rgba(46, 134, 222, 0.35)";
const CLOUDY = "#c0392b";

/** The series' state: the chart, the points per date, and which date's layers are on the map. */
export function createSeries(view, elements, onError) {
  const series = { view, el: elements, onError, project: null, index: "", points: [], byDate: new Map(), chart: null, shown: [], legend: null };
  elements.index.addEventListener("change", () => guard(series, () => loadSeries(series)));
  elements.minClear.addEventListener("input", () => guard(series, () => draw(series)));
  return series;
}

async function guard(series, action) {
  try {
    await action();
  } catch (err) {
    series.onError(err);
  }
}

/** The threshold the user set, within 0..1. */
function minClear(series) {
  const value = Number(series.el.minClear.value);
  return Number.isFinite(value) ? Math.min(1, Math.max(0, value)) : 0;
}

/** Show a project's series: its indices (from its products), the first one charted. */
export async function loadProjectSeries(series, project) {
  clearSeries(series);
  series.project = project;
  const { products } = await api(`product/list?${query({ project_id: project.project_id, kind: "index" })}`);
  if (series.project !== project) return;
  const names = [...new Set(products.map((p) => p.index).filter(Boolean))].sort();
  series.el.index.replaceChildren(...names.map((n) => Object.assign(document.createElement("option"), { value: n, textContent: n })));
  series.el.panel.hidden = !names.length;
  series.el.empty.hidden = names.length > 0;
  if (names.length) await loadSeries(series);
}

/** Remove the chart, the layers and the legend (another project was chosen). */
export function clearSeries(series) {
  showDate(series, null);
  series.chart?.destroy();
  series.chart = null;
  series.project = null;
  series.points = [];
  series.byDate = new Map();
  series.el.chart.replaceChildren();
  series.el.index.replaceChildren();
  series.el.info.textContent = "";
  series.el.panel.hidden = true;
  series.el.empty.hidden = true;
}

async function loadSeries(series) {
  const project = series.project;
  const index = series.el.index.value;
  const { points } = await api(`stats/series?${query({ project_id: project.project_id, index })}`);
  if (series.project !== project) return;
  series.index = index;
  series.points = points;
  series.byDate = new Map();
  for (const p of points) {
    if (!series.byDate.has(p.date)) series.byDate.set(p.date, []);
    series.byDate.get(p.date).push(p);
  }
  showDate(series, null);
  draw(series);
}

/** The point that stands for a date in the chart: its scene with the most clear pixels. */
function clearest(points) {
  return points.reduce((best, p) => ((p.valid_pixels ?? 0) > (best.valid_pixels ?? 0) ? p : best), points[0]);
}

function draw(series) {
  const threshold = minClear(series);
  const project = series.project;
  series.el.csv.href = `stats/series?${query({ project_id: project.project_id, index: series.index, min_clear: threshold, format: "csv" })}`;
  const dates = [...series.byDate.keys()];
  const chosen = dates.map((d) => clearest(series.byDate.get(d)));
  const cloudy = chosen.map((p) => (p.clear_fraction ?? 0) < threshold);
  const data = [
    dates.map((d) => Date.parse(`${d}T00:00:00Z`) / 1000),
    chosen.map((p, i) => (cloudy[i] ? null : p.median)),
    chosen.map((p, i) => (cloudy[i] ? p.median : null)),
    chosen.map((p) => p.p10),
    chosen.map((p) => p.p90),
    chosen.map((p) => p.clear_fraction ?? 0),
  ];
  series.chart?.destroy();
  series.el.chart.replaceChildren();
  series.el.chart.dataset.dates = String(dates.length);
  series.el.chart.dataset.cloudy = String(cloudy.filter(Boolean).length);
  const width = Math.max(240, series.el.chart.clientWidth || 340);
  const points = (stroke, fill) => ({ show: true, size: 7, stroke, fill });
  series.chart = new uPlot(
    {
      width,
      height: 220,
      legend: { show: true, live: true },
      // No zooming by drag; uPlot's own click handler would stop the page's from seeing clicks.
      cursor: { drag: { x: false, y: false, click: () => {} } },
      scales: { x: { time: true, range: (u, lo, hi) => (lo === hi ? [lo - DAY, hi + DAY] : [lo, hi]) }, clear: { range: [0, 1] } },
      axes: [{}, { label: series.index, size: 48 }, { side: 1, scale: "clear", grid: { show: false }, values: (u, v) => v.map((x) => `${Math.round(x * 100)}%`) }],
      series: [
        { label: "date" },
        { label: "median", stroke: LINE, width: 2, spanGaps: true, points: points(LINE, LINE) },
        { label: `median (< ${Math.round(threshold * 100)}% clear)`, stroke: CLOUDY, width: 0, paths: () => null, points: points(CLOUDY, "#fff") },
        { label: "p10", stroke: BAND, width: 1 },
        { label: "p90", stroke: BAND, width: 1 },
        { label: "clear", scale: "clear", stroke: CLEAR, fill: CLEAR, paths: uPlot.paths.bars({ size: [0.6, 12] }), points: { show: false }, value: (u, v) => (v == null ? "" : `${Math.round(v * 100)}%`) },
      ],
      bands: [{ series: [4, 3], fill: BAND }],
    },
    data,
    series.el.chart,
  );
  // The date nearest the click (the cursor may not have caught up with a quick click).
  series.chart.over.addEventListener("click", (event) => {
    const i = series.chart.posToIdx(event.offsetX);
    if (i !== null && i >= 0 && i < dates.length) guard(series, () => showDate(series, dates[i]));
  });
  const shownCloudy = cloudy.filter(Boolean).length;
  series.el.info.textContent =
    `${dates.length} dates, ${series.points.length} scenes` +
    (shownCloudy ? `; ${shownCloudy} less than ${Math.round(threshold * 100)}% clear (red, left out of the line and the CSV)` : "") +
    ". Click a date to show it on the map.";
}

/** Show one date's index layers (every scene of it) with the legend; null hides them. */
export async function showDate(series, date) {
  for (const key of series.shown) showTiles(series.view, key, "", false);
  series.shown = [];
  series.el.chart.dataset.shown = date || "";
  if (!date) {
    series.legend?.remove();
    series.legend = null;
    return;
  }
  const projectId = series.project.project_id;
  for (const p of series.byDate.get(date) || []) {
    const key = `index:${projectId}:${p.product_id}`;
    showTiles(series.view, key, `product/tile/${projectId}/${encodeURIComponent(p.product_id)}/{z}/{x}/{y}`, true);
    series.shown.push(key);
  }
  const scenes = series.byDate.get(date) || [];
  series.el.info.textContent = `${date}: ${scenes.map((p) => `${p.scene_id} (${Math.round((p.clear_fraction ?? 0) * 100)}% clear, median ${p.median === null ? "–" : p.median.toFixed(3)})`).join("; ")}`;
  const legend = await indexLegend(series.view, series.index, `${series.index} ${date}`, { id: "index-legend" });
  series.legend?.remove();
  series.legend = legend;
  if (series.el.chart.dataset.shown !== date) showDate(series, null); // another date, or none, meanwhile
}
