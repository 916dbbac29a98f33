// ジョブモニタ (BIZTEL 9): each running call job with its figures (dials in flight, dial level,
// answered, connected, abandoned, abandon rate over 24 h and 30 days against the campaign's
// target, remaining leads) and its agents with their states, live from the wallboard feed (SSE
// with a stream ticket; a reconnect resumes after the last event id). What each figure means is
// /ui/figures.js, shared with the wallboard, shown as tooltips and in a legend.

import { FIGURES, figure, STATE_COLORS } from '/ui/figures.js';
import { api, listAll, eventSource } from './api.js';
import { S, tt, el, button, link, num, pct, duration, when, errorText, confirm, notice, onLeave, recordLabel } from './core.js';

const STATE_WORDS = {
  ja: { ready: '待機', ringing: '着信中', talking: '通話中', hold: '保留', wrap_up: '後処理', paused: '停止', unknown: '未確認', offline: 'オフライン' },
  en: { ready: 'Ready', ringing: 'Ringing', talking: 'Talking', hold: 'Hold', wrap_up: 'Wrap-up', paused: 'Paused', unknown: 'Unknown', offline: 'Offline' },
};
const FIGS = [
  ['dials_in_flight', (c) => num(c.dials_in_flight)],
  ['dial_level', (c) => (c.dial_level === null || c.dial_level === undefined ? '—' : c.dial_level.toFixed(2))],
  ['answered', (c) => num(c.today && c.today.answered)],
  ['connected', (c) => num(c.today && c.today.connected)],
  ['abandoned', (c) => num(c.today && c.today.abandoned)],
  ['abandon_24h', (c) => pct(c.last_24h && c.last_24h.answered ? c.last_24h.abandon_rate : null)],
  ['abandon_30d', (c) => pct(c.last_30d && c.last_30d.answered ? c.last_30d.abandon_rate : null)],
  ['remaining_leads', (c) => num(c.remaining_leads)],
  ['calls_today', (c) => num(c.calls_today)],
  ['talking_calls', (c) => num(c.talking_calls)],
];

