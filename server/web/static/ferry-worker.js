// ferry-worker.js: the download of one file, in a dedicated worker started
// by ferry.js. The page only sends commands and shows progress; the stream,
// base64 decoding, hashing and writing all happen here.
//
// The download is a state machine:
//
//   open storage (storage.js) → (resuming: ask the manifest, re-verify stored blocks)
//   → (seeding: ask the manifest, copy the blocks found in older copies)
//   → stream the missing blocks → verify the whole file → flush → done
//
// Seeds are files the page gives (an older copy the user has) and, kept in
// OPFS, the finished download of the same path when the server now has
// another version: seed.js finds the new version's blocks in them, each is
// copied after its xxh3-64 is checked against the manifest, and only the
// rest is streamed, as on a resume.
//
// with detours: a cut stream is resumed by the browser's EventSource itself
// (it sends Last-Event-ID); when EventSource gives up, diagnose() asks the
// manifest endpoint why and reopens, restarts against a changed file, waits
// with backoff, or fails. Following the file to another version (or trying
// again where the servers disagree about it) is a round of the retry budget:
// changed() backs off between rounds and fails when they are spent.
//
// With follow, every request carries follow=1, and a file still being
// written is live: its meta event (or manifest) says so, its size is what
// exists so far, the stream grows the version block by block, and the end
// event gives the final size. A live version is pinned to its live etag;
// a 412 there means the file was truncated or replaced: replaced().
// docs/BROWSER.md describes it in prose.
import { createXXHash3, createXXHash128, createSHA256 } from "./hashes.js";
import { openStore } from "./storage.js";
import { findBlocks } from "./seed.js";
import {
  End, EventBlock, EventEnd, EventMeta, FieldData, FieldEncoding, FieldHash, FieldLength, FieldOffset, Gzip, Identity,
  Manifest, Meta, QueryEncoding, QueryFollow, QueryLastEventID, QueryRange, QueryVersion, read,
} from "./wire.js";

const FLUSH_BYTES = 64 << 20; // flush the data file at least this often
const FLUSH_MS = 2000; // … or after this long
const PROGRESS_MS = 100; // at most one progress message per this long
const GROWN_MS = 250; // a growing version's header tells its size at least this often
const MAX_BACKOFF_MS = 30000;
const AUTO_RETRIES = 3; // browser reconnects without progress before diagnose()
const DEFAULT_RETRIES = 5; // version rounds of a download, as ferry get's --retries

// A block event's data, cut before JSON.parse: "data":"<base64>".
const DATA = `"${FieldData}":"`;

const enc = new TextEncoder();

// FerryError codes; ferry.js turns them into Error objects with the same code.
const NOT_FOUND = "not-found", DENIED = "denied", STORAGE_FULL = "storage-full", CHECKSUM = "checksum",
  BUSY = "busy", FAILED = "failed", CHANGED = "changed";

// REPLACED is what manifest() returns when a request pinned to a live etag
// was answered 412: the file followed was truncated, deleted or replaced.
const REPLACED = Symbol("replaced");

class FerryError extends Error {
  constructor(code, message, status = 0) {
    super(message);
    this.code = code;
    this.status = status;
  }
}

let job = null;

// A laptop that comes back online resumes at once rather than at the end of
// its backoff.
self.addEventListener("online", () => job?.wake());

onmessage = (e) => {
  const m = e.data;
  switch (m.type) {
    case "start":
      job = new Job(m);
      job.run();
      break;
    case "pause":
      job?.pause();
      break;
    case "resume":
      job?.resume();
      break;
    case "cancel":
      job?.cancel();
      break;
    case "sha256":
      sha256OfFile(m.file);
      break;
  }
};

// sha256OfFile hashes a File (or Blob) without holding it in memory.
async function sha256OfFile(file) {
  try {
    const sha = (await createSHA256()).init();
    const step = 4 << 20;
    let last = 0;
    for (let at = 0; at < file.size; at += step) {
      sha.update(new Uint8Array(await file.slice(at, at + step).arrayBuffer()));
      if (performance.now() - last > PROGRESS_MS) {
        last = performance.now();
        postMessage({ type: "sha256-progress", bytes: Math.min(at + step, file.size), total: file.size });
      }
    }
    postMessage({ type: "sha256", hex: sha.digest("hex") });
  } catch (err) {
    postMessage({ type: "error", error: { code: FAILED, message: String(err?.message ?? err) } });
  }
}

