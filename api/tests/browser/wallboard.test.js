// The wallboard page in a real headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core). Started by api/tests/it/browser.rs, which runs the API and the control service
// and makes the floor move: this script prints `STEP <name>` when it wants the next thing to happen
// and waits for `GO <name> [json]` on stdin. Any failed check exits non-zero with the reason.
//
// KAKERU_MODE=floor: log in through the form, watch the figures change as calls flow, resume after a
// dropped stream, switch the language and the series range, change an agent's state from the grid,
// save a screenshot, then check that BIZ is refused and that OP sees only themselves.
// KAKERU_MODE=load: 1,000 agents, a burst of changes; frame times and long tasks measured in the page.
// KAKERU_MODE=demo: the wallboard of a running `kakeru demo` (started by kakeru/tests/it/demo.rs).
'use strict';

const assert = require('node:assert/strict');
const path = require('node:path');
const { BASE, OUT, MODE, FIX, step, log, launch, until, text, login } = require('./lib.js');

const fig = (campaign, name) => `[data-campaign="${campaign}"] [data-fig="${name}"] .v`;

async function floor() {
  const { context, page, problems } = await launch();
  const C = FIX.campaign;
  const [a1, a2, a3, a4] = FIX.agents;
  await page.goto(`${BASE}/ui/wallboard`);
  await until(page, 'the login form', () => !document.getElementById('login').hidden);
  assert.equal(await page.getAttribute('html', 'lang'), 'ja', 'Japanese by default');
  assert.equal(await text(page, 'label span[data-i18n="tenant"]'), 'テナントコード');

  // A wrong password is refused by the server and said so on the form.
  await login(page, FIX.tenant, FIX.sv.login, 'wrong-password');
  await until(page, 'the refusal', () => document.getElementById('login-error').textContent.length > 0);
  assert.match(await text(page, '#login-error'), /違います/);

  await login(page, FIX.tenant, FIX.sv.login, FIX.sv.password);
  await until(page, 'the live board', () => !document.getElementById('board').hidden && document.getElementById('conn').dataset.state === 'live');
  const token = await page.evaluate(() => sessionStorage.getItem('kakeru.token'));
  assert.ok(token && token.length > 20, 'the bearer token is kept in sessionStorage');
  await until(page, 'four ready agents', (ids) => ids.every((id) => document.querySelector(`[data-agent="${id}"]`)?.dataset.state === 'ready'), FIX.agents);
  assert.equal(await text(page, `[data-agent="${a1}"] .name`), FIX.names[0], 'agents by display name');
  assert.equal(await text(page, `[data-agent="${a1}"] .state`), '待機');
  assert.equal(await text(page, `[data-campaign="${C}"] h2`), FIX.campaign_name);

  // Calls flow: 4 customers answer, 3 agents take them, 1 waits (待ち呼).
  await step('calls');
  await until(page, 'one waiting call', (s) => document.querySelector(s)?.textContent === '1', fig(C, 'waiting'));
  await until(page, '4 answered, 3 connected', ([a, c]) => document.querySelector(a)?.textContent === '4' && document.querySelector(c)?.textContent === '3', [fig(C, 'answered'), fig(C, 'connected')]);
  await until(page, 'three agents talking', (ids) => ids.every((id) => document.querySelector(`[data-agent="${id}"]`).dataset.state === 'talking'), [a1, a2, a3]);
  assert.equal(await text(page, `[data-agent="${a2}"] .state`), '通話中');
  assert.equal(await text(page, '#floor-waiting'), '1');
  assert.ok(await page.$('#pie circle[data-slice="talking"]'), 'the pie has a talking slice');
  // The dialing group's card, with its agents by state.
  await until(page, 'the dialing group card', (g) => document.querySelector(`[data-group="${g}"] .state-bar [data-state="talking"]`) !== null, FIX.group);
  assert.equal(await text(page, `[data-group="${FIX.group}"] h2`), FIX.group_name);
  // The longest wait ticks (one customer waits).
  assert.match(await text(page, '#floor-longest'), /^\d+:\d\d$/);

  // The waiting customer abandons (破棄呼); agent 1's customer hangs up (後処理).
  await step('ends');
  await until(page, 'one abandoned call', (s) => document.querySelector(s)?.textContent === '1', fig(C, 'abandoned'));
  await until(page, 'no waiting call', (s) => document.querySelector(s)?.textContent === '0', fig(C, 'waiting'));
  await until(page, 'agent 1 in wrap-up', (id) => document.querySelector(`[data-agent="${id}"]`).dataset.state === 'wrap_up', a1);
  assert.equal(await text(page, `[data-agent="${a1}"] .state`), '後処理');
  await until(page, 'the answer-rate series', (c) => Number(document.querySelector(`[data-campaign="${c}"] .series`).dataset.buckets) >= 1, C);
  assert.equal(await text(page, fig(C, 'abandon_24h')), '25.0%', '1 of 4 answered abandoned');
  assert.match(await text(page, `[data-campaign="${C}"] [data-fig="abandon_24h"] .target`), /目標 3\.0%/);
  assert.ok(await page.$(`[data-campaign="${C}"] [data-fig="abandon_24h"].over`), 'above its target: marked');
  // 本日の通話 counts conversations that ended (agent 1's), not the abandoned customer; the agents
  // still talking are 通話中の呼.
  assert.equal(await text(page, fig(C, 'calls_today')), '1');
  assert.equal(await text(page, fig(C, 'talking_calls')), '2');
  // Every figure says what it counts: a tooltip, and the legend under the board.
  assert.match(await page.getAttribute(`[data-campaign="${C}"] [data-fig="dial_level"] dt`, 'title'), /発信中 ÷ 稼働エージェント/);
  assert.match(await text(page, '#legend [data-def="calls_today"]'), /本日終了した会話/);

  // Time in state ticks every second, client side.
  const t0 = await text(page, `[data-agent="${a4}"] .time`);
  assert.match(t0, /^\d+:\d\d$/);
  await page.waitForTimeout(2200);
  const t1 = await text(page, `[data-agent="${a4}"] .time`);
  assert.notEqual(t1, t0, 'time in state moved');

  // The stream drops (the test cuts the TCP connections) while a change happens: the page takes a
  // new ticket, resumes after its last event id and gets the change replayed, not a new snapshot.
  const before = await page.evaluate(() => ({ ...window.__wallboard }));
  await step('cut');
  await until(page, 'agent 2 in wrap-up after the reconnect', (id) => document.querySelector(`[data-agent="${id}"]`).dataset.state === 'wrap_up', a2, 30000);
  const after = await page.evaluate(() => ({ ...window.__wallboard }));
  assert.equal(after.snapshots, before.snapshots, 'resumed from Last-Event-ID: no new snapshot');
  assert.ok(after.connects > before.connects, 'it reconnected');
  await until(page, 'live again', () => document.getElementById('conn').dataset.state === 'live');

  // English, and back.
  await page.click('[data-lang="en"]');
  await until(page, 'English labels', () => document.querySelector('[data-i18n="waiting"]').textContent === 'Waiting calls');
  await until(page, 'English states', (id) => document.querySelector(`[data-agent="${id}"] .state`).textContent === 'Talking', a3);
  assert.equal(await page.getAttribute('html', 'lang'), 'en');
  await page.click('[data-lang="ja"]');
  await until(page, 'Japanese again', () => document.querySelector('[data-i18n="waiting"]').textContent === '待ち呼');

  // The series range.
  await page.click('[data-hours="24"]');
  assert.equal(await page.getAttribute('[data-hours="24"]', 'aria-pressed'), 'true');
  await page.click('[data-hours="3"]');

  // The SV pauses agent 4 from the grid, with a reason (POST /agents/{id}/state).
  await page.click(`[data-agent="${a4}"]`);
  await until(page, 'the agent menu', () => !document.getElementById('agent-menu').hidden);
  await page.selectOption('#menu-reason', String(FIX.reason.id));
  const [req] = await Promise.all([
    page.waitForRequest((r) => r.url().endsWith(`/agents/${a4}/state`) && r.method() === 'POST'),
    page.click('#agent-menu [data-to="paused"]'),
  ]);
  assert.deepEqual(JSON.parse(req.postData()), { to: 'paused', reason_id: FIX.reason.id });
  assert.equal(req.headers().authorization, `Bearer ${token}`);
  await until(page, 'agent 4 paused', (id) => document.querySelector(`[data-agent="${id}"]`).dataset.state === 'paused', a4);
  assert.equal(await text(page, `[data-agent="${a4}"] .state`), `停止: ${FIX.reason.name}`);
  const bg = await page.$eval(`[data-agent="${a4}"]`, (e) => getComputedStyle(e).backgroundColor);
  assert.equal(bg, FIX.reason.rgb, 'the tile has the reason colour');
  assert.ok(await page.$eval('#agent-menu', (m) => m.hidden), 'the menu closed');
  await until(page, 'the pie slice of the reason', (r) => document.querySelector(`#pie circle[data-slice="paused:${r}"]`) !== null, FIX.reason.id);
  log('STATE_CHANGE applied');

  const shot = path.join(OUT, 'wallboard.png');
  await page.screenshot({ path: shot, fullPage: true });
  log(`SCREENSHOT ${shot}`);

  // BIZ: refused by the server; the page says so.
  await page.click('#logout');
  await until(page, 'the login form again', () => !document.getElementById('login').hidden);
  assert.equal(await page.evaluate(() => sessionStorage.getItem('kakeru.token')), null, 'logged out');
  await login(page, FIX.tenant, FIX.biz.login, FIX.biz.password);
  await until(page, 'the refusal page', () => !document.getElementById('forbidden').hidden);
  assert.match(await text(page, '#forbidden'), /表示できません/);
  assert.equal(await page.$$eval('.agent', (a) => a.length), 0, 'BIZ sees no agent');
  const biz = await page.evaluate(async () => {
    const h = { Authorization: `Bearer ${sessionStorage.getItem('kakeru.token')}` };
    return [(await fetch('/wallboard', { headers: h })).status, (await fetch('/wallboard/tickets', { method: 'POST', headers: h })).status];
  });
  assert.deepEqual(biz, [403, 403], 'the server refuses BIZ the board and the stream');
  await page.screenshot({ path: path.join(OUT, 'wallboard-biz.png') });

  // OP: only their own tile, no campaign figures, no state menu.
  await page.click('#logout');
  await until(page, 'the login form again', () => !document.getElementById('login').hidden);
  await login(page, FIX.tenant, FIX.op.login, FIX.op.password);
  await until(page, 'the own tile', (id) => document.querySelector(`[data-agent="${id}"]`) !== null, FIX.op.id);
  await page.waitForTimeout(500);
  assert.equal(await page.$$eval('.agent', (a) => a.length), 1, 'OP sees only themselves');
  assert.equal(await page.$$eval('.card', (a) => a.length), 0, 'OP sees no campaign');
  await page.click(`[data-agent="${FIX.op.id}"]`);
  assert.ok(await page.$eval('#agent-menu', (m) => m.hidden), 'OP gets no state menu');

  assert.deepEqual(problems, [], 'no page errors, no outside requests');
  await context.close();
}

