// 折り返し呼履歴 (BIZTEL 折り返し呼 §4.2, 管理者にて割り当てる場合): search the tenant's callbacks by
// registered date, status, assignee, number and label; open one, 編集, choose the assignee, the
// status, the label and the memo, 保存 -> 保存しますか? -> OK. A record someone changed meanwhile
// answers the seed's 409 text, shown with a reload. Admins also register a callback by hand.

import { api, listAll, download } from './api.js';
import { S, tt, el, button, link, may, num, when, today, errorText, confirm, notice, go, onLeave, shortcut } from './core.js';

const PAGE = 50;
const dash = (v) => (v === null || v === undefined || v === '' ? '-' : String(v));
const statusText = (s) => tt(`cb.status.${s}`);

async function assignees() {
  if (!S.specs.has('users')) return [];
  const users = await listAll('/users').catch(() => []);
  return users.filter((u) => ['MGR', 'SV', 'OP'].includes(u.role) && !u.disabled);
}

function daysAgo(n) {
  const d = new Date(`${today()}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() - n);
  return d.toISOString().slice(0, 10);
}

export async function renderCallbacks(view, id, qs, sub) {
  if (id === 'new') return renderNew(view);
  if (id && sub === 'edit' && may('patch', '/callbacks/{id}')) return renderEdit(view, Number(id));
  if (id) return renderOne(view, Number(id));
  const q = new URLSearchParams(qs || '');
  if (!q.has('date_from')) q.set('date_from', daysAgo(30));
  if (!q.has('date_to')) q.set('date_to', today());
  const offset = Number(q.get('offset')) || 0;
  view.replaceChildren(el('h1', null, tt('cb.title')), el('p', { class: 'help' }, tt('cb.hint')));
  const users = await assignees();
  const form = el('form', { class: 'panel filters cb-search', id: 'cb-search', role: 'search' });
  const input = (name, attrs) => el('input', { id: `cb-${name}`, name, value: q.get(name) || '', ...attrs });
  const sel = (name, options) => el('select', { id: `cb-${name}`, name },
    options.map(([v, label]) => el('option', { value: v, selected: (q.get(name) || '') === v }, label)));
  const field = (name, control) => el('label', { class: 'field', for: control.id }, el('span', null, tt(`cb.f.${name}`)), control);
  form.append(
    field('date_from', input('date_from', { type: 'date' })),
    field('date_to', input('date_to', { type: 'date' })),
    field('status', sel('status', [['', tt('all')], ['open', statusText('open')], ['done', statusText('done')]])),
    field('assignee', sel('assignee', [['', tt('all')], ['none', tt('cb.unassigned')], ...users.map((u) => [String(u.id), u.display_name])])),
    field('number', input('number', { type: 'tel', maxlength: 60, inputmode: 'tel' })),
    field('label', input('label', { maxlength: 255 })),
    el('div', { class: 'buttons' }, button(tt('search'), undefined, { type: 'submit', class: 'primary' }),
      may('post', '/callbacks') ? button(tt('cb.new'), () => go('#/callbacks/new')) : null));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const next = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (v) next.set(k, v);
    go(`#/callbacks?${next}`);
  });
  view.append(form);
  const params = new URLSearchParams();
  for (const [k, v] of q) if (v && k !== 'offset') params.set(k, v);
  let page;
  try {
    page = await api('GET', `/callbacks?${params}&limit=${PAGE}&offset=${offset}`);
  } catch (e) {
    view.append(el('p', { class: 'error', role: 'alert' }, errorText(e)));
    return;
  }
  if (!page.items.length) {
    view.append(el('p', { class: 'empty', id: 'cb-empty' }, tt('empty')));
    return;
  }
  const cols = ['id', 'registered_at', 'number', 'name', 'campaign', 'label', 'call', 'status', 'assignee', 'memo'];
  view.append(el('div', { class: 'table-box' }, el('table', { class: 'records', id: 'cb-table', 'aria-label': tt('cb.title') },
    el('thead', null, el('tr', null, cols.map((c) => el('th', { scope: 'col' }, tt(`cb.col.${c}`))))),
    el('tbody', null, page.items.map((c) => el('tr', { dataset: { callback: c.id } },
      el('td', null, link(`#/callbacks/${c.id}`, String(c.id), { 'aria-label': `${tt('cb.col.id')} ${c.id}` })),
      el('td', null, when(c.registered_at)),
      el('td', null, c.number),
      el('td', null, dash(c.name)),
      el('td', null, dash(c.campaign_name)),
      el('td', null, dash(c.label)),
      el('td', null, dash(c.call_record_id)),
      el('td', null, el('span', { class: `badge cb-${c.status}` }, statusText(c.status))),
      el('td', null, dash(c.assignee_name)),
      el('td', { class: 'memo' }, c.memo)))))));
  const to = offset + page.items.length;
  const at = (o) => { const n = new URLSearchParams(params); n.set('offset', o); return `#/callbacks?${n}`; };
  view.append(el('nav', { class: 'pager' }, el('span', { class: 'range' }, tt('range', { from: num(offset + 1), to: num(to), total: num(page.total) })),
    button(tt('prev'), () => go(at(Math.max(0, offset - PAGE))), { disabled: offset === 0 }),
    button(tt('next'), () => go(at(to)), { disabled: to >= page.total })));
}

