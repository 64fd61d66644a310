// Browser-to-browser file transfer benchmark: two Chromium contexts on a
// real server, in the network namespace of ../p2p-run.sh (run it with
// `bash webclient/test/e2e/p2p-run.sh --bench`). Prints MB/s for one large
// file (accept to last byte, and accept to SHA-256 verified, which includes
// reading the file back from OPFS), offer-to-open p50/p99 over new
// sessions, and a plain TCP copy of the same bytes on loopback as the
// baseline, in the same run.

import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { newPage, openDM, register, signIn, startServer } from '../harness.js';
import { launchForWebRTC } from './webrtc.js';

const size = Number(process.env.BENCH_MIB || 64) << 20;
const sessions = Number(process.env.BENCH_SESSIONS || 40);
const MB = 1e6;

const srv = await startServer();
const browser = await launchForWebRTC();
const dir = await mkdtemp(path.join(tmpdir(), 'mqim-p2p-bench-'));
try {
  for (const u of ['alice', 'bob']) await register(srv.base, u);
  const data = randomBytes(size);
  const big = path.join(dir, 'big.bin');
  await writeFile(big, data);
  const small = path.join(dir, 'tiny.txt');
  await writeFile(small, 'x');

  const page = async (u) => {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const p = await newPage(ctx);
    p.setDefaultTimeout(120_000);
    await signIn(p, srv.base, u);
    return p;
  };
  const alice = await page('alice');
  const bob = await page('bob');
  await openDM(alice, 'bob');
  await openDM(bob, 'alice');
  const row = (name, state = '') => `#transfers .xfer[data-name="${name}"]${state ? `[data-state="${state}"]` : ''}`;

  // Offer-to-open: a new session per tiny file (OFFER, ANSWER, OK,
  // candidates, ICE, DTLS, SCTP, data channel open), declined by bob.
  const opens = [];
  for (let i = 0; i < sessions; i++) {
    await alice.setInputFiles('#file-picker', small);
    await alice.waitForSelector(`${row('tiny.txt', 'waiting')}[data-open-ms]`);
    opens.push(Number(await alice.getAttribute(`${row('tiny.txt', 'waiting')}[data-open-ms]`, 'data-open-ms')));
    await bob.click(`${row('tiny.txt', 'offered')} .xfer-decline`);
    await alice.waitForSelector(row('tiny.txt', 'declined'));
    for (const p of [alice, bob]) await p.click('#transfers .xfer-clear');
  }
  opens.sort((a, b) => a - b);
  const pct = (p) => opens[Math.min(opens.length - 1, Math.floor(p * opens.length))];

  // Throughput: one large file.
  await alice.setInputFiles('#file-picker', big);
  await bob.click(`${row('big.bin', 'offered')} .xfer-accept`);
  await bob.waitForSelector(row('big.bin', 'done'), { timeout: 300_000 });
  const lastByte = Number(await bob.getAttribute(row('big.bin'), 'data-last-byte-ms'));
  const done = Number(await bob.getAttribute(row('big.bin'), 'data-done-ms'));

  // Baseline: the same bytes over a loopback TCP socket.
  const tcpMs = await tcpCopy(data);

  const sum = createHash('sha256').update(data).digest('hex').slice(0, 16);
  console.log(`browser<->browser, ${size >> 20} MiB (sha256 ${sum}…), Chromium ${browser.version()}`);
  console.log(`  transfer (accept -> last byte)      ${(size / MB / (lastByte / 1000)).toFixed(1)} MB/s  (${lastByte.toFixed(0)} ms)`);
  console.log(`  transfer (accept -> SHA-256 ok)     ${(size / MB / (done / 1000)).toFixed(1)} MB/s  (${done.toFixed(0)} ms)`);
  console.log(`  offer-to-open over ${opens.length} sessions  p50 ${pct(0.5).toFixed(1)} ms  p99 ${pct(0.99).toFixed(1)} ms  max ${opens[opens.length - 1].toFixed(1)} ms`);
  console.log(`  baseline: TCP copy on loopback      ${(size / MB / (tcpMs / 1000)).toFixed(1)} MB/s  (${tcpMs.toFixed(0)} ms)`);
} finally {
  await browser.close();
  await srv.stop();
  await rm(dir, { recursive: true, force: true });
}

/** Copies data over a loopback TCP connection (node on both ends); returns ms. */
function tcpCopy(data) {
  return new Promise((resolve, reject) => {
    let got = 0;
    let start = 0;
    const server = net.createServer((sock) => {
      sock.on('data', (d) => {
        got += d.length;
        if (got >= data.length) {
          const ms = performance.now() - start;
          sock.destroy();
          server.close();
          resolve(ms);
        }
      });
    });
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const c = net.connect(server.address().port, '127.0.0.1', () => {
        start = performance.now();
        c.end(data);
      });
      c.on('error', () => {});
    });
  });
}
