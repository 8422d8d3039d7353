// The hashes the download worker needs, from hash-wasm: xxh3-64 per block,
// xxh3-128 and SHA-256 over the whole file, each a reusable streaming hasher.
// build.mjs bundles this file into static/hashes.js.
export { createXXHash3, createXXHash128, createSHA256 } from "hash-wasm";
