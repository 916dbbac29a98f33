// The admin console (/ui/admin) in a real headless Chromium. Started by api/tests/it/console_ui.rs
// (roles, bulk) and kakeru/tests/it/console.rs (floor), which run the real server.
//
// KAKERU_MODE=roles: for each role, log in and walk the registry: the menu holds exactly the
// resources the role may read and the screens it may use; each list and view shows 新規, 編集 and
// 削除する exactly when the role may create, change and delete (the expectations come from the
// API's registry, computed by the Rust side); anything else answers 表示できません. Every field has
// its words in both languages. Screenshots of every screen, ja and en.
// KAKERU_MODE=bulk: a 50,000-row CSV uploaded through the page: the column mapping, the progress
// pushed by the import job, the outcome; the time from 実行 to the outcome is printed.
// KAKERU_MODE=floor: a manager builds a floor from nothing and runs it (see floor()).
'use strict';

const path = require('node:path');
const fs = require('node:fs');
const { assert, BASE, OUT, MODE, FIX, step, log, launch, until, text, login, show, setLang, shooter } = require('./lib.js');

const ROLES = ['MGR', 'SV', 'OP', 'BIZ', 'BY'];

const shoot = shooter('console');

async function logIn(page, tenant, user, password, role) {
  await until(page, 'the login form', () => !document.getElementById('login').hidden);
  await login(page, tenant, user, password);
  await until(page, `the console as ${role}`, (r) => document.body.dataset.role === r && document.getElementById('view').dataset.route !== undefined, role);
}

async function logOut(page) {
  await page.click('#logout');
  await until(page, 'the login form', () => !document.getElementById('login').hidden);
}

const count = (page, sel) => page.$$eval(sel, (es) => es.length);
const buttonsIn = (page, sel) => page.$$eval(`${sel} button`, (bs) => bs.map((b) => b.textContent.replace(/\s+/g, ' ').trim()));