async function renderOne(view, id) {
  let cb;
  try { cb = await api('GET', `/callbacks/${id}`); } catch (e) { view.replaceChildren(el('p', { class: 'error', role: 'alert' }, errorText(e))); return; }
  view.replaceChildren(el('nav', { class: 'crumbs' }, link('#/callbacks', `← ${tt('cb.title')}`)), el('h1', null, `${tt('cb.one')} ${cb.id}`));
  const facts = el('dl', { class: 'record', id: 'cb-record' });
  const fact = (k, v) => facts.append(el('dt', null, tt(`cb.col.${k}`)), el('dd', { dataset: { f: k } }, v));
  fact('status', statusText(cb.status));
  fact('assignee', cb.assignee_name || tt('cb.unregistered'));
  fact('registered_at', when(cb.registered_at));
  fact('number', cb.number);
  fact('name', dash(cb.name));
  fact('campaign', dash(cb.campaign_name));
  fact('label', dash(cb.label));
  fact('call', dash(cb.call_record_id));
  fact('memo', cb.memo || '');
  const actions = el('div', { class: 'buttons' });
  if (cb.recording_id) {
    const player = el('span', { class: 'player' });
    let url = null;
    onLeave(() => url && URL.revokeObjectURL(url));
    const play = button(tt('cb.play'), async () => {
      play.disabled = true;
      try {
        const { blob } = await download(`/callbacks/${cb.id}/audio`);
        url = URL.createObjectURL(blob);
        const audio = el('audio', { controls: true, src: url, 'aria-label': tt('cb.play') });
        player.replaceChildren(audio);
        audio.play().catch(() => {});
      } catch (e) { notice(errorText(e), 'error'); play.disabled = false; }
    });
    player.append(play);
    actions.append(player);
  }
  if (may('patch', '/callbacks/{id}')) actions.prepend(button(tt('edit'), () => go(`#/callbacks/${cb.id}/edit`), { class: 'primary', dataset: { action: 'edit' } }));
  view.append(el('section', { class: 'panel' }, facts, actions));
}

/** 409 and other refusals: the message, and for a conflict a reload of the record. */
function problemBox(cb) {
  const box = el('div', { class: 'error', role: 'alert', id: 'cb-problem' });
  box.show = (e) => {
    box.replaceChildren(errorText(e));
    if (e.status === 409) box.append(' ', button(tt('cb.reload'), () => go(`#/callbacks/${cb.id}`), { dataset: { action: 'reload' } }));
  };
  return box;
}

