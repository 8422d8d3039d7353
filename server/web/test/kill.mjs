// kill.mjs BASE PATH: downloads PATH through the page at BASE (https, a
// self-signed certificate) while the test kills the servers behind it. It
// prints a line of JSON on stdout whenever the card's progress changes,
// {bytes, total, reconnects, streams, state}, for the test to follow, and at the end
// {card}: the card, with the SHA-256 of the bytes stored in OPFS and the
// protocol the page was loaded over.
import { run, open, clickDownload, waitDone, storedSHA256 } from "./lib.mjs";

const [base, path] = process.argv.slice(2);
await run(async (page) => {
  await page.exposeFunction("ferryTestProgress", (line) => process.stdout.write(line + "\n"));
  await open(page, base);
  // The page pushes each change of the card's attributes: no polling.
  await page.evaluate((p) => {
    let last = "";
    new MutationObserver(() => {
      const el = [...document.querySelectorAll("li.dl")].find((e) => e.dataset.path === p);
      if (!el) return;
      const d = el.dataset;
      const streams = window.ferryPage.downloads.get(p)?.progress?.streams ?? 0;
      const line = JSON.stringify({ bytes: +d.bytes || 0, total: +d.total || -1, reconnects: +d.reconnects || 0, streams, state: d.state });
      if (line !== last) window.ferryTestProgress((last = line));
    }).observe(document.getElementById("downloads"), { subtree: true, childList: true, attributes: true });
  }, path);
  await clickDownload(page, path);
  const c = await waitDone(page, path, 240000);
  const protocol = await page.evaluate(() => performance.getEntriesByType("navigation")[0]?.nextHopProtocol ?? "");
  return { card: { ...c, stored: await storedSHA256(page, path), protocol } };
}, { insecure: true });
