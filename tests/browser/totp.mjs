// RFC 6238 time-based one-time passwords, as an authenticator app computes them: HMAC-SHA-1,
// 6 digits, 30-second steps, the secret in base32 (RFC 4648, as in an otpauth:// URI). The
// scripts type these codes into Gatehouse's "Authentication code" step.
//
//   node totp.mjs --self-test   checks the RFC 6238 test vectors and prints {"ok":true}
import { createHmac } from 'node:crypto';
import { pathToFileURL } from 'node:url';

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/** Decodes base32, ignoring case, spaces and `=` padding, as authenticator apps do. */
export function base32Decode(text) {
  const clean = text.toUpperCase().replace(/[\s=]/g, '');
  let bits = 0;
  let value = 0;
  const bytes = [];
  for (const char of clean) {
    const index = ALPHABET.indexOf(char);
    if (index < 0) throw new Error(`not base32: ${JSON.stringify(char)}`);
    value = (value << 5) | index;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      bytes.push((value >>> bits) & 0xff);
    }
  }
  return Buffer.from(bytes);
}

/** The code for `timeSeconds` (default: now). */
export function totp(base32Secret, timeSeconds = Date.now() / 1000, { digits = 6 } = {}) {
  return hotp(base32Decode(base32Secret), Math.floor(timeSeconds / 30), digits);
}

/** RFC 4226 HOTP over a raw key; the counter is a 64-bit big-endian integer. */
function hotp(key, counter, digits) {
  const message = Buffer.alloc(8);
  message.writeBigUInt64BE(BigInt(counter));
  const mac = createHmac('sha1', key).update(message).digest();
  // Dynamic truncation: the low nibble of the last byte picks four bytes.
  const offset = mac[mac.length - 1] & 0x0f;
  const binary = mac.readUInt32BE(offset) & 0x7fffffff;
  return String(binary % 10 ** digits).padStart(digits, '0');
}

function base32Encode(bytes) {
  let bits = 0;
  let value = 0;
  let out = '';
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out += ALPHABET[(value >>> bits) & 31];
    }
  }
  if (bits > 0) out += ALPHABET[(value << (5 - bits)) & 31];
  return out;
}

/** RFC 6238 appendix B, SHA-1 column (8 digits there; the last 6 are our 6-digit code). */
function selfTest() {
  const secret = base32Encode(Buffer.from('12345678901234567890', 'ascii'));
  const vectors = [
    [59, '94287082'],
    [1111111109, '07081804'],
    [1111111111, '14050471'],
    [1234567890, '89005924'],
    [2000000000, '69279037'],
    [20000000000, '65353130'],
  ];
  const failures = [];
  for (const [time, expected] of vectors) {
    const eight = totp(secret, time, { digits: 8 });
    const six = totp(secret, time);
    if (eight !== expected || six !== expected.slice(2)) failures.push({ time, expected, got: eight, six });
  }
  if (base32Decode(secret).toString('ascii') !== '12345678901234567890') failures.push({ base32: secret });
  process.stdout.write(`${JSON.stringify(failures.length ? { ok: false, failures } : { ok: true })}\n`);
  process.exit(failures.length ? 1 : 0);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href && process.argv.includes('--self-test')) {
  selfTest();
}