async function renderEdit(view, id) {
  let cb;
  try { cb = await api('GET', `/callbacks/${id}`); } catch (e) { view.replaceChildren(el('p', { class: 'error', role: 'alert' }, errorText(e))); return; }
  const users = await assignees();
  view.replaceChildren(el('nav', { class: 'crumbs' }, link(`#/callbacks/${cb.id}`, `← ${tt('cb.one')} ${cb.id}`)), el('h1', null, `${tt('cb.one')} ${cb.id}: ${tt('edit')}`));
  const form = el('form', { class: 'panel form', id: 'cb-form' });
  const row = (name, control) => {
    control.id = `cbe-${name}`;
    const err = el('p', { class: 'field-error', id: `cbe-${name}-error`, role: 'alert' });
    control.setAttribute('aria-describedby', err.id);
    form.append(el('div', { class: 'field', dataset: { field: name } }, el('label', { for: control.id }, tt(`cb.col.${name}`)), control, err));
    return control;
  };
  const assignee = row('assignee', el('select', null, el('option', { value: '' }, tt('cb.unregistered')),
    users.map((u) => el('option', { value: String(u.id), selected: u.id === cb.assignee_user_id }, `${u.display_name} (${u.role})`))));
  const status = row('status', el('select', null, ['open', 'done'].map((s) => el('option', { value: s, selected: cb.status === s }, statusText(s)))));
  const statusHelp = el('p', { class: 'help', id: 'cbe-status-help' }, tt('cb.status_needs_assignee'));
  status.parentElement.append(statusHelp);
  const sync = () => { status.disabled = !assignee.value; statusHelp.hidden = Boolean(assignee.value); };
  assignee.addEventListener('change', sync);
  sync();
  const label = row('label', el('input', { value: cb.label || '', maxlength: 255 }));
  const memo = row('memo', el('textarea', { rows: 5, maxlength: 5000 }, cb.memo || ''));
  const problem = problemBox(cb);
  form.append(problem, el('div', { class: 'buttons' },
    button(tt('cb.save'), undefined, { type: 'submit', class: 'primary', keys: 'Control+S', keyText: 'Ctrl+S' }),
    button(tt('cancel'), () => go(`#/callbacks/${cb.id}`))));
  view.append(form);
  assignee.focus();
  shortcut('Control+s', () => form.requestSubmit());
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    for (const e of form.querySelectorAll('.field-error')) e.textContent = '';
    problem.replaceChildren();
    const body = { version: cb.version, memo: memo.value, label: label.value || null };
    const who = assignee.value ? Number(assignee.value) : null;
    if (who !== cb.assignee_user_id) body.assignee_user_id = who;
    if (who && status.value !== cb.status) body.status = status.value;
    if (!(await confirm(tt('confirm_save')))) return;
    try {
      await api('PATCH', `/callbacks/${cb.id}`, body);
      notice(tt('saved'));
      go(`#/callbacks/${cb.id}`);
    } catch (e) {
      const slot = e.field && form.querySelector(`#cbe-${e.field === 'assignee_user_id' ? 'assignee' : e.field}-error`);
      if (slot && e.status !== 409) slot.textContent = errorText(e);
      else problem.show(e);
    }
  });
}

async function renderNew(view) {
  const users = await assignees();
  const campaigns = S.specs.has('campaigns') ? await listAll('/campaigns').catch(() => []) : [];
  view.replaceChildren(el('nav', { class: 'crumbs' }, link('#/callbacks', `← ${tt('cb.title')}`)), el('h1', null, tt('cb.new')));
  const form = el('form', { class: 'panel form', id: 'cb-new' });
  const row = (name, control) => {
    control.id = `cbn-${name}`;
    const err = el('p', { class: 'field-error', id: `cbn-${name}-error`, role: 'alert' });
    form.append(el('div', { class: 'field' }, el('label', { for: control.id }, tt(`cb.col.${name}`)), control, err));
    return control;
  };
  const number = row('number', el('input', { type: 'tel', required: true, maxlength: 60 }));
  const campaign = row('campaign', el('select', null, el('option', { value: '' }, '-'), campaigns.map((c) => el('option', { value: String(c.id) }, c.name))));
  const label = row('label', el('input', { maxlength: 255 }));
  const assignee = row('assignee', el('select', null, el('option', { value: '' }, tt('cb.unregistered')), users.map((u) => el('option', { value: String(u.id) }, `${u.display_name} (${u.role})`))));
  const memo = row('memo', el('textarea', { rows: 4, maxlength: 5000 }));
  const problem = el('p', { class: 'error', role: 'alert' });
  form.append(problem, el('div', { class: 'buttons' }, button(tt('cb.save'), undefined, { type: 'submit', class: 'primary' })));
  view.append(form);
  number.focus();
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    for (const e of form.querySelectorAll('.field-error')) e.textContent = '';
    const body = { number: number.value, memo: memo.value };
    if (campaign.value) body.campaign_id = Number(campaign.value);
    if (label.value) body.label = label.value;
    if (assignee.value) body.assignee_user_id = Number(assignee.value);
    if (!(await confirm(tt('confirm_save')))) return;
    try {
      const cb = await api('POST', '/callbacks', body);
      notice(tt('saved'));
      go(`#/callbacks/${cb.id}`);
    } catch (e) {
      const name = { campaign_id: 'campaign', assignee_user_id: 'assignee' }[e.field] || e.field;
      const slot = name && form.querySelector(`#cbn-${name}-error`);
      if (slot) slot.textContent = errorText(e); else problem.textContent = errorText(e);
    }
  });
}