async function load() {
  const { context, page, problems } = await launch();
  await page.goto(`${BASE}/ui/wallboard`);
  await login(page, FIX.tenant, FIX.sv.login, FIX.sv.password);
  await until(page, `${FIX.agent_count} agent tiles`, (n) => document.querySelectorAll('.agent').length === n, FIX.agent_count, 60000);
  await until(page, 'live', () => document.getElementById('conn').dataset.state === 'live');
  const cdp = await context.newCDPSession(page);
  await cdp.send('Performance.enable');
  const metrics = async () => Object.fromEntries((await cdp.send('Performance.getMetrics')).metrics.map((x) => [x.name, x.value]));
  // The same measurement first with nothing happening: the machine's own frame pace (a shared,
  // loaded machine slows every frame, burst or not).
  const measure = async (ms) => page.evaluate((ms) => new Promise((done) => {
    const frames = [];
    let last = performance.now();
    const end = last + ms;
    const loop = (ts) => {
      frames.push(ts - last);
      last = ts;
      if (ts < end) requestAnimationFrame(loop); else done(frames);
    };
    requestAnimationFrame(loop);
  }), ms);
  const idleFrames = (await measure(3000)).slice(1).sort((a, b) => a - b);
  const before = await metrics();
  await page.evaluate(() => {
    const m = { frames: [], longTasks: [], start: performance.now() };
    window.__measure = m;
    new PerformanceObserver((l) => { for (const e of l.getEntries()) m.longTasks.push(e.duration); }).observe({ type: 'longtask', buffered: false });
    let last = performance.now();
    const loop = (ts) => {
      m.frames.push(ts - last);
      last = ts;
      if (!m.stop) requestAnimationFrame(loop);
    };
    requestAnimationFrame(loop);
  });
  if (process.env.KAKERU_PROFILE) { await cdp.send('Profiler.enable'); await cdp.send('Profiler.start'); }
  const t0 = Date.now();
  const expect = await step('burst');
  // The grid shows the final state of every agent.
  await until(page, 'the final states in the grid', (want) => {
    const got = {};
    for (const a of document.querySelectorAll('.agent')) got[a.dataset.state] = (got[a.dataset.state] || 0) + 1;
    return Object.keys(want).every((k) => got[k] === want[k]);
  }, expect.by_state, 60000);
  const sample = await page.$$eval('.agent', (els, ids) => ids.map((id) => els.find((e) => e.dataset.agent === String(id))?.dataset.state), expect.sample.map((s) => s[0]));
  assert.deepEqual(sample, expect.sample.map((s) => s[1]), 'sampled agents show their last state');
  const m = await page.evaluate(() => { window.__measure.stop = true; return { ...window.__measure, stats: { ...window.__wallboard } }; });
  const after = await metrics();
  if (process.env.KAKERU_PROFILE) {
    // Self time by function (a quick look at where the page spends its script time).
    const { profile } = await cdp.send('Profiler.stop');
    const self = new Map();
    const dt = profile.timeDeltas;
    const byId = new Map(profile.nodes.map((n) => [n.id, n]));
    profile.samples.forEach((id, i) => {
      const f = byId.get(id).callFrame;
      const k = `${f.functionName || '(anon)'} ${f.url.split('/').pop()}:${f.lineNumber}`;
      self.set(k, (self.get(k) || 0) + (dt[i] || 0) / 1000);
    });
    log(`PROFILE ${JSON.stringify([...self].sort((a, b) => b[1] - a[1]).slice(0, 15).map(([k, v]) => [k, +v.toFixed(0)]))}`);
  }
  const busy = (k) => +((after[k] - before[k]) * 1000).toFixed(0);
  const frames = m.frames.slice(1).sort((a, b) => a - b);
  const quantile = (xs, p) => xs[Math.min(xs.length - 1, Math.floor(p * xs.length))];
  const q = (p) => quantile(frames, p);
  const result = {
    agents: FIX.agent_count,
    changes_sent: expect.changes,
    seconds: (Date.now() - t0) / 1000,
    events_received: m.stats.events,
    snapshots: m.stats.snapshots,
    frames: frames.length,
    frame_ms_p50: +q(0.5).toFixed(1),
    frame_ms_p95: +q(0.95).toFixed(1),
    frame_ms_p99: +q(0.99).toFixed(1),
    frame_ms_max: +frames[frames.length - 1].toFixed(1),
    long_tasks: m.longTasks.length,
    long_task_ms_max: +Math.max(0, ...m.longTasks).toFixed(1),
    long_task_ms_total: +m.longTasks.reduce((a, b) => a + b, 0).toFixed(1),
    idle_frame_ms_p50: +quantile(idleFrames, 0.5).toFixed(1),
    idle_frame_ms_p95: +quantile(idleFrames, 0.95).toFixed(1),
    // Main-thread time over the burst (Chrome's Performance metrics, ms).
    task_ms: busy('TaskDuration'),
    script_ms: busy('ScriptDuration'),
    layout_ms: busy('LayoutDuration'),
    style_ms: busy('RecalcStyleDuration'),
    layouts: after.LayoutCount - before.LayoutCount,
    style_recalcs: after.RecalcStyleCount - before.RecalcStyleCount,
    // CPU time (not wall time: the machine may be shared) of the page's main thread and of the
    // whole renderer over the burst, and the main thread's share of one core.
    main_thread_cpu_ms: busy('ThreadTime'),
    renderer_cpu_ms: busy('ProcessTime'),
    main_thread_cpu_share: +((after.ThreadTime - before.ThreadTime) / (after.Timestamp - before.Timestamp)).toFixed(3),
    // The page's own script time over the whole run: applying frames, ticking, reading events.
    page_flush_ms: +m.stats.flush_ms.toFixed(0),
    page_tick_ms: +m.stats.tick_ms.toFixed(0),
    page_event_ms: +m.stats.event_ms.toFixed(0),
  };
  log(`LOAD ${JSON.stringify(result)}`);
  const shot = path.join(OUT, 'wallboard-1000.png');
  await page.screenshot({ path: shot });
  log(`SCREENSHOT ${shot}`);
  const bound = FIX.bounds;
  assert.ok(result.frame_ms_p50 <= bound.frame_ms_p50, `median frame ${result.frame_ms_p50} ms > ${bound.frame_ms_p50} ms`);
  assert.ok(result.frame_ms_p95 <= bound.frame_ms_p95, `p95 frame ${result.frame_ms_p95} ms > ${bound.frame_ms_p95} ms`);
  assert.ok(result.long_task_ms_max <= bound.long_task_ms_max, `a long task of ${result.long_task_ms_max} ms > ${bound.long_task_ms_max} ms`);
  assert.deepEqual(problems, [], 'no page errors');
  await context.close();
}

