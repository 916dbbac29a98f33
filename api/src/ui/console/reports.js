// レポート (#/reports/<kind>) and 発着信履歴 (#/call-history): the reports' tables as the server
// sends them (column names in both languages come with the table, so the page and the CSV name
// them alike), their CSV downloads, and charts drawn here in SVG (answer rate, abandon rate against
// the target, occupancy by hour). Nothing polls: a report is read when the search runs.

import { api, listAll, download, saveBlob } from './api.js';
import { playerCell } from './records.js';
import { S, t, tt, el, button, may, num, pct, duration, when, today, errorText, notice, go, onLeave } from './core.js';

/** The reports, their endpoint and their filters (keys of the query string). */
const REPORTS = [
  { key: 'groups', path: '/reports/groups', filters: ['group_id', 'by_group', 'include_latest', 'from', 'to', 'week_start'] },
  { key: 'campaigns', path: '/reports/campaigns', filters: ['campaign_id', 'by_campaign', 'show_count', 'from', 'to'] },
  { key: 'numbers', path: '/reports/numbers', filters: ['number', 'direction', 'from', 'to'] },
  { key: 'states', path: '/reports/states', filters: ['group_id', 'campaign_id', 'agent', 'by_states', 'show_states', 'from', 'to', 'hour', 'hours'] },
  { key: 'lists', path: '/reports/lists', filters: ['campaign_id', 'date'] },
  { key: 'outbound', path: '/reports/outbound', filters: ['campaign_id', 'from', 'to'] },
  { key: 'abandons', path: '/reports/abandons', filters: ['campaign_id', 'from', 'to'] },
];

/** The reports' endpoints (the screen shows for a role that may read one of them). */
export const REPORT_PATHS = REPORTS.map((r) => r.path);

/** Choices of the select filters: [query key, values]. */
const CHOICES = {
  by_group: ['by', ['date', 'week', 'hour', 'agent', 'duration']],
  by_campaign: ['by', ['date', 'hour', 'agent']],
  by_states: ['by', ['agent', 'hour']],
  show_count: ['show', ['count', 'percent']],
  show_states: ['show', ['percent', 'seconds', 'count', 'average']],
  include_latest: ['include_latest', ['true', 'false']],
  week_start: ['week_start', ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat']],
  direction: ['direction', ['all', 'outbound', 'inbound']],
};

function yesterday() {
  const d = new Date(`${today()}T12:00:00Z`);
  d.setUTCDate(d.getUTCDate() - 1);
  return d.toISOString().slice(0, 10);
}

async function options(path, label) {
  try {
    return (await listAll(path)).map((r) => [String(r.id), label(r)]);
  } catch (_) {
    return [];
  }
}

function select(id, label, values, current, emptyLabel) {
  const s = el('select', { id, name: id, 'aria-label': label });
  if (emptyLabel !== undefined) s.append(el('option', { value: '' }, emptyLabel));
  for (const [v, text] of values) s.append(el('option', { value: v, selected: v === current }, text));
  return el('label', { class: 'filter' }, label, ' ', s);
}

/** The form of a report's filters, filled from the query string. */
async function filterForm(rep, q, onSearch) {
  const form = el('form', { class: 'filters', id: 'rep-filters' });
  const needs = new Set(rep.filters);
  const groups = needs.has('group_id') ? await options('/dialing-groups', (r) => r.name) : [];
  const camps = needs.has('campaign_id') ? await options('/campaigns', (r) => r.name) : [];
  for (const f of rep.filters) {
    if (f === 'group_id') form.append(select('group_id', tt('rep.f.group'), groups, q.get('group_id') || '', tt('all')));
    else if (f === 'campaign_id') form.append(select('campaign_id', tt('rep.f.campaign'), camps, q.get('campaign_id') || '', tt('all')));
    else if (CHOICES[f]) {
      const [key, values] = CHOICES[f];
      form.append(select(key, tt(`rep.f.${key}`), values.map((v) => [v, tt(`rep.v.${key}.${v}`)]), q.get(key) || values[0]));
    } else if (f === 'from' || f === 'to' || f === 'date') {
      const v = q.get(f) || yesterday();
      form.append(el('label', { class: 'filter' }, tt(`rep.f.${f}`), ' ', el('input', { type: 'date', name: f, id: `rep-${f}`, value: v, required: true })));
    } else if (f === 'hour' || f === 'hours') {
      const v = q.get(f) || (f === 'hour' ? '0' : '24');
      form.append(el('label', { class: 'filter' }, tt(`rep.f.${f}`), ' ',
        el('input', { type: 'number', name: f, id: `rep-${f}`, min: f === 'hour' ? 0 : 1, max: f === 'hour' ? 23 : 24, value: v })));
    } else {
      form.append(el('label', { class: 'filter' }, tt(`rep.f.${f}`), ' ', el('input', { type: 'search', name: f, id: `rep-${f}`, value: q.get(f) || '', maxlength: 100 })));
    }
  }
  form.append(button(tt('search'), null, { type: 'submit', class: 'primary', keys: 'Enter', keyText: '⏎' }));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const out = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (v !== '') out.set(k, v);
    onSearch(out);
  });
  return form;
}

