// Hand-written screens: 通話録音 (play in the page, download one, a day's zip with its progress,
// storage against the quota), 応対記録(未保存) (an SV opens an agent's unsaved record and saves it),
// the tenant's settings, and the home screen's set-up steps.

import { api, listAll, download, saveBlob } from './api.js';
import {
  S, tt, el, button, link, fieldLabel, enumLabel, may, num, pct, bytes, duration, when, today, errorText, confirm,
  notice, go, onLeave, fromLocalInput, recordLabel, shortcut,
} from './core.js';

// ------------------------------------------------------------------------------------ recordings
/**
 * A table cell with 再生: the recording is fetched with the caller's token and played in the page
 * from a blob: URL (kept in `urls`, revoked when the screen changes).
 */
export function playerCell(audioUrl, startedAt, id, urls) {
  const player = el('td', { class: 'player' });
  const play = button(tt('rec.play'), async () => {
    play.disabled = true;
    try {
      const { blob } = await download(audioUrl);
      const url = URL.createObjectURL(blob);
      urls.push(url);
      const audio = el('audio', { controls: true, src: url, 'aria-label': `${tt('rec.play')} ${when(startedAt)}` });
      player.replaceChildren(audio);
      audio.play().catch(() => {});
    } catch (e) { notice(errorText(e), 'error'); play.disabled = false; }
  }, { dataset: { play: id } });
  player.append(play);
  return player;
}

export async function renderRecordings(view, qs) {
  const q = new URLSearchParams(qs || '');
  const date = q.get('date') || today();
  const offset = Number(q.get('offset')) || 0;
  view.replaceChildren(el('h1', null, tt('rec.title')));
  if (may('get', '/recordings/usage')) {
    try {
      const u = await api('GET', '/recordings/usage');
      const share = u.quota_bytes ? u.accounted_bytes / u.quota_bytes : null;
      view.append(el('section', { class: 'panel usage', id: 'rec-usage' },
        el('h2', null, tt('rec.usage')),
        el('div', { class: 'progress-row' },
          el('progress', { max: Math.max(1, u.quota_bytes), value: Math.min(u.accounted_bytes, u.quota_bytes), 'aria-label': tt('rec.usage') }),
          el('span', null, tt('rec.quota', { used: bytes(u.accounted_bytes), quota: bytes(u.quota_bytes), pct: pct(share) }))),
        el('p', { class: 'muted' }, tt('rec.count', { n: num(u.recordings) }), ' · ', tt('rec.pending', { n: num(u.pending_encoding) }),
          u.oldest_started_at ? ` · ${tt('rec.oldest', { at: when(u.oldest_started_at) })}` : '')));
    } catch (_) { /* usage is for MGR and SV */ }
  }
  const dateInput = el('input', { type: 'date', id: 'rec-date', value: date, 'aria-label': tt('rec.date') });
  dateInput.addEventListener('change', () => go(`#/recordings?date=${dateInput.value}`));
  const zipState = el('span', { class: 'muted', id: 'rec-zip-state', role: 'status' });
  const zip = button(tt('rec.zip'), async () => {
    zip.disabled = true;
    try {
      const { blob, name } = await download(`/recordings/zip?date=${date}`, (n) => { zipState.textContent = tt('rec.zip_progress', { bytes: bytes(n) }); });
      saveBlob(blob, name);
      zipState.textContent = bytes(blob.size);
    } catch (e) { zipState.textContent = errorText(e); }
    zip.disabled = false;
  }, { dataset: { zip: date } });
  view.append(el('div', { class: 'filters' }, el('label', null, tt('rec.date'), ' ', dateInput), zip, zipState));
  let page;
  try {
    page = await api('GET', `/recordings?date_from=${date}&date_to=${date}&limit=50&offset=${offset}`);
  } catch (e) {
    view.append(el('p', { class: 'error', role: 'alert' }, errorText(e)));
    return;
  }
  const users = S.specs.has('users') ? new Map((await listAll('/users').catch(() => [])).map((u) => [u.id, u])) : new Map();
  if (!page.items.length) {
    view.append(el('p', { class: 'empty' }, tt('empty')));
    return;
  }
  const urls = [];
  onLeave(() => urls.forEach((u) => URL.revokeObjectURL(u)));
  const rows = page.items.map((r) => {
    const player = playerCell(r.audio_url, r.started_at, r.id, urls);
    const dl = button(tt('rec.download'), async () => {
      try { const { blob, name } = await download(r.audio_url); saveBlob(blob, name); } catch (e) { notice(errorText(e), 'error'); }
    });
    const agent = users.get(r.agent_user_id);
    return el('tr', { dataset: { recording: r.id } },
      el('td', null, when(r.started_at)),
      el('td', null, agent ? recordLabel(agent) : r.agent_user_id ? `#${r.agent_user_id}` : '—'),
      el('td', null, r.call_record_id ? link(`#/r/call-records/${r.call_record_id}`, `#${r.call_record_id}`) : '—'),
      el('td', { class: 'num' }, duration(r.duration_ms)),
      el('td', { class: 'num' }, bytes(r.bytes)),
      el('td', null, r.format),
      player, el('td', null, dl));
  });
  view.append(el('div', { class: 'table-box' }, el('table', { class: 'records', 'aria-label': tt('rec.title') },
    el('thead', null, el('tr', null, ['rec.started', 'rec.agent', 'rec.call', 'rec.duration', 'rec.size', 'rec.format', 'rec.play', 'rec.download'].map((k) => el('th', { scope: 'col' }, tt(k))))),
    el('tbody', null, rows))));
  const to = offset + page.items.length;
  view.append(el('nav', { class: 'pager' }, el('span', { class: 'range' }, tt('range', { from: num(offset + 1), to: num(to), total: num(page.total) })),
    button(tt('prev'), () => go(`#/recordings?date=${date}&offset=${Math.max(0, offset - 50)}`), { disabled: offset === 0 }),
    button(tt('next'), () => go(`#/recordings?date=${date}&offset=${to}`), { disabled: to >= page.total })));
}

