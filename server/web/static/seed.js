// seed.js finds the blocks of a version in an older copy the browser already
// has (a previous download kept in OPFS, or a file the user picks), so that
// a download copies them instead of fetching them: the browser side of
// `ferry get --seed` (client/seed.go), on the manifest's `weak` rolling
// checksums (docs/PROTOCOL.md, GET /manifest/) and `hashes`.
//
// findBlocks slides a window of one block along the seed, byte by byte,
// keeping rsync's rolling checksum of it (a = Σx, b = Σ(n−i)·x, mod 2^16,
// weak = b<<16 | a); a window whose checksum is some block's is confirmed
// by its xxh3-64 before it counts. After a block is found, the window one
// block on is tried whole by its xxh3-64 first (a run of unchanged blocks
// costs one hash each, not a roll). A manifest without `weak` (an older
// server) is matched at the blocks' own offsets only, and the short last
// block is also looked for at the seed's end.

const CHUNK = 8 << 20; // bytes of the seed read at a time

// A bit set in front of the Map of checksums: a byte position costs a bit
// test, and only a hit costs a Map lookup. About 32 bits per block keeps
// the false hits near 3 % and the set small enough for the CPU's cache
// (with 4 Mbit, 16 ns per byte of seed; with 128 Kbit, see PERFORMANCE.md).
function filterBitsFor(blocks) {
  let bits = 1 << 12;
  while (bits < blocks * 256 && bits < 1 << 22) bits <<= 1;
  return bits;
}

// Weak is the rolling checksum of the bytes p (chunker.Weak).
export function weak(p) {
  const n = p.length;
  let a = 0, b = 0;
  for (let i = 0; i < n; i++) {
    a = (a + p[i]) >>> 0;
    b = (b + Math.imul(n - i, p[i])) >>> 0;
  }
  return (((b & 0xffff) << 16) | (a & 0xffff)) >>> 0;
}

// findBlocks returns a Map from block index to the seed offset that holds
// that block, for the blocks of manifest m (block_size, size, blocks,
// hashes, weak) not already in have (a Uint8Array of one flag per block,
// or null). seed is a Blob (a File, or an OPFS file's getFile()); x3 is a
// hash-wasm xxh3-64 hasher. onProgress(bytesRead) is called now and then;
// signal (an AbortSignal) stops the search.
export async function findBlocks(seed, m, x3, { have = null, onProgress = null, signal = null } = {}) {
  const bs = m.block_size, found = new Map();
  const hashOf = (buf, off, n) => x3.init().update(buf.subarray(off, off + n)).digest("hex");
  const missing = (i) => !found.has(i) && !(have && have[i]);
  const lenOf = (i) => Math.min(bs, m.size - i * bs);

  if (m.weak && m.weak.length === m.blocks && seed.size >= bs) {
    const bits = filterBitsFor(m.blocks);
    const byWeak = new Map(), filter = new Int32Array(bits / 32), shift = 32 - Math.log2(bits);
    for (let i = 0; i < m.blocks; i++) {
      if (lenOf(i) !== bs || !missing(i)) continue;
      const w = m.weak[i] | 0; // as the window's sum is kept: int32
      const list = byWeak.get(w);
      if (list) list.push(i); else byWeak.set(w, [i]);
      const k = Math.imul(w, 0x9e3779b1) >>> shift;
      filter[k >>> 5] |= 1 << (k & 31);
    }
    if (byWeak.size > 0) await roll(seed, m, bs, { byWeak, filter, shift }, found, missing, hashOf, onProgress, signal);
  }
  // Same offsets: the blocks a manifest without weak sums can only be
  // found by, and the short last block, which no window of bs bytes is.
  for (let i = 0; i < m.blocks; i++) {
    if (signal?.aborted) break;
    if (!missing(i)) continue;
    const n = lenOf(i);
    for (const off of n === bs ? [i * bs] : [i * bs, seed.size - n]) {
      if (off < 0 || off + n > seed.size) continue;
      const b = new Uint8Array(await seed.slice(off, off + n).arrayBuffer());
      if (hashOf(b, 0, n) === m.hashes[i]) {
        found.set(i, off);
        break;
      }
    }
  }
  return found;
}

// roll runs the sliding window over the seed, chunk by chunk (each chunk
// read with one block of the next, so that a window never spans a read).
async function roll(seed, m, bs, { byWeak, filter, shift }, found, missing, hashOf, onProgress, signal) {
  const n = bs;
  let pos = 0; // seed offset of the window's first byte
  let a = 0, b = 0, fresh = true;
  while (pos + n <= seed.size) {
    if (signal?.aborted) return;
    const end = Math.min(seed.size, pos + CHUNK + n);
    const buf = new Uint8Array(await seed.slice(pos, end).arrayBuffer());
    let p = 0; // window start within buf
    const last = buf.length - n; // the last window start this chunk holds whole
    while (p <= last) {
      if (fresh) {
        a = 0; b = 0;
        for (let i = 0; i < n; i++) {
          a = (a + buf[p + i]) | 0;
          b = (b + Math.imul(n - i, buf[p + i])) | 0;
        }
        fresh = false;
      }
      // The hot loop: roll until the bit set says maybe. Sums wrap as
      // int32; only their low 16 bits count.
      let w = ((b & 0xffff) << 16) | (a & 0xffff), k = Math.imul(w, 0x9e3779b1) >>> shift;
      while (!(filter[k >>> 5] & (1 << (k & 31))) && p < last) {
        const out = buf[p];
        a = (a + buf[p + n] - out) | 0;
        b = (b + a - Math.imul(n, out)) | 0;
        p++;
        w = ((b & 0xffff) << 16) | (a & 0xffff);
        k = Math.imul(w, 0x9e3779b1) >>> shift;
      }
      if (filter[k >>> 5] & (1 << (k & 31))) {
        const list = byWeak.get(w);
        const i = list && confirm(list, buf, p, n, m, hashOf, missing);
        if (i !== undefined && i !== false) {
          found.set(i, pos + p);
          // A run: the next blocks of the new version follow in the seed.
          let j = i + 1, q = p + n;
          while (q <= last && j < m.blocks && m.size - j * bs >= bs && hashOf(buf, q, n) === m.hashes[j]) {
            if (missing(j)) found.set(j, pos + q);
            j++; q += n;
          }
          p = q;
          fresh = true;
          continue;
        }
      }
      if (p === last) break;
      const out = buf[p];
      a = (a + buf[p + n] - out) | 0;
      b = (b + a - Math.imul(n, out)) | 0;
      p++;
    }
    // Move on to the window after the last one this chunk tried.
    if (end >= seed.size) return;
    if (fresh) {
      pos += p;
    } else {
      // The window at p was tried; the next starts at p+1, summed afresh
      // in the next chunk (once per 8 MiB: nothing against the rolling).
      pos += p + 1;
      fresh = true;
    }
    onProgress?.(pos);
  }
}

// confirm returns the first block of candidates whose xxh3-64 the window
// has and that is still missing, or undefined.
function confirm(candidates, buf, p, n, m, hashOf, missing) {
  let h;
  for (const i of candidates) {
    if (!missing(i)) continue;
    h ??= hashOf(buf, p, n);
    if (h === m.hashes[i]) return i;
  }
  return undefined;
}
