// storage.js: where ferry-worker.js keeps a download, behind one interface
// with two backends. OPFSStore writes two files in the Origin Private File
// System through sync access handles (the default); MemoryStore keeps the
// blocks in memory where OPFS is missing. ferry.js reads OPFSStore's files
// back (stored(), the finished File) by the names and layout below.
//
// A store has:
//
//   kind                          "opfs" or "memory"
//   readHeader()                  the state header written last, or null
//   writeHeader(h)                the state header: an object, JSON
//   readBitmap(bits)              fill bits (one per block) from storage
//   writeBitmap(bits)             store all of bits …
//   writeBitmapByte(bits, i)      … or only its byte i
//   truncate(size, bs, bitmapBytes)  size the data for a file of size bytes
//                                 in blocks of bs, the bitmap to bitmapBytes
//   write(b, at), read(b, at)     a block's bytes at their file offset; read
//                                 returns how many it read (0: none stored)
//   flush()                       make what was written durable
//   close()                       release the files; a Blob of the data
//                                 (memory) or null (OPFS: read it from DIR)
//   remove()                      delete everything stored (may return a
//                                 promise)
//   setAside()                    move the data of a finished download to
//                                 <key>SEED and start an empty data file;
//                                 resolves with the old data as a File (a
//                                 seed of the next version), or null
//   dropAside()                   delete <key>SEED (may return a promise)
//
// A write that does not fit throws a QuotaExceededError, as the browser's
// own do.

// DIR is the OPFS folder of the downloads: <key>PART holds a file's bytes
// at their offsets, <key>STATE its state.
export const DIR = "ferry";
export const PART = ".part", STATE = ".state";
// SEED holds a finished download's bytes while the next version of the same
// path is built from them (setAside); it is deleted once that one is done.
export const SEED = ".seed";
// HEADER is the size of a .state file's header: JSON padded with spaces,
// then one bit per block (1: verified and written).
export const HEADER = 16384;
const STATE_VERSION = 1; // v in the header: a header of another version is ignored

const enc = new TextEncoder();
const dec = new TextDecoder();

// openStore opens the storage of one download: files in the Origin Private
// File System written through sync access handles, or memory where OPFS is
// missing.
export async function openStore(kind, key) {
  if (kind === "opfs" && self.FileSystemSyncAccessHandle && navigator.storage?.getDirectory) {
    try {
      const root = await navigator.storage.getDirectory();
      const dir = await root.getDirectoryHandle(DIR, { create: true });
      return await OPFSStore.open(dir, key);
    } catch (err) {
      if (err?.name === "NoModificationAllowedError" || err?.name === "QuotaExceededError") throw err;
      // e.g. a private window without OPFS: fall back to memory
    }
  }
  return new MemoryStore();
}

// OPFSStore keeps a download in two OPFS files, <key>PART (the bytes at
// their offsets) and <key>STATE (header and bitmap). Writes through a sync
// access handle reach the operating system at once, so a reload or a
// crashed tab keeps them; flush() makes them durable.
class OPFSStore {
  static async open(dir, key) {
    const s = new OPFSStore();
    s.kind = "opfs";
    s.dir = dir;
    s.key = key;
    s.data = await lock(await dir.getFileHandle(key + PART, { create: true }));
    try {
      s.state = await lock(await dir.getFileHandle(key + STATE, { create: true }));
    } catch (err) {
      s.data.close();
      throw err;
    }
    return s;
  }
  readHeader() {
    if (this.state.getSize() < HEADER) return null;
    const b = new Uint8Array(HEADER);
    this.state.read(b, { at: 0 });
    try {
      const h = JSON.parse(dec.decode(b).trimEnd());
      return h.v === STATE_VERSION ? h : null;
    } catch {
      return null;
    }
  }
  writeHeader(h) {
    const b = new Uint8Array(HEADER).fill(0x20);
    const j = enc.encode(JSON.stringify({ v: STATE_VERSION, ...h }));
    if (j.length > HEADER) throw new Error("path too long for the state header");
    b.set(j);
    this.state.write(b, { at: 0 });
  }
  readBitmap(bits) {
    this.state.read(bits, { at: HEADER });
  }
  writeBitmap(bits) {
    this.state.write(bits, { at: HEADER });
  }
  writeBitmapByte(bits, i) {
    this.state.write(bits.subarray(i, i + 1), { at: HEADER + i });
  }
  truncate(size, bs, bitmapBytes) {
    if (this.data.getSize() !== size) this.data.truncate(size);
    if (this.state.getSize() !== HEADER + bitmapBytes) this.state.truncate(HEADER + bitmapBytes);
  }
  write(b, at) {
    if (this.data.write(b, { at }) !== b.length) {
      throw new DOMException("The browser's storage is full.", "QuotaExceededError");
    }
  }
  read(b, at) {
    return this.data.read(b, { at });
  }
  flush() {
    this.data.flush();
    this.state.flush();
  }
  close() {
    this.data.close();
    this.state.close();
    return null;
  }
  remove() {
    try {
      this.close();
    } catch {
      // already closed
    }
    const gone = (name) => this.dir.removeEntry(name).catch(() => {});
    return Promise.all([gone(this.key + PART), gone(this.key + STATE), gone(this.key + SEED)]);
  }
  async setAside() {
    this.data.close();
    let moved = false;
    try {
      await this.dir.removeEntry(this.key + SEED).catch(() => {});
      await (await this.dir.getFileHandle(this.key + PART)).move(this.key + SEED);
      moved = true;
    } catch {
      // a browser that cannot move OPFS files: no seed, the data file stays
    }
    this.data = await lock(await this.dir.getFileHandle(this.key + PART, { create: true }));
    if (!moved) return null;
    return (await this.dir.getFileHandle(this.key + SEED)).getFile();
  }
  dropAside() {
    return this.dir.removeEntry(this.key + SEED).catch(() => {});
  }
}

// lock opens a sync access handle, waiting a little for one that a page
// being reloaded has not released yet.
async function lock(fh) {
  for (let i = 0; ; i++) {
    try {
      return await fh.createSyncAccessHandle();
    } catch (err) {
      if (err?.name !== "NoModificationAllowedError" || i >= 20) throw err;
      await new Promise((r) => setTimeout(r, 150));
    }
  }
}

// MemoryStore keeps the blocks in memory, for browsers without OPFS.
class MemoryStore {
  constructor() {
    this.kind = "memory";
    this.blocks = [];
    this.bs = 0;
  }
  readHeader() {
    return null;
  }
  writeHeader() {}
  readBitmap() {}
  writeBitmap() {}
  writeBitmapByte() {}
  truncate(size, bs) {
    this.size = size;
    this.bs = bs;
    this.blocks.length = Math.min(this.blocks.length, Math.ceil(size / bs));
  }
  write(b, at) {
    this.blocks[Math.floor(at / this.bs)] = b.slice();
  }
  read(b, at) {
    const blk = this.blocks[Math.floor(at / this.bs)];
    if (!blk) return 0;
    b.set(blk.subarray(0, b.length));
    return Math.min(b.length, blk.length);
  }
  flush() {}
  close() {
    const blob = new Blob(this.blocks);
    this.blocks = [];
    return blob;
  }
  remove() {
    this.blocks = [];
  }
  async setAside() {
    return null; // nothing is kept across pages
  }
  dropAside() {}
}
