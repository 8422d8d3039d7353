// reload.mjs BASE PATH: starts downloading PATH, reloads the page once half
// of it is verified, and waits for the download to finish by itself.
import { run, open, clickDownload, waitState, waitDone, storedSHA256, card } from "./lib.mjs";

const [base, path] = process.argv.slice(2);
await run(async (page) => {
  await open(page, base);
  await clickDownload(page, path);
  await page.waitForFunction((p) => {
    const el = [...document.querySelectorAll("li.dl")].find((e) => e.dataset.path === p);
    return el && +el.dataset.total > 0 && +el.dataset.bytes >= el.dataset.total / 2;
  }, path, { timeout: 30000, polling: 20 });
  const before = await card(page, path);
  if (before.state === "done") throw new Error("the download finished before the reload: " + JSON.stringify(before));
  await page.reload();
  const c = await waitDone(page, path);
  return { ...c, before: +before.bytes, stored: await storedSHA256(page, path) };
});
