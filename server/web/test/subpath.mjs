// subpath.mjs BASE LISTED LINKED: the page under a sub-path (BASE ends in
// it, e.g. http://127.0.0.1:PORT/ferry). It opens the page with LINKED's
// /sse/ path after the #, as a link of the server, downloads LISTED from
// the list, paused at half and resumed (so that the manifest is asked
// too), and prints the paths listed and both cards.
import { run, open, clickDownload, pauseAtHalf, press, waitDone, storedSHA256 } from "./lib.mjs";

const [base, listed, linked] = process.argv.slice(2);
await run(async (page) => {
  await open(page, base, "/sse/" + encodeURIComponent(linked));
  const files = await page.$$eval("#files li", (els) => els.map((e) => e.dataset.path));
  await clickDownload(page, listed);
  await pauseAtHalf(page, listed);
  await press(page, listed, "Resume");
  const out = { files, page: page.url() };
  for (const p of [listed, linked]) out[p] = { ...(await waitDone(page, p)), stored: await storedSHA256(page, p) };
  return out;
});