// ------------------------------------------------------------------------------------ roles
async function roles() {
  const { context, page, problems } = await launch();
  await page.goto(`${BASE}/ui/admin`);
  assert.equal(await page.getAttribute('html', 'lang'), 'ja', 'Japanese by default');
  await shoot(page, 'login-ja');
  // A wrong password is refused, said on the form.
  await login(page, FIX.tenant, FIX.users.MGR.login, 'wrong-password');
  await until(page, 'the refusal', () => document.getElementById('login-error').textContent.length > 0);
  assert.match(await text(page, '#login-error'), /違います/);

  for (const role of ROLES) {
    const exp = FIX.expect[role];
    const u = FIX.users[role];
    await logIn(page, FIX.tenant, u.login, u.password, role);
    if (role === 'MGR') await unlock(page);
    const langs = role === 'MGR' ? ['ja', 'en'] : ['ja'];
    for (const lang of langs) {
      await setLang(page, lang);
      const tag = `${role.toLowerCase()}-${lang}`;
      await show(page, '#/');
      await shoot(page, `${tag}-home`);
      // The menu: exactly what the role may reach.
      const entries = await page.$$eval('#menu a[data-entry]', (as) => as.map((a) => a.dataset.entry));
      const menuResources = entries.filter((e) => e.startsWith('r:')).map((e) => e.slice(2)).sort();
      assert.deepEqual(menuResources, Object.keys(exp.resources).sort(), `${role}: the resources in the menu`);
      const menuScreens = entries.filter((e) => e.startsWith('s:')).map((e) => e.slice(2)).sort();
      assert.deepEqual(menuScreens, [...exp.screens].sort(), `${role}: the screens in the menu`);
      for (const [key, can] of Object.entries(exp.resources)) {
        await show(page, `#/r/${key}`);
        const where = `${role} ${key}`;
        const head = await buttonsIn(page, '.screen-head .actions');
        assert.equal(head.some((b) => b.includes(lang === 'ja' ? '新規' : 'New')), can.create, `${where}: 新規`);
        const rows = await count(page, 'table.records tbody tr');
        if (rows) {
          const acts = await buttonsIn(page, 'table.records tbody tr:first-child .row-actions');
          assert.equal(acts.includes(lang === 'ja' ? '編集' : 'Edit'), can.update, `${where}: 編集 on a row`);
          assert.equal(acts.includes(lang === 'ja' ? '削除する' : 'Delete'), can.delete, `${where}: 削除する on a row`);
        }
        await shoot(page, `${tag}-${key}`);
        if (can.id) {
          await show(page, `#/r/${key}/${can.id}`);
          const error = await page.$('#view .screen > p.error');
          assert.equal(error, null, `${where}: the record ${can.id} opens`);
          const acts = await buttonsIn(page, '.screen-head .actions');
          assert.equal(acts.some((b) => b.startsWith(lang === 'ja' ? '編集' : 'Edit')), can.update, `${where}: 編集 on the view`);
          assert.equal(acts.includes(lang === 'ja' ? '削除する' : 'Delete'), can.delete, `${where}: 削除する on the view`);
          if (role === 'MGR' || role === 'SV') await shoot(page, `${tag}-${key}-view`);
          if (can.update && role === 'MGR') {
            await show(page, `#/r/${key}/${can.id}/edit`);
            assert.ok(await page.$('form.form'), `${where}: the form`);
            await shoot(page, `${tag}-${key}-edit`);
          }
        }
        if (can.create && role === 'MGR' && lang === 'ja') {
          await show(page, `#/r/${key}/new`);
          await shoot(page, `${tag}-${key}-new`);
        }
      }
      for (const s of exp.screens) {
        await show(page, `#/${s}`);
        assert.equal(await page.$('#forbidden'), null, `${role}: the screen ${s}`);
        await shoot(page, `${tag}-screen-${s}`);
      }
    }
    // What the role may not reach answers 表示できません, by URL too.
    await setLang(page, 'ja');
    for (const key of exp.forbidden) {
      await show(page, `#/r/${key}`);
      assert.ok(await page.$('#forbidden'), `${role}: ${key} is refused; the page: ${await page.evaluate(() => `${location.hash} ${document.getElementById('view').innerText.slice(0, 300)}`)}`);
    }
    for (const s of exp.forbidden_screens) {
      await show(page, `#/${s}`);
      assert.ok(await page.$('#forbidden'), `${role}: the screen ${s} is refused`);
    }
    if (exp.forbidden.length) await shoot(page, `${role.toLowerCase()}-ja-forbidden`);
    // Every field of every resource this role reads has its words in both languages.
    const gaps = await page.evaluate(() => {
      const out = [];
      const { catalogue } = window.__console;
      return fetch('/console/specs', { headers: { Authorization: `Bearer ${sessionStorage.getItem('kakeru.token')}` } })
        .then((r) => r.json())
        .then((doc) => {
          for (const lang of ['ja', 'en']) {
            const c = catalogue[lang];
            for (const r of doc.resources) {
              if (!c[`r.${r.key}`]) out.push(`${lang} r.${r.key}`);
              for (const f of [...r.fields, ...r.extra]) {
                if (!c[`f.${r.key}.${f.name}`] && !c[`f.${f.name}`]) out.push(`${lang} f.${r.key}.${f.name}`);
                if (f.type.kind === 'enum') for (const o of f.type.options) if (!c[`e.${r.key}.${f.name}.${o}`] && !c[`e.${f.name}.${o}`]) out.push(`${lang} e.${r.key}.${f.name}.${o}`);
              }
            }
          }
          return out;
        });
    });
    assert.deepEqual(gaps, [], `${role}: words missing from the catalogue`);
    await logOut(page);
  }
  const missing = await page.evaluate(() => [...window.__console.missing]);
  assert.deepEqual(missing, [], 'every word looked up is in the catalogue');
  assert.deepEqual(problems, [], `no page errors, no outside requests: ${problems.join('\n')}`);
  log(`ROLES walked, ${shoot.count} screenshots`);
  await context.close();
}

/** ログインロック: the locked user's view shows the lock and ロック解除; the MGR lifts it. */
async function unlock(page) {
  const hash = `#/r/users/${FIX.locked}`;
  for (const lang of ['en', 'ja']) {
    await setLang(page, lang);
    await show(page, hash);
    const acts = await buttonsIn(page, '.screen-head .actions');
    assert.ok(acts.includes(lang === 'ja' ? 'ロック解除' : 'Unlock'), `the unlock button: ${acts}`);
    assert.match(await text(page, '#view'), lang === 'ja' ? /ログインロック/ : /Login lock/);
    await shoot(page, `mgr-${lang}-users-locked`);
  }
  await page.getByRole('button', { name: 'ロック解除' }).click();
  await until(page, 'the confirmation', () => document.getElementById('confirm').open);
  await page.click('#confirm-ok');
  await until(page, 'the lock lifted', () => ![...document.querySelectorAll('.screen-head .actions button')].some((b) => b.textContent.includes('ロック解除')));
  await shoot(page, 'mgr-ja-users-unlocked');
}

