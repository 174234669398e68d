// A date's layer: every scene of the date merged into one tile layer (/mosaic), clouds masked on request.
import { showTiles } from "./map.js";

/** The tile URL template of a date's mosaic, relative to the page. */
export function mosaicTemplate(projectId, date, maskClouds) {
  const path = `mosaic/tile/${projectId}/${encodeURIComponent(date)}/{z}/{x}/{y}`;
  return maskClouds ? `${path}?mask=clouds` : path;
}

function checkbox(id, title) {
  return Object.assign(document.createElement("input"), { type: "checkbox", id, title });
}

function labelled(input, text) {
  const label = document.createElement("label");
  label.append(input, ` ${text}`);
  return label;
}

/** Put the controls of one date's mosaic layer into `container`; answer a function that removes both. */
export function dateMosaic(view, container, { projectId, date, bounds }) {
  let key = null;
  const shown = checkbox("mosaic-toggle", "all the scenes of this date as one layer");
  const clouds = checkbox("mosaic-clouds", "leave out cloudy pixels, filled from the date's other scenes");
  const refresh = () => {
    if (key) showTiles(view, key, "", false);
    key = null;
    if (!shown.checked) return;
    key = `mosaic:${projectId}:${date}:${clouds.checked ? "clouds" : "all"}`;
    showTiles(view, key, mosaicTemplate(projectId, date, clouds.checked), true, bounds);
  };
  shown.onchange = refresh;
  clouds.onchange = refresh;
  container.replaceChildren(labelled(shown, "mosaic of this date"), labelled(clouds, "mask clouds"));
  container.hidden = false;
  return () => {
    if (key) showTiles(view, key, "", false);
    container.replaceChildren();
    container.hidden = true;
  };
}
