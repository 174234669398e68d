// The sputnik map viewer: projects, scenes by date, RGB products, index series, composites and task runs,
// over the HTTP API.
import "./viewer.css";
import { api, query } from "./api.js";
import { createMap, drawPolygon, fit, setShapes, showBaseLayer, showTiles } from "./map.js";
import { clearSeries, createSeries, loadProjectSeries } from "./series.js";
import { dateMosaic } from "./mosaic.js";
import { clearComposites, createComposites, loadComposites } from "./composite.js";
import { element } from "./dom.js";

const $ = (selector) => document.querySelector(selector);
const RUNNING = new Set(["WAIT", "NEXT", "RUN"]);
const REFRESH_MS = 1500;

const state = { project: null, metas: [], procTimer: null, lastParams: "", mosaicOff: null };
const view = createMap($("#map"));
const series = createSeries(
  view,
  {
    panel: $("#series-panel"),
    empty: $("#series-empty"),
    index: $("#series-index"),
    minClear: $("#series-min-clear"),
    chart: $("#series-chart"),
    info: $("#series-info"),
    csv: $("#series-csv"),
  },
  (err) => showError(err),
);
const composites = createComposites(
  view,
  { list: $("#composite-list"), form: $("#composite-form") },
  { onRun: (eventId, task) => runStarted(eventId, task), onError: (err) => showError(err) },
);

// ---------------------------------------------------------------- messages

function showError(err) {
  $("#error-text").textContent = err instanceof Error ? err.message : String(err);
  $("#error").hidden = false;
}

function notice(text) {
  $("#notice").textContent = text;
  $("#notice").hidden = !text;
}

/** Run an action from a click or form; any failure is shown to the user, never swallowed. */
function guarded(action) {
  return async (...args) => {
    try {
      await action(...args);
    } catch (err) {
      showError(err);
    }
  };
}

// ---------------------------------------------------------------- projects

async function loadProjects(selectId) {
  const { projects } = await api("project/list");
  const list = $("#project-list");
  list.replaceChildren(
    ...projects.map((p) =>
      element("li", { dataset: { projectId: p.project_id } }, [
        element("button", {
          type: "button",
          className: "link",
          textContent: `${p.name}`,
          title: `project ${p.project_id}`,
          onclick: guarded(() => selectProject(p.project_id)),
        }),
        element("span", { className: "muted", textContent: ` ${p.start_date || "…"} – ${p.end_date || "…"}` }),
      ]),
    ),
  );
  if (!projects.length) list.append(element("li", { className: "muted", textContent: "No projects yet." }));
  if (selectId !== undefined) await selectProject(selectId);
}

async function selectProject(projectId) {
  clearProject();
  const project = await api(`project/info?${query({ project_id: projectId })}`);
  state.project = project;
  for (const li of document.querySelectorAll("#project-list li")) {
    li.classList.toggle("selected", li.dataset.projectId === String(projectId));
  }
  $("#project-panel").hidden = false;
  $("#project-title").textContent = `${project.name} (project ${project.project_id})`;
  $("#project-dates").textContent = `${project.start_date || "any date"} – ${project.end_date || "any date"}`;
  fit(view, setShapes(view.border, [project.border_gj]));
  await Promise.all([
    loadDates(),
    loadProducts(),
    loadComposites(composites, project),
    loadTasks(),
    loadProcs(),
    loadProjectSeries(series, project),
  ]);
}

function clearMosaic() {
  if (state.mosaicOff) state.mosaicOff();
  state.mosaicOff = null;
}

function clearProject() {
  clearSeries(series);
  clearComposites(composites);
  clearMosaic();
  state.project = null;
  state.metas = [];
  clearTimeout(state.procTimer);
  for (const key of [...view.images.keys()]) showTiles(view, key, "", false);
  view.border.clearLayers();
  view.footprints.clearLayers();
  $("#scene-table tbody").replaceChildren();
  $("#product-list").replaceChildren();
  $("#proc-table tbody").replaceChildren();
}