// ------------------------------------------------------------------------ unsaved wrap-up records
const SYSTEM_RESULTS = ['busy', 'no_entry', 'timeout', 'cancel', 'error'];
// CALLTREE's default statuses: fixed in every tenant (store::results).
const DEFAULT_RESULTS = ['no_contact', 'fax', 'not_in_service', 'prospect', 'recall', 'complaint'];

export async function renderUnsaved(view, id) {
  if (id) return renderUnsavedOne(view, id);
  view.replaceChildren(el('h1', null, tt('wr.title')), el('p', { class: 'help' }, tt('wr.hint')));
  let page;
  try {
    page = await api('GET', '/wrapup-records?saved=false&sort=-id&limit=200');
  } catch (e) {
    view.append(el('p', { class: 'error', role: 'alert' }, errorText(e)));
    return;
  }
  if (!page.items.length) {
    view.append(el('p', { class: 'empty', id: 'unsaved-empty' }, tt('empty')));
    return;
  }
  const users = S.specs.has('users') ? new Map((await listAll('/users').catch(() => [])).map((u) => [u.id, u])) : new Map();
  view.append(el('div', { class: 'table-box' }, el('table', { class: 'records', 'aria-label': tt('wr.title') },
    el('thead', null, el('tr', null, [fieldLabel('wrapup-records', 'created_at'), fieldLabel('wrapup-records', 'agent_user_id'), fieldLabel('wrapup-records', 'lead_id'), fieldLabel('wrapup-records', 'result'), tt('actions')].map((h) => el('th', { scope: 'col' }, h)))),
    el('tbody', null, page.items.map((r) => el('tr', { dataset: { id: r.id } },
      el('td', null, when(r.created_at)),
      el('td', null, users.get(r.agent_user_id) ? recordLabel(users.get(r.agent_user_id)) : `#${r.agent_user_id}`),
      el('td', null, r.lead_id ? link(`#/r/leads/${r.lead_id}`, `#${r.lead_id}`) : '—'),
      el('td', null, enumLabel('wrapup-records', 'result', r.result)),
      el('td', null, button(tt('wr.open'), () => go(`#/unsaved/${r.id}`), { class: 'primary' }))))))));
}