class Job {
  constructor(m) {
    this.url = m.url; // absolute /sse/<path> URL, no query
    this.query = m.query || ""; // the query of the URL given, e.g. a signature: on every request
    this.path = m.path;
    this.manifestURL = m.manifestURL;
    this.etag = m.etag || ""; // the version the download is pinned to
    this.compress = m.compress !== false;
    this.wantSHA = !!m.sha256; // compute SHA-256 here as blocks arrive
    this.storageKind = m.storage === "memory" ? "memory" : "opfs";
    this.onChange = m.onChange === "fail" ? "fail" : "restart";
    this.follow = !!m.follow; // ask with follow=1: a file still being written is followed
    this.seeds = m.follow ? [] : [...(m.seeds ?? [])]; // Blobs that may hold blocks of the version
    this.seeding = false; // copying blocks from seeds: no stream yet
    this.abort = null; // stops findBlocks on cancel
    this.rounds = new Rounds(m.retries ?? DEFAULT_RETRIES);
    this.rounds.saw(this.etag);

    this.size = -1; // unknown until the first meta event or manifest
    this.bs = 0;
    this.n = 0;
    // live: the version is a live file's (a live etag: follow=1 on every
    // request, never a range). growing: its final size is not known yet,
    // size and n are the whole blocks known so far.
    this.live = false;
    this.growing = false;
    this.have = null; // bitmap of verified blocks
    this.count = 0; // verified blocks
    this.bytes = 0; // verified bytes
    this.expect = null; // {xxh3_128, sha256} of the pinned version
    this.hashes = null; // the manifest's block hashes of the pinned version, once fetched

    this.es = null;
    // attempt is what the current stream told: whether it was pinned, whether
    // its connection opened, the etag of its meta event, whether it was
    // refused (closed by a non-200 answer). diagnose() reads it.
    this.attempt = null;
    this.unpinned = false; // open the next stream without the pin, to learn what a server has
    this.lastOffset = -1; // offset of the last block event processed
    this.queue = null; // promise chain while a gzip block is being decoded
    this.state = "starting";
    this.message = "";
    this.finished = false;
    this.paused = false;
    this.timer = 0;
    this.fails = 0; // diagnose() rounds since the last verified block
    this.autoRetries = 0; // browser reconnects since the last verified block

    // bytesFetched: block bytes received from the network (also those
    // dropped as duplicates or failed); bytesSeeded: copied from seeds.
    this.stats = { reconnects: 0, corrupt: 0, duplicates: 0, reused: 0, rehashed: 0, streams: 0, bytesFetched: 0, bytesSeeded: 0 };
    this.received = 0; // block bytes accepted from the network (for the rate)
    this.samples = [];
    this.lastProgress = 0;
    this.progressTimer = 0; // a progress message due after a burst of blocks
    this.unflushed = 0;
    this.lastFlush = performance.now();
    this.headerAt = 0; // when the state header was written last
  }

  // run starts the download: storage, then resume checks, then the stream.
  async run() {
    try {
      [this.x3, this.x128, this.sha] = await Promise.all([createXXHash3(), createXXHash128(), createSHA256()]);
      this.key = "f-" + this.x3.init().update(enc.encode(this.path)).digest("hex");
      this.store = await openStore(this.storageKind, this.key);
      this.storageKind = this.store.kind;
      const h = this.store.readHeader();
      if (h && h.path === this.path && h.size >= 0 && h.block_size > 0) {
        await this.resumeFrom(h);
      } else if (this.seeds.length > 0) {
        this.log("start", `Downloading ${this.path}, looking for its blocks in ${this.seeds.length} cop${this.seeds.length > 1 ? "ies" : "y"} first`);
        this.setState("checking", "Asking the server for the file's block hashes");
        const m = await this.manifest();
        if (m) await this.seed(m); // else diagnose() took over, and seeds when it has a manifest
      } else {
        this.log("start", `Downloading ${this.path}`);
        this.open();
      }
    } catch (err) {
      this.fail(err);
    }
  }

  // resumeFrom picks up a download found in storage: it asks the server
  // whether the stored version is still current and re-reads every stored
  // block against the manifest, so a block is trusted only once verified.
  // A followed live file is asked pinned to its live etag: the manifest
  // then lists the blocks complete so far, or is the final one.
  async resumeFrom(h) {
    this.follow ||= !!(h.follow || h.live); // a live etag is served to follow=1 only
    this.setVersion(h.size, h.block_size, h.etag, !!h.live, !!h.growing);
    this.store.readBitmap(this.have);
    // A growing version's header tells the size of an earlier flush: the
    // blocks stored after it were cut off with the data, and so are their bits.
    const tail = this.n % 8;
    if (tail) {
      this.have[this.have.length - 1] &= (1 << tail) - 1;
      this.store.writeBitmapByte(this.have, this.have.length - 1);
    }
    const stored = popcount(this.have);
    this.log("resume", `Found ${stored} of ${this.n} blocks in storage`);
    this.setState("checking", "Checking the server for the stored version");
    const m = await this.manifest();
    if (!m) return; // diagnose() took over
    if (m === REPLACED) return this.replaced();
    if (m.ETag !== this.etag) {
      if (h.status === "done" && !this.follow && !m.Live) {
        // A finished earlier version: the seed of this one.
        const old = await this.store.setAside();
        if (old) {
          this.log("changed", `The file changed on the server since it was downloaded; looking for its blocks in the copy kept here`);
          this.seeds.unshift(old);
          return this.seed(m);
        }
      }
      return this.changed(m);
    }
    this.learn(m);
    this.setState("checking", "Verifying stored blocks");
    const kept = await this.reverify(m.Hashes);
    this.log("verified", `${kept} of ${stored} stored blocks verified; fetching ${this.n - kept} blocks`);
    this.open();
  }