// KAKERU_MODE=demo: the `kakeru demo` binary runs a simulated floor; log in with the login it printed,
// watch the campaign's figures and the agents' states change as its calls flow, pause a ready agent
// from the grid, save a screenshot.
async function demo() {
  const { context, page, problems } = await launch();
  await page.goto(`${BASE}/ui/wallboard`);
  await until(page, 'the login form', () => !document.getElementById('login').hidden);
  await login(page, FIX.tenant, FIX.login, FIX.password);
  await until(page, 'the live board', () => !document.getElementById('board').hidden && document.getElementById('conn').dataset.state === 'live');
  const C = FIX.campaign;
  await until(page, `at least ${FIX.agents} agents on the grid`, (n) => document.querySelectorAll('.agent').length >= n, FIX.agents);
  await until(page, 'the demo campaign card', (c) => document.querySelector(`[data-campaign="${c}"]`) !== null, C);
  const figures = () => page.evaluate(([a, c, d]) => ({
    answered: Number(document.querySelector(a)?.textContent.replace(/,/g, '') || 0),
    connected: Number(document.querySelector(c)?.textContent.replace(/,/g, '') || 0),
    dials: document.querySelector(d)?.textContent || '',
    // Each agent's own state: the same counts per state can come back with other agents in them.
    states: [...document.querySelectorAll('.agent')].map((e) => `${e.dataset.agent}:${e.dataset.state}`).sort().join(','),
  }), [fig(C, 'answered'), fig(C, 'connected'), `[data-campaign="${C}"] [data-fig="dials_in_flight"] .v`]);
  const first = await figures();
  log(`DEMO first ${JSON.stringify({ ...first, states: undefined })}`);
  // Calls flow: the answered and connected counts grow, the agents' states change, as seen live.
  await until(page, 'more customers answered and connected', ([a, c, s]) => {
    const n = (sel) => Number(document.querySelector(sel)?.textContent.replace(/,/g, '') || 0);
    return n(a) >= s.answered + 3 && n(c) >= s.connected + 3;
  }, [fig(C, 'answered'), fig(C, 'connected'), first], 120000);
  await until(page, 'agents talking', () => document.querySelector('.agent[data-state="talking"]') !== null, null, 60000);
  const later = await figures();
  assert.notEqual(later.states, first.states, 'the agents\' states changed');
  log(`DEMO later ${JSON.stringify({ ...later, states: undefined })}`);

  // The SV pauses a ready agent from the grid (POST /agents/{id}/state).
  await until(page, 'a ready agent', () => document.querySelector('.agent[data-state="ready"]') !== null, null, 60000);
  const id = await page.$eval('.agent[data-state="ready"]', (e) => e.dataset.agent);
  await page.click(`[data-agent="${id}"]`);
  await until(page, 'the agent menu', () => !document.getElementById('agent-menu').hidden);
  await page.selectOption('#menu-reason', { index: 0 });
  const [req] = await Promise.all([
    page.waitForRequest((r) => r.url().endsWith(`/agents/${id}/state`) && r.method() === 'POST'),
    page.click('#agent-menu [data-to="paused"]'),
  ]);
  assert.equal(JSON.parse(req.postData()).to, 'paused');
  // The agent may be offered a customer first; the pause then waits for that call's end.
  await until(page, `agent ${id} paused`, (a) => document.querySelector(`[data-agent="${a}"]`).dataset.state === 'paused', id, 60000);
  log(`STATE_CHANGE applied to ${id}`);
  const shot = path.join(OUT, 'wallboard-demo.png');
  await page.screenshot({ path: shot, fullPage: true });
  log(`SCREENSHOT ${shot}`);
  assert.deepEqual(problems, [], 'no page errors, no outside requests');
  await context.close();
}

({ floor, load, demo }[MODE])().then(
  () => { log('BROWSER OK'); process.exit(0); },
  (e) => { log(`BROWSER FAILED: ${e.stack || e}`); process.exit(1); },
);