// ------------------------------------------------------------------------------------ bulk
async function bulk() {
  const { context, page, problems } = await launch();
  await page.goto(`${BASE}/ui/admin#/import/${FIX.list}`);
  await logIn(page, FIX.tenant, FIX.mgr.login, FIX.mgr.password, 'MGR');
  await show(page, `#/import/${FIX.list}`);
  // 50,000 rows of a CP932 file as Excel writes it (header, CRLF), written by the Rust side (Node
  // has no CP932 encoder).
  const buffer = fs.readFileSync(FIX.file);
  await page.setInputFiles('#imp-file', { name: 'leads-50000.csv', mimeType: 'text/csv', buffer });
  await page.click('button[data-step="upload"]');
  await until(page, 'the column mapping', () => document.getElementById('imp-mapping') !== null);
  const mapped = await page.$$eval('#imp-mapping select', (ss) => ss.map((s) => s.value));
  assert.deepEqual(mapped, ['name', 'kana', 'tel', 'remarks'], 'the mapping suggested from the header');
  assert.match(await text(page, '#imp-mapping'), /Shift_JIS/);
  await shoot(page, 'bulk-mapping-ja');
  await page.click('button[data-step="run"]');
  await until(page, 'the confirmation', () => document.getElementById('confirm').open);
  const t0 = Date.now();
  await page.click('#confirm-ok');
  await until(page, 'the progress bar', () => document.getElementById('imp-progress') !== null);
  await until(page, 'the outcome', () => document.getElementById('imp-counts') !== null || document.getElementById('imp-failed') !== null, null, 120000);
  const wall = Date.now() - t0;
  const imported = Number(await page.getAttribute('[data-imported]', 'data-imported'));
  const rejected = Number(await page.getAttribute('[data-rejected]', 'data-rejected'));
  const seen = await page.evaluate(() => window.__importProgress.slice());
  const pageMs = Number(await page.getAttribute('#imp-run', 'data-elapsed-ms'));
  await shoot(page, 'bulk-done-ja');
  log(`IMPORT ${JSON.stringify({ rows: FIX.rows, imported, rejected, page_ms: pageMs, wall_ms: wall, progress_events: seen.length, progress: seen.slice(0, 12) })}`);
  assert.equal(imported, FIX.rows);
  assert.equal(rejected, 0);
  assert.ok(seen.some((p) => p > 0 && p < 100), `the progress was shown moving: ${seen}`);
  assert.deepEqual(await page.evaluate(() => [...window.__console.missing]), [], 'every word looked up is in the catalogue');
  assert.deepEqual(problems, [], `no page errors, no outside requests: ${problems.join('\n')}`);
  await context.close();
}

// ------------------------------------------------------------------------------------ floor
// A manager who has never seen the API builds a floor from nothing in the console: a campaign (a
// refusal shown on its field first), its results, a batch, a list from a CP932 CSV with bad rows
// (the error CSV downloaded from the page equals the server's, byte for byte), a dialing group,
// agents with their phones (the SIP password shown once), a caller ID and a call job, which they
// start. The Rust side then starts the simulated agents on the phones made here; the manager
// watches them work in the job monitor; an SV saves an agent's unsaved record; a recording plays;
// the SV stops the job. Every screen is saved ja, and the main ones en.

/** Fills a generic form's field by its name. */
async function fill(page, name, value) {
  const sel = `#field-${name}`;
  const tag = await page.$eval(sel, (e) => `${e.tagName}:${e.type || ''}`);
  if (tag.startsWith('SELECT')) await page.selectOption(sel, String(value));
  else if (tag === 'INPUT:checkbox') { if (value) await page.check(sel); else await page.uncheck(sel); }
  else await page.fill(sel, String(value));
}

/** Submits the form, confirms 保存しますか?, and waits for the saved record's view; its id. */
async function save(page, key) {
  await page.click('form.form button[type="submit"]');
  await until(page, 'the confirmation', () => document.getElementById('confirm').open);
  assert.equal(await text(page, '#confirm-text'), '保存しますか?');
  await page.click('#confirm-ok');
  await until(page, `the saved ${key}`, (k) => new RegExp(`^#/r/${k}/\\d+$`).test(location.hash) && document.getElementById('view').dataset.route === location.hash && !document.getElementById('view').hasAttribute('aria-busy'), key);
  return Number((await page.evaluate(() => location.hash)).split('/').pop());
}