  // seed starts the version of manifest m from the seeds: every block of it
  // that findBlocks finds in one is read again from the seed, checked
  // against its xxh3-64 and copied into storage; then the missing blocks are
  // streamed, as on a resume. Nothing of an earlier state is kept.
  async seed(m) {
    this.seeding = true;
    this.checkQuota(m.Size);
    this.count = this.bytes = 0;
    this.have = null; // a new bitmap, also on disk: the state file may be an earlier version's
    this.setVersion(m.Size, m.BlockSize, m.ETag, false);
    this.store.writeBitmap(this.have);
    this.learn(m);
    this.setState("seeding", "Looking for the file's blocks in the copy you have");
    const want = { size: m.Size, block_size: m.BlockSize, blocks: m.Blocks, hashes: m.Hashes, weak: m.Weak };
    const held = new Uint8Array(this.n);
    this.abort = new AbortController();
    const start = performance.now();
    for (const s of this.seeds) {
      let found;
      const t0 = performance.now();
      try {
        found = await findBlocks(s, want, this.x3, {
          have: held, signal: this.abort.signal,
          onProgress: (at) => {
            if (performance.now() - this.lastProgress < PROGRESS_MS) return;
            this.message = `Looking for the file's blocks in the copy you have: ${fmt(at)} of ${fmt(s.size)} read`;
            this.progress();
          },
        });
      } catch (err) {
        if (this.finished) return;
        this.log("seed", `A copy could not be read (${err?.message ?? err}); skipping it`);
        continue;
      }
      if (this.finished) return;
      const findMs = performance.now() - t0;
      let copied = 0;
      for (const i of [...found.keys()].sort((a, b) => a - b)) {
        const n = this.blockLen(i), off = found.get(i);
        let b;
        try {
          b = new Uint8Array(await s.slice(off, off + n).arrayBuffer());
        } catch {
          break; // the file changed or went away under the page
        }
        if (this.finished) return;
        if (held[i] || b.length !== n || this.x3.init().update(b).digest("hex") !== m.Hashes[i]) continue;
        this.store.write(b, i * this.bs);
        this.setBit(i, true);
        held[i] = 1;
        this.count++;
        this.bytes += n;
        this.unflushed += n;
        this.stats.bytesSeeded += n;
        copied += n;
        this.advanceDigest(i, b);
        if (performance.now() - this.lastProgress >= PROGRESS_MS) this.progress();
      }
      this.log("seeded", `${fmt(copied)} of the file found in ${s.name ? `“${s.name}”` : "the copy kept here"}`, { bytes: copied, seedBytes: s.size, findMs });
    }
    this.seeding = false;
    this.abort = null;
    this.seeds = [];
    this.flush();
    this.writeHeader(this.paused ? "paused" : "active");
    this.log("verified", `${this.stats.bytesSeeded} of ${this.size} bytes copied from seeds in ${Math.round(performance.now() - start)} ms; fetching ${this.n - this.count} blocks`,
      { seeded: this.stats.bytesSeeded, ms: performance.now() - start });
    this.message = "";
    this.progress();
    this.open();
  }

  // setVersion sizes the bitmap and storage for one version of the file:
  // for a live one, growing until its final size is known, the whole blocks
  // of size.
  setVersion(size, bs, etag, live = false, growing = live) {
    if (growing) size -= size % bs;
    const resized = size !== this.size || bs !== this.bs;
    this.live = live;
    this.growing = growing;
    this.size = size;
    this.bs = bs;
    this.etag = etag;
    this.rounds.saw(etag);
    this.n = Math.ceil(size / bs);
    if (resized || !this.have) {
      this.have = new Uint8Array(Math.ceil(this.n / 8));
      this.buf = new Uint8Array(bs);
      this.scratch = new Uint8Array(bs);
    }
    this.store.truncate(size, bs, this.have.length);
    this.writeHeader("active");
    this.resetDigest();
  }

  blockLen(i) {
    return Math.min(this.bs, this.size - i * this.bs);
  }
  // fits reports whether block i may have length bytes: its length in the
  // version, or, past the blocks known of a growing version, a whole block
  // or the short last one (its hash then decides).
  fits(i, length) {
    if (i < this.n) return length === this.blockLen(i);
    return this.growing && Number.isInteger(length) && length >= 1 && length <= this.bs;
  }
  // grow extends a growing version to its verified block i of length
  // bytes; a short block is the last, and fixes the final size. The bitmap
  // doubles when it is full; the data file grows with its writes.
  grow(i, length) {
    this.n = i + 1;
    this.size = i * this.bs + length;
    if (length < this.bs) this.growing = false;
    if (this.reserve(this.n)) this.store.truncate(this.size, this.bs, this.have.length);
    // A reload keeps the blocks of the size in the header.
    if (performance.now() - this.headerAt >= GROWN_MS) this.writeHeader("active");
  }
  // finalize fixes the size of a growing version at its final size, from
  // the end event or the meta or manifest of the completed file.
  finalize(size) {
    this.growing = false;
    this.size = size;
    this.n = Math.ceil(size / this.bs);
    this.reserve(this.n);
    this.store.truncate(size, this.bs, this.have.length);
    this.writeHeader("active");
  }
  // reserve makes room in the bitmap for n blocks, doubling it; it reports
  // whether it had to.
  reserve(n) {
    if (this.have.length * 8 >= n) return false;
    const bits = new Uint8Array(Math.max(2 * this.have.length, Math.ceil(n / 8)));
    bits.set(this.have);
    this.have = bits;
    return true;
  }
  bit(i) {
    return (this.have[i >> 3] >> (i & 7)) & 1;
  }
  setBit(i, on) {
    const b = i >> 3;
    this.have[b] = on ? this.have[b] | (1 << (i & 7)) : this.have[b] & ~(1 << (i & 7));
    this.store.writeBitmapByte(this.have, b);
  }

  writeHeader(status) {
    this.headerAt = performance.now();
    this.store.writeHeader({
      path: this.path, url: this.withQuery(this.url), etag: this.etag, size: this.size,
      block_size: this.bs, status, xxh3_128: this.expect?.xxh3_128 ?? "", sha256: this.expect?.sha256 ?? "",
      follow: this.follow || undefined, live: this.live || undefined, growing: this.growing || undefined,
      updated: new Date().toISOString(),
    });
  }