async function createProject(event) {
  event.preventDefault();
  const form = new FormData(event.target);
  const border = String(form.get("border") || "").trim();
  if (!border) throw new Error("Draw the project's border on the map or paste it as GeoJSON first.");
  const body = { name: String(form.get("name")), border };
  for (const key of ["start_date", "end_date"]) if (form.get(key)) body[key] = form.get(key);
  const { project_id } = await api("project/new", { method: "POST", body });
  view.draft.clearLayers();
  event.target.reset();
  $("#new-project").open = false;
  notice(`Project ${project_id} created.`);
  await loadProjects(project_id);
}

function previewBorder() {
  const text = $("#project-form [name=border]").value.trim();
  try {
    fit(view, text ? setShapes(view.draft, [text]) : null);
  } catch {
    view.draft.clearLayers(); // not (yet) valid GeoJSON while the user types; the API judges on submit
  }
}

// ---------------------------------------------------------------- scenes

async function loadDates() {
  const { dates } = await api(`meta/dates?${query({ project_id: state.project.project_id })}`);
  const select = $("#date-select");
  select.replaceChildren(
    element("option", { value: "", textContent: dates.length ? "choose a date" : "no scenes yet" }),
    ...dates.map((d) => element("option", { value: d, textContent: d })),
  );
}

function cloudText(meta) {
  return meta.cloud_cover === null || meta.cloud_cover === undefined ? "?" : `${Math.round(meta.cloud_cover)} %`;
}

async function loadScenes(date) {
  clearMosaic();
  view.footprints.clearLayers();
  $("#scene-table tbody").replaceChildren();
  state.metas = [];
  if (!date) return;
  suggestParams({ date });
  const { metas } = await api(`meta/list?${query({ project_id: state.project.project_id, date })}`);
  state.metas = metas;
  const bounds = setShapes(
    view.footprints,
    metas.map((m) => m.border_gj),
    (i) => `${metas[i].filename} · cloud ${cloudText(metas[i])}`,
  );
  $("#scene-table tbody").replaceChildren(...metas.map(sceneRow));
  // The date's imagery is one layer, its mosaic; the footprints still show each scene.
  if (metas.length) {
    state.mosaicOff = dateMosaic(view, $("#mosaic-controls"), { projectId: state.project.project_id, date, bounds });
  }
}

function sceneRow(meta) {
  const quicklook = meta.tci_url
    ? element("img", {
        className: "quicklook",
        loading: "lazy",
        alt: `quicklook of ${meta.scene_id}`,
        src: `cog/preview.png?${query({ url: meta.tci_url, max_size: 96 })}`,
      })
    : element("span", { className: "muted", textContent: "–" });
  const row = element("tr", { dataset: { sceneId: meta.scene_id } }, [
    element("td", {}, [quicklook]),
    element("td", { className: "product", textContent: meta.filename, title: meta.scene_id }),
    element("td", { className: "cloud", textContent: cloudText(meta) }),
  ]);
  row.addEventListener("click", () => {
    for (const r of document.querySelectorAll("#scene-table tbody tr")) r.classList.toggle("selected", r === row);
    suggestParams({ scene_ids: [meta.scene_id] });
  });
  return row;
}

// ---------------------------------------------------------------- products

async function loadProducts() {
  const projectId = state.project.project_id;
  const { product_ids } = await api(`rgb/list?${query({ project_id: projectId })}`);
  const list = $("#product-list");
  const shown = new Set(view.images.keys());
  list.replaceChildren(
    ...product_ids.map((id) => {
      const key = `rgb:${projectId}:${id}`;
      const template = `rgb/tile/${projectId}/${encodeURIComponent(id)}/{z}/{x}/{y}`;
      const box = element("input", {
        type: "checkbox",
        checked: shown.has(key),
        onchange: (e) => showTiles(view, key, template, e.target.checked),
      });
      return element("li", { dataset: { productId: id } }, [element("label", {}, [box, ` ${id}`])]);
    }),
  );
  if (!product_ids.length) list.append(element("li", { className: "muted", textContent: "No products yet." }));
}

