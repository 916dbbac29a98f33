// Callbacks (折り返し呼) in a real headless Chromium. Started by api/tests/it/callbacks_ui.rs, which
// runs the API (and, for the desktop, the agents' push channel) and registers callbacks when asked.
//
// KAKERU_MODE=desk: two agents on the agent desktop's 折り返し呼一覧. New callbacks are pushed (the
// reload button counts them, a browser notification is shown), the list filters, sorts both ways,
// filters by status and assignee and pages; both open the same callback, the first takes it with
// 担当者 + (担当者を割り当てます -> OK), the second gets the seed's 409 text with a reload; the memo
// and the status are edited and saved on their own. Screenshots ja and en.
// KAKERU_MODE=console: an SV in the admin console's 折り返し呼履歴 searches, opens a callback,
// 編集, assigns an agent, sets 完了, 保存 -> 保存しますか? -> OK; a record changed meanwhile answers
// the 409 with a reload. Screenshots ja and en.
'use strict';

const path = require('node:path');
const { assert, BASE, OUT, MODE, FIX, step, log, launch, until, text, login } = require('./lib.js');

const CONFLICT = 'このレコードは既に更新されています。(Code:409)';

async function shot(page, name, langs = ['ja', 'en']) {
  for (const lang of langs) {
    await page.click(`[data-lang="${lang}"]`);
    await until(page, `lang ${lang}`, (l) => document.documentElement.lang === l, lang);
    const file = path.join(OUT, `callbacks-${name}-${lang}.png`);
    await page.screenshot({ path: file, fullPage: true });
    log(`SCREENSHOT ${file}`);
  }
  await page.click('[data-lang="ja"]');
  await until(page, 'lang ja', () => document.documentElement.lang === 'ja');
}

