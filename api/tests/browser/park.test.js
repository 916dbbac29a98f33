// パーク保留 in the agent desktop, in a real headless Chromium (driven by playwright-core), started by
// kakeru/tests/it/park.rs (the whole floor: API, control, dialer engine, carrier and the two agents'
// simulated phones). Two agents, each in its own browser context: the first talks with the
// customer and parks it with the desktop's パーク保留 button; both lists show it under the phone
// (保留番号 9001, the customer's number, 保留時間); the second picks it up with コールバック on the
// number and talks with the customer; both lists are empty again. Screenshots ja and en.
'use strict';

const path = require('node:path');
const { chromium } = require('playwright-core');
const { assert, BASE, OUT, FIX, log, loginPage } = require('./lib.js');

async function until(page, what, fn, arg, timeout = 30000) {
  try {
    await page.waitForFunction(fn, arg, { timeout, polling: 50 });
  } catch (e) {
    const snap = await page.evaluate(() => document.body.innerText.slice(0, 800)).catch(() => '');
    await page.screenshot({ path: path.join(OUT, 'park-failure.png'), fullPage: true }).catch(() => {});
    throw new Error(`timed out waiting for ${what}\n--- page text ---\n${snap}`);
  }
}

async function shots(page, name) {
  for (const lang of ['ja', 'en']) {
    await page.getByRole('button', { name: lang === 'ja' ? '日本語' : 'English', exact: true }).click();
    await until(page, `lang ${lang}`, (l) => document.documentElement.lang === l, lang);
    const file = path.join(OUT, `park-${name}-${lang}.png`);
    await page.screenshot({ path: file, fullPage: true });
    log(`SCREENSHOT ${file}`);
  }
  await page.getByRole('button', { name: '日本語', exact: true }).click();
}

const stateIs = (page, st) =>
  until(page, `state ${st}`, (s) => document.getElementById('me-state').dataset.state === s, st);
const ok = (page) => page.getByRole('button', { name: 'OK', exact: true }).click();
const parkedRows = (page) => page.$$eval('#parked-body tr', (rows) => rows.map((r) => [...r.cells].map((c) => c.textContent.trim())));

async function signIn(browser, problems, login) {
  const own = await browser.newContext({ viewport: { width: 1440, height: 960 }, locale: 'ja-JP', timezoneId: 'Asia/Tokyo' });
  const page = await own.newPage();
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) problems.push(`console: ${m.text()}`);
  });
  await loginPage(page, login, FIX.password, `${BASE}/ui/agent`);
  return page;
}

async function startJob(page) {
  await page.getByRole('button', { name: `発信開始 ${FIX.job}` }).click();
  await ok(page);
}

(async () => {
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const problems = [];
  // The first agent takes the job's one customer.
  const a = await signIn(browser, problems, FIX.agents[0]);
  await startJob(a);
  await stateIs(a, 'talking');
  await until(a, 'the parked list, empty', () => document.getElementById('parked-count').textContent === '0');
  // The second agent is ready with nothing to dial.
  const b = await signIn(browser, problems, FIX.agents[1]);
  await startJob(b);
  await stateIs(b, 'ready');
  // パーク保留 on the first agent's desktop.
  await a.getByRole('button', { name: 'パーク保留' }).click();
  await until(a, 'the confirmation', () => document.getElementById('dlg').open);
  await ok(a);
  await stateIs(a, 'wrap_up');
  for (const page of [a, b]) {
    await until(page, 'the parked call listed', () => document.getElementById('parked-count').textContent === '1'
      && document.querySelector('#parked-body tr[data-number="9001"]')
      && document.querySelector('#parked-body tr[data-number="9001"]').cells[1].textContent.trim() !== '-');
    const rows = await parkedRows(page);
    assert.equal(rows.length, 1);
    assert.equal(rows[0][0], '9001');
    assert.equal(rows[0][1], FIX.tel);
    assert.match(rows[0][2], /^\d+:\d\d$/);
  }
  await shots(a, 'parked-by-me');
  await shots(b, 'parked-list');
  // コールバック on the number in the second agent's list: its phone takes the customer.
  await b.locator('#parked-body tr[data-number="9001"] button').click();
  await until(b, 'the pick-up confirmation', () => document.getElementById('dlg').open);
  assert.match(await b.$eval('#dlg-text', (e) => e.textContent), /9001/);
  // The dialog is modal: this one in Japanese only.
  const file = path.join(OUT, 'park-pick-up-ja.png');
  await b.screenshot({ path: file, fullPage: true });
  log(`SCREENSHOT ${file}`);
  await ok(b);
  await stateIs(b, 'talking');
  await until(b, 'the lead on screen', (n) => document.getElementById('lead-dl').textContent.includes(n), FIX.name);
  for (const page of [a, b]) {
    await until(page, 'the list empty again', () => document.getElementById('parked-count').textContent === '0'
      && document.querySelectorAll('#parked-body tr').length === 0);
  }
  await shots(b, 'picked-up');
  // The first agent's wrap-up: the record went on with the call, and saving ends the wrap-up.
  await until(a, 'told the call went on', () => document.getElementById('saved-note').textContent.startsWith('この通話は引き継がれました'));
  await shots(a, 'handed-on');
  await a.getByRole('button', { name: '保存して次へ' }).click();
  await until(a, 'the save confirmation', () => document.getElementById('dlg').open);
  await ok(a);
  await stateIs(a, 'ready');
  assert.equal(await a.$eval('#record-error', (e) => e.textContent), '');
  assert.deepEqual(problems, [], problems.join('\n'));
  await browser.close();
  log('BROWSER OK');
  process.exit(0);
})().catch((e) => {
  log(`BROWSER FAILED: ${e.stack || e}`);
  process.exit(1);
});