/** A cell as the server's kind says (the CSV writes the same text, without separators). */
function cell(kind, v) {
  if (v === null || v === undefined) return kind === 'text' || kind === 'int' ? '' : '-';
  if (kind === 'int') return num(v);
  if (kind === 'pct') return pct(v, 2);
  if (kind === 'secs') return `${num(Math.round(v / 1000))}s`;
  if (kind === 'real') return Number(v).toFixed(2);
  return String(v);
}

function table(rep, data) {
  const cols = data.columns;
  const head = el('tr', null, cols.map((c) => el('th', { scope: 'col', class: c.kind === 'text' ? null : 'num' }, c.label[S.lang] || c.label.ja)));
  const row = (r, total) => el('tr', { class: total ? 'total' : null },
    r.map((v, i) => {
      const text = i === 0 && total ? tt('rep.total') : cell(cols[i].kind, v);
      return i === 0 ? el('th', { scope: 'row' }, text) : el('td', { class: cols[i].kind === 'text' ? null : 'num' }, text);
    }));
  const body = data.rows.map((r) => row(r, false));
  const foot = data.total ? el('tfoot', null, row(data.total, true)) : null;
  if (!data.rows.length) return el('p', { class: 'empty' }, tt('empty'));
  return el('div', { class: 'table-box' },
    el('table', { class: 'records report', id: 'rep-table', 'aria-label': tt(`rep.${rep.key}`) }, el('thead', null, head), el('tbody', null, body), foot));
}

// ---------------------------------------------------------------------------------------- charts
const SVG = 'http://www.w3.org/2000/svg';
function svg(tag, attrs, ...children) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined && v !== null) e.setAttribute(k, v);
  for (const c of children.flat()) if (c) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

/**
 * Bars of ratios (0..1) with their labels, and an optional target line: drawn in the page, no
 * library. Each bar names its value (its <title>) for a pointer and a screen reader.
 */
function barChart(id, title, labels, values, target) {
  const w = 720;
  const h = 180;
  const left = 40;
  const bottom = 22;
  const top = 10;
  const plotH = h - bottom - top;
  const max = Math.max(0.0001, target || 0, ...values.map((v) => v || 0));
  const scale = max > 0.5 ? 1 : Math.min(1, Math.ceil(max * 20) / 20 || 0.05);
  const y = (v) => top + plotH - (Math.min(v, scale) / scale) * plotH;
  const bw = (w - left - 10) / Math.max(1, labels.length);
  const parts = [
    svg('line', { x1: left, y1: top + plotH, x2: w - 5, y2: top + plotH, stroke: '#9aa5b1' }),
    svg('text', { x: left - 4, y: y(scale) + 4, 'text-anchor': 'end', 'font-size': 10, fill: '#5b6b7b' }, pct(scale, 0)),
    svg('text', { x: left - 4, y: top + plotH + 4, 'text-anchor': 'end', 'font-size': 10, fill: '#5b6b7b' }, '0%'),
  ];
  labels.forEach((l, i) => {
    const v = values[i];
    const x = left + i * bw + bw * 0.15;
    if (v !== null && v !== undefined) {
      parts.push(svg('rect', { x: x + Math.max(0, bw * 0.7 - 48) / 2, y: y(v), width: Math.max(1, Math.min(48, bw * 0.7)), height: top + plotH - y(v), fill: target !== undefined && v > target ? '#c0392b' : '#2f6fb5' },
        svg('title', null, `${l}: ${pct(v, 2)}`)));
    }
    if (labels.length <= 31 || i % Math.ceil(labels.length / 24) === 0) {
      parts.push(svg('text', { x: x + bw * 0.35, y: h - 6, 'text-anchor': 'middle', 'font-size': 9, fill: '#5b6b7b' }, String(l).slice(-5)));
    }
  });
  if (target !== undefined && target !== null) {
    parts.push(svg('line', { x1: left, y1: y(target), x2: w - 5, y2: y(target), stroke: '#e67e22', 'stroke-dasharray': '5 3', 'stroke-width': 2 },
      svg('title', null, `${tt('rep.target')}: ${pct(target, 2)}`)));
  }
  const chart = svg('svg', { viewBox: `0 0 ${w} ${h}`, role: 'img', 'aria-label': title, class: 'chart', width: '100%' }, ...parts);
  return el('figure', { class: 'panel chart-box', id }, el('figcaption', null, title), chart);
}

