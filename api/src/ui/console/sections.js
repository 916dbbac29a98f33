// Hand-written parts of the generic views, for the flows a spec cannot describe: starting and
// stopping a call job, a list's CSV upload and download, the members of a group or campaign, a
// lead's history, resetting a password (shown once), saving an unsaved wrap-up record. Each appears
// only when the caller's role may use its operation.

import { api, listAll, eventSource } from './api.js';
import { S, tt, el, button, link, fieldLabel, may, num, when, errorText, confirm, notice, showOnce, generatePassword, go, recordLabel, onLeave } from './core.js';
import { addViewSection, addWidget, exportButtons, refs } from './generic.js';

// ---------------------------------------------------------------------------- call job start/stop
addViewSection(async (spec, rec, actions) => {
  if (spec.key !== 'call-jobs') return null;
  const run = async (what) => {
    if (!(await confirm(tt(what === 'start' ? 'confirm_start' : 'confirm_stop')))) return;
    try {
      await api('POST', `/call-jobs/${rec.id}/${what}`);
      notice(tt('saved'));
      go(`#/r/call-jobs/${rec.id}`);
    } catch (e) { notice(errorText(e), 'error'); }
  };
  if (rec.status === 'running' && may('post', '/call-jobs/{id}/stop')) actions.prepend(button(tt('stop_job'), () => run('stop'), { class: 'danger', dataset: { job: 'stop' } }));
  if (rec.status !== 'running' && may('post', '/call-jobs/{id}/start')) actions.prepend(button(tt('start_job'), () => run('start'), { class: 'primary', dataset: { job: 'start' } }));
  if (rec.status === 'running' && may('get', '/wallboard/stream')) {
    actions.append(link('#/monitor', tt('m.monitor')));
    liveCounts(rec);
  }
  return null;
});

// ------------------------------------------------------------- a group's agents back to 待機
addViewSection(async (spec, rec, actions) => {
  if (spec.key !== 'dialing-groups' || !may('post', '/dialing-groups/{id}/ready')) return null;
  actions.prepend(button(tt('group_ready'), async () => {
    if (!(await confirm(tt('confirm_group_ready')))) return;
    try {
      const r = await api('POST', `/dialing-groups/${rec.id}/ready`);
      notice(tt('group_ready_done', { n: num(r.agent_ids.length) }));
    } catch (e) { notice(errorText(e), 'error'); }
  }, { dataset: { group: 'ready' } }));
  return null;
});

/**
 * A running job's target and remaining counts, live: each change of its campaign on the wallboard
 * feed (the dialer reports about once a second while it dials) brings the job's counts again, at
 * most every 2 s.
 */
async function liveCounts(rec) {
  let es = null;
  let closed = false;
  let timer = 0;
  onLeave(() => { closed = true; clearTimeout(timer); if (es) es.close(); });
  const refresh = async () => {
    timer = 0;
    const j = await api('GET', `/call-jobs/${rec.id}`).catch(() => null);
    if (!j || closed) return;
    for (const k of ['target_count', 'remaining_count']) {
      const dd = document.querySelector(`[data-f="${k}"]`);
      if (dd) dd.textContent = num(j[k]);
    }
  };
  const connect = async () => {
    if (closed) return;
    try { es = await eventSource('/wallboard/stream', '/wallboard/tickets'); } catch (_) { setTimeout(connect, 5000); return; }
    if (closed) { es.close(); return; }
    es.addEventListener('change', (m) => {
      const c = JSON.parse(m.data);
      if (c.tile === 'campaign' && c.campaign_id === rec.campaign_id && !timer) timer = setTimeout(refresh, 2000);
    });
    // A dropped stream: a new ticket (a spent one is refused).
    es.addEventListener('error', () => { es.close(); if (!closed) setTimeout(connect, 2000); });
  };
  connect();
}

