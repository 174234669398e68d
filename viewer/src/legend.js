// An index's legend on the map: its colormap's stops (/product/legend) as a bar, the values at its ends.
import L from "leaflet";
import { api, query } from "./api.js";
import { element } from "./dom.js";

/** Fetch an index's legend and put it on the map, with a title and data attributes; answer the control. */
export async function indexLegend(view, index, title, dataset = {}) {
  const legend = await api(`product/legend?${query({ index })}`);
  return showLegend(view, title, legend, dataset);
}

/** The colormap's stops as a bar on the map, with the values at its ends and middle; answer the control. */
export function showLegend(view, title, legend, { id, ...dataset } = {}) {
  const control = L.control({ position: "bottomright" });
  control.onAdd = () => {
    const canvas = element("canvas", { width: 256, height: 12 });
    const ctx = canvas.getContext("2d");
    legend.stops.forEach((stop, i) => {
      ctx.fillStyle = stop.color;
      ctx.fillRect(i, 0, 1, 12);
    });
    const [lo, hi] = legend.rescale;
    const ends = [lo, (lo + hi) / 2, hi].map((v) => element("span", { textContent: String(+v.toFixed(3)) }));
    return element("div", { className: "legend", ...(id ? { id } : {}), dataset: { colormap: legend.colormap_name, ...dataset } }, [
      element("div", { textContent: title }),
      canvas,
      element("div", { className: "legend-ends" }, ends),
    ]);
  };
  return control.addTo(view.map);
}
