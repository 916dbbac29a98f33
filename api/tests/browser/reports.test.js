// The reports (/ui/reports, a section of the admin console) in a real headless Chromium. Started by
// kakeru/tests/it/reports.rs, which runs the node over yesterday's seeded floor.
//
// KAKERU_MODE=reports: a manager opens /ui/reports in the morning: yesterday's group statistics with
// the answer-rate chart, then each report (per campaign, agent and hour) with its charts, the CSV
// read back (UTF-8 with a BOM and Shift_JIS), and the call history with a recording played in the
// page; the + on 折り返し呼ID registers a call as a callback and the history names it. Screenshots ja and en.
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const { assert, BASE, OUT, MODE, FIX, log, launch, until, login, show, setLang, shooter } = require('./lib.js');

const shoot = shooter('reports');

/** The report table as text: header cells and rows of cells. */
const tableText = (page) => page.$eval('#rep-table', (t) => ({
  head: [...t.querySelectorAll('thead th')].map((c) => c.textContent),
  rows: [...t.querySelectorAll('tbody tr')].map((r) => [...r.children].map((c) => c.textContent)),
  total: [...t.querySelectorAll('tfoot tr > *')].map((c) => c.textContent),
}));

async function download(page, selector) {
  const [d] = await Promise.all([page.waitForEvent('download'), page.click(selector)]);
  const file = path.join(OUT, `reports-${d.suggestedFilename()}`);
  await d.saveAs(file);
  return fs.readFileSync(file);
}

