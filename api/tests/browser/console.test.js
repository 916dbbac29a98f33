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
const { assert, BASE, OUT, MODE, FIX, step, log, launch, until, text, login } = require('./lib.js');

const ROLES = ['MGR', 'SV', 'OP', 'BIZ', 'BY'];

/** Goes to a hash route and waits for the screen to be drawn. */
async function show(page, hash) {
  await page.evaluate((h) => { location.hash = h; }, hash);
  await until(page, `the screen ${hash}`, (h) => {
    const v = document.getElementById('view');
    return v.dataset.route === h && !v.hasAttribute('aria-busy');
  }, hash);
}

let shots = 0;
async function shoot(page, name) {
  const file = path.join(OUT, `console-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  shots++;
  log(`SCREENSHOT ${file}`);
}

async function setLang(page, lang) {
  await page.click(`[data-lang="${lang}"]`);
  await until(page, `the page in ${lang}`, (l) => document.documentElement.lang === l, lang);
}

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
  log(`ROLES walked, ${shots} screenshots`);
  await context.close();
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
async function floor() {
  throw new Error('the floor walk runs from kakeru/tests/it/console.rs');
}

({ roles, bulk, floor }[MODE])().then(
  () => { log('BROWSER OK'); process.exit(0); },
  (e) => { log(`BROWSER FAILED: ${e.stack || e}`); process.exit(1); },
);

void step;