  // reverify re-reads the stored blocks and keeps those whose xxh3-64 is in
  // hashes; the others are fetched again.
  async reverify(hashes) {
    let kept = 0;
    for (let i = 0; i < this.n; i++) {
      if (!this.bit(i)) continue;
      const b = this.scratch.subarray(0, this.blockLen(i));
      this.stats.rehashed++;
      if (i >= hashes.length || this.store.read(b, i * this.bs) !== b.length || this.x3.init().update(b).digest("hex") !== hashes[i]) {
        this.setBit(i, false);
        continue;
      }
      kept++;
      this.count++;
      this.bytes += b.length;
      if (i === this.next) this.feedDigest(b); // later blocks may still fail here

      if (kept % 64 === 0) {
        this.progress();
        await yieldTask(); // let pause and cancel through
        if (this.finished) return kept;
      }
    }
    return kept;
  }

  // restart moves the download to the version of manifest m, keeping the
  // stored blocks whose hashes still match. A block verified against the
  // previous version's manifest is kept or dropped by comparing the two
  // manifests, without reading it again; without that manifest (the blocks
  // came from streams alone) each stored block is read and hashed.
  async restart(m) {
    const had = this.count;
    this.closeStream();
    const old = this.have, oldN = this.n, oldHashes = this.hashes;
    this.count = this.bytes = 0;
    const sameBlocks = m.BlockSize === this.bs;
    this.expect = null;
    this.setVersion(m.Size, m.BlockSize, m.ETag, !!m.Live);
    this.expect = m.Live ? null : { xxh3_128: m.XXH3128, sha256: m.SHA256 };
    this.hashes = null;
    this.writeHeader("active");
    if (!sameBlocks) {
      this.have.fill(0);
    } else if (old !== this.have) {
      for (let i = 0; i < Math.min(oldN, this.n); i++) {
        if ((old[i >> 3] >> (i & 7)) & 1) this.have[i >> 3] |= 1 << (i & 7);
      }
    }
    this.store.writeBitmap(this.have);
    const kept = sameBlocks && oldHashes ? this.keepMatching(oldHashes, m.Hashes) : await this.reverify(m.Hashes);
    if (this.finished) return;
    this.hashes = m.Hashes;
    this.stats.reused += kept;
    const msg = `The file changed on the server; restarted with the new version, keeping ${kept} of ${had} verified blocks that still match`;
    this.log("changed", msg);
    this.notice = msg;
  }

  // keepMatching keeps the stored blocks whose hash in the manifest they
  // were verified against (from) is their hash in the new one (to), and
  // drops the others. It reads nothing: the whole-file digest reads the
  // kept blocks later, in order.
  keepMatching(from, to) {
    let kept = 0;
    for (let i = 0; i < this.n; i++) {
      if (!this.bit(i)) continue;
      if (i < from.length && from[i] === to[i]) {
        kept++;
        this.count++;
        this.bytes += this.blockLen(i);
      } else {
        this.setBit(i, false);
      }
    }
    return kept;
  }

  resetDigest() {
    this.next = 0; // the whole-file digests cover blocks [0, next)
    this.x128.init();
    if (this.wantSHA) this.sha.init();
  }

  // advanceDigest feeds the whole-file hashers in block order: block i
  // (whose bytes are data) if it is next, then any following blocks already
  // stored, read back from storage.
  advanceDigest(i, data) {
    if (i === this.next) this.feedDigest(data);
    while (this.next < this.n && this.bit(this.next)) {
      const b = this.scratch.subarray(0, this.blockLen(this.next));
      this.store.read(b, this.next * this.bs);
      this.feedDigest(b);
    }
  }

  feedDigest(b) {
    this.x128.update(b);
    if (this.wantSHA) this.sha.update(b);
    this.next++;
  }

  // missing returns the first run of blocks not yet verified, as byte
  // offsets [start, end), or null.
  missing() {
    let i = 0;
    while (i < this.n && this.bit(i)) i++;
    if (i === this.n) return null;
    let j = i;
    while (j < this.n && !this.bit(j)) j++;
    return { start: i * this.bs, end: Math.min(j * this.bs, this.size) };
  }

  // open starts a stream for the first run of missing blocks, or finishes.
  open() {
    if (this.paused || this.finished) return;
    this.closeStream();
    const q = new URLSearchParams();
    const pinned = !!this.etag && !this.unpinned;
    if (pinned) q.set(QueryVersion, this.etag);
    if (this.compress) q.set(QueryEncoding, Gzip);
    if (this.follow) q.set(QueryFollow, "1");
    if (this.size >= 0) {
      const run = this.missing();
      if (!run && !this.growing) return this.finish();
      // A growing version with every known block held goes on after them.
      const start = run ? run.start : this.size;
      if (start > 0) q.set(QueryLastEventID, String(start - this.bs));
      if (run && run.end < this.size && !this.live) q.set(QueryRange, `${run.start}-${run.end - 1}`);
    }
    const es = new EventSource(this.withQuery(this.url, q));
    this.es = es;
    this.attempt = { pinned, opened: false, etag: "", refused: false };
    this.setState("downloading", "");
    es.addEventListener("open", () => this.guard(es, () => this.onOpen()));
    es.addEventListener(EventMeta, (ev) => this.guard(es, () => this.onMeta(es, ev)));
    es.addEventListener(EventBlock, (ev) => this.guard(es, () => this.onBlock(es, ev)));
    es.addEventListener(EventEnd, (ev) => this.guard(es, () => this.onEnd(es, ev)));
    es.addEventListener("error", () => this.guard(es, () => this.onError(es)));
  }

  closeStream() {
    if (this.es) {
      this.es.close();
      this.es = null;
    }
    this.queue = null;
  }

  // guard runs an event handler of the current stream, in order after any
  // block still being decoded, and turns exceptions into failures.
  guard(es, fn) {
    if (es !== this.es || this.finished) return;
    const run = () => {
      if (es !== this.es || this.finished) return;
      try {
        return fn();
      } catch (err) {
        this.fail(err);
      }
    };
    if (this.queue) {
      const q = this.queue.then(run).finally(() => {
        if (this.queue === q) this.queue = null;
      });
      this.queue = q;
    } else {
      const r = run();
      if (r instanceof Promise) {
        const q = r.finally(() => {
          if (this.queue === q) this.queue = null;
        });
        this.queue = q;
      }
    }
  }