/** The charts a report's table gives. */
function charts(rep, data) {
  const out = [];
  const idx = (k) => data.columns.findIndex((c) => c.key === k);
  if (rep.key === 'groups' && data.options.by !== 'agent') {
    const i = idx('answer_rate');
    out.push(barChart('chart-answer-rate', tt('rep.chart.answer_rate'), data.rows.map((r) => r[0]), data.rows.map((r) => r[i])));
  }
  if (rep.key === 'outbound' && data.rows.length) {
    const [i, t, c] = [idx('abandon_rate'), idx('target'), idx('campaign')];
    const first = data.rows[0][c];
    const rows = data.rows.filter((r) => r[c] === first);
    out.push(barChart('chart-abandon-rate', `${tt('rep.chart.abandon_rate')} (${first})`, rows.map((r) => r[1]), rows.map((r) => r[i]), rows[0][t]));
  }
  if (rep.key === 'states' && data.options.by === 'hour' && data.options.show === 'seconds') {
    const col = (r, k) => r[idx(k)] || 0;
    const occ = data.rows.map((r) => {
      const busy = col(r, 'talking') + col(r, 'hold') + col(r, 'wrap_up');
      const active = busy + col(r, 'ready') + col(r, 'ringing');
      return active ? busy / active : null;
    });
    out.push(barChart('chart-occupancy', tt('rep.chart.occupancy'), data.rows.map((r) => r[0]), occ));
  }
  return out;
}

// --------------------------------------------------------------------------------------- screens
export async function renderReports(view, kind, qs) {
  const mine = REPORTS.filter((r) => may('get', r.path));
  const rep = mine.find((r) => r.key === kind) || mine[0];
  const q = new URLSearchParams(qs || '');
  const tabs = el('nav', { class: 'chips', 'aria-label': tt('m.reports') },
    mine.map((r) => el('a', { href: `#/reports/${r.key}`, class: 'chip', 'aria-current': r.key === rep.key ? 'page' : null }, tt(`rep.${r.key}`))));
  const out = el('div', { id: 'rep-out', 'aria-live': 'polite' });
  const search = (params) => go(`#/reports/${rep.key}?${params.toString()}`);
  const form = await filterForm(rep, q, search);
  const dl = (encoding) => button(tt(encoding === 'utf-8' ? 'rep.csv_utf8' : 'rep.csv_sjis'), async () => {
    const params = new URLSearchParams(new FormData(form));
    for (const [k, v] of [...params]) if (v === '') params.delete(k);
    params.set('encoding', encoding);
    params.set('lang', S.lang);
    try {
      const { blob, name } = await download(`${rep.path}.csv?${params}`);
      saveBlob(blob, name);
    } catch (e) { notice(errorText(e), 'error'); }
  }, { dataset: { csv: encoding } });
  view.replaceChildren(
    el('div', { class: 'screen-head' }, el('h1', null, tt(`rep.${rep.key}`)), el('div', { class: 'actions' }, dl('utf-8'), dl('shift_jis'))),
    tabs,
    el('p', { class: 'help' }, tt(`rep.help.${rep.key}`)),
    form,
    out,
  );
  const params = new URLSearchParams(new FormData(form));
  for (const [k, v] of [...params]) if (v === '') params.delete(k);
  out.replaceChildren(el('p', { class: 'muted' }, tt('loading')));
  let data;
  try {
    data = await api('GET', `${rep.path}?${params}`);
  } catch (e) {
    out.replaceChildren(el('p', { class: 'error', role: 'alert' }, errorText(e)));
    return;
  }
  out.replaceChildren(...charts(rep, data), table(rep, data));
  if (data.options && data.options.truncated) out.append(el('p', { class: 'muted' }, tt('rep.truncated')));
}

