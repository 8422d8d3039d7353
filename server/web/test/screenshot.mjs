// screenshot.mjs BASE OUT.png [WIDTH]: the picture in docs/BROWSER.md.
// Expects the files that docs/BROWSER.md's command serves: one finished,
// one paused at about 40 %, one still downloading when the picture is taken.
import { run, open, clickDownload, waitDone } from "./lib.mjs";

const [base, out, width = "900"] = process.argv.slice(2);
const done = "release/ferry-1.0-linux-amd64.tar.gz";
const paused = "models/tiny-llm-q4.gguf";
const running = "datasets/weather-2025.parquet";
const at = (p, fraction) => (page) => page.waitForFunction(([p, f]) => {
  const el = [...document.querySelectorAll("li.dl")].find((e) => e.dataset.path === p);
  return el && +el.dataset.total > 0 && +el.dataset.bytes >= f * el.dataset.total;
}, [p, fraction], { timeout: 60000, polling: 10 });

await run(async (page) => {
  await page.setViewportSize({ width: +width, height: 900 });
  await open(page, base);
  await clickDownload(page, done);
  await waitDone(page, done);
  await clickDownload(page, paused);
  await at(paused, 0.4)(page);
  await page.locator(`li.dl[data-path="${paused}"] button`, { hasText: "Pause" }).click();
  await clickDownload(page, running);
  await at(running, 0.3)(page);
  await page.screenshot({ path: out, fullPage: true });
  return { out };
});
