// Builds the browser app into dist/: index.html plus content-hashed files under assets/,
// which the edge serves (edge/envoy/render.py web_routes) with immutable cache headers.
import { defineConfig } from "vite";

export default defineConfig({
  esbuild: { jsx: "automatic", jsxImportSource: "preact" },
  build: {
    outDir: "dist",
    assetsDir: "assets",
    // Everything as files: the Content-Security-Policy allows scripts and styles from 'self' only.
    assetsInlineLimit: 0,
    target: "es2022",
    sourcemap: false,
  },
});
