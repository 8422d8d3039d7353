// ferry.js: download files from a Ferry server in the browser, verified
// block by block, resumable across cuts, reloads and crashes, written to the
// Origin Private File System (OPFS) so that a large file never sits in memory.
//
//   import * as ferry from "./ferry.js";
//   const dl = ferry.download("sse/big.iso", { onProgress: (p) => console.log(p.bytes, p.total) });
//   const file = await dl.done;     // { path, size, sha256, xxh3_128, file, save(), remove() }
//   file.save();                    // hands the File to the user
//
// Each download runs in its own dedicated worker (ferry-worker.js); see
// docs/BROWSER.md for how it streams, verifies and resumes. The module asks
// for nothing at a fixed path: the worker is beside the module, and the
// manifest beside the stream URL it is given, so a server behind a proxy's
// sub-path works as one at the root.
import { DIR, HEADER, PART, SEED, STATE } from "./storage.js";
import { PathManifest, PathSSE, QueryFollow, QueryVersion, ReservedQuery } from "./wire.js";

/** FerryError is how a download fails; code is one of the strings below. */
export class FerryError extends Error {
  /**
   * @param {"not-found"|"denied"|"changed"|"storage-full"|"checksum"|"busy"|"failed"|"cancelled"} code
   * @param {string} message a sentence for a person
   * @param {number} [status] the HTTP status behind it, if any
   */
  constructor(code, message, status = 0) {
    super(message);
    this.name = "FerryError";
    this.code = code;
    this.status = status;
  }
}

/**
 * opfs reports whether this browser has the Origin Private File System.
 * (Its sync access handles exist only in workers; the worker falls back to
 * memory without them and says so in progress.storage.)
 */
export const opfs = typeof navigator !== "undefined" && !!navigator.storage?.getDirectory;

/**
 * download starts downloading the file at url, an /sse/<path> URL of a
 * Ferry server (relative to the page, or absolute on its origin; the server
 * may be below a prefix, /ferry/sse/<path>: its manifest is then asked at
 * /ferry/manifest/<path>), or resumes it from storage. Every query parameter of url
 * (such as the exp and sig of a signed URL) is kept on every request the
 * download makes; a v parameter pins the version unless options.etag does,
 * and follow=1 follows unless options.follow is false.
 *
 * Options:
 *  - onProgress(p): called about ten times a second and on every change of
 *    state with {state, message, notice, bytes, total, blocks, totalBlocks,
 *    rate (bytes/s), eta (s or null), live, reconnects, corrupt, duplicates,
 *    reused, rehashed (stored blocks read and hashed again), streams,
 *    bytesFetched (block bytes received), bytesSeeded (copied from seeds),
 *    storage}. While live (a followed file still being written) total and
 *    totalBlocks are -1 and eta is null. state is one of starting, checking,
 *    seeding, downloading, reconnecting, waiting, paused, done.
 *  - onLog(entry): a line of the download's history {t, kind, text, …}.
 *  - etag: the version to download (from /api/files); default: the version
 *    the server sends first. Every stream is pinned to it; the manifest is
 *    asked unpinned, to learn which version the server has.
 *  - compress: ask for gzip blocks where they are smaller (default true).
 *  - sha256: also compute the SHA-256 while downloading and compare it with
 *    the server's (default false: it costs about a third of the throughput).
 *  - onChange: "restart" (default) restarts against a file that changed on
 *    the server, keeping the blocks that still match; "fail" fails instead.
 *  - retries: how many times a download may follow the file to another
 *    version, or try again where the servers behind url disagree about its
 *    version (a balancer over replicas whose copies differ), before it fails
 *    with code "changed" (default 5, as ferry get's --retries; 0: never).
 *    The rounds back off like failures (1 s doubling up to 30 s after the
 *    first) and are not given back by progress. A network or server that is
 *    down is waited for without a bound.
 *  - storage: "opfs" (default, memory where OPFS is missing) or "memory".
 *  - follow: follow a file that is still being written (default false):
 *    every request carries follow=1, blocks are taken as the file grows,
 *    and the file is verified and handed over once the server says it is
 *    complete. A stored download of a live file resumes as a follow.
 *  - seeds: Blobs or Files (an older copy the user picked) that may hold
 *    blocks of the file: a download without a partial state of its own asks
 *    the manifest, copies every block found in them (each checked against
 *    the manifest's xxh3-64) and streams only the rest. A finished download
 *    of the same path kept in OPFS is a seed by itself when the server now
 *    has another version. Not with follow: a file still being written has
 *    no full manifest to find blocks by.
 *
 * @returns {Download}
 */
