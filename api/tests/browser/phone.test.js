// ブラウザフォン in a real headless Chromium (issue 24). Started by kakeru/tests/it/phone.rs, which
// runs the whole floor (API, control, the dialer engine with its media shard, the carrier whose
// customers say a 1,000 Hz tone) and checks in SQL what the page did. Chromium's fake microphone
// plays a 440 Hz WAV (--use-file-for-fake-audio-capture).
//
// The agent (a browser phone, no SIP account) logs in, starts the job: the microphone is heard,
// the WebRTC leg comes up (ICE-lite on the shard, DTLS-SRTP), the agent goes 待機; a customer is
// bridged and the page hears the customer's 1,000 Hz; the customer hangs up and the agent keys the
// result 2# on the page's dial pad (RFC 4733): DTMF result entry saves it. Then the network cut
// for 3 s (Chromium's network service stopped): the agent is 未確認 and the page says why, then
// rejoins by itself and the agent is 待機 again. Screenshots ja and en.
//
// Mode `tcp`: the same call with the shard's UDP candidates dropped from its answer before
// setRemoteDescription (the page's test hook window.__phoneTcpOnly), so Chromium must reach the
// shard over its passive TCP candidate (RFC 6544); the health line says the path is TCP.
'use strict';

const path = require('node:path');
const { assert, BASE, OUT, MODE, FIX, log, launch, until, login } = require('./lib.js');

/** Chromium's network service processes under this test (by /proc: parent chains to us). */
function networkService() {
  const fs = require('node:fs');
  const parent = (pid) => {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    } catch (_) { return 0; }
  };
  const ours = (pid) => {
    for (let p = pid, n = 0; p > 1 && n < 20; p = parent(p), n++) if (p === process.pid) return true;
    return false;
  };
  return fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d)).map(Number).filter((pid) => {
    try {
      return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('network.mojom.NetworkService') && ours(pid);
    } catch (_) { return false; }
  });
}

async function shots(page, name) {
  for (const lang of ['ja', 'en']) {
    await page.click(`[data-lang="${lang}"]`);
    await until(page, `lang ${lang}`, (l) => document.documentElement.lang === l, lang);
    const file = path.join(OUT, `phone-${name}-${lang}.png`);
    await page.screenshot({ path: file, fullPage: true });
    log(`SCREENSHOT ${file}`);
  }
  await page.click('[data-lang="ja"]');
}

