// The web map: no base layer unless asked for, the project's border, scene footprints and tile layers.
import L from "leaflet";
import "leaflet/dist/leaflet.css";
import "@geoman-io/leaflet-geoman-free";
import "@geoman-io/leaflet-geoman-free/dist/leaflet-geoman.css";

const COPERNICUS = "Contains modified Copernicus Sentinel data";
// Tiles of a UTM scene below this zoom cover far more than the scene: not worth a request.
const MIN_IMAGE_ZOOM = 7;

export function createMap(element) {
  const map = L.map(element, { worldCopyJump: true, zoomControl: true }).setView([30, 10], 2);
  map.attributionControl.setPrefix('<a href="https://leafletjs.com">Leaflet</a>');
  L.control.scale({ imperial: false }).addTo(map);
  const osm = L.tileLayer("https://tile.openstreetmap.org/{z}/{x}/{y}.png", {
    maxZoom: 19,
    attribution: "© OpenStreetMap contributors",
  });
  const border = L.geoJSON(null, { style: { color: "#e4572e", weight: 2, fill: false } }).addTo(map);
  const footprints = L.geoJSON(null, {
    style: { color: "#2e86de", weight: 1.5, fillOpacity: 0.08 },
  }).addTo(map);
  const draft = L.geoJSON(null, { style: { color: "#f39c12", weight: 2, dashArray: "4 4" } }).addTo(map);
  // Geoman draws polygons; its toolbar stays hidden, the page's own button starts a drawing.
  map.pm.setGlobalOptions({ snappable: false });
  return { map, osm, border, footprints, draft, images: new Map() };
}

/** Show or hide the optional OpenStreetMap base layer. */
export function showBaseLayer(view, on) {
  if (on) view.osm.addTo(view.map).bringToBack();
  else view.osm.remove();
}

/** A text node for a tooltip: Leaflet takes a string as HTML, and names come from archive items. */
function textTooltip(text) {
  const node = document.createElement("span");
  node.textContent = text;
  return node;
}

/** Draw GeoJSON text into a layer group (replacing what it held); answer its bounds, if any. */
export function setShapes(group, geojsons, tooltip) {
  group.clearLayers();
  geojsons.forEach((text, i) => {
    const shape = L.geoJSON(typeof text === "string" ? JSON.parse(text) : text, { style: group.options.style });
    shape.eachLayer((layer) => {
      // On the layer that goes on the map: a tooltip bound to the unused wrapper group never opens.
      if (tooltip) layer.bindTooltip(textTooltip(tooltip(i)), { sticky: true });
      group.addLayer(layer);
    });
  });
  const bounds = group.getBounds();
  return bounds.isValid() ? bounds : null;
}

/** Switch a tile layer (by key) on or off; every URL is relative to the page. */
export function showTiles(view, key, template, on, bounds) {
  const existing = view.images.get(key);
  if (!on) {
    if (existing) existing.remove();
    view.images.delete(key);
    return null;
  }
  if (existing) return existing;
  const layer = L.tileLayer(template, {
    minZoom: MIN_IMAGE_ZOOM,
    maxZoom: 18,
    maxNativeZoom: 16,
    attribution: COPERNICUS,
    bounds: bounds || undefined,
  });
  // The layer's element says whether every tile in view has arrived: a state to wait on (the tests do).
  layer.on("loading", () => layer.getContainer()?.removeAttribute("data-loaded"));
  layer.on("load", () => layer.getContainer()?.setAttribute("data-loaded", "true"));
  layer.addTo(view.map);
  view.images.set(key, layer);
  return layer;
}

/** Let the user draw one polygon; call back with its GeoJSON geometry. */
export function drawPolygon(view, done) {
  view.map.pm.enableDraw("Polygon", { continueDrawing: false });
  view.map.once("pm:create", (event) => {
    const geometry = event.layer.toGeoJSON().geometry;
    event.layer.remove();
    done(geometry);
  });
}

/** Fit the map to bounds, not closer than a zoom that still shows some surroundings. */
export function fit(view, bounds) {
  if (bounds) view.map.fitBounds(bounds, { padding: [20, 20], maxZoom: 13 });
}