  onOpen() {
    this.attempt.opened = true;
    // A live file's stream may stay silent until the file grows: a
    // reconnect that is through says so at once rather than with a block.
    if (this.live && this.state === "reconnecting") this.setState("downloading", "");
  }

  onMeta(es, ev) {
    const m = read(Meta, JSON.parse(ev.data));
    this.stats.streams++;
    this.log("stream", `Stream ${this.stats.streams} starts at byte ${m.Start}${m.Live ? ", live" : ""}`,
      { start: m.Start, end: m.End, last: this.lastOffset, live: !!m.Live });
    this.attempt.etag = m.ETag;
    this.rounds.saw(m.ETag);
    if (!this.etag || this.size < 0) {
      this.checkQuota(m.Size);
      this.setVersion(m.Size, m.BlockSize, m.ETag, !!m.Live); // pinned from here on
      if (m.Live) this.log("live", `The file is still being written (${m.Size} bytes so far): following it as it grows`);
    } else if (m.ETag !== this.etag) {
      // A stream that was not pinned (or the browser's reconnect of one)
      // reached a server with another version: take no block of it, and
      // ask the manifest which version is current.
      this.closeStream();
      if (this.live) {
        // The browser's reconnect of an unpinned stream of a live file that
        // is complete since, or replaced: the pinned manifest tells which.
        this.log("live", `The stream now has etag ${m.ETag}, not the live ${this.etag}: asking the server whether the file is complete`);
        return this.diagnose();
      }
      this.rounds.confirm();
      this.log("changed", `A server has another version of the file (etag ${m.ETag}, not ${this.etag})`);
      return this.diagnose();
    } else if (this.growing && !m.Live && m.Size >= this.size) {
      this.finalize(m.Size); // the live file was completed since
    }
    if (this.unpinned) {
      // The refusal that unpinned the stream was not about the version.
      this.unpinned = false;
      this.rounds.refund();
    }
  }

  onBlock(es, ev) {
    const s = ev.data;
    // The payload is one JSON object whose data string is several hundred
    // KB of base64: cut it out and parse only the small rest as JSON.
    const k = s.indexOf(DATA);
    const q = k < 0 ? -1 : s.indexOf('"', k + DATA.length);
    let f;
    try {
      f = JSON.parse(s.slice(0, k) + `"${FieldData}":0` + s.slice(q + 1));
    } catch {
      return this.corrupt(Number(ev.lastEventId), "unreadable block event");
    }
    const off = f[FieldOffset], length = f[FieldLength], hash = f[FieldHash], encoding = f[FieldEncoding];
    if (Number.isInteger(length) && length > 0) this.stats.bytesFetched += length;
    const i = off / this.bs;
    this.lastOffset = off;
    if (k < 0 || q < 0 || !Number.isInteger(i) || i < 0 || !this.fits(i, length) ||
        ev.lastEventId !== String(off) || !/^[0-9a-f]{16}$/.test(hash)) {
      return this.corrupt(off, "malformed block event");
    }
    if (this.bit(i)) {
      this.stats.duplicates++;
      return;
    }
    const b64 = s.slice(k + DATA.length, q);
    let r;
    try {
      r = this.buf.setFromBase64(b64);
    } catch {
      return this.corrupt(off, "bad base64");
    }
    if (r.read !== b64.length) return this.corrupt(off, "block longer than announced");
    const data = this.buf.subarray(0, r.written);
    switch (encoding) {
      case Identity:
        return this.accept(i, data, hash, length);
      case Gzip:
        return gunzip(data, length).then(
          (raw) => (es === this.es ? this.accept(i, raw, hash, length) : undefined),
          () => this.corrupt(off, "bad gzip data"),
        );
      default:
        return this.corrupt(off, `unknown encoding ${encoding}`);
    }
  }

  // accept verifies one decoded block of length bytes and stores it; past
  // the blocks known of a growing version, it grows the version.
  accept(i, data, hash, length) {
    if (data.length !== length || !this.fits(i, length) || this.x3.init().update(data).digest("hex") !== hash) {
      return this.corrupt(i * this.bs, "checksum mismatch");
    }
    if (this.bit(i)) {
      this.stats.duplicates++;
      return;
    }
    if (i >= this.n) this.grow(i, length);
    this.store.write(data, i * this.bs);
    this.setBit(i, true);
    this.count++;
    this.bytes += data.length;
    this.received += data.length;
    this.unflushed += data.length;
    this.fails = this.autoRetries = 0;
    this.message = "";
    this.advanceDigest(i, data);
    const now = performance.now();
    if (this.unflushed >= FLUSH_BYTES || now - this.lastFlush >= FLUSH_MS) this.flush();
    if (now - this.lastProgress >= PROGRESS_MS) this.progress();
    else this.progressTimer ||= setTimeout(() => this.progress(), this.lastProgress + PROGRESS_MS - now);
  }

  // corrupt handles a block that failed verification: the stream is
  // dropped and reopened at the first missing block, which is fetched again.
  corrupt(off, why) {
    this.stats.corrupt++;
    this.log("corrupt", `Block at byte ${off} failed verification (${why}); fetching it again`, { offset: off });
    this.closeStream();
    this.open();
  }