export async function renderMonitor(view) {
  const conn = el('span', { class: 'conn', id: 'mon-conn', dataset: { state: 'connecting' } }, tt('mon.connecting'));
  view.replaceChildren(el('div', { class: 'screen-head' }, el('h1', null, tt('mon.title')), conn));
  const M = {
    jobs: [],
    campaigns: new Map(),
    groups: new Map(),
    names: new Map(),
    reasons: new Map(),
    tiles: new Map(), // 'c7' -> campaign tile
    agents: new Map(), // agent id -> tile
    lastSeq: 0,
    skew: 0,
    es: null,
    retryMs: 1000,
    closed: false,
    frame: 0,
  };
  const body = el('div', { id: 'mon-jobs' });
  const legend = el('details', { class: 'panel legend-defs', id: 'mon-legend', open: true }, el('summary', null, tt('mon.legend')),
    el('dl', null, FIGS.flatMap(([k]) => { const [label, def] = figure(S.lang, k); return [el('dt', null, label), el('dd', { dataset: { def: k } }, def)]; })));
  view.append(body, legend);
  const load = async () => {
    const [jobs, campaigns, groups, users, reasons] = await Promise.all([
      listAll('/call-jobs?status=running'),
      listAll('/campaigns'),
      listAll('/dialing-groups').catch(() => []),
      S.specs.has('users') ? listAll('/users').catch(() => []) : Promise.resolve([]),
      listAll('/pause-reasons').catch(() => []),
    ]);
    M.jobs = jobs;
    for (const c of campaigns) M.campaigns.set(c.id, c);
    for (const g of groups) M.groups.set(g.id, g);
    for (const u of users) M.names.set(u.id, u.display_name || u.login);
    for (const r of reasons) M.reasons.set(r.id, r);
  };
  try {
    await load();
  } catch (e) {
    body.replaceChildren(el('p', { class: 'error', role: 'alert' }, errorText(e)));
    return;
  }
  // The person may have left the monitor while it loaded: then nothing of it is started.
  if (!body.isConnected) return;
  const cards = new Map();
  const draw = () => {
    M.frame = 0;
    if (!M.jobs.length) {
      body.replaceChildren(el('p', { class: 'empty', id: 'mon-none' }, tt('mon.none'), ' ', link('#/r/call-jobs', tt('mon.to_jobs'))));
      cards.clear();
      return;
    }
    if (!body.querySelector('.job-card')) body.replaceChildren();
    for (const job of M.jobs) {
      let card = cards.get(job.id);
      if (!card) {
        card = makeCard(job, M);
        cards.set(job.id, card);
        body.append(card.el);
      }
      paintCard(card, job, M);
    }
  };
  const schedule = () => { if (!M.frame) M.frame = requestAnimationFrame(draw); };
  draw();
  // Time in state ticks on the page (no request: the tiles carry since_ms).
  const tick = setInterval(() => { for (const c of cards.values()) tickAgents(c, M); }, 1000);

  const setConn = (state) => { conn.dataset.state = state; conn.textContent = tt(`mon.${state}`); };
  const connect = async () => {
    if (M.closed) return;
    setConn(M.lastSeq ? 'retry' : 'connecting');
    let es;
    try {
      es = await eventSource('/wallboard/stream', '/wallboard/tickets', M.lastSeq ? { last_event_id: String(M.lastSeq) } : {});
    } catch (e) {
      if (e.status === 401 || e.status === 403) { body.replaceChildren(el('p', { class: 'error', role: 'alert' }, errorText(e))); return; }
      return retry();
    }
    M.es = es;
    es.addEventListener('open', () => { M.retryMs = 1000; setConn('live'); });
    es.addEventListener('snapshot', (m) => {
      const s = JSON.parse(m.data);
      M.lastSeq = s.seq;
      M.tiles.clear();
      for (const c of s.campaigns || []) M.tiles.set(c.campaign_id, c);
      M.agents.clear();
      for (const a of s.agents || []) M.agents.set(a.agent_id, a);
      schedule();
    });
    es.addEventListener('change', async (m) => {
      const c = JSON.parse(m.data);
      if (c.seq <= M.lastSeq) return;
      M.lastSeq = c.seq;
      if (c.at_ms) M.skew = c.at_ms - Date.now();
      if (c.tile === 'agent') M.agents.set(c.agent_id, c);
      else if (c.tile === 'campaign') {
        // The dialer's remaining_leads is null between its reports: keep the last one.
        const old = M.tiles.get(c.campaign_id);
        if ((c.remaining_leads === null || c.remaining_leads === undefined) && old) c.remaining_leads = old.remaining_leads;
        M.tiles.set(c.campaign_id, c);
        // A campaign dialling with no job on the page: a job was started elsewhere.
        if (c.dials_in_flight && !M.jobs.some((j) => j.campaign_id === c.campaign_id)) {
          M.jobs = await listAll('/call-jobs?status=running').catch(() => M.jobs);
        }
      }
      schedule();
    });
    es.addEventListener('error', () => { if (M.es === es) retry(); });
  };
  const retry = () => {
    if (M.es) M.es.close();
    M.es = null;
    if (M.closed) return;
    setConn('retry');
    setTimeout(connect, M.retryMs);
    M.retryMs = Math.min(M.retryMs * 2, 15000);
  };
  onLeave(() => { M.closed = true; clearInterval(tick); if (M.es) M.es.close(); });
  M.stopJob = async (job) => {
    if (!(await confirm(tt('confirm_stop')))) return;
    try {
      await api('POST', `/call-jobs/${job.id}/stop`);
      notice(tt('saved'));
      M.jobs = M.jobs.filter((j) => j.id !== job.id);
      const card = cards.get(job.id);
      if (card) { card.el.remove(); cards.delete(job.id); }
      schedule();
    } catch (e) { notice(errorText(e), 'error'); }
  };
  connect();
}