async function renderUnsavedOne(view, id) {
  let rec;
  try { rec = await api('GET', `/wrapup-records/${id}`); } catch (e) { view.replaceChildren(el('p', { class: 'error', role: 'alert' }, errorText(e))); return; }
  const call = rec.call_record_id ? await api('GET', `/call-records/${rec.call_record_id}`).catch(() => null) : null;
  const lead = rec.lead_id ? await api('GET', `/leads/${rec.lead_id}`).catch(() => null) : null;
  const codes = call && call.campaign_id ? await listAll(`/result-codes?campaign_id=${call.campaign_id}`).catch(() => []) : [];
  view.replaceChildren(el('nav', { class: 'crumbs' }, link('#/unsaved', `← ${tt('wr.title')}`)), el('h1', null, `${tt('wr.title')} #${rec.id}`));
  const facts = el('dl', { class: 'record' },
    el('dt', null, fieldLabel('leads', 'name')), el('dd', null, lead ? `${lead.name} (${lead.kana})` : '—'),
    el('dt', null, fieldLabel('leads', 'tel')), el('dd', null, call ? call.tel : '—'),
    el('dt', null, tt('wr.call')), el('dd', null, call ? `${when(call.bridged_at || call.started_at)} – ${when(call.ended_at)}` : '—'));
  view.append(el('section', { class: 'panel' }, facts));
  const form = el('form', { class: 'panel form', id: 'wrapup-form' });
  const field = (name, label, input) => {
    const err = el('p', { class: 'field-error', id: `wr-${name}-error`, role: 'alert' });
    input.id = `wr-${name}`;
    input.setAttribute('aria-describedby', err.id);
    form.append(el('div', { class: 'field', dataset: { field: name } }, el('label', { for: input.id }, label), input, err));
    return input;
  };
  const opt = (v, label, sel) => el('option', { value: v, selected: sel }, label);
  const who = field('interlocutor', tt('wr.interlocutor'), el('select', null, ['self', 'other'].map((v) => opt(v, enumLabel('wrapup-records', 'interlocutor', v), rec.interlocutor === v))));
  const result = field('result', tt('wr.result'), el('select', { required: true },
    codes.length ? el('optgroup', { label: tt('wr.campaign_results') }, codes.map((c) => opt(String(c.number), `${c.number} ${c.label}`, false))) : null,
    el('optgroup', { label: tt('wr.default_results') }, DEFAULT_RESULTS.map((r) => opt(r, enumLabel('wrapup-records', 'result', r), r === rec.result))),
    el('optgroup', { label: tt('wr.system_results') }, SYSTEM_RESULTS.map((r) => opt(r, enumLabel('wrapup-records', 'result', r), r === rec.result)))));
  const other = field('other_tel', tt('wr.other_tel'), el('input', { type: 'tel', maxlength: 60 }));
  const next = field('next_action', tt('wr.next_action'), el('select', null, ['continue', 'recall', 'complete'].map((v) => opt(v, enumLabel('wrapup-records', 'next_action', v), false))));
  const recallAt = field('recall_at', tt('wr.recall_at'), el('input', { type: 'datetime-local' }));
  const memo = field('memo', tt('wr.memo'), el('textarea', { rows: 4, maxlength: 5000 }, rec.memo || ''));
  const after = field('state_after', tt('wr.state_after'), el('select', null, ['continue', 'break', 'away', 'end_job'].map((v) => opt(v, enumLabel('wrapup-records', 'state_after', v), false))));
  const problem = el('p', { class: 'error', role: 'alert' });
  const save = button(tt('wr.save'), undefined, { type: 'submit', class: 'primary', keys: 'Control+S', keyText: 'Ctrl+S' });
  form.append(problem, el('div', { class: 'buttons' }, save));
  view.append(form);
  result.focus();
  shortcut('Control+s', () => form.requestSubmit());
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    for (const e of form.querySelectorAll('.field-error')) e.textContent = '';
    problem.textContent = '';
    const body = { interlocutor: who.value, result: result.value, next_action: next.value, memo: memo.value, state_after: after.value };
    if (other.value) body.other_tel = other.value;
    if (recallAt.value) body.recall_at = fromLocalInput(recallAt.value);
    if (!(await confirm(tt('confirm_save')))) return;
    save.disabled = true;
    try {
      await api('POST', `/wrapup-records/${rec.id}/save`, body);
      notice(tt('saved'));
      go('#/unsaved');
    } catch (e) {
      save.disabled = false;
      const slot = e.field && form.querySelector(`#wr-${e.field}-error`);
      if (slot) {
        slot.textContent = errorText(e);
        form.querySelector(`#wr-${e.field}`).setAttribute('aria-invalid', 'true');
        form.querySelector(`#wr-${e.field}`).focus();
      } else problem.textContent = errorText(e);
    }
  });
}