  onEnd(es, ev) {
    const end = read(End, JSON.parse(ev.data));
    this.closeStream(); // or the browser reconnects forever
    if (this.growing && end.Size >= this.size) this.finalize(end.Size);
    if (end.Size !== this.size) return this.diagnose();
    this.expect = { xxh3_128: end.XXH3128, sha256: end.SHA256 };
    this.open(); // the next missing run, or finish
  }

  onError(es) {
    this.attempt.refused = es.readyState === EventSource.CLOSED && !this.attempt.opened;
    this.attempt.opened = false; // until the browser's reconnect, if any, opens
    if (es.readyState === EventSource.CONNECTING && ++this.autoRetries <= AUTO_RETRIES) {
      // The browser reconnects by itself, sending Last-Event-ID.
      this.stats.reconnects++;
      this.log("reconnect", "Connection lost; reconnecting");
      this.setState("reconnecting", "Connection lost; reconnecting…");
      return;
    }
    // The browser gave up (any non-200 answer closes an EventSource), or it
    // keeps failing: find out why before trying again.
    this.closeStream();
    this.diagnose();
  }

  // withQuery returns url with the query of the URL the download was given,
  // then params (an object or URLSearchParams), the module's own.
  withQuery(url, params = {}) {
    const q = [this.query, new URLSearchParams(params).toString()].filter(Boolean).join("&");
    return q ? url + "?" + q : url;
  }

  // manifest fetches the manifest of the version the server has (not pinned:
  // one request tells the version and brings its manifest) and returns its
  // fields under their Go names (wire.js). It returns null when the request
  // failed and diagnose() has taken over. A live version's is asked pinned
  // to its live etag, the one version of that name; REPLACED is a 412 there.
  async manifest(pinned = this.live) {
    const q = {};
    if (pinned) q[QueryVersion] = this.etag;
    if (this.follow) q[QueryFollow] = "1";
    const u = this.withQuery(this.manifestURL, q);
    let res;
    try {
      res = await fetch(u, { cache: "no-store" });
    } catch {
      this.retryLater("The network is down or the server cannot be reached");
      return null;
    }
    if (this.finished) return null;
    if (res.status === 200) {
      try {
        const m = read(Manifest, await res.json());
        this.rounds.saw(m.ETag);
        return m;
      } catch {
        this.retryLater("The connection broke while reading the file list");
        return null;
      }
    }
    const body = await res.json().catch(() => ({}));
    if (res.status === 412 && pinned) return REPLACED;
    if (res.status === 404) {
      this.fail(new FerryError(NOT_FOUND, `“${this.path}” is not on the server (404).`, 404));
    } else if (res.status === 401) {
      this.fail(new FerryError(DENIED, `Access denied (401): this server needs an access token or a signed link for “${this.path}”.`, 401));
    } else if (res.status === 403) {
      this.fail(new FerryError(DENIED, `Access denied (403): the link to “${this.path}” has expired, is not valid, or was signed for an earlier version of the file.`, 403));
    } else if (res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429) {
      this.fail(new FerryError(FAILED, `The server refused the download (${res.status}${body.error ? ": " + body.error : ""}).`, res.status));
    } else {
      this.retryLater(`The server is not available (${res.status})`);
    }
    return null;
  }

  // diagnose asks the manifest endpoint why a stream stopped, then resumes,
  // follows the file to a new version, waits, or fails.
  async diagnose() {
    if (this.paused || this.finished) return;
    const a = this.attempt; // the stream that stopped, if one did
    this.attempt = null;
    this.setState("checking", "Asking the server why the stream stopped");
    const m = await this.manifest();
    if (!m || this.paused || this.finished) return;
    if (m === REPLACED) return this.replaced();
    if (this.size >= 0 && m.ETag !== this.etag) {
      if (this.onChange === "fail") {
        return this.fail(new FerryError(CHANGED, `“${this.path}” changed on the server (412).`, 412));
      }
      return this.changed(m);
    }
    if (this.size < 0 && this.seeds.length > 0 && !m.Live) return this.seed(m);
    if (this.size < 0) {
      this.checkQuota(m.Size);
      if (this.etag && m.ETag !== this.etag) {
        // The file changed since the list was loaded: nothing is stored yet.
        this.notice = "The file changed on the server since the list was loaded; downloading the new version";
        this.log("changed", this.notice);
        return this.changed(m);
      }
      this.setVersion(m.Size, m.BlockSize, m.ETag, !!m.Live);
    }
    this.learn(m);
    if (a?.etag && a.etag !== this.etag && !this.live) {
      // A stream's server has another version than the manifest's. (Not so
      // for a live version: its manifest is pinned, so the file is still
      // that one, and the stream was the browser's reconnect of an unpinned
      // one, which found the file complete: reopen it pinned.)
      return this.changed(m, `a server sent etag ${a.etag}, the manifest is still ${this.etag}`);
    }
    if (a?.refused && a.pinned && !this.live) {
      // A stream pinned to the manifest's version was refused: most likely
      // a 412 from a server with another version, which an EventSource
      // cannot show. The next stream goes unpinned and its meta event
      // tells; if it is this version after all, the round is given back.
      return this.changed(m, `a stream pinned to etag ${this.etag} was refused, the manifest is still ${this.etag}`, true);
    }
    const wait = backoff(this.fails);
    this.fails++;
    this.wait(wait, "The stream stopped; resuming", () => this.open());
  }