// ----------------------------------------------------------------------- a list's CSV in and out
addViewSection(async (spec, rec, actions) => {
  if (spec.key !== 'lists') return null;
  if (may('post', '/lists/{id}/imports')) actions.prepend(button(tt('import_csv'), () => go(`#/import/${rec.id}`), { class: 'primary', dataset: { import: rec.id } }));
  if (may('get', '/lists/{id}/export.csv')) actions.append(...exportButtons(rec.id));
  return null;
});

// ------------------------------------------------------------------ members of a group/campaign
addViewSection(async (spec, rec) => {
  const path = `${spec.path}/{id}/agents`;
  if (!may('get', path)) return null;
  const editable = may('put', path);
  let current;
  try { current = new Set((await api('GET', `${spec.path}/${rec.id}/agents`)).user_ids); } catch (_) { return null; }
  const users = S.specs.has('users') ? await listAll('/users?role=OP').catch(() => []) : [];
  const section = el('section', { class: 'panel members', dataset: { members: spec.key } }, el('h2', null, `${tt('members')} (${num(current.size)})`));
  if (!users.length && editable) {
    section.append(el('p', { class: 'empty' }, tt('no_agents_to_pick')));
    return section;
  }
  if (!editable || !users.length) {
    section.append(el('p', null, [...current].map((id) => `#${id}`).join(', ') || tt('empty')));
    return section;
  }
  const box = el('fieldset', { class: 'checks' }, el('legend', null, tt('members_hint')),
    users.map((u) => el('label', null, el('input', { type: 'checkbox', value: u.id, checked: current.has(u.id) }), `${u.display_name} (${u.login})`)));
  const save = button(tt('save'), async () => {
    const ids = [...box.querySelectorAll('input:checked')].map((c) => Number(c.value));
    if (!(await confirm(tt('confirm_save')))) return;
    try {
      await api('PUT', `${spec.path}/${rec.id}/agents`, { user_ids: ids });
      notice(tt('saved'));
      go(`#/r/${spec.key}/${rec.id}`);
    } catch (e) { notice(errorText(e), 'error'); }
  }, { class: 'primary', dataset: { members_save: spec.key } });
  section.append(box, el('div', { class: 'buttons' }, save));
  return section;
});

// ---------------------------------------------------------------------------------- lead history
addViewSection(async (spec, rec) => {
  if (spec.key !== 'leads' || !may('get', '/leads/{id}/history')) return null;
  const section = el('section', { class: 'panel history' }, el('h2', null, tt('history')));
  const list = el('ol', { class: 'history-list' });
  try {
    const h = await api('GET', `/leads/${rec.id}/history`);
    for (const item of h.items) list.append(el('li', null, el('time', null, when(item.created_at)), ' ', item.text));
  } catch (_) { /* shown empty */ }
  section.append(list.children.length ? list : el('p', { class: 'empty' }, tt('no_history')));
  if (may('post', '/leads/{id}/history')) {
    const text = el('textarea', { rows: 2, maxlength: 5000, 'aria-label': tt('add_history') });
    section.append(el('div', { class: 'field' }, text), el('div', { class: 'buttons' }, button(tt('add_history'), async () => {
      if (!text.value.trim()) return;
      try {
        await api('POST', `/leads/${rec.id}/history`, { text: text.value });
        go(`#/r/leads/${rec.id}`);
      } catch (e) { notice(errorText(e), 'error'); }
    })));
  }
  return section;
});

// -------------------------------------------------------------------------- password reset, once
addViewSection(async (spec, rec, actions) => {
  const pw = spec.fields.find((f) => f.io === 'write');
  if (!pw || !spec.can.update) return null;
  actions.append(button(tt('reset_password'), async () => {
    if (!(await confirm(tt('reset_password')))) return;
    const value = generatePassword();
    try {
      const saved = await api('PATCH', `${spec.path}/${rec.id}`, { [pw.name]: value });
      const pairs = [];
      for (const k of ['sip_username', 'realm', 'login']) if (saved[k]) pairs.push([fieldLabel(spec.key, k), saved[k]]);
      pairs.push([fieldLabel(spec.key, pw.name), value]);
      await showOnce(pairs);
      notice(tt('saved'));
    } catch (e) { notice(errorText(e), 'error'); }
  }, { dataset: { reset: pw.name } }));
  return null;
});

