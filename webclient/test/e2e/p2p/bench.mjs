// Browser-to-browser file transfer benchmark: two Chromium contexts on a
// real server, in the network namespace of ../p2p-run.sh (run it with
// `bash webclient/test/e2e/p2p-run.sh --bench`). Prints MB/s for one large
// file (accept to last byte, and accept to SHA-256 verified, which includes
// reading the file back from OPFS), offer-to-open p50/p99 over new
// sessions, and two baselines in the same run: a plain TCP copy of the
// same bytes on loopback, and a bare RTCDataChannel between two contexts of
// the same Chromium (the environment's ceiling for any protocol of ours).

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

  // Baselines: the same bytes over a loopback TCP socket, and over a bare
  // data channel.
  const tcpMs = await tcpCopy(data);
  const rawMs = await rawChannel(browser, size);

  const sum = createHash('sha256').update(data).digest('hex').slice(0, 16);
  console.log(`browser<->browser, ${size >> 20} MiB (sha256 ${sum}…), Chromium ${browser.version()}`);
  console.log(`  transfer (accept -> last byte)      ${(size / MB / (lastByte / 1000)).toFixed(1)} MB/s  (${lastByte.toFixed(0)} ms)`);
  console.log(`  transfer (accept -> SHA-256 ok)     ${(size / MB / (done / 1000)).toFixed(1)} MB/s  (${done.toFixed(0)} ms)`);
  console.log(`  offer-to-open over ${opens.length} sessions  p50 ${pct(0.5).toFixed(1)} ms  p99 ${pct(0.99).toFixed(1)} ms  max ${opens[opens.length - 1].toFixed(1)} ms`);
  console.log(`  baseline: TCP copy on loopback      ${(size / MB / (tcpMs / 1000)).toFixed(1)} MB/s  (${tcpMs.toFixed(0)} ms)`);
  console.log(`  baseline: raw RTCDataChannel, two contexts, no protocol: ${(size / MB / (rawMs / 1000)).toFixed(1)} MB/s  (${rawMs.toFixed(0)} ms)`);
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

/**
 * Sends `bytes` over a bare RTCDataChannel between two pages in two new
 * contexts of browser (SDP passed by this script, no server, no protocol);
 * returns ms from the first send to the last byte received. This is the
 * ceiling our transfer can reach here: on a 2-core machine Chromium's data
 * channel is CPU-bound (network service and both renderers) at roughly
 * 10-25 MB/s depending on what else runs, and with more than 64 KiB queued
 * towards the network service Chromium drops packets
 * (packetsDiscardedOnSend), so SCTP backs off. The settings are the best of
 * a probe: 16 KiB messages, ordered, sending paused above 64 KiB buffered
 * and resumed at 32 KiB (64 or 256 KiB messages, unordered channels and
 * several peer connections were no faster; pausing above 1 MiB was about
 * half as fast).
 */
async function rawChannel(browser, bytes) {
  const pages = [];
  for (let i = 0; i < 2; i++) pages.push(await (await browser.newContext()).newPage());
  const [a, b] = pages;
  try {
    // No trickling: each description waits for its candidates (or 2 s).
    for (const p of pages) {
      await p.evaluate(() => {
        window.gathered = (pc) => new Promise((resolve) => {
          pc.onicegatheringstatechange = () => { if (pc.iceGatheringState === 'complete') resolve(); };
          setTimeout(resolve, 2000);
        });
      });
    }
    const offer = await a.evaluate(async () => {
      window.pc = new RTCPeerConnection();
      window.dc = window.pc.createDataChannel('raw', { ordered: true });
      window.opened = new Promise((resolve) => { window.dc.onopen = resolve; });
      await window.pc.setLocalDescription();
      await window.gathered(window.pc);
      return window.pc.localDescription.sdp;
    });
    const answer = await b.evaluate(async ([sdp, total]) => {
      window.pc = new RTCPeerConnection();
      window.last = new Promise((resolve) => {
        window.pc.ondatachannel = ({ channel }) => {
          let got = 0;
          channel.binaryType = 'arraybuffer';
          channel.onmessage = (ev) => {
            got += ev.data.byteLength;
            if (got >= total) resolve(performance.timeOrigin + performance.now());
          };
        };
      });
      await window.pc.setRemoteDescription({ type: 'offer', sdp });
      await window.pc.setLocalDescription();
      await window.gathered(window.pc);
      return window.pc.localDescription.sdp;
    }, [offer, bytes]);
    await a.evaluate(async (sdp) => {
      await window.pc.setRemoteDescription({ type: 'answer', sdp });
      await window.opened;
    }, answer);
    const [start, last] = await Promise.all([
      a.evaluate((total) => new Promise((resolve) => {
        const { dc } = window;
        const msg = new Uint8Array(16 * 1024);
        dc.bufferedAmountLowThreshold = 32 * 1024;
        const start = performance.timeOrigin + performance.now();
        let sent = 0;
        const pump = () => {
          while (sent < total && dc.bufferedAmount <= 64 * 1024) {
            const n = Math.min(msg.length, total - sent);
            dc.send(n === msg.length ? msg : msg.subarray(0, n));
            sent += n;
          }
          if (sent >= total) resolve(start);
        };
        dc.onbufferedamountlow = pump;
        pump();
      }), bytes),
      b.evaluate(() => window.last),
    ]);
    return last - start;
  } finally {
    for (const p of pages) await p.context().close();
  }
}