  // changed is a round of the retry budget: it follows the file to the
  // version of manifest m, or, when m is the version held and a server
  // answered with another (why), tries again with the next stream
  // unpinned. Rounds back off like failures; when they are spent it fails.
  // A tentative round is given back if the next stream finds m's version.
  async changed(m, why = "", tentative = false) {
    const err = this.rounds.next(this.url, tentative);
    if (err) return this.fail(err);
    let waiting = "The file changed on the server";
    if (m.ETag !== this.etag || this.size < 0) {
      if (this.size < 0) {
        this.setVersion(m.Size, m.BlockSize, m.ETag, !!m.Live);
        this.learn(m);
      } else {
        await this.restart(m);
      }
      if (this.finished || this.paused) return; // resume() asks the manifest again
      this.unpinned = false;
    } else {
      this.unpinned = true;
      waiting = "The servers behind this link disagree about the file's version";
      this.notice = `${waiting}; trying again`;
      this.log("changed", `${this.notice} (${why})`);
    }
    this.wait(backoff(this.rounds.n - 1), waiting, () => this.open());
  }

  // learn takes what manifest m of the version held tells: its block
  // hashes, and its digests unless it is a live file's manifest, which has
  // none yet. The final manifest of a growing version fixes its size.
  learn(m) {
    this.hashes = m.Hashes;
    if (m.Live) return;
    if (this.growing) this.finalize(m.Size);
    this.expect = { xxh3_128: m.XXH3128, sha256: m.SHA256 };
  }

  // replaced handles a 412 to a request pinned to a live etag: the file
  // followed was truncated, deleted or replaced. With onChange "fail" the
  // download fails; otherwise it asks what the path holds now and restarts
  // against it as against any change, keeping the stored blocks that still
  // match (a new build shares few: the stream then starts again at 0).
  async replaced() {
    const why = `“${this.path}” was truncated, deleted or replaced on the server while it was being followed (412)`;
    if (this.onChange === "fail") return this.fail(new FerryError(CHANGED, why + ".", 412));
    this.log("changed", why);
    const m = await this.manifest(false);
    if (!m || this.paused || this.finished) return;
    return this.changed(m);
  }

  retryLater(why) {
    const wait = backoff(this.fails + 1);
    this.fails++;
    this.log("waiting", `${why}; retrying in ${Math.round(wait / 1000)} s`);
    this.wait(wait, why, () => this.diagnose());
  }

  wait(ms, why, then) {
    clearTimeout(this.timer);
    if (ms > 0) this.setState("waiting", `${why}; retrying in ${Math.round(ms / 1000)} s`, ms);
    this.timer = setTimeout(() => {
      if (!this.paused && !this.finished) then();
    }, ms);
  }

  // wake cuts a wait short (the browser is back online).
  wake() {
    if (this.state !== "waiting" || this.paused || this.finished) return;
    this.log("online", "Back online");
    this.wait(0, "", () => this.diagnose());
  }

  async checkQuota(size) {
    if (this.storageKind !== "opfs") return;
    const est = await navigator.storage?.estimate?.().catch(() => null);
    if (est && est.quota - est.usage < size - this.bytes) {
      this.fail(new FerryError(STORAGE_FULL, `Not enough storage for this file: it needs ${fmt(size)}, the browser allows ${fmt(est.quota - est.usage)} more.`));
    }
  }

  // finish checks the whole file and closes its storage.
  async finish() {
    if (this.finished) return;
    this.closeStream();
    if (!this.expect) {
      const m = await this.manifest();
      if (!m || this.finished) return;
      if (m === REPLACED) return this.replaced();
      if (m.ETag !== this.etag) return this.changed(m);
      if (m.Live) return this.retryLater("The server still has the file as being written");
      this.learn(m);
    }
    this.advanceDigest(-1, null);
    const x = this.x128.digest("hex");
    this.x128.init(); // digest() ends a hasher
    if (this.next !== this.n || x !== this.expect.xxh3_128) {
      return this.fail(new FerryError(CHECKSUM, `The whole file does not match the server's digest (xxh3-128 ${x}, want ${this.expect.xxh3_128}).`));
    }
    let shaLocal = "";
    if (this.wantSHA) {
      shaLocal = this.sha.digest("hex");
      if (shaLocal !== this.expect.sha256) {
        return this.fail(new FerryError(CHECKSUM, `The SHA-256 computed here (${shaLocal}) does not match the server's (${this.expect.sha256}).`));
      }
    }
    this.finished = true;
    this.store.flush();
    this.writeHeader("done");
    const blob = this.store.close();
    await this.store.dropAside(); // the earlier version, if this one was seeded from it
    this.setState("done", "");
    this.log("done", "Verified");
    postMessage({
      type: "done",
      result: {
        path: this.path, size: this.size, etag: this.etag, xxh3_128: x, sha256: this.expect.sha256, sha256Local: shaLocal,
        storage: this.storageKind, key: this.key, blob, stats: this.stats,
      },
    });
  }

  flush() {
    this.store.flush();
    this.unflushed = 0;
    this.lastFlush = performance.now();
  }

  pause() {
    if (this.finished || this.paused) return;
    this.paused = true;
    clearTimeout(this.timer);
    this.closeStream();
    if (this.store && this.size >= 0) {
      this.flush();
      this.writeHeader("paused");
    }
    this.setState("paused", "");
  }

  resume() {
    if (this.finished || !this.paused) return;
    this.paused = false;
    this.fails = 0;
    if (this.seeding) return; // seed() streams the rest when it is done
    if (this.store && this.size >= 0) this.writeHeader("active");
    if (this.size >= 0 && this.etag) this.diagnose();
    else this.open();
  }

  async cancel() {
    this.finished = true;
    this.abort?.abort();
    clearTimeout(this.timer);
    this.closeStream();
    await this.store?.remove();
    postMessage({ type: "cancelled" });
  }