export function download(url, opts = {}) {
  if (opts.retries !== undefined && !(Number.isInteger(opts.retries) && opts.retries >= 0)) {
    throw new RangeError(`ferry: retries ${opts.retries} is not a whole number of at least 0`);
  }
  if (opts.seeds !== undefined && !(Array.isArray(opts.seeds) && opts.seeds.every((s) => s instanceof Blob))) {
    throw new TypeError("ferry: seeds must be an array of Blobs or Files");
  }
  return new Download(url, opts);
}

/** Download is one running download. */
export class Download {
  constructor(url, opts) {
    const u = new URL(url, document.baseURI);
    const at = u.pathname.indexOf(PathSSE);
    if (at < 0) throw new TypeError(`ferry: ${url} is not an ${PathSSE} URL`);
    const rel = u.pathname.slice(at + PathSSE.length); // the file's escaped path
    // The server's root: the folder PathSSE is in, behind whatever prefix.
    const root = new URL(u.pathname.slice(0, at + 1), u.origin);
    this.path = decodeURIComponent(rel);
    // The URL's own query (a signature's exp and sig, or whatever else the
    // server put there) goes on every request, beside the module's own.
    const { query, pin, follow } = ownQuery(u.search);
    const following = opts.follow ?? follow;
    if (following && opts.seeds?.length) {
      throw new TypeError("ferry: seeds cannot be used with follow: a file still being written has no full manifest to find its blocks by");
    }
    this.url = u.origin + u.pathname + (query ? "?" + query : "");
    this.progress = { state: "starting", bytes: 0, total: -1 };
    this.opts = opts;
    /** done resolves with a Result when the file is verified, or rejects with a FerryError. */
    this.done = new Promise((resolve, reject) => {
      this._resolve = resolve;
      this._reject = reject;
    });
    this.done.catch(() => {}); // a caller may look only at onProgress
    navigator.storage?.persist?.().catch(() => {});
    this.worker = new Worker(new URL("./ferry-worker.js", import.meta.url), { type: "module", name: `ferry ${this.path}` });
    this.worker.onmessage = (e) => this._message(e.data);
    this.worker.onerror = (e) => this._end(new FerryError("failed", `The download worker failed: ${e.message}`));
    this.worker.postMessage({
      type: "start", url: u.origin + u.pathname, query, path: this.path,
      manifestURL: new URL("." + PathManifest + rel, root).href,
      etag: opts.etag || pin, compress: opts.compress, sha256: opts.sha256, onChange: opts.onChange, retries: opts.retries,
      storage: opts.storage, follow: following, seeds: opts.seeds ?? [],
    });
  }

  /** pause closes the stream; verified blocks stay in storage. */
  pause() {
    this.worker?.postMessage({ type: "pause" });
  }

  /** resume reopens the stream from the first missing block. */
  resume() {
    this.worker?.postMessage({ type: "resume" });
  }

  /** cancel stops the download and deletes what it stored. */
  cancel() {
    if (!this.worker) return;
    this.worker.postMessage({ type: "cancel" });
  }

  async _message(m) {
    switch (m.type) {
      case "progress":
        this.progress = m.progress;
        this.opts.onProgress?.(m.progress);
        break;
      case "log":
        this.opts.onLog?.(m.entry);
        break;
      case "done": {
        const r = m.result;
        try {
          const file = r.storage === "opfs" ? await storedFile(r.key, r.path) : new File([r.blob], basename(r.path));
          this._end(null, new Result(r, file));
        } catch (err) {
          this._end(new FerryError("failed", `The file was verified but cannot be opened from storage: ${err.message}`));
        }
        break;
      }
      case "cancelled":
        this._end(new FerryError("cancelled", "The download was cancelled."));
        break;
      case "error":
        this._end(new FerryError(m.error.code, m.error.message, m.error.status));
        break;
    }
  }

  _end(err, result) {
    this.worker?.terminate();
    this.worker = null;
    if (err) this._reject(err);
    else this._resolve(result);
  }
}

/** Result is a verified download. */
export class Result {
  constructor(r, file) {
    this.path = r.path;
    this.name = basename(r.path);
    this.size = r.size;
    this.etag = r.etag;
    this.sha256 = r.sha256; // from the server; sha256Local when computed here
    this.sha256Local = r.sha256Local || "";
    this.xxh3_128 = r.xxh3_128;
    this.storage = r.storage;
    this.stats = r.stats;
    this.bytesFetched = r.stats?.bytesFetched ?? 0; // block bytes received from the server
    this.bytesSeeded = r.stats?.bytesSeeded ?? 0; // bytes copied from seeds
    this.key = r.key;
    this.file = file;
    this._url = "";
  }

