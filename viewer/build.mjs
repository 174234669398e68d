// Bundle the viewer and the docs' assets into the Root function's package (functions/root/static).
import { copyFileSync, mkdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const out = process.argv[2] ?? join(here, "..", "functions", "root", "static");
const assets = join(out, "assets");
rmSync(assets, { recursive: true, force: true });
mkdirSync(assets, { recursive: true });

await esbuild.build({
  entryPoints: { viewer: join(here, "src", "main.js") },
  bundle: true,
  minify: true,
  sourcemap: false,
  target: ["es2020"],
  outdir: assets,
  // Leaflet's and Geoman's icons go inline, so the page needs no other files.
  loader: { ".png": "dataurl", ".svg": "dataurl" },
  legalComments: "eof",
  logLevel: "warning",
});

copyFileSync(join(here, "src", "index.html"), join(out, "index.html"));
const swagger = join(here, "node_modules", "swagger-ui-dist");
for (const name of ["swagger-ui-bundle.js", "swagger-ui.css"]) {
  copyFileSync(join(swagger, name), join(assets, name));
}
copyFileSync(join(swagger, "favicon-32x32.png"), join(assets, "favicon.png"));
console.log(`viewer bundled into ${out}`);
