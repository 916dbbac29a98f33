// What the browser tests share: the protocol with the Rust side (it runs the API and the floor;
// this prints `STEP <name>` when it wants the next thing to happen and waits for `GO <name> [json]`
// on stdin), a headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core) that
// records page errors and any request outside the API, and small waiting helpers.
'use strict';

const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const readline = require('node:readline');
const { chromium } = require('playwright-core');

const env = (k) => {
  const v = process.env[k];
  if (v === undefined) throw new Error(`${k} is not set`);
  return v;
};
const BASE = env('KAKERU_BASE');
const OUT = env('KAKERU_OUT');
const MODE = env('KAKERU_MODE');
const FIX = JSON.parse(env('KAKERU_FIXTURE'));

const stdin = readline.createInterface({ input: process.stdin });
const replies = [];
const waiting = [];
stdin.on('line', (l) => (waiting.length ? waiting.shift()(l) : replies.push(l)));
/** Asks the Rust side to make `name` happen (with `arg`, if given); resolves with its reply's JSON
 * (or null). */
async function step(name, arg) {
  process.stdout.write(`STEP ${name}${arg === undefined ? '' : ` ${arg}`}\n`);
  const line = await new Promise((r) => (replies.length ? r(replies.shift()) : waiting.push(r)));
  const [go, got, ...rest] = line.split(' ');
  assert.equal(`${go} ${got}`, `GO ${name}`, `protocol: ${line}`);
  return rest.length ? JSON.parse(rest.join(' ')) : null;
}
const log = (...a) => process.stdout.write(`${a.join(' ')}\n`);

async function launch(extraArgs = []) {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'kakeru-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      ...extraArgs,
    ],
    viewport: { width: 1440, height: 1000 },
    locale: 'ja-JP',
    timezoneId: 'Asia/Tokyo',
    acceptDownloads: true,
  });
  const page = context.pages()[0] || (await context.newPage());
  const problems = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  // HTTP refusals the test provokes (401, 403, the cut stream) are logged by Chromium as resource
  // errors: those are expected; any other console error is a problem.
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) problems.push(`console: ${m.text()}`);
  });
  // Nothing may be fetched from anywhere but the API itself (and what the page made of it: blob:).
  page.on('request', (r) => { if (![BASE, `blob:${BASE}`, 'data:'].some((p) => r.url().startsWith(p))) problems.push(`outside request: ${r.url()}`); });
  return { context, page, problems, profile };
}

/** Waits until `fn(arg)` is truthy in the page; fails with `what`. */
async function until(page, what, fn, arg, timeout = 20000) {
  try {
    await page.waitForFunction(fn, arg, { timeout, polling: 50 });
  } catch (e) {
    const snap = await page.evaluate(() => `${location.hash}\n${(document.querySelector('main') || document.body).innerText.slice(0, 1500)}`).catch(() => '');
    throw new Error(`timed out waiting for ${what}\n--- page text ---\n${snap}`);
  }
}

const agentState = (page, id) => page.$eval(`[data-agent="${id}"]`, (e) => e.dataset.state);
const text = (page, sel) => page.$eval(sel, (e) => e.textContent.trim());
/** A person signing in at / (the fields found by their labels, as a screen reader finds them),
 *  then waiting for `landing` (a URL or a pattern). */
async function loginPage(page, login, password, landing, timeout = 120000, base = BASE) {
  await page.goto(`${base}/`);
  await until(page, 'the login form', () => !!document.getElementById('login-form'));
  await page.getByLabel('テナントコード').fill(FIX.tenant);
  await page.getByLabel('ログインID').fill(login);
  await page.getByLabel('パスワード').fill(password);
  await page.getByRole('button', { name: 'ログイン' }).click();
  await page.waitForURL(landing, { timeout });
}

async function login(page, tenant, user, password) {
  await page.fill('#f-tenant', tenant);
  await page.fill('#f-login', user);
  await page.fill('#f-password', password);
  await page.click('#f-submit');
}

// The admin console's screens (console, reports): a hash route drawn, the language switch, and
// screenshots named `<prefix>-<name>.png`, counted.
async function show(page, hash) {
  await page.evaluate((h) => { location.hash = h; }, hash);
  await until(page, `the screen ${hash}`, (h) => {
    const v = document.getElementById('view');
    return v.dataset.route === h && !v.hasAttribute('aria-busy');
  }, hash);
}

async function setLang(page, lang) {
  await page.click(`[data-lang="${lang}"]`);
  await until(page, `the page in ${lang}`, (l) => document.documentElement.lang === l, lang);
  await until(page, 'the screen redrawn', () => !document.getElementById('view').hasAttribute('aria-busy'));
}

function shooter(prefix) {
  const shoot = async (page, name) => {
    const file = path.join(OUT, `${prefix}-${name}.png`);
    await page.screenshot({ path: file, fullPage: true });
    shoot.count++;
    log(`SCREENSHOT ${file}`);
  };
  shoot.count = 0;
  return shoot;
}

module.exports = { assert, BASE, OUT, MODE, FIX, step, log, launch, until, text, login, loginPage, show, setLang, shooter };