// ------------------------------------------------------------------------------------ call history
export async function renderHistory(view, qs) {
  const q = new URLSearchParams(qs || '');
  const before = q.get('before');
  const [camps, groups, agents, codes] = await Promise.all([
    options('/campaigns', (r) => r.name),
    options('/dialing-groups', (r) => r.name),
    S.specs.has('users') ? listAll('/users?role=OP').then((us) => us.map((u) => [String(u.id), u.display_name])).catch(() => []) : [],
    S.specs.has('result-codes') ? listAll('/result-codes').catch(() => []) : [],
  ]);
  // A campaign result shows as its number and label (3 受注), a system result in the page's words.
  const labels = new Map(codes.map((c) => [`${c.campaign_id}:${c.number}`, `${c.number} ${c.label}`]));
  const resultText = (r) => labels.get(`${r.campaign_id}:${r.result}`) || resultLabel(r.result);
  const input = (name, attrs) => el('label', { class: 'filter' }, tt(`hist.${name}`), ' ', el('input', { name, id: `hist-${name}`, value: q.get(name) || '', ...attrs }));
  const form = el('form', { class: 'filters', id: 'hist-filters' },
    input('from', { type: 'date', value: q.get('from') || yesterday() }),
    input('to', { type: 'date', value: q.get('to') || today() }),
    input('tel', { type: 'search', inputmode: 'numeric', pattern: '[0-9]*', maxlength: 30 }),
    select('direction', tt('hist.direction'), ['outbound', 'inbound'].map((v) => [v, tt(`e.direction.${v}`)]), q.get('direction') || '', tt('all')),
    input('min_seconds', { type: 'number', min: 0 }),
    select('agent_id', tt('hist.agent'), agents, q.get('agent_id') || '', tt('all')),
    select('group_id', tt('rep.f.group'), groups, q.get('group_id') || '', tt('all')),
    select('campaign_id', tt('rep.f.campaign'), camps, q.get('campaign_id') || '', tt('all')),
    input('result', { type: 'search', maxlength: 64 }),
    button(tt('search'), null, { type: 'submit', class: 'primary' }));
  const filled = () => {
    const p = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (v !== '') p.set(k, v);
    return p;
  };
  form.addEventListener('submit', (ev) => { ev.preventDefault(); go(`#/call-history?${filled()}`); });
  const dl = (encoding) => button(tt(encoding === 'utf-8' ? 'rep.csv_utf8' : 'rep.csv_sjis'), async () => {
    const p = filled();
    p.set('encoding', encoding);
    p.set('lang', S.lang);
    try { const { blob, name } = await download(`/call-history.csv?${p}`); saveBlob(blob, name); } catch (e) { notice(errorText(e), 'error'); }
  }, { dataset: { csv: encoding } });
  const out = el('div', { id: 'hist-out' });
  view.replaceChildren(
    el('div', { class: 'screen-head' }, el('h1', null, tt('m.call-history')), el('div', { class: 'actions' }, dl('utf-8'), dl('shift_jis'))),
    form, out);
  const p = filled();
  if (before) p.set('before', before);
  p.set('limit', '50');
  let page;
  try {
    page = await api('GET', `/call-history?${p}`);
  } catch (e) {
    out.replaceChildren(el('p', { class: 'error', role: 'alert' }, errorText(e)));
    return;
  }
  if (!page.items.length) {
    out.replaceChildren(el('p', { class: 'empty' }, tt('empty')));
    return;
  }
  const urls = [];
  onLeave(() => urls.forEach((u) => URL.revokeObjectURL(u)));
  const canCallback = may('post', '/callbacks');
  const canReport = may('post', '/wrapup-records/{id}/report');
  const canMonitors = may('get', '/calls/{id}/monitors');
  const rows = page.items.map((r) => {
    const player = r.audio_url ? playerCell(r.audio_url, r.started_at, r.id, urls) : el('td', { class: 'player' }, '—');
    const cb = el('td', { class: 'callback', dataset: { callback: r.id } });
    if (r.callback_id) cb.append(String(r.callback_id));
    else if (canCallback) {
      const add = button('+', async () => {
        add.disabled = true;
        try {
          const made = await api('POST', '/callbacks', { call_id: r.id });
          cb.replaceChildren(String(made.id));
        } catch (e) { notice(errorText(e), 'error'); add.disabled = false; }
      }, { dataset: { addCallback: r.id } });
      add.setAttribute('aria-label', `${tt('hist.add_callback')} ${r.tel}`);
      cb.append(add);
    }
    const rep = el('td', { class: 'reported' });
    if (r.wrapup_id && canReport) {
      const box = el('input', { type: 'checkbox', checked: r.reported, 'aria-label': `${tt('hist.col.reported')} ${r.tel}`, dataset: { report: r.wrapup_id } });
      box.addEventListener('change', async () => {
        box.disabled = true;
        try { await api('POST', `/wrapup-records/${r.wrapup_id}/report`, { reported: box.checked }); } catch (e) { notice(errorText(e), 'error'); box.checked = !box.checked; }
        box.disabled = false;
      });
      rep.append(box);
    } else rep.append(r.reported ? '○' : '');
    return el('tr', { dataset: { call: r.id } },
      el('td', null, when(r.started_at)),
      el('td', null, t(`e.direction.${r.direction}`) ?? r.direction),
      el('td', null, r.tel),
      el('td', null, r.caller_id || '—'),
      el('td', null, r.campaign || '—'),
      el('td', null, r.group || '—'),
      el('td', null, r.agent || '—'),
      el('td', null, r.lead_name || '—'),
      el('td', null, resultText(r)),
      el('td', { class: 'num' }, duration(r.talk_ms)),
      player,
      rep,
      cb,
      canMonitors ? monitorsCell(r) : null);
  });
  const heads = ['started_at', 'direction', 'tel', 'caller_id', 'campaign', 'group', 'agent', 'customer', 'result', 'talk', 'recording', 'reported', 'callback'];
  if (canMonitors) heads.push('monitors');
  out.replaceChildren(
    el('div', { class: 'table-box' }, el('table', { class: 'records', id: 'hist-table', 'aria-label': tt('m.call-history') },
      el('thead', null, el('tr', null, heads.map((h) => el('th', { scope: 'col' }, tt(`hist.col.${h}`))))),
      el('tbody', null, rows))),
    el('div', { class: 'pager' },
      before ? button(tt('hist.newest'), () => { const x = filled(); go(`#/call-history?${x}`); }) : null,
      page.next ? button(tt('next'), () => { const x = filled(); x.set('before', page.next); go(`#/call-history?${x}`); }, { dataset: { next: page.next } }) : null));
}