  fail(err) {
    if (this.finished) return;
    this.finished = true;
    this.abort?.abort();
    clearTimeout(this.timer);
    this.closeStream();
    let code = err?.code ?? FAILED, message = err?.message ?? String(err);
    if (err?.name === "QuotaExceededError") {
      code = STORAGE_FULL;
      message = "The browser's storage is full: free some space or remove finished downloads, then try again.";
    } else if (err?.name === "NoModificationAllowedError") {
      code = BUSY;
      message = "This file is being downloaded in another tab.";
    }
    let cleanup = null;
    try {
      if (this.store && this.size >= 0) {
        this.store.flush();
        this.writeHeader("paused"); // verified blocks stay for a later try
        this.store.close();
      } else {
        cleanup = this.store?.remove(); // nothing worth keeping
      }
    } catch {
      // the storage is what failed
    }
    this.log("error", message);
    // The page ends the worker on this message: remove the files first.
    Promise.resolve(cleanup).finally(() => postMessage({ type: "error", error: { code, message, status: err?.status ?? 0 } }));
  }

  setState(state, message, wait = 0) {
    this.state = state;
    this.message = message;
    this.waitMs = wait;
    this.progress();
  }

  // progress posts the download's progress. Blocks post it at most every
  // PROGRESS_MS, and once more after the last of a burst: a stream that
  // stalls leaves the page with the bytes verified, not those of 100 ms
  // before.
  progress() {
    clearTimeout(this.progressTimer);
    this.progressTimer = 0;
    const now = performance.now();
    this.lastProgress = now;
    this.samples.push([now, this.received]);
    while (this.samples.length > 2 && now - this.samples[0][0] > 5000) this.samples.shift();
    const [t0, b0] = this.samples[0];
    const rate = now - t0 > 250 ? ((this.received - b0) * 1000) / (now - t0) : 0;
    postMessage({
      type: "progress",
      progress: {
        state: this.state, message: this.message, notice: this.notice ?? "", wait: this.waitMs,
        bytes: this.bytes, total: this.growing ? -1 : this.size, blocks: this.count, totalBlocks: this.growing ? -1 : this.n,
        live: this.growing, rate, eta: rate > 0 && this.size >= 0 && !this.growing ? (this.size - this.bytes) / rate : null,
        storage: this.storageKind, ...this.stats,
      },
    });
  }

  log(kind, text, data = {}) {
    postMessage({ type: "log", entry: { t: Date.now(), kind, text, ...data } });
  }
}

// backoff returns the wait before the next try after n failures (or
// rounds) in a row: none after none, then 1 s doubling up to MAX_BACKOFF_MS.
function backoff(n) {
  return n <= 0 ? 0 : Math.min(MAX_BACKOFF_MS, 500 * 2 ** n);
}

// Rounds bounds how often a download follows the file to another version,
// or tries again where the servers behind its URL disagree about it, and
// remembers the etags they answered with, to say why it stopped. Unlike
// failures, rounds are not given back by progress: replicas that disagree
// would let a download bounce between them for ever, a block at a time.
class Rounds {
  constructor(retries) {
    this.retries = retries;
    this.n = 0; // rounds so far
    this.seen = []; // etags in the order seen, without repeats in a row
    this.tentative = false; // the last round was a refusal not known to be about the version
  }

  // saw records an etag a server answered with.
  saw(etag) {
    if (etag && this.seen.at(-1) !== etag) this.seen.push(etag);
  }

  // confirm keeps a tentative round: a server did have another version.
  confirm() {
    this.tentative = false;
  }

  // refund gives a tentative round back: the stream after it found the
  // version held.
  refund() {
    if (this.tentative && this.n > 0) this.n--;
    this.tentative = false;
  }

  // next starts another round, tentative or not, or returns the FerryError
  // to fail with when the retries are spent. A tentative round past the
  // budget is free while no server has answered with another version: a
  // refusal alone is no version trouble.
  next(url, tentative) {
    this.tentative = false;
    if (this.n >= this.retries) {
      if (tentative && this.seen.length < 2) return null;
      return this.exhausted(url);
    }
    this.n++;
    this.tentative = tentative;
    return null;
  }

  // exhausted tells servers that disagree (an etag came back after another)
  // from a file that kept changing.
  exhausted(url) {
    const tries = this.n + 1;
    for (let i = 1; i < this.seen.length; i++) {
      if (this.seen.slice(0, i).includes(this.seen[i])) {
        return new FerryError(CHANGED, `Gave up after ${tries} tries: the servers behind ${url} disagree about the file's version: etag ${this.seen[i]}, then ${this.seen[i - 1]}.`);
      }
    }
    return new FerryError(CHANGED, `Gave up after ${tries} tries: ${url} kept changing during the download: etags ${this.seen.join(", ")}.`);
  }
}

// gunzip decodes one gzip block with the browser's DecompressionStream and
// checks that it holds exactly length bytes.
async function gunzip(data, length) {
  const ds = new DecompressionStream("gzip");
  const w = ds.writable.getWriter();
  w.write(data.slice()).catch(() => {});
  w.close().catch(() => {});
  const out = new Uint8Array(length);
  let n = 0;
  for await (const chunk of ds.readable) {
    if (n + chunk.length > length) throw new Error("gzip block too long");
    out.set(chunk, n);
    n += chunk.length;
  }
  if (n !== length) throw new Error("gzip block too short");
  return out;
}

function yieldTask() {
  return new Promise((r) => setTimeout(r, 0));
}

function popcount(bits) {
  let n = 0;
  for (let b of bits) for (; b; b &= b - 1) n++;
  return n;
}

function fmt(n) {
  const u = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  for (; n >= 1000 && i < u.length - 1; i++) n /= 1000;
  return `${n.toFixed(i ? 1 : 0)} ${u[i]}`;
}
