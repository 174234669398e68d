// Composites of the selected project: each one a map layer (/product/tile), listed with its period,
// method, product and coverage, an index's with its legend; and the form that makes one (s2_composite).
import { api, query } from "./api.js";
import { element } from "./dom.js";
import { indexLegend } from "./legend.js";
import { showTiles } from "./map.js";

const METHODS = { median: "median", max_ndvi: "greenest (max NDVI)", least_cloud: "least cloudy scene" };

/** The composites' state: the list, the form, and the project they belong to. */
export function createComposites(view, elements, { onRun, onError }) {
  const composites = { view, el: elements, onRun, onError, project: null, legends: new Map() };
  elements.form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await runComposite(composites);
    } catch (err) {
      onError(err);
    }
  });
  return composites;
}

function percent(fraction) {
  return `${Math.round((fraction ?? 0) * 1000) / 10}%`;
}

/** A composite's record in words: "2021-06-01 – 2021-07-31 · 3 scenes · 98% observed, 1–3 per pixel (mean 2.3)". */
export function compositeText(details) {
  const coverage = details.coverage || {};
  const parts = [
    `${details.start_date} – ${details.end_date}`,
    `${details.scenes} scene${details.scenes === 1 ? "" : "s"}`,
    `${percent(coverage.observed_fraction)} observed, ${coverage.min_count ?? 0}–${coverage.max_count ?? 0} per pixel (mean ${(coverage.mean_count ?? 0).toFixed(1)})`,
  ];
  if (details.result && details.result !== "SUCCESS") parts.push(`${(details.failed_blocks || []).length} blocks failed`);
  return parts.join(" · ");
}

/** List a project's composites (switched-on layers stay on) and offer its dates to the form. */
export async function loadComposites(composites, project) {
  const fresh = composites.project !== project;
  composites.project = project;
  if (fresh) fillForm(composites.el.form, project);
  const { products } = await api(`product/list?${query({ project_id: project.project_id, kind: "composite" })}`);
  if (composites.project !== project) return; // another project was chosen meanwhile
  const shown = new Set(composites.view.images.keys());
  composites.el.list.replaceChildren(...products.map((p) => compositeItem(composites, project.project_id, p, shown)));
  if (!products.length) composites.el.list.append(element("li", { className: "muted", textContent: "No composites yet." }));
}

/** Forget the project and its legends (its layers go with every other layer when another project is chosen). */
export function clearComposites(composites) {
  composites.project = null;
  composites.el.list.replaceChildren();
  for (const key of [...composites.legends.keys()]) clearLegend(composites, key);
}

/** Switch a composite's layer on or off; an index's composite shows its legend while it is on. */
async function showComposite(composites, key, template, product, title, on) {
  showTiles(composites.view, key, template, on);
  clearLegend(composites, key);
  if (!on || !product.index) return;
  const legend = await indexLegend(composites.view, product.index, title, { productId: product.product_id });
  clearLegend(composites, key); // switched off and on again meanwhile: one legend
  composites.legends.set(key, legend);
  if (!composites.view.images.has(key)) clearLegend(composites, key); // switched off meanwhile
}

function clearLegend(composites, key) {
  composites.legends.get(key)?.remove();
  composites.legends.delete(key);
}

function compositeItem(composites, projectId, product, shown) {
  const details = product.details || {};
  const key = `composite:${projectId}:${product.product_id}`;
  const template = `product/tile/${projectId}/${encodeURIComponent(product.product_id)}/{z}/{x}/{y}`;
  const name = `${details.product || product.index || "rgb"} · ${METHODS[details.method] || details.method || ""}`;
  const box = element("input", {
    type: "checkbox",
    checked: shown.has(key),
    onchange: (e) => {
      const title = `${name} ${details.start_date} – ${details.end_date}`;
      showComposite(composites, key, template, product, title, e.target.checked).catch(composites.onError);
    },
  });
  return element("li", { dataset: { productId: product.product_id } }, [
    element("label", { title: product.product_id }, [box, ` ${name}`]),
    element("div", { className: "muted coverage", textContent: compositeText(details) }),
  ]);
}

function fillForm(form, project) {
  form.reset();
  form.elements.start_date.value = project.start_date || "";
  form.elements.end_date.value = project.end_date || "";
}

/** The form's parameters as s2_composite takes them; the API judges them. */
export function compositeParams(form) {
  const data = new FormData(form);
  return {
    start_date: String(data.get("start_date")),
    end_date: String(data.get("end_date")),
    product: String(data.get("product")),
    method: String(data.get("method")),
    max_scene_cloud: Number(data.get("max_scene_cloud")),
  };
}

async function runComposite(composites) {
  const params = compositeParams(composites.el.form);
  const title = `${params.product} ${params.method} ${params.start_date} – ${params.end_date}`;
  const body = { task: "s2_composite", title, project_id: composites.project.project_id, params };
  const { event_id } = await api("task/run", { method: "POST", body });
  await composites.onRun(event_id, body.task);
}
