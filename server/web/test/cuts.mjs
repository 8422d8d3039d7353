// cuts.mjs BASE PATH: downloads PATH through a proxy that cuts every
// connection; prints the card (its log lists every stream the worker saw).
import { run, open, clickDownload, waitState, waitDone, storedSHA256 } from "./lib.mjs";

const [base, path] = process.argv.slice(2);
await run(async (page) => {
  await open(page, base);
  await clickDownload(page, path);
  const c = await waitDone(page, path);
  return { ...c, stored: await storedSHA256(page, path) };
});