// ---------------------------------------------------------------- tasks and runs

async function loadTasks() {
  const { tasks } = await api("task/list");
  const select = $("#task-select");
  select.replaceChildren(
    ...tasks.map((t) => element("option", { value: t.name, textContent: t.name, title: t.descr })),
  );
  select.onchange = () => {
    const task = tasks.find((t) => t.name === select.value);
    $("#task-descr").textContent = task ? task.descr : "";
  };
  select.onchange();
}

/** Offer the chosen date or scene as the task's parameters, unless the user wrote their own. */
function suggestParams(params) {
  const field = $("#task-form [name=params]");
  if (!field.value.trim() || field.value === state.lastParams) {
    field.value = JSON.stringify(params);
    state.lastParams = field.value;
  }
}

async function runTask(event) {
  event.preventDefault();
  const form = new FormData(event.target);
  const text = String(form.get("params") || "").trim();
  let params;
  if (text) {
    try {
      params = JSON.parse(text);
    } catch (err) {
      throw new Error(`The parameters are not valid JSON: ${err.message}`);
    }
  }
  const body = { task: form.get("task"), title: form.get("title"), project_id: state.project.project_id };
  if (params !== undefined) body.params = params;
  const { event_id } = await api("task/run", { method: "POST", body });
  await runStarted(event_id, body.task);
}

/** A run was started (by the task form or the composite form): say so and watch it. */
async function runStarted(eventId, task) {
  notice(`Run ${eventId} of ${task} started.`);
  await loadProcs();
}

function scriptText(s) {
  return `${s.name}: ${s.status || "?"}${s.result ? ` (${s.result})` : ""}`;
}

async function loadProcs() {
  clearTimeout(state.procTimer);
  const project = state.project;
  if (!project) return;
  const { procs } = await api(`proc/list?${query({ project_id: project.project_id })}`);
  if (state.project !== project) return; // another project was chosen meanwhile
  const before = new Map(
    [...document.querySelectorAll("#proc-table tbody tr")].map((r) => [r.dataset.eventId, r.dataset.status]),
  );
  $("#proc-table tbody").replaceChildren(
    ...procs.map((p) =>
      element("tr", { dataset: { eventId: p.event_id, status: p.status || "", result: p.result || "" } }, [
        element("td", { textContent: `${p.event_id}`, title: p.ctime || "" }),
        element("td", { textContent: `${p.task || ""} ${p.title ? `“${p.title}”` : ""}` }),
        element("td", {
          className: "status",
          textContent: [p.status, p.result, p.message].filter(Boolean).join(" · "),
        }),
        element("td", {}, [
          element("ul", { className: "scripts" }, (p.scripts || []).map((s) => element("li", { textContent: scriptText(s) }))),
        ]),
      ]),
    ),
  );
  const finished = procs.some((p) => before.has(String(p.event_id)) && RUNNING.has(before.get(String(p.event_id))) && !RUNNING.has(p.status));
  if (finished) {
    // A run may have made products.
    await Promise.all([loadProducts(), loadComposites(composites, project), loadProjectSeries(series, project)]);
  }
  if (procs.some((p) => RUNNING.has(p.status))) {
    state.procTimer = setTimeout(guarded(loadProcs), REFRESH_MS);
  }
}

// ---------------------------------------------------------------- wiring

$("#error-close").onclick = () => {
  $("#error").hidden = true;
};
$("#project-form").addEventListener("submit", guarded(createProject));
$("#project-form [name=border]").addEventListener("input", previewBorder);
$("#draw-border").onclick = () => {
  notice("Click the corners of the border on the map; click the first corner again to finish.");
  drawPolygon(view, (geometry) => {
    $("#project-form [name=border]").value = JSON.stringify(geometry);
    previewBorder();
    notice("");
  });
};
$("#date-select").addEventListener("change", guarded((e) => loadScenes(e.target.value)));
$("#task-form").addEventListener("submit", guarded(runTask));
$("#osm-toggle").addEventListener("change", (e) => showBaseLayer(view, e.target.checked));
guarded(loadProjects)();