  /** objectURL returns a URL of the file for <a href download>. */
  objectURL() {
    this._url ||= URL.createObjectURL(this.file);
    return this._url;
  }

  /** save hands the file to the user as a download of the browser. */
  save() {
    const a = document.createElement("a");
    a.href = this.objectURL();
    a.download = this.name;
    document.body.append(a);
    a.click();
    a.remove();
  }

  /** remove deletes the stored copy. */
  async remove() {
    if (this._url) URL.revokeObjectURL(this._url);
    this._url = "";
    if (this.storage === "opfs") await removeKey(this.key);
  }
}

/**
 * stored lists the downloads kept in OPFS: [{path, url, etag, size, status,
 * bytes, key, follow, growing}], status being active, paused or done; size
 * of a growing one (a followed file still being written) is the bytes known
 * so far. A download whose tab was reloaded or crashed is "active": call
 * download(url) to resume it.
 */
export async function stored() {
  if (!opfs) return [];
  const dir = await folder();
  const out = [];
  for await (const [name, h] of dir.entries()) {
    if (!name.endsWith(STATE) || h.kind !== "file") continue;
    try {
      const f = await h.getFile();
      const head = JSON.parse((await f.slice(0, HEADER).text()).trimEnd());
      const bits = new Uint8Array(await f.slice(HEADER).arrayBuffer());
      let blocks = 0;
      for (let b of bits) for (; b; b &= b - 1) blocks++;
      const n = Math.ceil(head.size / head.block_size);
      const bytes = blocks === n ? head.size : blocks * head.block_size;
      out.push({ ...head, key: name.slice(0, -STATE.length), bytes });
    } catch {
      // being written by a worker, or not ours
    }
  }
  return out.sort((a, b) => a.path.localeCompare(b.path));
}

/** open returns the Result of a finished download in storage, by its key. */
export async function open(entry) {
  const file = await storedFile(entry.key, entry.path);
  return new Result({ ...entry, storage: "opfs", sha256Local: "" }, file);
}

/** remove deletes a stored download by its entry from stored(). */
export async function remove(entry) {
  await removeKey(entry.key);
}

/**
 * checkSHA256 computes the SHA-256 of a File or Blob in a worker, reading it
 * in slices, and resolves with its hex. onProgress(bytes, total).
 */
export function checkSHA256(file, { onProgress } = {}) {
  return new Promise((resolve, reject) => {
    const w = new Worker(new URL("./ferry-worker.js", import.meta.url), { type: "module", name: "ferry sha256" });
    w.onmessage = (e) => {
      const m = e.data;
      if (m.type === "sha256-progress") onProgress?.(m.bytes, m.total);
      if (m.type === "sha256" || m.type === "error") {
        w.terminate();
        if (m.type === "sha256") resolve(m.hex);
        else reject(new FerryError(m.error.code, m.error.message));
      }
    };
    w.onerror = (e) => {
      w.terminate();
      reject(new FerryError("failed", e.message));
    };
    w.postMessage({ type: "sha256", file });
  });
}

async function folder() {
  const root = await navigator.storage.getDirectory();
  return root.getDirectoryHandle(DIR, { create: true });
}

async function storedFile(key, path) {
  const dir = await folder();
  const f = await (await dir.getFileHandle(key + PART)).getFile();
  // The OPFS name is a hash; give the user the real one.
  return new File([f], basename(path), { type: f.type, lastModified: f.lastModified });
}

async function removeKey(key) {
  const dir = await folder();
  for (const suffix of [PART, STATE, SEED]) {
    await dir.removeEntry(key + suffix).catch(() => {});
  }
}

// ownQuery returns the query of a download's URL without the parameters the
// module sets itself (ReservedQuery), unchanged when it has none of them,
// the version pin (QueryVersion) and whether it asked to follow
// (QueryFollow, as the server reads it).
function ownQuery(search) {
  const q = new URLSearchParams(search);
  const pin = q.get(QueryVersion) || "";
  const follow = ["1", "true", "yes"].includes((q.get(QueryFollow) || "").toLowerCase());
  if (!ReservedQuery.some((k) => q.has(k))) return { query: search.slice(1), pin, follow };
  for (const k of ReservedQuery) q.delete(k);
  return { query: q.toString(), pin, follow };
}

function basename(p) {
  return p.slice(p.lastIndexOf("/") + 1) || p;
}