function makeCard(job, M) {
  const campaign = M.campaigns.get(job.campaign_id);
  const group = M.groups.get(job.dialing_group_id);
  const figs = el('dl', { class: 'figs' });
  const values = {};
  for (const [k] of FIGS) {
    const [label, def] = figure(S.lang, k);
    const v = el('dd', { class: 'v' }, '—');
    const box = el('div', { class: 'fig', dataset: { fig: k } }, el('dt', { class: 'k', title: def }, label), v);
    if (k.startsWith('abandon_')) {
      const target = el('span', { class: 'target' });
      box.append(target);
      values[`${k}_target`] = target;
    }
    figs.append(box);
    values[k] = v;
  }
  const agents = el('div', { class: 'agent-chips', role: 'list', 'aria-label': tt('mon.agents') });
  const stop = button(tt('stop_job'), () => M.stopJob(job), { class: 'danger', dataset: { job: 'stop' } });
  const head = el('header', { class: 'card-head' },
    el('h2', null, link(`#/r/call-jobs/${job.id}`, job.name)),
    el('span', { class: 'muted' }, `${recordLabel(campaign) || `#${job.campaign_id}`} · ${recordLabel(group) || `#${job.dialing_group_id}`} · ${tt('mon.started', { at: when(job.started_at) })}`),
    el('span', { class: 'spacer' }),
    S.ops.has('post /call-jobs/{id}/stop') ? stop : null);
  const note = el('p', { class: 'muted small' });
  const card = el('article', { class: 'panel job-card', dataset: { job: job.id, campaign: job.campaign_id } }, head, figs, note, el('h3', null, tt('mon.agents')), agents);
  return { el: card, values, agents, note, chips: new Map() };
}

function paintCard(card, job, M) {
  const tile = M.tiles.get(job.campaign_id) || {};
  for (const [k, f] of FIGS) {
    const text = f(tile);
    if (card.values[k].textContent !== text) card.values[k].textContent = text;
  }
  const campaign = M.campaigns.get(job.campaign_id);
  const target = campaign && typeof campaign.abandon_target_pct === 'number' ? campaign.abandon_target_pct / 100 : null;
  for (const [k, win] of [['abandon_24h', tile.last_24h], ['abandon_30d', tile.last_30d]]) {
    const tg = card.values[`${k}_target`];
    tg.textContent = target === null ? '' : `${tt('mon.target')} ${pct(target)}`;
    tg.parentElement.classList.toggle('over', target !== null && win && win.answered > 0 && win.abandon_rate > target);
  }
  const others = M.jobs.filter((j) => j.campaign_id === job.campaign_id).length > 1;
  card.note.textContent = others ? tt('mon.campaign_wide') : '';
  // The job's agents: working its campaign for its dialing group.
  const mine = [...M.agents.values()].filter((a) => a.campaign_id === job.campaign_id && (a.dialing_group_id === undefined || a.dialing_group_id === null || a.dialing_group_id === job.dialing_group_id) && a.state && a.state.state !== 'offline');
  const ids = new Set(mine.map((a) => a.agent_id));
  for (const [id, chip] of card.chips) if (!ids.has(id)) { chip.el.remove(); card.chips.delete(id); }
  for (const a of mine) {
    let chip = card.chips.get(a.agent_id);
    if (!chip) {
      const name = el('span', { class: 'name' }, M.names.get(a.agent_id) || `#${a.agent_id}`);
      const state = el('span', { class: 'state' });
      const time = el('span', { class: 'time' });
      const tools = monitorTools(a.agent_id, M);
      chip = { el: el('div', { class: 'agent-chip', role: 'listitem', dataset: { agent: a.agent_id } }, name, state, time, tools), state, time, tools, since: 0 };
      card.chips.set(a.agent_id, chip);
      card.agents.append(chip.el);
    }
    const st = a.state.state;
    const reason = st === 'paused' && M.reasons.get(a.state.reason_id);
    const color = reason && reason.color ? reason.color : STATE_COLORS[st] || STATE_COLORS.unknown;
    chip.el.style.setProperty('--bg', color);
    chip.el.dataset.state = st;
    chip.state.textContent = `${STATE_WORDS[S.lang][st] || st}${reason ? `: ${reason.name}` : ''}`;
    chip.since = a.since_ms;
    // A supervisor joins only a call in progress.
    if (chip.tools) chip.tools.hidden = !['talking', 'hold'].includes(st);
  }
  if (!mine.length) {
    if (!card.agents.querySelector('.empty')) card.agents.replaceChildren(el('p', { class: 'empty' }, tt('mon.no_agents')));
  } else {
    const empty = card.agents.querySelector('.empty');
    if (empty) empty.remove();
  }
  tickAgents(card, M);
}

/**
 * モニタリング / ささやき / 割込 on an agent's call, from the supervisor's own phone (shown only to
 * the roles the server lets join calls; the server checks again).
 */
function monitorTools(agentId, M) {
  if (!S.ops.has('post /agents/{id}/monitor')) return null;
  const name = () => M.names.get(agentId) || `#${agentId}`;
  const act = async (mode) => {
    try {
      if (mode === 'leave') {
        await api('DELETE', `/agents/${agentId}/monitor`);
        notice(tt('mon.left'));
      } else {
        await api('POST', `/agents/${agentId}/monitor`, { mode });
        notice(tt('mon.ringing', { mode: tt(`mon.${mode}`) }));
      }
    } catch (e) { notice(errorText(e), 'error'); }
  };
  const tools = el('span', { class: 'monitor-tools', role: 'group', 'aria-label': tt('mon.join_of', { action: tt('mon.listen'), name: name() }) });
  for (const mode of ['listen', 'whisper', 'barge', 'leave']) {
    const b = button(tt(`mon.${mode}`), () => act(mode), { class: 'small', dataset: { monitor: mode } });
    b.setAttribute('aria-label', tt('mon.join_of', { action: tt(`mon.${mode}`), name: name() }));
    tools.append(b);
  }
  tools.hidden = true;
  return tools;
}

function tickAgents(card, M) {
  const now = Date.now() + M.skew;
  for (const chip of card.chips.values()) {
    const s = duration(now - chip.since);
    if (chip.time.textContent !== s) chip.time.textContent = s;
  }
}

export { FIGURES };
