// Runs static/seed.js under node (no browser): finds the blocks of a
// manifest in a seed file and prints {"found": {index: offset}, "ms": N}.
// Usage: node test/seed-node.mjs MANIFEST.json SEED
import { readFileSync, openAsBlob } from "node:fs";
import { findBlocks } from "../static/seed.js";
import { createXXHash3 } from "../static/hashes.js";

const [manifestPath, seedPath] = process.argv.slice(2);
const m = JSON.parse(readFileSync(manifestPath, "utf8"));
const seed = await openAsBlob(seedPath);
const x3 = await createXXHash3();
const start = performance.now();
const found = await findBlocks(seed, m, x3);
const ms = performance.now() - start;
process.stdout.write(JSON.stringify({ found: Object.fromEntries(found), ms }));
