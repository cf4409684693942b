// An HPACK decoder (RFC 7541) for a proxy that watches HTTP/2 without serving it
// (proxy/inbound-observed-h2.ts): one per direction of a connection, fed every header block of
// that direction in order, as the endpoint's own decoder is, so that its dynamic table stays
// the endpoint's. It only reads: a block it cannot decode throws HpackError, and the caller
// stops watching that connection (the endpoint's own decoder judges the bytes, not this one).
//
// Names and values are latin1 strings (one character per octet, as Node's HTTP/2 gives them),
// so an entry's size is name.length + value.length + 32 (RFC 7541 §4.1).

/** A header block this decoder cannot read (RFC 7541 §6's and §5's errors). */
export class HpackError extends Error {}

// RFC 7541 Appendix A: the static table, indices 1–61.
const STATIC: readonly (readonly [string, string])[] = [
  [':authority', ''],
  [':method', 'GET'],
  [':method', 'POST'],
  [':path', '/'],
  [':path', '/index.html'],
  [':scheme', 'http'],
  [':scheme', 'https'],
  [':status', '200'],
  [':status', '204'],
  [':status', '206'],
  [':status', '304'],
  [':status', '400'],
  [':status', '404'],
  [':status', '500'],
  ['accept-charset', ''],
  ['accept-encoding', 'gzip, deflate'],
  ['accept-language', ''],
  ['accept-ranges', ''],
  ['accept', ''],
  ['access-control-allow-origin', ''],
  ['age', ''],
  ['allow', ''],
  ['authorization', ''],
  ['cache-control', ''],
  ['content-disposition', ''],
  ['content-encoding', ''],
  ['content-language', ''],
  ['content-length', ''],
  ['content-location', ''],
  ['content-range', ''],
  ['content-type', ''],
  ['cookie', ''],
  ['date', ''],
  ['etag', ''],
  ['expect', ''],
  ['expires', ''],
  ['from', ''],
  ['host', ''],
  ['if-match', ''],
  ['if-modified-since', ''],
  ['if-none-match', ''],
  ['if-range', ''],
  ['if-unmodified-since', ''],
  ['last-modified', ''],
  ['link', ''],
  ['location', ''],
  ['max-forwards', ''],
  ['proxy-authenticate', ''],
  ['proxy-authorization', ''],
  ['range', ''],
  ['referer', ''],
  ['refresh', ''],
  ['retry-after', ''],
  ['server', ''],
  ['set-cookie', ''],
  ['strict-transport-security', ''],
  ['transfer-encoding', ''],
  ['user-agent', ''],
  ['vary', ''],
  ['via', ''],
  ['www-authenticate', ''],
];

// RFC 7541 Appendix B: the Huffman code's length in bits for each symbol 0–255 and EOS (256).
// The code is canonical (codes of one length are consecutive, in symbol order, and each
// length's first code follows the last of the length before, shifted), so the lengths are
// all of it; the unit test decodes what Node's own encoder (nghttp2) writes for every octet.
// prettier-ignore
const HUFFMAN_LENGTHS = [
  13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28,
  6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10,
  13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6,
  15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, 6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28,
  20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24,
  22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,
  26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27,
  20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
  30,
];
const EOS = 256;
const EMPTY = Buffer.alloc(0);

/**
 * The decoder reads four bits at a time, as nghttp2's does: a state is an inner node of the
 * code's tree (256 of them, the root 0), and for each state and nibble the table gives the
 * next state and the symbol completed on the way, if any (the shortest code has 5 bits, so
 * at most one). Built once from the lengths: FSM[state * 16 + nibble] =
 * next state | SYM (a symbol completed: its value in bits 8–15) | FAIL (EOS decoded).
 * ACCEPT[state]: the state may end a string (its path from the root is at most 7 bits, all
 * ones: the padding, RFC 7541 §5.2).
 */