async function reports() {
  const { context, page, problems } = await launch();
  const y = FIX.yesterday;
  await page.goto(`${BASE}/ui/reports`);
  await until(page, 'the login form', () => !document.getElementById('login').hidden);
  await login(page, FIX.tenant, FIX.mgr.login, FIX.mgr.password);
  // The console opens at its reports: yesterday's group statistics.
  await until(page, 'the reports', () => document.getElementById('view').dataset.route === '#/reports' && !!document.getElementById('rep-table'));
  assert.equal(await page.$eval('#rep-from', (e) => e.value), y, 'yesterday by default');
  let t = await tableText(page);
  assert.deepEqual(t.head, ['日付', 'コール数', '応答呼', '破棄呼', 'あふれ', '制限時間', '応答率', '平均応答時間', '最大応答時間', '平均放棄時間', '最大放棄時間']);
  assert.equal(t.rows[0][0], y);
  assert.equal(t.rows[0][1], String(FIX.live), 'コール数: the customers who reached the group');
  assert.equal(t.rows[0][2], String(FIX.connected), '応答呼');
  assert.equal(t.total[0], '合計');
  assert.ok(await page.$('#chart-answer-rate svg rect'), 'the answer-rate chart');
  await shoot(page, 'groups-ja');

  // By hour: 24 rows, the chart bar per hour.
  await page.selectOption('#by', 'hour');
  await page.click('#rep-filters button[type="submit"]');
  await until(page, 'the hours', () => document.querySelectorAll('#rep-table tbody tr').length === 24);
  t = await tableText(page);
  const byHour = t.rows.reduce((n, r) => n + Number(r[1].replace(/,/g, '')), 0);
  assert.equal(byHour, FIX.live, 'the hours add up to the day');
  assert.ok((await page.$$('#chart-answer-rate svg rect')).length >= 5);
  await shoot(page, 'groups-hour-ja');

  // The CSV as on screen: UTF-8 with a BOM, and Shift_JIS.
  const utf8 = await download(page, 'button[data-csv="utf-8"]');
  assert.deepEqual([...utf8.subarray(0, 3)], [0xef, 0xbb, 0xbf], 'a BOM');
  const lines = utf8.subarray(3).toString('utf8').split('\r\n');
  assert.equal(lines[0], '時間,コール数,応答呼,破棄呼,あふれ,制限時間,応答率,平均応答時間,最大応答時間,平均放棄時間,最大放棄時間');
  assert.equal(lines.length, 1 + 24 + 1 + 1, 'the hours, the total and the last line break');
  const sjis = await download(page, 'button[data-csv="shift_jis"]');
  const decoded = new TextDecoder('shift_jis').decode(sjis);
  assert.equal(decoded.split('\r\n')[0], lines[0], 'the same columns in CP932');
  log(`CSV ${utf8.length} bytes UTF-8, ${sjis.length} bytes Shift_JIS`);

  // By agent, in English.
  await page.selectOption('#by', 'agent');
  await page.click('#rep-filters button[type="submit"]');
  await until(page, 'the agents', (n) => document.querySelectorAll('#rep-table tbody tr').length === n, FIX.agents.length);
  t = await tableText(page);
  assert.deepEqual(t.rows.map((r) => r[0]).sort(), [...FIX.agents].sort());
  await setLang(page, 'en');
  t = await tableText(page);
  assert.equal(t.head[0], 'Agent');
  assert.equal(t.total[0], 'Total');
  await shoot(page, 'groups-agent-en');
  await setLang(page, 'ja');

  // Campaign statistics: 件数, コール数 and each result, by date, as counts then %.
  await show(page, `#/reports/campaigns?from=${y}&to=${y}`);
  t = await tableText(page);
  assert.deepEqual(t.head.slice(0, 6), ['日付', '件数', 'コール数', '受注', '見込', '不通']);
  assert.equal(t.rows[0][2], String(FIX.dials));
  await shoot(page, 'campaigns-ja');
  await show(page, `#/reports/campaigns?from=${y}&to=${y}&by=agent&show=percent`);
  assert.match((await tableText(page)).rows[0][3], /%$/);
  await shoot(page, 'campaigns-agent-pct-ja');
  await setLang(page, 'en');
  await shoot(page, 'campaigns-agent-pct-en');
  await setLang(page, 'ja');

  // Phone numbers.
  await show(page, `#/reports/numbers?from=${y}&to=${y}`);
  t = await tableText(page);
  assert.deepEqual(t.rows[0].slice(0, 3), ['0312345678', String(FIX.dials), String(FIX.live)]);
  await shoot(page, 'numbers-ja');

  // Status statistics per hour in seconds: the occupancy chart; per agent in % with the pause reason.
  await show(page, `#/reports/states?from=${y}&to=${y}&by=hour&show=seconds&hour=8&hours=10`);
  assert.ok((await page.$$('#chart-occupancy svg rect')).length >= 7, 'occupancy by hour');
  await shoot(page, 'states-hour-ja');
  await show(page, `#/reports/states?from=${y}&to=${y}&hour=9&hours=8`);
  t = await tableText(page);
  assert.ok(t.head.includes('昼休憩'), 'the tenant pause reason is a column');
  await shoot(page, 'states-agent-ja');
  await setLang(page, 'en');
  await shoot(page, 'states-agent-en');
  await setLang(page, 'ja');

  // CALLTREE's list figures, the outbound figures with the abandon rate against the target, the ledger.
  await show(page, `#/reports/lists?date=${y}`);
  t = await tableText(page);
  assert.deepEqual(t.rows[0].slice(0, 3), ['東京リスト', '60', '60']);
  assert.equal(t.rows[0][3], '100.00%');
  await shoot(page, 'lists-ja');
  await show(page, `#/reports/outbound?from=${y}&to=${y}`);
  assert.ok(await page.$('#chart-abandon-rate svg line[stroke-dasharray]'), 'the target line');
  await shoot(page, 'outbound-ja');
  await setLang(page, 'en');
  await shoot(page, 'outbound-en');
  await setLang(page, 'ja');
  await show(page, `#/reports/abandons?from=${y}&to=${y}`);
  assert.ok((await tableText(page)).rows.length > 0, 'the abandons are listed');
  await shoot(page, 'abandons-ja');

  // 発着信履歴: yesterday's calls, newest first, 50 a page; a recording played in the page.
  await show(page, `#/call-history?from=${y}&to=${y}`);
  assert.equal(await page.$$eval('#hist-table tbody tr', (r) => r.length), 50);
  const heads = await page.$$eval('#hist-table thead th', (h) => h.map((x) => x.textContent));
  assert.deepEqual(heads.slice(-2), ['折り返し呼ID', 'モニタリング・保留・会議'], 'a manager also sees who monitored each call, the parks and the conferences');
  // The manager may register callbacks: the + on 折り返し呼ID registers the call as one, and the
  // history names it from then on.
  const plus = await page.$('[data-add-callback]');
  assert.ok(plus, 'a + where the role may POST /callbacks');
  const call = await plus.getAttribute('data-add-callback');
  await plus.click();
  await until(page, 'the callback id', (c) => /^[0-9]+$/.test(document.querySelector(`td[data-callback="${c}"]`)?.textContent || ''), call);
  const cbId = await page.$eval(`td[data-callback="${call}"]`, (e) => e.textContent);
  await show(page, `#/reports/abandons?from=${y}&to=${y}`);
  await show(page, `#/call-history?from=${y}&to=${y}`);
  await until(page, 'the callback id after a reload', (c) => document.querySelector(`td[data-callback="${c[0]}"]`)?.textContent === c[1], [call, cbId]);
  const play = await page.$('button[data-play]');
  assert.ok(play, 'a recording to play');
  await play.click();
  await until(page, 'the player', () => !!document.querySelector('#hist-table audio'));
  await shoot(page, 'history-ja');
  await page.click('button[data-next]');
  await until(page, 'the second page', (n) => document.getElementById('view').dataset.route.includes('before=')
    && document.querySelectorAll('#hist-table tbody tr').length === n, FIX.dials - 50);
  await setLang(page, 'en');
  await shoot(page, 'history-en');

  assert.deepEqual(await page.evaluate(() => [...window.__console.missing]), [], 'every word looked up is in the catalogue');

  // The client (BIZ) logs in at / and lands on the reports: what was reported to it only.
  await page.click('#logout');
  await page.goto(`${BASE}/`);
  await login(page, FIX.tenant, FIX.biz.login, FIX.biz.password);
  await page.waitForURL(/\/ui\/reports/);
  await until(page, "BIZ's reports", () => !!document.getElementById('rep-table') || !!document.querySelector('#view .empty'));
  await setLang(page, 'ja');
  assert.equal(await page.$eval('.chips .chip[aria-current="page"]', (e) => e.textContent), 'キャンペーン統計', 'the reports BIZ may read');
  assert.equal(await page.$$eval('.chips .chip', (c) => c.length), 1);
  await show(page, `#/reports/campaigns?from=${y}&to=${y}`);
  t = await tableText(page);
  assert.equal(t.rows[0][1], String(FIX.reported), '件数: the reported records');
  assert.equal(t.rows[0][4], String(FIX.reported), 'all of them 見込');
  await shoot(page, 'biz-campaigns-ja');
  await show(page, `#/call-history?from=${y}&to=${y}`);
  assert.equal(await page.$$eval('#hist-table tbody tr', (r) => r.length), FIX.reported, 'BIZ reads the reported calls only');
  await setLang(page, 'en');
  await shoot(page, 'biz-history-en');
  assert.deepEqual(problems, [], 'no page errors and nothing fetched from elsewhere');
  await context.close();
  log(`REPORTS walked, ${shoot.count} screenshots`);
}

({ reports }[MODE])().then(
  () => { log('BROWSER OK'); process.exit(0); },
  (e) => { log(`BROWSER FAILED: ${e.stack || e}`); process.exit(1); },
);
