// bench-page.mjs URL: opens the benchmark page (/bench.html?…) and prints
// the report it writes, for tests of options the main page does not use.
import { run } from "./lib.mjs";

const [url] = process.argv.slice(2);
await run(async (page) => {
  await page.goto(url);
  await page.waitForFunction(() => document.getElementById("out")?.textContent.startsWith("{"), null, { timeout: 60000, polling: 50 });
  return JSON.parse(await page.locator("#out").textContent());
});