// ---------------------------------------------------------------------------------------- desk
async function agentPage(context, problems, who) {
  const page = await context.newPage();
  page.on('pageerror', (e) => problems.push(`${who.login}: page error ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) problems.push(`${who.login}: console ${m.text()}`);
  });
  await page.goto(`${BASE}/`);
  await until(page, 'the login form', () => !!document.getElementById('login-form'));
  await login(page, FIX.tenant, who.login, who.password);
  await page.waitForURL(`${BASE}/ui/agent`);
  await until(page, 'live', () => document.getElementById('conn').dataset.state === 'live');
  await page.getByRole('button', { name: /折り返し呼一覧/ }).click();
  await until(page, 'the callback list', () => !document.getElementById('v-callbacks').hidden && !document.getElementById('cb-empty').hidden);
  return page;
}

const rows = (page) => page.$$eval('#cb-body tr', (trs) => trs.map((tr) => Number(tr.dataset.callback)));
const column = (page, i) => page.$$eval('#cb-body tr', (trs, n) => trs.map((tr) => tr.children[n].textContent.trim()), i);
async function reload(page, want) {
  await page.getByRole('button', { name: /リロード|Reload/ }).first().click();
  await until(page, `${want} rows`, (n) => document.querySelectorAll('#cb-body tr').length === n, want);
}
async function open(page, id) {
  await page.click(`#cb-body tr[data-callback="${id}"]`);
  await until(page, `the callback ${id}`, (i) => !document.getElementById('cb-detail').hidden && document.getElementById('cb-detail-h').textContent.includes(String(i)), id);
}

async function desk() {
  const { context, problems } = await launch();
  await context.grantPermissions(['notifications'], { origin: BASE });
  const a = await agentPage(context, problems, FIX.a);
  const b = await agentPage(context, problems, FIX.b);
  await shot(a, 'desk-empty', ['ja']);

  // New callbacks: pushed; the reload button says how many; a browser notification.
  const reg = await step('register');
  for (const page of [a, b]) {
    await until(page, 'the new ones counted', (n) => {
      const e = document.getElementById('cb-new');
      return !e.hidden && e.textContent.includes(String(n));
    }, reg.ids.length);
    const notes = await page.evaluate(() => window.__desk.notifications);
    assert.ok(notes.length >= reg.ids.length, `notifications: ${JSON.stringify(notes)}`);
    assert.ok(notes.every((n) => n.permission === 'granted' && n.title === '新しい折り返し呼が登録されました'), JSON.stringify(notes));
  }
  await shot(a, 'desk-new-arrived');
  await reload(a, reg.ids.length);
  await reload(b, reg.ids.length);
  assert.equal(await a.evaluate(() => document.getElementById('cb-new').hidden), true, 'the count is gone after the reload');

  // Sorting by any column, both ways (the column head, or ソート対象 + the order button).
  const numbers = [...reg.numbers].sort();
  await a.click('#cb-head th:nth-child(4) button');
  await until(a, 'sorted by number, ascending', () => document.querySelector('#cb-head th:nth-child(4)').getAttribute('aria-sort') === 'ascending');
  assert.deepEqual(await column(a, 3), numbers, 'ascending numbers');
  await a.click('#cb-head th:nth-child(4) button');
  await until(a, 'sorted by number, descending', () => document.querySelector('#cb-head th:nth-child(4)').getAttribute('aria-sort') === 'descending');
  assert.deepEqual(await column(a, 3), [...numbers].reverse(), 'descending numbers');
  await a.selectOption('#cb-sort', 'name');
  await until(a, 'sorted by name', () => document.querySelector('#cb-head th[aria-sort]') && document.querySelector('#cb-head th[aria-sort]').textContent.includes('相手の名前'));
  await until(a, 'the named one first', (n) => document.querySelector('#cb-body tr td:nth-child(5)').textContent === n, FIX.named);
  await shot(a, 'desk-sorted', ['ja']);
  // The filter text.
  await a.fill('#cb-filter', FIX.named);
  await until(a, 'one row', () => document.querySelectorAll('#cb-body tr').length === 1);
  await a.fill('#cb-filter', '');
  await until(a, 'every row', (n) => document.querySelectorAll('#cb-body tr').length === n, reg.ids.length);

  // Both open the same callback; the first to take it wins, the second gets the 409 and reloads.
  const target = reg.ids[0];
  await open(a, target);
  await open(b, target);
  await shot(b, 'desk-detail');
  await a.getByRole('button', { name: '担当者を割り当て' }).click();
  await until(a, 'the confirmation', () => document.getElementById('dlg').open);
  assert.equal(await text(a, '#dlg-text'), '担当者を割り当てます');
  await a.click('#dlg-ok');
  await until(a, 'assigned to me', (n) => document.querySelector('#cb-dl [data-f="cb_col_assignee_name"]').textContent.includes(n), FIX.a.name);
  await b.getByRole('button', { name: '担当者を割り当て' }).click();
  await until(b, 'the confirmation', () => document.getElementById('dlg').open);
  await b.click('#dlg-ok');
  await until(b, 'the 409', (t) => document.getElementById('cb-detail-error').textContent.includes(t), CONFLICT);
  await shot(b, 'desk-conflict');
  await b.click('#cb-detail-error button');
  await until(b, 'the assignee after the reload', (n) => document.querySelector('#cb-dl [data-f="cb_col_assignee_name"]').textContent.includes(n), FIX.a.name);
  assert.equal(await b.$('#cb-dl [data-f="cb_col_assignee_name"] button'), null, 'no + once someone has it');
  assert.equal(await b.getByRole('button', { name: '対応状況 編集' }).isDisabled(), true, 'the status is the assignee\'s to change');

  // The memo, then the status, each edited and saved on its own.
  await a.getByRole('button', { name: 'メモ 編集' }).click();
  await a.fill('#cb-dl textarea', '15時以降に折り返し希望');
  await a.getByRole('button', { name: '保存' }).click();
  await until(a, 'the memo saved', () => document.querySelector('#cb-dl [data-f="cb_col_memo"]').textContent.includes('15時以降に折り返し希望'));
  await a.getByRole('button', { name: '対応状況 編集' }).click();
  await a.selectOption('#cb-dl select', 'done');
  await a.getByRole('button', { name: '保存' }).click();
  await until(a, 'complete', () => document.querySelector('#cb-dl [data-f="cb_col_status"]').textContent.includes('完了'));
  await shot(a, 'desk-completed');
  // The status filter: 完了 only.
  await a.uncheck('input[name="cb-status"][value="open"]');
  await a.check('input[name="cb-status"][value="done"]');
  await until(a, 'the completed one', (id) => document.querySelectorAll('#cb-body tr').length === 1 && document.querySelector('#cb-body tr').dataset.callback === String(id), target);
  await a.check('input[name="cb-status"][value="open"]');

  // Assigned by a supervisor: pushed to that agent, who is notified.
  const before = (await b.evaluate(() => window.__desk.notifications)).length;
  await step('assign');
  await until(b, 'the assignment notified', (n) => window.__desk.notifications.length > n, before);
  const last = await b.evaluate(() => window.__desk.notifications[window.__desk.notifications.length - 1]);
  assert.equal(last.title, '折り返し呼が割り当てられました');
  // The assignee filter: only the agent's own.
  await b.uncheck('input[name="cb-assignee"][value="none"]');
  await until(b, 'only mine', (id) => [...document.querySelectorAll('#cb-body tr')].map((tr) => tr.dataset.callback).join() === String(id), last.id);

  // Paging: more than a page.
  const many = await step('many');
  await b.check('input[name="cb-assignee"][value="none"]');
  await reload(b, 20);
  assert.match(await text(b, '#cb-range'), new RegExp(`1–20 / ${many.total} 件`));
  await b.getByRole('button', { name: '次へ' }).click();
  await until(b, 'the second page', (n) => document.querySelectorAll('#cb-body tr').length === n, many.open - 20);
  await shot(b, 'desk-page-2');
  await shot(a, 'desk-list');
  assert.deepEqual(problems, [], problems.join('\n'));
  await context.close();
}

// ------------------------------------------------------------------------------------- console
async function consoleFlow() {
  const { context, page, problems } = await launch();
  await page.goto(`${BASE}/ui/admin`);
  await until(page, 'the login form', () => !document.getElementById('login').hidden);
  await login(page, FIX.tenant, FIX.sv.login, FIX.sv.password);
  await until(page, 'the console', () => document.body.dataset.role === 'SV');
  await page.click('#menu a[data-entry="s:callbacks"]');
  await until(page, 'the history', () => !!document.getElementById('cb-table'));
  assert.equal(await page.$$eval('#cb-table tbody tr', (r) => r.length), FIX.count);
  await shot(page, 'console-history');
  // Search: number and status.
  await page.fill('#cb-number', FIX.number);
  await page.selectOption('#cb-status', 'open');
  await page.getByRole('button', { name: '検索', exact: true }).click();
  await until(page, 'one found', () => location.hash.includes('number=') && document.querySelectorAll('#cb-table tbody tr').length === 1);
  await page.click('#cb-table tbody tr a');
  await until(page, 'the record', () => !!document.getElementById('cb-record'));
  assert.equal(await text(page, '#cb-record [data-f="assignee"]'), '未登録');
  await shot(page, 'console-record');
  await page.getByRole('button', { name: '編集' }).click();
  await until(page, 'the form', () => !!document.getElementById('cb-form'));
  await shot(page, 'console-edit');
  await until(page, 'the form', () => !!document.getElementById('cb-form'));
  assert.equal(await page.isDisabled('#cbe-status'), true, 'no status without an assignee');
  await page.selectOption('#cbe-assignee', String(FIX.op.id));
  assert.equal(await page.isDisabled('#cbe-status'), false);
  await page.selectOption('#cbe-status', 'done');
  await page.fill('#cbe-memo', '田中さんに引継ぎ');
  await page.getByRole('button', { name: '保存', exact: true }).click();
  await until(page, 'the confirmation', () => document.getElementById('confirm').open);
  assert.equal(await text(page, '#confirm-text'), '保存しますか?');
  await page.click('#confirm-ok');
  await until(page, 'saved', (n) => document.querySelector('#cb-record [data-f="assignee"]') && document.querySelector('#cb-record [data-f="assignee"]').textContent === n, FIX.op.name);
  assert.equal(await text(page, '#cb-record [data-f="status"]'), '完了');
  // Edited meanwhile by someone else: the 409 with a reload.
  await page.getByRole('button', { name: '編集' }).click();
  await until(page, 'the form', () => !!document.getElementById('cb-form'));
  await step('bump');
  await page.fill('#cbe-memo', '古い版からの保存');
  await page.getByRole('button', { name: '保存', exact: true }).click();
  await until(page, 'the confirmation', () => document.getElementById('confirm').open);
  await page.click('#confirm-ok');
  await until(page, 'the 409', (t) => document.getElementById('cb-problem').textContent.includes(t), CONFLICT);
  // (A language switch draws the screen anew: the refusal is shown in the language it came in.)
  const file = path.join(OUT, 'callbacks-console-conflict-ja.png');
  await page.screenshot({ path: file, fullPage: true });
  log(`SCREENSHOT ${file}`);
  await page.click('#cb-problem button');
  await until(page, 'the record again', () => !!document.getElementById('cb-record'));
  assert.match(await text(page, '#cb-record [data-f="memo"]'), /別の担当者が更新/);
  assert.deepEqual(await page.evaluate(() => [...window.__console.missing]), [], 'every word looked up is in the catalogue');
  assert.deepEqual(problems, [], problems.join('\n'));
  await context.close();
}

({ desk, console: consoleFlow }[MODE])().then(
  () => { log('BROWSER OK'); process.exit(0); },
  (e) => { log(`BROWSER FAILED: ${e.stack || e}`); process.exit(1); },
);