async function okDialog(page) {
  await until(page, 'the confirmation', () => document.getElementById('confirm').open);
  await page.click('#confirm-ok');
}

/** Values shown once in the secret dialog, then closed. */
async function secrets(page) {
  await until(page, 'the values shown once', () => document.getElementById('secret').open);
  const values = await page.$$eval('#secret code[data-secret]', (cs) => Object.fromEntries(cs.map((c) => [c.dataset.secret, c.textContent])));
  await shoot(page, `floor-ja-shown-once-${Object.keys(values).length}`);
  await page.click('#secret button');
  return values;
}

const fig = (page, job, name) => page.$eval(`[data-job="${job}"] [data-fig="${name}"] .v`, (e) => e.textContent);

async function floor() {
  const { context, page, problems } = await launch();
  const ja = (name) => shoot(page, `floor-ja-${name}`);
  await page.goto(`${BASE}/ui/admin`);
  await logIn(page, FIX.tenant, FIX.mgr.login, FIX.mgr.password, 'MGR');
  await ja('home');

  // The campaign: a refusal of the server first, on the field it names.
  await show(page, '#/r/campaigns/new');
  await fill(page, 'name', '年末キャンペーン');
  await fill(page, 'mode', 'predictive');
  await fill(page, 'max_channels', 6);
  await fill(page, 'ring_timeout_s', 20);
  await fill(page, 'acw_seconds', 3);
  await fill(page, 'business_start', '09:00');
  await fill(page, 'business_end', '08:00');
  await page.click('form.form button[type="submit"]');
  await okDialog(page);
  await until(page, 'the refusal on its field', () => document.getElementById('field-business_end-error').textContent.length > 0);
  assert.match(await text(page, '#field-business_end-error'), /予約 From より後/);
  assert.equal(await page.getAttribute('#field-business_end', 'aria-invalid'), 'true');
  await ja('campaign-refused');
  await fill(page, 'business_start', '00:00');
  await fill(page, 'business_end', '23:59');
  const campaign = await save(page, 'campaigns');
  assert.match(await text(page, '#notice'), /変更を保存しました/);

  // Its results (結果番号,結果テキスト), from the campaign's view.
  for (const [n, label] of [[1, 'アポ獲得'], [2, '不要']]) {
    await show(page, `#/r/campaigns/${campaign}`);
    await page.click('[data-child="result-codes"] button[data-child="result-codes"]');
    await until(page, 'the result form', () => /#\/r\/result-codes\/new/.test(location.hash) && document.getElementById('field-number'));
    assert.equal(await page.$eval('#field-campaign_id', (e) => e.value), String(campaign), 'the campaign is filled in');
    await fill(page, 'number', n);
    await fill(page, 'label', label);
    await save(page, 'result-codes');
  }
  await show(page, `#/r/campaigns/${campaign}`);
  await ja('campaign');

  // The batch, its dates derived and explained where they are edited.
  await page.click('[data-child="batches"] button[data-child="batches"]');
  await until(page, 'the batch form', () => document.getElementById('field-start_date') !== null);
  assert.match(await text(page, '#field-end_date-help'), /履歴保持期間/);
  await ja('batch-new');
  await fill(page, 'name', '12月バッチ');
  await fill(page, 'start_date', FIX.today);
  const batch = await save(page, 'batches');
  assert.match(await text(page, '[data-f="batch_deletion_date"]'), /^\d{4}-\d\d-\d\d$/);
  await ja('batch');

  // The list, and its CSV.
  await page.click('[data-child="lists"] button[data-child="lists"]');
  await until(page, 'the list form', () => document.getElementById('field-name') !== null && /#\/r\/lists\/new/.test(location.hash));
  await fill(page, 'name', '12月リスト');
  const list = await save(page, 'lists');
  await ja('list');
  await page.click(`button[data-import="${list}"]`);
  await until(page, 'the upload form', () => document.getElementById('imp-file') !== null);
  assert.equal(await page.$eval('#imp-list', (e) => e.value), String(list));
  await page.setInputFiles('#imp-file', FIX.csv);
  await page.fill('#imp-tags', '12月 DM');
  await ja('import');
  await page.click('button[data-step="upload"]');
  await until(page, 'the column mapping', () => document.getElementById('imp-mapping') !== null);
  assert.deepEqual(await page.$$eval('#imp-mapping select', (ss) => ss.map((s) => s.value)), ['name', 'kana', 'tel', 'remarks']);
  assert.match(await text(page, '#imp-mapping'), /Shift_JIS/);
  await ja('import-mapping');
  await page.click('button[data-step="run"]');
  await okDialog(page);
  await until(page, 'the outcome', () => document.getElementById('imp-counts') !== null, null, 60000);
  const imported = Number(await page.getAttribute('[data-imported]', 'data-imported'));
  const rejected = Number(await page.getAttribute('[data-rejected]', 'data-rejected'));
  assert.deepEqual([imported, rejected], [FIX.good_rows, FIX.bad_rows]);
  await ja('import-done');
  // The error CSV from the page, and the server's.
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('button[data-errors_csv]')]);
  const saved = path.join(OUT, 'floor-errors-from-page.csv');
  await download.saveAs(saved);
  const fromPage = fs.readFileSync(saved);
  const importJob = await page.getAttribute('button[data-errors_csv]', 'data-errors_csv');
  const fromServer = Buffer.from(await page.evaluate(async (id) => {
    const r = await fetch(`/imports/${id}/errors.csv`, { headers: { Authorization: `Bearer ${sessionStorage.getItem('kakeru.token')}` } });
    return Array.from(new Uint8Array(await r.arrayBuffer()));
  }, importJob));
  assert.ok(fromPage.equals(fromServer), 'the error CSV from the page is the server\'s, byte for byte');
  log(`ERRORS_CSV ${JSON.stringify({ import: Number(importJob), bytes: fromPage.length, file: saved })}`);

  // Leads: the search, the attempt shortcut, the export for Excel.
  await show(page, `#/r/leads?list_id=${list}`);
  assert.match(await text(page, '.pager .range'), new RegExp(`/ ${FIX.good_rows} 件`));
  await page.fill('#list-q', '顧客03');
  await page.keyboard.press('Enter');
  await until(page, 'the search', () => /q=/.test(location.hash) && !document.getElementById('view').hasAttribute('aria-busy') && document.querySelectorAll('table.records tbody tr').length === 1);
  await page.click('.chips button:first-child');
  await until(page, '未発信', () => /attempts=0/.test(location.hash) && !document.getElementById('view').hasAttribute('aria-busy'));
  await ja('leads');
  const [exp] = await Promise.all([page.waitForEvent('download'), page.click('button[data-export="utf-8"]')]);
  const exported = fs.readFileSync(await exp.path());
  assert.ok(exported.subarray(0, 3).equals(Buffer.from([0xef, 0xbb, 0xbf])), 'UTF-8 with a BOM');
  assert.match(exported.toString('utf8'), /name,kana,tel,remarks,tags/);

  // The dialing group and the agents with their phones.
  await show(page, '#/r/dialing-groups/new');
  await fill(page, 'name', '第1グループ');
  const group = await save(page, 'dialing-groups');
  const agents = [];
  for (const [i, name] of FIX.agents.entries()) {
    await show(page, '#/agents');
    await page.click('.screen-head button.primary');
    await until(page, 'the user form', () => document.getElementById('field-login') !== null);
    assert.equal(await page.$eval('#field-role', (e) => e.value), 'OP', 'an agent is an OP');
    const login = `op${i + 1}`;
    await fill(page, 'login', login);
    await fill(page, 'display_name', name);
    await fill(page, 'password', FIX.agent_password);
    await page.click('form.form button[type="submit"]');
    await okDialog(page);
    const shown = await secrets(page);
    assert.equal(shown['パスワード'], FIX.agent_password);
    await until(page, 'the agent', () => /^#\/r\/users\/\d+$/.test(location.hash) && !document.getElementById('view').hasAttribute('aria-busy'));
    const user = Number((await page.evaluate(() => location.hash)).split('/').pop());
    await page.click('[data-child="phones"] button[data-child="phones"]');
    await until(page, 'the phone form', () => document.getElementById('field-sip_username') !== null);
    assert.equal(await page.$eval('#field-user_id', (e) => e.value), String(user));
    await fill(page, 'sip_username', login);
    await page.click('button[data-generate="password"]');
    if (i === 0) await ja('phone-new');
    await page.click('form.form button[type="submit"]');
    await okDialog(page);
    const phone = await secrets(page);
    await until(page, 'the phone', () => /^#\/r\/phones\/\d+$/.test(location.hash) && document.getElementById('view').dataset.route === location.hash && !document.getElementById('view').hasAttribute('aria-busy'));
    if (i === 0) await ja('phone');
    assert.equal(phone['SIPユーザー名'], login);
    assert.ok(phone['パスワード'].length >= 12, 'a generated password, shown once');
    agents.push({ user_id: user, login, password: FIX.agent_password, sip_password: phone['パスワード'], realm: phone['ドメイン (realm)'] });
  }
  await show(page, `#/r/users/${agents[0].user_id}`);
  await ja('agent');
  await show(page, `#/r/dialing-groups/${group}`);
  for (const a of agents) await page.check(`[data-members="dialing-groups"] input[value="${a.user_id}"]`);
  await page.click('button[data-members_save="dialing-groups"]');
  await okDialog(page);
  await until(page, 'three members', () => /メンバー \(3\)/.test(document.querySelector('[data-members]')?.textContent || ''));
  await ja('group');

  // The caller ID with its channel limit.
  await show(page, '#/r/caller-ids/new');
  await fill(page, 'number', '03-1234-5678');
  await fill(page, 'label', '代表番号');
  await fill(page, 'max_channels', 4);
  await save(page, 'caller-ids');
  await ja('caller-id');

  // The do-not-call list (発信規制): a CSV upload, a search, a bulk delete.
  await show(page, '#/r/dnc-numbers');
  const dncFile = path.join(OUT, 'floor-dnc.csv');
  fs.writeFileSync(dncFile, '電話番号,備考\r\n090-0000-1024,苦情のため\r\n0311119999,誤登録\r\n');
  await page.setInputFiles('.screen-head input[type="file"]', dncFile);
  await until(page, 'two numbers', () => document.querySelectorAll('table.records tbody tr').length === 2 && !document.getElementById('view').hasAttribute('aria-busy'));
  await page.fill('#list-q', '0311');
  await page.keyboard.press('Enter');
  await until(page, 'the search', () => /q=0311/.test(location.hash) && document.querySelectorAll('table.records tbody tr').length === 1);
  await page.check('table.records tbody tr input[type="checkbox"]');
  await page.click('button[data-bulk]');
  await until(page, 'the confirmation', () => document.getElementById('confirm').open);
  assert.match(await text(page, '#confirm-text'), /1 件を削除します/);
  await page.click('#confirm-ok');
  await until(page, 'the number deleted', () => document.querySelector('#notice:not([hidden])') && /削除しました/.test(document.getElementById('notice').textContent) && document.querySelector('#view .empty') !== null);
  await show(page, '#/r/dnc-numbers');
  await until(page, 'one number left', () => document.querySelectorAll('table.records tbody tr').length === 1);
  assert.match(await text(page, 'table.records tbody'), /09000001024/);
  await ja('dnc');

  // The call job, then 起動.
  await show(page, `#/r/campaigns/${campaign}`);
  await page.click('[data-child="call-jobs"] button[data-child="call-jobs"]');
  await until(page, 'the call job form', () => document.getElementById('field-dialing_group_id') !== null);
  await fill(page, 'dialing_group_id', group);
  await fill(page, 'name', '12月 第1週');
  await fill(page, 'caller_id', '0312345678');
  await page.check(`#field-list_ids input[value="${list}"]`);
  await ja('call-job-new');
  const job = await save(page, 'call-jobs');
  assert.match(await text(page, '[data-f="list_ids"]'), /12月リスト/);
  await page.click('button[data-job="start"]');
  await okDialog(page);
  await until(page, 'the job running', () => document.querySelector('[data-f="status"]')?.textContent === '稼働中');
  assert.equal(await text(page, '[data-f="remaining_count"]'), String(FIX.good_rows));
  await ja('call-job-running');

  // The agents log in on the phones made here and work the job.
  log(`AGENTS ${JSON.stringify({ job, campaign, agents })}`);
  await step('agents');
  // Still on the job's view: its remaining count goes down as the agents work, pushed, no reload.
  await until(page, 'the remaining count going down live', (n) => Number(document.querySelector('[data-f="remaining_count"]').textContent.replace(/,/g, '')) < n, FIX.good_rows, 60000);

  // The job monitor, live.
  await show(page, '#/monitor');
  await until(page, 'the job on the monitor', (j) => document.querySelector(`[data-job="${j}"]`) !== null, job);
  await until(page, 'the three agents', (j) => document.querySelectorAll(`[data-job="${j}"] .agent-chip`).length === 3, job, 60000);
  await until(page, 'two customers connected', (j) => Number(document.querySelector(`[data-job="${j}"] [data-fig="connected"] .v`)?.textContent || 0) >= 2, job, 120000);
  assert.match(await page.getAttribute(`[data-job="${job}"] [data-fig="dial_level"] dt`, 'title'), /稼働エージェント/);
  log(`MONITOR ${JSON.stringify({ connected: await fig(page, job, 'connected'), answered: await fig(page, job, 'answered'), dials: await fig(page, job, 'dials_in_flight'), level: await fig(page, job, 'dial_level') })}`);
  await ja('monitor');
  await setLang(page, 'en');
  await shoot(page, 'floor-en-monitor');
  await setLang(page, 'ja');

  // A forgetful agent's call waits in 応対記録(未保存): an SV opens it and saves it.
  await step('unsaved');
  await logOut(page);
  await logIn(page, FIX.tenant, FIX.sv.login, FIX.sv.password, 'SV');
  await show(page, '#/unsaved');
  await until(page, 'an unsaved record', () => document.querySelector('#view table.records tbody tr') !== null);
  await ja('unsaved');
  const record = Number(await page.getAttribute('#view table.records tbody tr', 'data-id'));
  await page.click('#view table.records tbody tr button');
  await until(page, 'the wrap-up form', () => document.getElementById('wrapup-form') !== null);
  await page.selectOption('#wr-result', '1');
  await page.fill('#wr-memo', 'SVが代理で保存');
  await ja('unsaved-form');
  await page.click('#wrapup-form button[type="submit"]');
  await okDialog(page);
  await until(page, 'back to the list', () => location.hash === '#/unsaved' && !document.getElementById('view').hasAttribute('aria-busy'));
  log(`SAVED_BY_SV ${record}`);

  // A recording plays in the page.
  await show(page, `#/recordings?date=${FIX.today}`);
  await until(page, 'a recording', () => document.querySelector('[data-recording]') !== null, null, 60000);
  await page.click('[data-recording] button[data-play]');
  await until(page, 'the player', () => document.querySelector('[data-recording] audio')?.src.startsWith('blob:'));
  await ja('recordings');
  const [zip] = await Promise.all([page.waitForEvent('download'), page.click('button[data-zip]')]);
  const zipBytes = fs.readFileSync(await zip.path());
  assert.equal(zipBytes.subarray(0, 2).toString(), 'PK', "the day's recordings as a zip");

  // The SV stops the job (calls in progress are not cut).
  await show(page, `#/r/call-jobs/${job}`);
  await page.click('button[data-job="stop"]');
  await okDialog(page);
  await until(page, 'the job stopped', () => document.querySelector('[data-f="status"]')?.textContent === '停止中');
  await ja('call-job-stopped');

  // The main screens in English.
  await setLang(page, 'en');
  for (const [name, hash] of [['campaign', `#/r/campaigns/${campaign}`], ['batch', `#/r/batches/${batch}`], ['list', `#/r/lists/${list}`],
    ['leads', `#/r/leads?list_id=${list}`], ['group', `#/r/dialing-groups/${group}`], ['agent', `#/r/users/${agents[0].user_id}`],
    ['call-job', `#/r/call-jobs/${job}`], ['unsaved', '#/unsaved'], ['recordings', `#/recordings?date=${FIX.today}`], ['import', `#/import/${list}`]]) {
    await show(page, hash);
    await shoot(page, `floor-en-${name}`);
  }
  assert.deepEqual(await page.evaluate(() => [...window.__console.missing]), [], 'every word looked up is in the catalogue');
  assert.deepEqual(problems, [], `no page errors, no outside requests: ${problems.join('\n')}`);
  await context.close();
}

({ roles, bulk, floor }[MODE])().then(
  () => { log('BROWSER OK'); process.exit(0); },
  (e) => { log(`BROWSER FAILED: ${e.stack || e}`); process.exit(1); },
);