// ------------------------------------------------------------------------------------ tenant
export async function renderTenant(view) {
  let ten;
  try { ten = await api('GET', '/tenant'); } catch (e) { view.replaceChildren(el('p', { class: 'error', role: 'alert' }, errorText(e))); return; }
  view.replaceChildren(el('h1', null, tt('ten.title')));
  const editable = may('patch', '/tenant');
  const form = el('form', { class: 'panel form', id: 'tenant-form' });
  const inputs = {};
  const row = (name, label, input, helpText) => {
    input.id = `ten-${name}`;
    input.disabled = !editable;
    const err = el('p', { class: 'field-error', id: `ten-${name}-error`, role: 'alert' });
    inputs[name] = { input, err };
    form.append(el('div', { class: 'field' }, el('label', { for: input.id }, label), input, helpText ? el('p', { class: 'help' }, helpText) : null, err));
  };
  form.append(el('div', { class: 'field' }, el('span', { class: 'label' }, tt('ten.code')), el('code', null, ten.code)));
  row('name', tt('ten.name'), el('input', { value: ten.name, maxlength: 255 }));
  row('time_zone', tt('ten.time_zone'), el('input', { value: ten.time_zone, maxlength: 64 }));
  row('history_retention_days', tt('ten.retention'), el('input', { type: 'number', min: 91, max: 3650, value: ten.history_retention_days }), tt('ten.retention_help'));
  row('recording_quota_bytes', tt('ten.quota'), el('input', { type: 'number', min: 0, step: 'any', value: ten.recording_quota_bytes / 1e9 }), tt('ten.quota_help'));
  row('closed_on_national_holidays', tt('ten.holidays'), el('input', { type: 'checkbox', checked: ten.closed_on_national_holidays }), tt('ten.holidays_help'));
  row('session_ttl_minutes', tt('ten.session_ttl'), el('input', { type: 'number', min: 5, max: 43200, value: ten.session_ttl_minutes }), tt('ten.session_ttl_help'));
  const problem = el('p', { class: 'error', role: 'alert' });
  form.append(problem);
  if (editable) form.append(el('div', { class: 'buttons' }, button(tt('save'), undefined, { type: 'submit', class: 'primary' })));
  view.append(form);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    for (const { err } of Object.values(inputs)) err.textContent = '';
    const body = {
      name: inputs.name.input.value,
      time_zone: inputs.time_zone.input.value,
      history_retention_days: Number(inputs.history_retention_days.input.value),
      recording_quota_bytes: Math.round(Number(inputs.recording_quota_bytes.input.value) * 1e9),
      session_ttl_minutes: Number(inputs.session_ttl_minutes.input.value),
      closed_on_national_holidays: inputs.closed_on_national_holidays.input.checked,
    };
    if (!(await confirm(tt('confirm_save')))) return;
    try {
      await api('PATCH', '/tenant', body);
      notice(tt('saved'));
    } catch (e) {
      const slot = e.field && inputs[e.field];
      if (slot) { slot.err.textContent = errorText(e); slot.input.focus(); } else problem.textContent = errorText(e);
    }
  });
}

// ------------------------------------------------------------------------------------------ home
export async function renderHome(view) {
  view.replaceChildren(el('h1', null, tt('home.title')), el('p', { class: 'help' }, tt('home.text')));
  const steps = [
    ['campaigns', '#/r/campaigns'], ['batches', '#/r/batches'], ['lists', '#/r/lists'], ['dialing-groups', '#/r/dialing-groups'],
    ['agents', '#/agents'], ['caller-ids', '#/r/caller-ids'], ['call-jobs', '#/r/call-jobs'], ['monitor', '#/monitor'],
  ];
  const ol = el('ol', { class: 'steps' });
  for (const [k, href] of steps) {
    const spec = S.specs.get(k === 'agents' ? 'users' : k);
    // Only the steps this role takes: the records it may make, the monitor of the jobs it runs.
    const reachable = k === 'monitor' ? may('get', '/wallboard/stream') && may('post', '/call-jobs/{id}/stop') : Boolean(spec && spec.can.create);
    if (!reachable) continue;
    const count = el('span', { class: 'muted' });
    ol.append(el('li', null, link(href, tt(`home.step.${k}`)), ' ', count));
    if (spec) {
      const filter = k === 'agents' ? '?role=OP&limit=1' : '?limit=1';
      api('GET', `${spec.path}${filter}`).then((r) => { count.textContent = tt('home.count', { n: num(r.total) }); }).catch(() => {});
    }
  }
  view.append(el('section', { class: 'panel' }, ol.children.length ? ol : el('p', null, tt('home.menu'))));
}
