// Helpers shared by the browser tests: launch Debian's chromium through
// playwright-core (never a downloaded browser) with a fresh profile, and
// read the page's download cards.
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const CHROMIUM = process.env.FERRY_CHROMIUM || "/usr/bin/chromium";

// launch starts chromium with a fresh user-data dir and returns
// {context, page, close}. The page logs its console and errors to stderr.
// With insecure, it accepts any certificate (a test server's self-signed one).
export async function launch({ insecure = false } = {}) {
  const dir = mkdtempSync(join(tmpdir(), "ferry-chromium-"));
  const context = await chromium.launchPersistentContext(dir, {
    executablePath: CHROMIUM,
    headless: true,
    ignoreHTTPSErrors: insecure,
    args: ["--no-sandbox", "--disable-background-networking", "--disable-gpu", "--disable-component-update",
      "--disable-sync", "--no-first-run", "--disable-dev-shm-usage", ...(insecure ? ["--ignore-certificate-errors"] : [])],
    viewport: { width: 900, height: 800 },
  });
  const page = context.pages()[0] ?? (await context.newPage());
  page.on("console", (m) => process.stderr.write(`console.${m.type()}: ${m.text()}\n`));
  page.on("pageerror", (e) => process.stderr.write(`page error: ${e.message}\n`));
  const close = async () => {
    await context.close();
    rmSync(dir, { recursive: true, force: true });
  };
  return { context, page, close };
}

// open loads the page, with fragment after the # if given, and waits for
// its file list.
export async function open(page, base, fragment = "") {
  await page.goto(base + "/" + (fragment ? "#" + fragment : ""));
  await page.waitForSelector("body[data-ready=true]", { timeout: 15000 });
}

// card returns a download card's data attributes.
export async function card(page, path) {
  return page.evaluate((p) => {
    const el = [...document.querySelectorAll("li.dl")].find((e) => e.dataset.path === p);
    if (!el) return null;
    const c = window.ferryPage.downloads.get(p);
    return { ...el.dataset, message: el.querySelector(".message").hidden ? "" : el.querySelector(".message").textContent,
      notice: el.querySelector(".notice").hidden ? "" : el.querySelector(".notice").textContent, log: c?.log ?? [], progress: c?.progress ?? null };
  }, path);
}

// clickDownload presses the Download button of a file in the list.
export async function clickDownload(page, path) {
  await page.locator(`#files li[data-path="${path}"] button`).click();
}

// press clicks a card's button by its label.
export async function press(page, path, label) {
  try {
    await page.locator(`li.dl[data-path="${path}"] button`, { hasText: label }).click({ timeout: 10000 });
  } catch (err) {
    process.stderr.write(`${path} without a ${label} button: ${JSON.stringify(await card(page, path).catch((e) => e.message), null, 1)}\n`);
    throw err;
  }
}

// waitState waits until a card reaches one of the given states.
export async function waitState(page, path, states, timeout = 30000) {
  await page.waitForFunction(([p, s]) => {
    const el = [...document.querySelectorAll("li.dl")].find((e) => e.dataset.path === p);
    return el && s.includes(el.dataset.state);
  }, [path, states], { timeout, polling: 50 });
  return card(page, path);
}

// pauseAtHalf pauses a download from inside the page once half of it is
// verified, waits for the paused state and returns the card. The test must
// hold the stream before its end (servertest's StallAt past half of it):
// on a loaded machine the worker falls behind the network, then verifies
// the backlog in one go, and the pause, queued behind those events, would
// come after the end, however soon the page sends it.
export async function pauseAtHalf(page, path) {
  await page.waitForFunction((p) => {
    const c = window.ferryPage.downloads.get(p);
    if (!(c?.progress?.total > 0) || c.progress.bytes < c.progress.total / 2) return false;
    c.dl.pause();
    return true;
  }, path, { timeout: 30000, polling: 10 }).catch(async (err) => {
    process.stderr.write(`${path} not half done in time: ${JSON.stringify(await card(page, path).catch((e) => e.message), null, 1)}\n`);
    throw err;
  });
  return waitState(page, path, ["paused"]).catch(async (err) => {
    process.stderr.write(`${path} not paused in time: ${JSON.stringify(await card(page, path).catch((e) => e.message), null, 1)}\n`);
    throw err;
  });
}

// waitDone waits until a download is done, and the page has computed its
// SHA-256 itself, or failed; it returns the card.
export async function waitDone(page, path, timeout = 60000) {
  try {
    await page.waitForFunction((p) => {
      const el = [...document.querySelectorAll("li.dl")].find((e) => e.dataset.path === p);
      return el && (el.dataset.state === "error" || el.dataset.sha256Local);
    }, path, { timeout, polling: 50 });
  } catch (err) {
    process.stderr.write(`${path} at the timeout: ${JSON.stringify(await card(page, path).catch((e) => e.message), null, 1)}\n`);
    throw err;
  }
  const c = await card(page, path);
  if (c.state !== "done") throw new Error(`${path}: download ended in state ${c.state}: ${c.message}`);
  return c;
}

// opfsSHA256 reads a finished download back from OPFS and returns its SHA-256.
export async function storedSHA256(page, path) {
  return page.evaluate(async (p) => {
    const c = window.ferryPage.downloads.get(p);
    const buf = await c.result.file.arrayBuffer();
    const d = new Uint8Array(await crypto.subtle.digest("SHA-256", buf));
    return [...d].map((b) => b.toString(16).padStart(2, "0")).join("");
  }, path);
}

// run wraps a test's main: prints its JSON result on stdout, exits 1 on
// error. opts are launch's.
export async function run(main, opts) {
  let b;
  try {
    b = await launch(opts);
    const result = await main(b.page, b);
    process.stdout.write(JSON.stringify(result) + "\n");
    await b.close();
    process.exit(0);
  } catch (err) {
    process.stderr.write(`FAIL: ${err.stack ?? err}\n`);
    await b?.close().catch(() => {});
    process.exit(1);
  }
}