const SYM = 1 << 16;
const FAIL = 1 << 17;
const FSM = new Int32Array(256 * 16);
const ACCEPT = new Uint8Array(256);
{
  // the canonical codes, then the tree: children[2 * node + bit] is an inner node (> 0; the
  // root, 0, is no child) or a leaf (-1 - symbol)
  const codes: number[] = [];
  const order = HUFFMAN_LENGTHS.map((_l, sym) => sym).sort((a, b) => HUFFMAN_LENGTHS[a]! - HUFFMAN_LENGTHS[b]! || a - b);
  let code = 0;
  let prev = HUFFMAN_LENGTHS[order[0]!]!;
  for (const [k, sym] of order.entries()) {
    const len = HUFFMAN_LENGTHS[sym]!;
    if (k > 0) code = (code + 1) * 2 ** (len - prev);
    prev = len;
    codes[sym] = code;
  }
  const children: number[] = [0, 0];
  let nodes = 1;
  for (let sym = 0; sym < HUFFMAN_LENGTHS.length; sym++) {
    const len = HUFFMAN_LENGTHS[sym]!;
    let node = 0;
    for (let b = len - 1; b > 0; b--) {
      const slot = 2 * node + (Math.floor(codes[sym]! / 2 ** b) & 1);
      if (children[slot] === 0) {
        children[slot] = nodes++;
        children.push(0, 0);
      }
      node = children[slot]!;
    }
    children[2 * node + (codes[sym]! & 1)] = -1 - sym;
  }
  // depth and all-ones of each inner node, for ACCEPT
  const depth = new Int32Array(nodes);
  const ones = new Uint8Array(nodes);
  ones[0] = 1;
  for (let n = 0; n < nodes; n++)
    for (let bit = 0; bit < 2; bit++) {
      const c = children[2 * n + bit]!;
      if (c <= 0) continue;
      depth[c] = depth[n]! + 1;
      ones[c] = ones[n]! & bit;
    }
  for (let n = 0; n < nodes; n++) ACCEPT[n] = ones[n]! && depth[n]! <= 7 ? 1 : 0;
  for (let state = 0; state < nodes; state++)
    for (let nibble = 0; nibble < 16; nibble++) {
      let node = state;
      let entry = 0;
      for (let b = 3; b >= 0; b--) {
        const c = children[2 * node + ((nibble >> b) & 1)]!;
        if (c > 0) {
          node = c;
          continue;
        }
        const sym = -1 - c;
        if (sym === EOS) entry |= FAIL;
        else entry |= SYM | (sym << 8);
        node = 0;
      }
      FSM[state * 16 + nibble] = entry | node;
    }
}

/** The Huffman-coded octets buf[from, to) as a latin1 string (RFC 7541 §5.2). */
function huffmanDecode(buf: Buffer, from: number, to: number): string {
  // every symbol takes at least 5 bits
  const out = Buffer.allocUnsafe(Math.ceil(((to - from) * 8) / 5));
  let n = 0;
  let state = 0;
  for (let i = from; i < to; i++) {
    const byte = buf[i]!;
    let e = FSM[state * 16 + (byte >> 4)]!;
    if (e & SYM) out[n++] = (e >> 8) & 0xff;
    let fail = e & FAIL;
    e = FSM[(e & 0xff) * 16 + (byte & 0xf)]!;
    if (e & SYM) out[n++] = (e >> 8) & 0xff;
    fail |= e & FAIL;
    if (fail) throw new HpackError('Huffman-coded string holds EOS');
    state = e & 0xff;
  }
  if (!ACCEPT[state]) throw new HpackError('invalid Huffman padding');
  return out.toString('latin1', 0, n);
}

export class HpackDecoder {
  /** newest first */
  private readonly table: [string, string][] = [];
  private size = 0;
  private pos = 0;
  /** the block being decoded (EMPTY between blocks: a decoder keeps none of them) */
  private buf: Buffer = EMPTY;

  private readonly maxTableSize: number;
  private readonly maxListSize: number;
  private capacity: number;

