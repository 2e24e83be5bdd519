// Bundles the dashboard (issue 15) into one folder the daemon serves (src/daemon/dashboard.ts): index.html,
// app.js and app.css, everything from node_modules, nothing fetched at run time. Run by scripts/setup.sh
// (`node dashboard/build.mjs OUTDIR`, default dist/dashboard); prints the gzipped size of what a browser loads.
/* global process, console */
import { build } from "esbuild";
import { copyFileSync, mkdirSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

const here = dirname(fileURLToPath(import.meta.url));
const out = resolve(process.argv[2] ?? join(here, "..", "dist", "dashboard"));
mkdirSync(out, { recursive: true });
await build({
  entryPoints: { app: join(here, "src", "main.ts") },
  bundle: true,
  minify: true,
  format: "esm",
  target: "es2022",
  outdir: out,
  legalComments: "none",
  logLevel: "warning",
  loader: { ".css": "css" },
});
copyFileSync(join(here, "index.html"), join(out, "index.html"));
let total = 0;
for (const f of ["index.html", "app.js", "app.css"]) total += gzipSync(readFileSync(join(out, f))).length;
console.log(`dashboard: ${out} (${(total / 1024).toFixed(1)} KiB gzipped)`);
