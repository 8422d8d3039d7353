// signed.mjs BASE LINK BAD...: the page opened with a signed link after the
// # (its file list is private): the file downloads, paused at half and
// resumed (the worker reopens the stream itself), through a proxy that cuts
// connections. Then each BAD link (expired, tampered) in the same page.
// Prints the list's message, the card of LINK and the cards of the BADs.
import { run, open, card, waitState, waitDone, storedSHA256, press } from "./lib.mjs";

const [base, link, ...bad] = process.argv.slice(2);
const pathOf = (l) => decodeURIComponent(new URL(l, base).pathname.slice("/sse/".length));

await run(async (page) => {
  await open(page, base, link);
  const listing = await page.$eval("#files-status", (el) => (el.hidden ? "" : el.textContent));
  const path = pathOf(link);
  // Pause from inside the page once half is verified.
  const failed = await page.waitForFunction((p) => {
    const c = window.ferryPage.downloads.get(p);
    if (c?.el.dataset.state === "error") return "failed";
    if (!(c?.progress?.total > 0) || c.progress.bytes < c.progress.total / 2) return false;
    c.dl.pause();
    return "paused";
  }, path, { timeout: 30000, polling: 10 }).then((h) => h.jsonValue()).then((v) => v === "failed");
  if (failed) return { listing, signed: await card(page, path), refused: {} };
  // On a loaded machine the worker may verify the rest of the file before
  // the pause reaches it (see pauseAtHalf in lib.mjs); this test is about
  // the signature on every request, so a download done first is fine.
  const at = await waitState(page, path, ["paused", "done"]);
  if (at.state === "paused") await press(page, path, "Resume");
  const signed = { ...(await waitDone(page, path)), stored: await storedSHA256(page, path) };

  const refused = {};
  for (const l of bad) {
    await page.evaluate((h) => (location.hash = h), l);
    refused[pathOf(l)] = await waitState(page, pathOf(l), ["done", "error"], 15000);
  }
  return { listing, signed, refused };
});