  /**
   * @param o.maxTableSize the largest dynamic table an encoder may ask for (its size updates; 64 KiB)
   * @param o.tableSize the table's size until the encoder changes it: HTTP/2's default, 4,096 octets (RFC 9113 §6.5.2)
   * @param o.maxListSize the largest header list a block may decode to, counted as
   *   SETTINGS_MAX_HEADER_LIST_SIZE counts it (each field's name and value and 32 octets):
   *   a block of one-octet references to a large entry decodes to far more than its size
   */
  constructor(o: { maxTableSize?: number; tableSize?: number; maxListSize?: number } = {}) {
    this.maxTableSize = o.maxTableSize ?? 65_536;
    this.capacity = o.tableSize ?? 4096;
    this.maxListSize = o.maxListSize ?? Infinity;
  }

  /** The fields of one complete header block (name, value, name, value …), in order; its entries go into the dynamic table. */
  decode(block: Buffer): string[] {
    this.buf = block;
    this.pos = 0;
    const out: string[] = [];
    let fieldSeen = false;
    let listSize = 0;
    while (this.pos < block.length) {
      const b = block[this.pos]!;
      if (b & 0x80) {
        const [name, value] = this.entry(this.integer(7));
        out.push(name, value);
      } else if ((b & 0xc0) === 0x40) {
        const nameIndex = this.integer(6);
        const name = nameIndex === 0 ? this.string() : this.entry(nameIndex)[0];
        const value = this.string();
        out.push(name, value);
        this.add(name, value);
      } else if ((b & 0xe0) === 0x20) {
        // dynamic table size update: only before the block's first field (RFC 7541 §4.2)
        if (fieldSeen) throw new HpackError('dynamic table size update after a header field');
        const size = this.integer(5);
        if (size > this.maxTableSize) throw new HpackError(`dynamic table size update to ${size} octets (at most ${this.maxTableSize})`);
        this.capacity = size;
        this.evict(0);
        continue;
      } else {
        // literal without indexing (0000) or never indexed (0001)
        const nameIndex = this.integer(4);
        const name = nameIndex === 0 ? this.string() : this.entry(nameIndex)[0];
        out.push(name, this.string());
      }
      fieldSeen = true;
      listSize += out[out.length - 2]!.length + out[out.length - 1]!.length + 32;
      if (listSize > this.maxListSize) throw new HpackError(`a header list over ${this.maxListSize} octets`);
    }
    this.buf = EMPTY;
    return out;
  }

  /** RFC 7541 §5.1: an integer with an N-bit prefix. */
  private integer(prefixBits: number): number {
    const buf = this.buf;
    const max = (1 << prefixBits) - 1;
    let v = buf[this.pos++]! & max;
    if (v < max) return v;
    let shift = 0;
    for (;;) {
      if (this.pos >= buf.length) throw new HpackError('integer past the end of the block');
      const b = buf[this.pos++]!;
      v += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return v;
      shift += 7;
      if (shift > 28) throw new HpackError('integer too large');
    }
  }

  /** RFC 7541 §5.2: a string literal, Huffman-coded or not. */
  private string(): string {
    if (this.pos >= this.buf.length) throw new HpackError('string past the end of the block');
    const huffman = (this.buf[this.pos]! & 0x80) !== 0;
    const len = this.integer(7);
    const from = this.pos;
    const to = from + len;
    if (to > this.buf.length) throw new HpackError('string past the end of the block');
    this.pos = to;
    return huffman ? huffmanDecode(this.buf, from, to) : this.buf.toString('latin1', from, to);
  }

  private entry(index: number): readonly [string, string] {
    if (index === 0) throw new HpackError('index 0');
    if (index <= STATIC.length) return STATIC[index - 1]!;
    const e = this.table[index - STATIC.length - 1];
    if (e === undefined) throw new HpackError(`index ${index} past the dynamic table (${this.table.length} entries)`);
    return e;
  }

  /** RFC 7541 §4.4: an entry larger than the table empties it and is not added. */
  private add(name: string, value: string): void {
    const size = name.length + value.length + 32;
    this.evict(size);
    if (size > this.capacity) return;
    this.table.unshift([name, value]);
    this.size += size;
  }

  /** Evicts the oldest entries until `room` more octets fit. */
  private evict(room: number): void {
    while (this.table.length > 0 && this.size + room > this.capacity) {
      const [n, v] = this.table.pop()!;
      this.size -= n.length + v.length + 32;
    }
  }
}
