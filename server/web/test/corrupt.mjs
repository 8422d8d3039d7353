// corrupt.mjs BASE PATH: downloads PATH through a proxy that flips a bit in
// the stream; prints the card, whose log names each block fetched again.
import { run, open, clickDownload, waitState, waitDone, storedSHA256 } from "./lib.mjs";

const [base, path] = process.argv.slice(2);
await run(async (page) => {
  await open(page, base);
  await clickDownload(page, path);
  const c = await waitDone(page, path);
  return { ...c, stored: await storedSHA256(page, path) };
});