// ------------------------------------------------------------------ ログインロック: unlock a user
addViewSection(async (spec, rec, actions) => {
  if (spec.key !== 'users' || !rec.locked_at || !may('post', '/users/{id}/unlock')) return null;
  actions.prepend(button(tt('unlock'), async () => {
    if (!(await confirm(tt('confirm_unlock')))) return;
    try {
      await api('POST', `/users/${rec.id}/unlock`);
      notice(tt('unlocked'));
      go(`#/r/users/${rec.id}`);
    } catch (e) { notice(errorText(e), 'error'); }
  }, { class: 'primary', dataset: { unlock: rec.id } }));
  return null;
});

// ------------------------------------------------------------------- an unsaved wrap-up record
addViewSection(async (spec, rec, actions) => {
  if (spec.key !== 'wrapup-records' || rec.saved || !may('post', '/wrapup-records/{id}/save')) return null;
  actions.prepend(button(tt('wr.save'), () => go(`#/unsaved/${rec.id}`), { class: 'primary' }));
  return null;
});

// ------------------------------------------------------------------------------------- widgets
/** A grant's record: a campaign or a list, by the kind chosen beside it. */
addWidget('grants.resource_id', async ({ value, common }) => {
  const select = el('select', common);
  const fill = async () => {
    const kindSel = document.getElementById('field-resource_kind');
    const table = kindSel && kindSel.value === 'list' ? 'customer_lists' : 'campaigns';
    const m = (await refs(table)) || new Map();
    select.replaceChildren(el('option', { value: '' }, '--'), [...m.values()].map((r) => el('option', { value: r.id, selected: r.id === value }, recordLabel(r))));
  };
  setTimeout(() => {
    const kindSel = document.getElementById('field-resource_kind');
    if (kindSel) kindSel.addEventListener('change', fill);
    fill();
  });
  return { input: select, get: () => (select.value ? Number(select.value) : undefined) };
});

/** A lead's custom fields, one input per field of the tenant (カスタム項目). */
addWidget('leads.custom', async ({ value, common }) => {
  const fields = S.specs.has('custom-fields') ? await listAll('/custom-fields').catch(() => []) : [];
  const v = value || {};
  const box = el('fieldset', { id: common.id, class: 'custom-fields', 'aria-describedby': common['aria-describedby'] });
  const inputs = [];
  for (const f of fields) {
    const id = `cf-${f.key}`;
    let input;
    const cur = v[f.key];
    if (['select', 'radio'].includes(f.kind)) {
      input = el('select', { id }, el('option', { value: '' }, '--'), (f.options || []).map((o) => el('option', { value: o, selected: o === cur }, o)));
    } else if (f.kind === 'checkbox') {
      input = el('input', { id, value: Array.isArray(cur) ? cur.join('|') : '', placeholder: (f.options || []).join('|') });
    } else if (f.kind === 'long_text') {
      input = el('textarea', { id, rows: 2 }, cur ?? '');
    } else {
      const type = { number: 'number', date: 'date', email: 'email', phone: 'tel' }[f.kind] || 'text';
      input = el('input', { id, type, value: cur ?? '' });
    }
    inputs.push([f, input]);
    box.append(el('div', { class: 'field' }, el('label', { for: id }, f.label), input));
  }
  if (!fields.length) box.append(el('p', { class: 'muted' }, tt('empty')));
  const get = () => {
    const out = {};
    for (const [f, input] of inputs) {
      const raw = input.value;
      if (raw === '') continue;
      out[f.key] = f.kind === 'number' ? Number(raw) : f.kind === 'checkbox' ? raw.split('|').filter(Boolean) : raw;
    }
    return out;
  };
  return { input: box, get };
});
