// A supervisor joins an agent's call from the pages, in a real headless Chromium (driven by
// playwright-core; started by kakeru/tests/it/supervise.rs, which runs the whole floor with real SIP
// phones and checks by the tones' frequencies who hears whom after each step).
//
// KAKERU_MODE=monitor: on the wallboard, the talking agent's menu offers モニタリング, ささやき, 割込 and
// 参加を終了 (with Alt shortcuts); モニタリング from the menu, then ささやき and 割込 from the job
// monitor's agent chip in the admin console, then 参加を終了 by its shortcut on the wallboard.
// Screenshots of each screen, ja and en.
'use strict';

const { assert, BASE, MODE, FIX, step, log, launch, until, text, login, loginPage, show, setLang, shooter } = require('./lib.js');

async function monitor() {
  const { context, page, problems } = await launch();
  const shoot = shooter('monitor');
  const agent = FIX.agent;
  await page.goto(`${BASE}/ui/wallboard`);
  await until(page, 'the login form', () => !document.getElementById('login').hidden);
  await login(page, FIX.tenant, FIX.sv.login, FIX.sv.password);
  await until(page, 'the live board', () => !document.getElementById('board').hidden && document.getElementById('conn').dataset.state === 'live');
  await until(page, 'the agent talking', (id) => document.querySelector(`[data-agent="${id}"]`)?.dataset.state === 'talking', agent);

  // The agent's menu: the three ways to join, with their shortcuts shown.
  await page.click(`[data-agent="${agent}"]`);
  await until(page, 'the agent menu', () => !document.getElementById('agent-menu').hidden);
  const listen = page.getByRole('button', { name: 'モニタリング' });
  assert.equal(await listen.getAttribute('aria-keyshortcuts'), 'Alt+L');
  assert.ok(await listen.isEnabled(), 'listen is offered for an agent in a call');
  assert.ok(await page.getByRole('button', { name: 'ささやき' }).isVisible());
  assert.ok(await page.getByRole('button', { name: '割込' }).isVisible());
  await shoot(page, 'wallboard-menu-ja');
  await page.keyboard.press('Escape');
  await page.click('[data-lang="en"]');
  await until(page, 'the page in English', () => document.documentElement.lang === 'en');
  await page.click(`[data-agent="${agent}"]`);
  await until(page, 'the agent menu', () => !document.getElementById('agent-menu').hidden);
  assert.ok(await page.getByRole('button', { name: 'Whisper' }).isVisible());
  await shoot(page, 'wallboard-menu-en');
  await page.keyboard.press('Escape');
  await page.click('[data-lang="ja"]');
  await until(page, 'the page in Japanese', () => document.documentElement.lang === 'ja');
  await page.click(`[data-agent="${agent}"]`);
  await until(page, 'the agent menu', () => !document.getElementById('agent-menu').hidden);

  // モニタリング.
  await page.getByRole('button', { name: 'モニタリング' }).click();
  await until(page, 'the phone being called', () => document.getElementById('menu-monitor-status').textContent.includes('モニタリング'));
  await shoot(page, 'wallboard-listening-ja');
  await step('listening');

  // The job monitor in the console: the agent's chip carries the same buttons.
  await page.goto(`${BASE}/ui/admin`);
  await show(page, '#/monitor');
  const chip = `[data-agent="${agent}"] .monitor-tools`;
  await until(page, 'the chip with its buttons', (s) => { const t = document.querySelector(s); return t && !t.hidden; }, chip);
  await shoot(page, 'job-monitor-ja');
  // Each chip's buttons are named with the agent: `ささやき: <name>`.
  const whisper = page.locator(`${chip} [data-monitor="whisper"]`);
  assert.match(await whisper.getAttribute('aria-label'), /^ささやき: ./);
  await whisper.click();
  await step('whispering');
  const barge = page.locator(`${chip} [data-monitor="barge"]`);
  assert.match(await barge.getAttribute('aria-label'), /^割込: ./);
  await barge.click();
  await step('barging');
  await setLang(page, 'en');
  await until(page, 'the chip in English', (s) => document.querySelector(`${s} [data-monitor="barge"]`)?.textContent.startsWith('Barge'), chip);
  await shoot(page, 'job-monitor-en');
  await setLang(page, 'ja');

  // 参加を終了 by its shortcut, from the wallboard's menu.
  await page.goto(`${BASE}/ui/wallboard`);
  await until(page, 'the live board', () => !document.getElementById('board').hidden && document.getElementById('conn').dataset.state === 'live');
  await until(page, 'the agent talking', (id) => document.querySelector(`[data-agent="${id}"]`)?.dataset.state === 'talking', agent);
  await page.click(`[data-agent="${agent}"]`);
  await until(page, 'the agent menu', () => !document.getElementById('agent-menu').hidden);
  await page.keyboard.press('Alt+X');
  await until(page, 'left the call', () => document.getElementById('menu-monitor-status').textContent === '通話への参加を終了しました');
  assert.equal(await text(page, '#menu-error'), '');
  await shoot(page, 'wallboard-left-ja');
  await step('left');

  // The call's history shows who joined it, how and when.
  await page.goto(`${BASE}/ui/admin`);
  await show(page, '#/call-history');
  const row = `tr[data-call="${FIX.call}"]`;
  await until(page, 'the call in the history', (s) => document.querySelector(s) !== null, row);
  await page.click(`${row} td.monitors button`);
  await until(page, 'its supervisors listed', (s) => document.querySelectorAll(`${s} td.monitors li`).length >= 6, row);
  assert.match(await text(page, `${row} td.monitors li`), /^モニタリング suzuki .*モード変更/);
  await shoot(page, 'history-ja');
  await setLang(page, 'en');
  await page.click(`${row} td.monitors button`);
  await until(page, 'its supervisors listed in English', (s) => document.querySelector(`${s} td.monitors li`)?.textContent.startsWith('Listen'), row);
  await shoot(page, 'history-en');
  await setLang(page, 'ja');

  // The agent's desktop: 保留 and 保留解除 (Alt+G), one button named by what it does now.
  await page.evaluate(() => sessionStorage.clear());
  await loginPage(page, FIX.op.login, FIX.op.password, `${BASE}/ui/agent`);
  await until(page, 'the call on the desktop', () => document.getElementById('me-state')?.dataset.state === 'talking' && !document.getElementById('v-call').hidden);
  const hold = page.getByRole('button', { name: '保留', exact: true });
  assert.equal(await hold.getAttribute('aria-keyshortcuts'), 'Alt+G');
  await hold.click();
  await until(page, 'on hold', () => document.getElementById('me-state').dataset.state === 'hold');
  await until(page, 'the button now takes back', () => document.getElementById('b-hold').textContent.startsWith('保留解除'));
  await shoot(page, 'desktop-hold-ja');
  await step('held');
  await page.click('[data-lang="en"]');
  await until(page, 'the desktop in English', () => document.documentElement.lang === 'en');
  assert.ok(await page.getByRole('button', { name: 'Take back from hold' }).isVisible());
  await shoot(page, 'desktop-hold-en');
  await page.click('[data-lang="ja"]');
  await until(page, 'the desktop in Japanese', () => document.documentElement.lang === 'ja');
  await page.keyboard.press('Alt+G');
  await until(page, 'talking again', () => document.getElementById('me-state').dataset.state === 'talking');
  await step('unheld');

  // 外線転送 (Alt+X) to a busy number: the customer waits, then comes back; the page says why.
  const outside = page.getByRole('button', { name: '外線転送', exact: true });
  assert.equal(await outside.getAttribute('aria-keyshortcuts'), 'Alt+X');
  assert.ok(await outside.isDisabled(), 'no number typed yet');
  await page.getByLabel('外線番号').fill(FIX.busyNumber);
  await page.keyboard.press('Alt+X');
  await until(page, 'the confirmation', () => document.getElementById('dlg').open);
  assert.match(await text(page, '#dlg-text'), new RegExp(`${FIX.busyNumber} に外線転送しますか`));
  await page.getByRole('button', { name: 'OK', exact: true }).click();
  await until(page, 'told why the customer is back', () => document.getElementById('banner').textContent.includes('話し中'));
  assert.equal(await page.evaluate(() => document.getElementById('me-state').dataset.state), 'talking');
  await shoot(page, 'desktop-outside-busy-ja');
  await page.click('[data-lang="en"]');
  await until(page, 'the desktop in English', () => document.documentElement.lang === 'en');
  await until(page, 'the reason in English', () => document.getElementById('banner').textContent.includes('busy'));
  assert.ok(await page.getByRole('button', { name: 'Outside transfer' }).isVisible());
  await shoot(page, 'desktop-outside-busy-en');
  await page.click('[data-lang="ja"]');
  await until(page, 'the desktop in Japanese', () => document.documentElement.lang === 'ja');
  await step('outside_busy');

  // 電話会議 (Alt+F) with a number that answers, chosen among the saved ones (外線転送): three
  // parties; then 会議を終了 drops the third party.
  await page.getByLabel('登録済みの外線転送先').selectOption({ label: `本社 (${FIX.confNumber})` });
  assert.equal(await page.getByLabel('外線番号').inputValue(), FIX.confNumber);
  const conf = page.getByRole('button', { name: '電話会議', exact: true });
  assert.equal(await conf.getAttribute('aria-keyshortcuts'), 'Alt+F');
  await page.keyboard.press('Alt+F');
  await until(page, 'the confirmation', () => document.getElementById('dlg').open);
  assert.match(await text(page, '#dlg-text'), new RegExp(`${FIX.confNumber} を電話会議に加えますか`));
  await page.getByRole('button', { name: 'OK', exact: true }).click();
  await until(page, 'three parties', () => document.getElementById('banner').textContent.includes('3者通話中'));
  await until(page, 'the leave button', () => !document.getElementById('b-conf-leave').hidden && !document.getElementById('b-conf-leave').disabled);
  await shoot(page, 'desktop-conference-ja');
  await page.click('[data-lang="en"]');
  await until(page, 'the desktop in English', () => document.documentElement.lang === 'en');
  assert.ok(await page.getByRole('button', { name: 'End conference' }).isVisible());
  await shoot(page, 'desktop-conference-en');
  await page.click('[data-lang="ja"]');
  await until(page, 'the desktop in Japanese', () => document.documentElement.lang === 'ja');
  await step('conference');
  await page.getByRole('button', { name: '会議を終了' }).click();
  await until(page, 'back to two', () => document.getElementById('b-conf-drop').hidden && !document.getElementById('b-conf').hidden);
  assert.equal(await page.evaluate(() => document.getElementById('me-state').dataset.state), 'talking');
  await step('conference_dropped');

  // The call's history, read by the supervisor: its supervisors and now its conference too.
  await page.evaluate(() => sessionStorage.clear());
  await loginPage(page, FIX.sv.login, FIX.sv.password, /\/ui\//);
  await page.goto(`${BASE}/ui/admin`);
  await show(page, '#/call-history');
  await until(page, 'the call in the history', (s) => document.querySelector(s) !== null, row);
  await page.click(`${row} td.monitors button`);
  await until(page, 'its conference listed', (s) => [...document.querySelectorAll(`${s} td.monitors li`)].some((li) => li.textContent.startsWith('電話会議')), row);
  assert.match(await page.evaluate((s) => [...document.querySelectorAll(`${s} td.monitors li`)].map((li) => li.textContent).find((t) => t.startsWith('電話会議')), row),
    new RegExp(`^電話会議 ${FIX.confNumber} .*\\(会議を終了\\)$`));
  await shoot(page, 'history-conference-ja');
  await setLang(page, 'en');
  await page.click(`${row} td.monitors button`);
  await until(page, 'its conference listed in English', (s) => [...document.querySelectorAll(`${s} td.monitors li`)].some((li) => li.textContent.startsWith('Conference')), row);
  await shoot(page, 'history-conference-en');
  await setLang(page, 'ja');

  assert.deepEqual(problems, [], 'no page errors, no request outside the API');
  log(`SCREENSHOTS ${shoot.count}`);
  await context.close();
}

// KAKERU_MODE=monitor-browser: a manager without a phone account joins from the wallboard itself
// (the browser phone: Chromium's fake microphone plays FIX.tone): モニタリング falls back to this
// browser and the page hears the call; 割込 (English page) is heard by both parties; 参加を終了.
async function monitorFromBrowser() {
  const { context, page, problems } = await launch([
    '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
    `--use-file-for-fake-audio-capture=${FIX.tone}`, '--autoplay-policy=no-user-gesture-required',
  ]);
  const shoot = shooter('monitor-browser');
  const agent = FIX.agent;
  await page.goto(`${BASE}/ui/wallboard`);
  await until(page, 'the login form', () => !document.getElementById('login').hidden);
  await login(page, FIX.tenant, FIX.mgr.login, FIX.mgr.password);
  await until(page, 'the live board', () => !document.getElementById('board').hidden && document.getElementById('conn').dataset.state === 'live');
  await until(page, 'the agent talking', (id) => document.querySelector(`[data-agent="${id}"]`)?.dataset.state === 'talking', agent);
  await page.click(`[data-agent="${agent}"]`);
  await until(page, 'the agent menu', () => !document.getElementById('agent-menu').hidden);
  const box = page.getByLabel('このブラウザで参加 (マイクとスピーカー)');
  assert.ok(!(await box.isChecked()), 'the SIP phone is tried first');

  // モニタリング: no phone account, so the page joins from the browser by itself and says so.
  await page.getByRole('button', { name: 'モニタリング' }).click();
  await until(page, 'joined from this browser', () => document.getElementById('menu-monitor-status').textContent === 'モニタリング: このブラウザで参加しています — 電話のアカウントがないため', undefined, 15000);
  assert.equal(await text(page, '#menu-error'), '');
  assert.ok(await box.isChecked(), 'the browser is kept for the next join');
  await until(page, 'the media path up', () => window.__monitor.connected(), undefined, 10000);
  // The page hears the call: the customer (500 Hz) and the agent (1,100 Hz), mixed.
  await until(page, 'the call heard', () => [500, 1100].some((hz) => Math.abs(window.__monitor.peakHz() - hz) < 30), undefined, 10000);
  log(`PEAK ${await page.evaluate(() => window.__monitor.peakHz())}`);
  await shoot(page, 'wallboard-browser-listening-ja');
  await step('browser-listening');

  // 割込 from the English page: both parties hear the browser's microphone.
  await page.keyboard.press('Escape');
  await page.click('[data-lang="en"]');
  await until(page, 'the page in English', () => document.documentElement.lang === 'en');
  await page.click(`[data-agent="${agent}"]`);
  await until(page, 'the agent menu', () => !document.getElementById('agent-menu').hidden);
  assert.ok(await page.getByLabel('Join from this browser (microphone and speaker)').isChecked());
  await page.getByRole('button', { name: 'Barge' }).click();
  await until(page, 'barged from this browser', () => document.getElementById('menu-monitor-status').textContent === 'Barge: joined from this browser', undefined, 15000);
  await until(page, 'the media path up', () => window.__monitor.connected(), undefined, 10000);
  assert.equal(await text(page, '#menu-error'), '');
  await shoot(page, 'wallboard-browser-barging-en');
  await step('browser-barging');

  await page.getByRole('button', { name: 'Leave the call' }).click();
  await until(page, 'left the call', () => document.getElementById('menu-monitor-status').textContent === 'You left the call');
  assert.ok(!(await page.evaluate(() => window.__monitor.connected())), 'the connection is closed');
  await step('browser-left');

  assert.deepEqual(problems, [], 'no page errors, no request outside the API');
  log(`SCREENSHOTS ${shoot.count}`);
  await context.close();
}

(async () => {
  if (MODE === 'monitor') await monitor();
  else if (MODE === 'monitor-browser') await monitorFromBrowser();
  else throw new Error(`unknown mode ${MODE}`);
  log('BROWSER OK');
  process.exit(0);
})().catch((e) => {
  log(`BROWSER FAILED ${e.stack || e}`);
  process.exit(1);
});
