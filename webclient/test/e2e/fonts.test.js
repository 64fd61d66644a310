// CJK and emoji render with real glyphs, not boxes (issue 19, point 7): the
// browser's own account of the fonts it drew a message with (CDP
// CSS.getPlatformFontsForNode), plus a screenshot to look at.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  expectTexts, screenshot, send, twoPeople,
  serverAndBrowser,
} from './harness.js';

let srv;
let browser;

serverAndBrowser(['wes', 'xia'], (s, b) => {
  srv = s;
  browser = b;
});

/** Family names of the fonts the browser used for the text of `selector`. */
async function fontsOf(page, selector) {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('DOM.enable');
  await cdp.send('CSS.enable');
  const { root } = await cdp.send('DOM.getDocument', { depth: -1 });
  const { nodeId } = await cdp.send('DOM.querySelector', { nodeId: root.nodeId, selector });
  const { fonts } = await cdp.send('CSS.getPlatformFontsForNode', { nodeId });
  await cdp.detach();
  return fonts.map((f) => f.familyName);
}

test('a CJK message and an emoji message are drawn with CJK and emoji fonts', { timeout: 60_000 }, async () => {
  const { pages: [wes, xia], close } = await twoPeople(browser, srv, 'wes', 'xia');
  const cjk = '你好，周末一起去爬山吗？ 日本語も 한국어도';
  const emoji = 'Sounds great 🎉👍🏽🏔️';
  await send(wes, cjk);
  await send(wes, emoji);
  await expectTexts(xia, [cjk, emoji]);
  const cjkFonts = await fontsOf(xia, '#msg-list .msg:nth-child(2) .body');
  assert.ok(cjkFonts.some((f) => /CJK/.test(f)), `CJK text drawn with ${cjkFonts}`);
  const emojiFonts = await fontsOf(xia, '#msg-list .msg:nth-child(3) .body');
  assert.ok(emojiFonts.includes('Noto Color Emoji'), `emoji drawn with ${emojiFonts}`);
  await screenshot(xia, 'fonts-cjk-emoji');
  await close();
});
