// errors.mjs BASE ROOT GONE CHANGING: the page's messages for a file that
// is gone (404) and one that changes while the download is paused (412).
import { run, open, clickDownload, waitState, waitDone, pauseAtHalf, storedSHA256, press } from "./lib.mjs";
import { rmSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const [base, root, gone, changing] = process.argv.slice(2);
await run(async (page) => {
  await open(page, base);

  // 404: the file was listed, then removed from the server.
  rmSync(join(root, gone));
  await clickDownload(page, gone);
  const g = await waitState(page, gone, ["done", "error"]);

  // 412: pause at half, change the second half on the server, resume.
  await clickDownload(page, changing);
  await pauseAtHalf(page, changing);
  const b = readFileSync(join(root, changing));
  for (let i = b.length >> 1; i < b.length; i++) b[i] ^= 0x5a;
  writeFileSync(join(root, changing), b);
  await press(page, changing, "Resume");
  const c = await waitDone(page, changing);
  return { gone: g, changed: { ...c, stored: await storedSHA256(page, changing) } };
});