(async () => {
  const { context, page, problems } = await launch([
    '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
    `--use-file-for-fake-audio-capture=${FIX.tone}`, '--autoplay-policy=no-user-gesture-required',
  ]);
  const tcp = MODE === 'tcp';
  const name = (n) => (tcp ? `tcp-${n}` : n);
  try {
    if (tcp) await page.addInitScript(() => { window.__phoneTcpOnly = true; });
    await page.goto(`${BASE}/`);
    await login(page, FIX.tenant, FIX.login, FIX.password);
    await until(page, 'the desktop', () => location.pathname === '/ui/agent');
    await until(page, 'the browser phone shown', () => !document.getElementById('phone').hidden);
    await until(page, 'the microphone heard', () => window.__phone.micHeard());
    for (const k of ['phone-mute', 'phone-rejoin', 'phone-mic']) {
      const name = await page.$eval(`#${k}`, (e) => e.getAttribute('aria-label') || (e.labels && e.labels[0] && e.labels[0].textContent) || e.textContent);
      assert.ok(name && name.trim(), `#${k} has an accessible name`);
    }
    assert.equal(await page.$$eval('#phone-pad button', (bs) => bs.filter((b) => b.getAttribute('aria-label')).length), 12, 'the dial pad');
    if (!tcp) await shots(page, 'jobs');

    // 発信開始: the offer goes first, the leg comes up, the agent is ready.
    await until(page, 'the job listed', () => !document.getElementById('jobs-table').hidden);
    await page.getByRole('button', { name: `発信開始 ${FIX.job}` }).click();
    await page.getByRole('button', { name: 'OK', exact: true }).click();
    await until(page, 'the leg connected', () => window.__phone.state() === 'on', undefined, 20000);
    await until(page, 'the agent ready', () => document.getElementById('me-state').dataset.state === 'ready', undefined, 20000);
    await until(page, 'the health check passed', () => window.__phone.healthy(), undefined, 10000);
    await until(page, 'the path named', () => window.__phone.path() !== null, undefined, 10000);
    const pathSaid = await page.evaluate(() => window.__phone.path());
    log(`PATH ${pathSaid} ${await page.$eval('#phone-health', (e) => e.textContent)}`);
    assert.equal(pathSaid, tcp ? 'TCP' : 'UDP', 'the media path');
    if (tcp) {
      const remote = (await page.evaluate(() => window.__phone.sdp())).split('----')[1];
      assert.ok(!/a=candidate:\S+ \d+ udp /i.test(remote), 'no UDP candidate reached Chromium');
      await until(page, 'the health line says TCP', () => document.getElementById('phone-health').textContent.includes('経路 TCP'));
    }
    await shots(page, name('ready'));

    // The customer (answering after 3 s): the page hears the customer's 1,000 Hz.
    await until(page, 'talking', () => document.getElementById('me-state').dataset.state === 'talking', undefined, 30000);
    await until(page, 'the customer heard at 1,000 Hz', () => Math.abs(window.__phone.peakHz() - 1000) < 30, undefined, 10000);
    log(`PEAK ${await page.evaluate(() => window.__phone.peakHz())}`);
    log(`SDP ${(await page.evaluate(() => window.__phone.sdp())).split('\n').filter((l) => /rtpmap|m=audio|fmtp|a=group|candidate/.test(l)).join(' | ')}`);
    await shots(page, name('talking'));

    // The customer hangs up; the result keyed on the dial pad: 2#.
    await until(page, 'wrap-up', () => document.getElementById('me-state').dataset.state === 'wrap_up', undefined, 30000);
    await page.waitForTimeout(500);
    for (const d of ['2', '#']) {
      await page.click(`#phone-pad [data-digit="${d}"]`);
      log(`DTMF ${d} ${JSON.stringify(await page.evaluate(() => window.__phone.dtmf()))}`);
      await page.waitForTimeout(600);
    }
    await until(page, 'the keyed result ends ACW', () => document.getElementById('me-state').dataset.state === 'ready', undefined, 15000);
    await shots(page, name('keyed'));
    if (tcp) {
      assert.deepEqual(problems, [], `page problems: ${problems.join('\n')}`);
      log('BROWSER OK');
      return;
    }

    // The network cut for 3 s: Chromium's network service (the process that owns the page's
    // sockets, WebRTC's UDP among them) stopped, then resumed. The shard hears nothing for 2 s,
    // the leg is down and the agent 未確認; the page says so in words and rejoins by itself.
    const net = networkService();
    assert.ok(net.length > 0, "Chromium's network service process");
    net.forEach((pid) => process.kill(pid, 'SIGSTOP'));
    await new Promise((r) => setTimeout(r, 3000));
    net.forEach((pid) => process.kill(pid, 'SIGCONT'));
    log(`CUT ${net.join(',')} for 3 s`);
    await until(page, 'the agent 未確認 and the failure said', () => document.getElementById('me-state').dataset.state === 'unknown' && window.__phone.error() !== '', undefined, 15000);
    log(`CUT SAID ${await page.evaluate(() => window.__phone.error())}`);
    await shots(page, 'cut');
    try {
      await until(page, 'the leg back after the cut', () => window.__phone.state() === 'on', undefined, 30000);
    } catch (e) {
      log(`AFTER CUT ${JSON.stringify(await page.evaluate(() => ({ phone: window.__phone.state(), error: window.__phone.error(), agent: document.getElementById('me-state').dataset.state })))}`);
      throw e;
    }
    await until(page, 'the agent ready after the cut', () => document.getElementById('me-state').dataset.state === 'ready', undefined, 30000);
    assert.equal(await page.evaluate(() => window.__phone.error()), '', 'the failure is cleared once the leg is back');
    // The waiting screen after the rejoin: the job and its remaining leads, as the server counts them.
    // (Read a few times: the dialer may take a lead between the two reads.)
    let same = false;
    for (let i = 0; i < 10 && !same; i++) {
      const jobs = await page.evaluate(async () => (await window.kakeruDesk.api('GET', '/agent/jobs')).items);
      const shown = await page.evaluate(() => document.getElementById('wait-remaining').textContent);
      log(`REMAINING shown ${shown}, server ${JSON.stringify(jobs.map((j) => [j.id, j.remaining]))}`);
      same = jobs.some((j) => String(j.remaining) === shown.replace(/[^0-9]/g, ''));
      if (!same) await page.waitForTimeout(300);
    }
    if (!same) log(`EVENTS ${(await page.evaluate(() => window.__desk.trail)).join('\n')}`);
    assert.ok(same, "the waiting screen shows the job's remaining leads after the rejoin");
    await shots(page, 'rejoined');
    // The new peer's audio counters start at 0: the silence of the old one is not said again (it
    // was, in the page's language of the moment, once 5 s had passed since the cut).
    assert.equal(await page.evaluate(() => window.__phone.error()), '', 'no failure said after the rejoin');
    assert.deepEqual(problems, [], `page problems: ${problems.join('\n')}`);
    log('BROWSER OK');
  } finally {
    await context.close();
  }
})().then(() => process.exit(0), (e) => { log(`FAILED ${e.stack || e}`); process.exit(1); });
