// Launching Chromium for WebRTC tests (shared by the tests and the benchmark).

import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';

/**
 * Chromium honours only the last --disable-features switch and Playwright
 * passes its own, so ours is merged into Playwright's list and Playwright's
 * copy is dropped. WebRtcHideLocalIpsWithMdns off: candidates carry real
 * addresses (pion cannot resolve .local names, and mDNS would multicast).
 */
export async function launchForWebRTC() {
  const args = ['--headless', '--no-sandbox', '--disable-gpu'];
  const probe = await chromium.launchServer({ executablePath, args });
  const theirs = probe.process().spawnargs.find((a) => a.startsWith('--disable-features='));
  await probe.close();
  assert.ok(theirs, 'Playwright passes a --disable-features switch');
  return chromium.launch({
    executablePath,
    args: [...args, `${theirs},WebRtcHideLocalIpsWithMdns`],
    ignoreDefaultArgs: [theirs],
  });
}
