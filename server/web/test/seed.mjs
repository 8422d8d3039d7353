// seed.mjs BASE PATH auto ROOT NEWER | BASE PATH input SEED: delta
// downloads through the page.
//
// auto: downloads PATH, replaces it on the server (ROOT/PATH) with the file
// NEWER, reloads the page and presses the file's Update button: the finished
// copy kept in OPFS seeds the new version. Prints {first, card, …}.
// input: picks SEED in "Update from a copy I have" (found by its label),
// then downloads PATH in this fresh profile. Prints {card, …}.
//
// Each card has the SHA-256 of the bytes stored in OPFS. Also printed: opfs,
// the names in the downloads' OPFS folder at the end, and refused, the error
// of ferry.download with seeds and follow: true.
import { run, open, clickDownload, waitDone, storedSHA256 } from "./lib.mjs";
import { copyFileSync } from "node:fs";
import { join } from "node:path";

const [base, path, mode, arg, newer] = process.argv.slice(2);
await run(async (page) => {
  await open(page, base);
  const out = {};
  if (mode === "auto") {
    await clickDownload(page, path);
    out.first = { ...(await waitDone(page, path)), stored: await storedSHA256(page, path) };
    copyFileSync(newer, join(arg, path));
    await open(page, base);
    await page.locator(`#files li[data-path="${path}"] button`, { hasText: "Update" }).click({ timeout: 15000 });
  } else {
    await page.getByLabel("Update from a copy I have").setInputFiles(arg);
    await clickDownload(page, path);
  }
  out.card = { ...(await waitDone(page, path)), stored: await storedSHA256(page, path) };
  // The page's own line about the copy.
  out.card.text = await page.locator(`li.dl[data-path="${path}"] .stats`).textContent();
  // What OPFS holds now: no seed set aside is left.
  out.opfs = await page.evaluate(async () => {
    const dir = await (await navigator.storage.getDirectory()).getDirectoryHandle("ferry");
    const names = [];
    for await (const name of dir.keys()) names.push(name);
    return names.sort();
  });
  // The module refuses seeds with follow.
  out.refused = await page.evaluate(async () => {
    const ferry = await import("./ferry.js");
    try {
      ferry.download("sse/any", { follow: true, seeds: [new Blob(["x"])] });
      return "";
    } catch (err) {
      return `${err.name}: ${err.message}`;
    }
  });
  return out;
});
