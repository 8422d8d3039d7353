// follow.mjs BASE PATH [RELOAD|strict]: checks the page's "Wait for it" box
// and downloads PATH, a file still being written, through the page at BASE. It
// prints a line of JSON on stdout whenever the card's progress changes,
// {bytes, total, reconnects, streams, state, live} (total is -1 while the
// file is live), for the test to follow; and at the end {card, doneAt}: the
// card with the SHA-256 of the bytes stored in OPFS, and when (Unix ms) the
// card turned done. With RELOAD (bytes), the page is reloaded once that
// many bytes of the live file are verified, and resumes from OPFS. With
// strict, the module downloads PATH itself instead, with follow: true and
// onChange: "fail", reporting its progress the same way, and the script
// prints {module: {state, error, message, status}}.
import { run, open, card, clickDownload, waitDone, storedSHA256 } from "./lib.mjs";

const [base, path, mode] = process.argv.slice(2);
const reloadAt = mode === "strict" ? "" : mode;
await run(async (page) => {
  let doneAt = 0;
  await page.exposeFunction("ferryTestProgress", (line) => {
    if (!doneAt && JSON.parse(line).state === "done") doneAt = Date.now();
    process.stdout.write(line + "\n");
  });
  // On every load of the page (a reload too), the page pushes each change
  // of the card's attributes: no polling.
  await page.addInitScript((p) => {
    addEventListener("DOMContentLoaded", () => {
      let last = "";
      new MutationObserver(() => {
        const el = [...document.querySelectorAll("li.dl")].find((e) => e.dataset.path === p);
        if (!el) return;
        const d = el.dataset;
        const streams = window.ferryPage?.downloads.get(p)?.progress?.streams ?? 0;
        const line = JSON.stringify({ bytes: +d.bytes || 0, total: d.total === undefined ? -1 : +d.total, reconnects: +d.reconnects || 0,
          streams, state: d.state, live: d.live === "true" });
        if (line !== last) window.ferryTestProgress((last = line));
      }).observe(document.body, { subtree: true, childList: true, attributes: true });
    });
  }, path);
  await open(page, base);
  if (mode === "strict") {
    const module = await page.evaluate(async (p) => {
      const ferry = await import("/ferry.js");
      const { PathSSE } = await import("/wire.js");
      const onProgress = (pr) => window.ferryTestProgress(JSON.stringify({ bytes: pr.bytes, total: pr.total,
        reconnects: pr.reconnects, streams: pr.streams, state: pr.state, live: pr.live }));
      try {
        const r = await ferry.download(PathSSE + encodeURIComponent(p), { follow: true, onChange: "fail", onProgress }).done;
        return { state: "done", size: r.size };
      } catch (err) {
        return { state: "error", error: err.code, message: err.message, status: err.status };
      }
    }, path);
    return { module };
  }
  await page.getByLabel("Wait for it").check(); // a real <label>
  await clickDownload(page, path);
  let before = -1;
  if (reloadAt) {
    await page.waitForFunction(([p, n]) => {
      const c = window.ferryPage.downloads.get(p);
      return c?.progress?.live && c.progress.bytes >= n;
    }, [path, +reloadAt], { timeout: 60000, polling: 10 });
    before = (await card(page, path)).progress.bytes;
    await page.reload();
    await page.waitForSelector("body[data-ready=true]", { timeout: 15000 });
  }
  const c = await waitDone(page, path, 120000);
  return { card: { ...c, stored: await storedSHA256(page, path) }, doneAt, before };
});
