// download.mjs BASE PATH...: downloads every PATH through the page at once
// and prints, per path, the card, the SHA-256 the page shows, the one it
// computed itself and the SHA-256 of the bytes stored in OPFS. An https
// BASE may have a self-signed certificate.
import { run, open, clickDownload, waitDone, storedSHA256 } from "./lib.mjs";

const [base, ...paths] = process.argv.slice(2);
await run(async (page) => {
  await open(page, base);
  for (const p of paths) await clickDownload(page, p);
  const out = {};
  for (const p of paths) {
    out[p] = { ...(await waitDone(page, p)), stored: await storedSHA256(page, p) };
  }
  return out;
}, { insecure: base.startsWith("https:") });