/** `HH:MM:SS` of an RFC 3339 time of the API (already in the tenant's zone), or `—`. */
const clock = (at) => (at ? at.slice(11, 19) : '—');

/** What happened on the call beside its two parties, on demand: its supervisors (モニタリング,
 * ささやき, 割込), its parks (パーク保留) and its third parties (電話会議): who, when, how each ended. */
function monitorsCell(r) {
  const cell = el('td', { class: 'monitors', dataset: { monitors: r.id } });
  const show = button(tt('hist.show_monitors'), async () => {
    show.disabled = true;
    const read = (path) => (may('get', path) ? api('GET', path.replace('{id}', r.id)).then((b) => b.items) : Promise.resolve([]));
    // The times of day in the tenant's zone (the call's row gives the date).
    const ended = (why, words) => (why ? ` (${t(`${words}.${why}`) ?? why})` : '');
    try {
      const [monitors, parks, confs] = await Promise.all(
        [read('/calls/{id}/monitors'), read('/calls/{id}/parks'), read('/calls/{id}/conferences')]);
      const lines = [
        ...monitors.map((m) => `${tt(`hist.mode.${m.mode}`)} ${m.supervisor} ${clock(m.started_at)}–${clock(m.ended_at)}${ended(m.end_reason, 'hist.end')}`),
        ...parks.map((p) => `${tt('hist.park')} ${p.number} ${p.parked_by_name} ${clock(p.parked_at)}–${clock(p.ended_at)}${ended(p.outcome, 'hist.park_end')}${p.picked_by_name ? ` → ${p.picked_by_name}` : ''}`),
        ...confs.map((c) => `${tt('hist.conference')} ${c.number} ${c.agent} ${clock(c.started_at ?? c.requested_at)}–${clock(c.ended_at)}${ended(c.end_reason, 'hist.conf_end')}`),
      ];
      if (!lines.length) { cell.replaceChildren('—'); return; }
      cell.replaceChildren(el('ul', { class: 'monitor-list' }, lines.map((l) => el('li', null, l))));
    } catch (e) { notice(errorText(e), 'error'); show.disabled = false; }
  }, { class: 'small' });
  show.setAttribute('aria-label', `${tt('hist.show_monitors')} ${r.tel}`);
  cell.append(show);
  return cell;
}

function resultLabel(r) {
  return t(`e.result.${r}`) ?? r;
}
