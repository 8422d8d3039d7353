// offline.mjs BASE PATH: takes the browser offline while PATH downloads,
// waits for the page to say the network is down, goes back online and
// waits for the download to finish by itself.
import { run, open, clickDownload, waitDone, card } from "./lib.mjs";

const [base, path] = process.argv.slice(2);
await run(async (page, { context }) => {
  await open(page, base);
  await clickDownload(page, path);
  await page.waitForFunction((p) => {
    const c = window.ferryPage.downloads.get(p);
    return c?.progress?.total > 0 && c.progress.bytes >= c.progress.total / 4;
  }, path, { timeout: 30000, polling: 10 });
  await context.setOffline(true);
  await page.waitForFunction((p) => {
    const el = document.querySelector(`li.dl[data-path="${p}"] .message`);
    return el && !el.hidden && /network is down/.test(el.textContent);
  }, path, { timeout: 30000, polling: 50 }).catch(async (err) => {
    process.stderr.write(JSON.stringify(await card(page, path)) + "\n");
    throw err;
  });
  const down = await card(page, path);
  await context.setOffline(false);
  const c = await waitDone(page, path);
  return { down, done: c };
});
