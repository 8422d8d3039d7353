// replicas.mjs BASE TOGETHER APART ETAG RETRIES FLAKY FLAKYETAG: downloads
// behind a balancer over replicas whose copies have different etags.
// TOGETHER is downloaded through the page (its default retries); APART with
// the module directly, pinned to ETAG, with the given retries, recording
// its last progress; FLAKY with the module, pinned to FLAKYETAG, with
// retries 2. The script prints the card, each module download's outcome,
// and the error of a download() with an invalid retries option.
import { run, open, clickDownload, waitState } from "./lib.mjs";

const [base, together, apart, etag, retries, flaky, flakyETag] = process.argv.slice(2);
await run(async (page) => {
  await open(page, base);
  const get = ([path, etag, retries]) => page.evaluate(async ([path, etag, retries]) => {
    const ferry = await import("/ferry.js");
    const { PathSSE } = await import("/wire.js");
    let progress = null;
    try {
      const r = await ferry.download(PathSSE + encodeURIComponent(path), { etag, retries, onProgress: (p) => (progress = p) }).done;
      return { state: "done", size: r.size, progress };
    } catch (err) {
      return { state: "error", error: err.code, message: err.message, progress };
    }
  }, [path, etag, retries]);
  const module = get([apart, etag, Number(retries)]);
  const flakyResult = get([flaky, flakyETag, 2]);
  const invalid = await page.evaluate(async () => {
    const ferry = await import("/ferry.js");
    try {
      ferry.download("/sse/x", { retries: -1 });
      return "";
    } catch (err) {
      return `${err.name}: ${err.message}`;
    }
  });
  await clickDownload(page, together);
  const c = await waitState(page, together, ["done", "error"], 90000);
  return { page: c, module: await module, flaky: await flakyResult, invalid };
});
