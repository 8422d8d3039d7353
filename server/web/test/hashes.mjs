// hashes.mjs: reads inputs on stdin, one per line as "x" and hex, and prints
// "xxh3-64 xxh3-128 sha256" of each with the bundled static/hashes.js, so
// that a Go test can compare them with zeebo/xxh3 and crypto/sha256.
import { createXXHash3, createXXHash128, createSHA256 } from "../static/hashes.js";
import { text } from "node:stream/consumers";

const [x3, x128, sha] = await Promise.all([createXXHash3(), createXXHash128(), createSHA256()]);
for (const line of (await text(process.stdin)).split("\n")) {
  if (!line.startsWith("x")) continue;
  const b = Buffer.from(line.slice(1), "hex");
  console.log(x3.init().update(b).digest("hex"), x128.init().update(b).digest("hex"), sha.init().update(b).digest("hex"));
}
