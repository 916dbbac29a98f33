// The generic screens: a list (paged, sorted, filtered, searched), a view and a form for every
// resource of the registry, built from its spec (GET /console/specs): a field's type picks its
// input and its column, its access whether it is shown and editable; the operations the caller's
// role may use decide whether a button is there. Nothing here names a field of a resource, but for
// the few widgets a flow needs (a grant's record, a lead's custom fields, caller-ID suggestions).

import { api, listAll, upload, download, saveBlob, HttpError } from './api.js';
import {
  S, t, tt, el, button, link, resourceName, recordName, fieldLabel, enumLabel, help, may, num, when, errorText,
  fromLocalInput, toLocalInput, confirm, notice, showOnce, generatePassword, go, shortcut, recordLabel,
} from './core.js';

const PAGE_SIZE = 50;
/** Tables too large to load as a choice: shown and entered by id. */
const LARGE = new Set(['leads', 'call_records']);

// ------------------------------------------------------------------------------- references
const refCache = new Map();
export function clearRefs() { refCache.clear(); }

/** id -> record of a table the caller may read (bounded; large tables are not loaded). */
export async function refs(table, query = '') {
  const spec = S.byTable.get(table);
  if (!spec || LARGE.has(table)) return null;
  const k = `${table}?${query}`;
  if (!refCache.has(k)) {
    refCache.set(k, listAll(`${spec.path}${query ? `?${query}` : ''}`).then((items) => new Map(items.map((r) => [r.id, r]))).catch(() => null));
  }
  return refCache.get(k);
}

function refLink(table, id, rec) {
  const spec = S.byTable.get(table);
  const label = rec ? recordLabel(rec) : `#${id}`;
  return spec ? link(`#/r/${spec.key}/${id}`, label) : label;
}

// ------------------------------------------------------------------------------------ display
const isColumn = (f) => f.io !== 'write' && !['object', 'refs'].includes(f.type.kind) && !(f.type.kind === 'text' && f.type.max > 255) && !(f.type.kind === 'list' && f.name !== 'tags');
const LABEL_FIELDS = ['name', 'display_name', 'label', 'number', 'login', 'sip_username', 'key'];
const ID_COLUMN = { name: 'id', type: { kind: 'int' }, io: 'read', sort: true };

/** A list's columns: the record's label first (its link), else its id. */
function columns(spec, skip) {
  const cols = spec.fields.filter((f) => isColumn(f) && f.name !== skip);
  const label = LABEL_FIELDS.map((n) => cols.find((f) => f.name === n)).find(Boolean);
  return label ? [label, ...cols.filter((f) => f !== label)] : [ID_COLUMN, ...cols];
}

/** A value as a cell or a definition: text, a link, a swatch. */
function show(spec, f, value, names) {
  if (value === null || value === undefined || value === '') return '—';
  const k = f.type.kind;
  if (f.name === 'id') return `#${value}`;
  if ((k === 'list' || k === 'refs') && !value.length) return '—';
  if (k === 'object' && !Object.keys(value).length) return '—';
  if (k === 'bool') return t(`e.${spec.key}.${f.name}.${value}`) ?? (value ? tt('yes') : tt('no'));
  if (k === 'enum') return enumLabel(spec.key, f.name, value);
  if (k === 'instant') return when(value);
  if (k === 'int' || k === 'real') return num(value);
  if (k === 'color') return el('span', { class: 'swatch-text' }, el('span', { class: 'swatch', style: `--bg:${value}` }), value);
  if (k === 'ref') return refLink(f.type.table, value, names && names.get(f.type.table) ? names.get(f.type.table).get(value) : null);
  if (k === 'refs') {
    const m = names && names.get(f.type.table);
    return el('span', null, value.flatMap((id, i) => [i ? ', ' : '', refLink(f.type.table, id, m ? m.get(id) : null)]));
  }
  if (k === 'list') return value.map(String).join(f.name === 'tags' ? ' ' : ', ');
  if (k === 'object') return el('span', { class: 'kv' }, Object.entries(value).map(([a, b]) => el('span', null, `${a}: ${Array.isArray(b) ? b.join('|') : b}`)));
  if (f.name === 'result') return enumLabel(spec.key, 'result', value);
  return String(value);
}

/** The referenced tables' records a set of fields needs for display. */
async function namesFor(fields) {
  const tables = [...new Set(fields.filter((f) => f.type.kind === 'ref' || f.type.kind === 'refs').map((f) => f.type.table))];
  const m = new Map();
  await Promise.all(tables.map(async (tb) => { const r = await refs(tb); if (r) m.set(tb, r); }));
  return m;
}

// ------------------------------------------------------------------------------------------ list
function parseQuery(qs) {
  const p = new URLSearchParams(qs || '');
  return Object.fromEntries(p.entries());
}

function hashOf(key, q) {
  const p = new URLSearchParams(Object.entries(q).filter(([, v]) => v !== '' && v !== undefined && v !== null));
  const s = p.toString();
  return `#/r/${key}${s ? `?${s}` : ''}`;
}

/**
 * The list screen of a resource. `fixed` are filters of a menu entry (the agents: role=OP), kept
 * and not shown as filters; `title` names the entry.
 */
export async function renderList(view, key, qs, { fixed = {}, title, base } = {}) {
  const spec = S.specs.get(key);
  const q = { ...parseQuery(qs) };
  const hash = (next) => {
    const p = new URLSearchParams(Object.entries(next).filter(([, v]) => v !== '' && v !== undefined && v !== null)).toString();
    return `${base || `#/r/${key}`}${p ? `?${p}` : ''}`;
  };
  const offset = Number(q.offset) || 0;
  const cols = columns(spec);
  const extra = spec.extra.map((e) => ({ ...e, io: 'read', column: true, sort: false }));
  const params = new URLSearchParams({ limit: PAGE_SIZE, offset });
  for (const [k, v] of Object.entries({ ...q, ...fixed })) if (k !== 'offset' && v !== '') params.set(k, v);
  const h1 = el('h1', null, title || resourceName(key));
  const head = el('div', { class: 'screen-head' }, h1);
  const actions = el('div', { class: 'actions' });
  head.append(actions);
  view.replaceChildren(head);
  if (spec.can.create) {
    const prefill = new URLSearchParams(Object.entries({ ...fixed, ...filtersOnly(spec, q) }));
    const nb = button(`+ ${tt('new')}`, () => go(`#/r/${key}/new${prefill.toString() ? `?${prefill}` : ''}`), { class: 'primary', keys: 'n', keyText: 'N' });
    actions.append(nb);
    shortcut('n', () => nb.click());
  }
  extraListActions(spec, q, actions);

  // Search and filters.
  const form = el('form', { class: 'filters', role: 'search', 'aria-label': tt('search') });
  if (spec.fields.some((f) => f.search)) {
    const input = el('input', { type: 'search', name: 'q', value: q.q || '', 'aria-label': tt('search'), placeholder: tt('search_placeholder'), maxlength: 200, id: 'list-q' });
    form.append(input);
    shortcut('/', () => input.focus());
  }
  const filterFields = spec.fields.filter((f) => f.filter && !(f.name in fixed));
  const names = await namesFor([...cols, ...filterFields]);
  for (const f of filterFields) form.append(await filterInput(spec, f, q[f.name] ?? '', names));
  form.append(button(tt('search'), undefined, { type: 'submit', keys: '/', keyText: '/' }));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const next = {};
    for (const [k, v] of new FormData(form).entries()) if (v !== '') next[k] = v;
    if (q.sort) next.sort = q.sort;
    go(hash(next));
  });
  view.append(form);
  if (spec.fields.some((f) => f.name === 'attempts' && f.filter)) view.append(attemptShortcuts(q, hash));

  const body = el('div', { class: 'table-box' }, el('p', { class: 'muted' }, tt('loading')));
  view.append(body);
  let page;
  try {
    page = await api('GET', `${spec.path}?${params}`);
  } catch (e) {
    body.replaceChildren(el('p', { class: 'error', role: 'alert' }, errorText(e)));
    return;
  }
  const all = [...cols, ...extra];
  const bulk = may('post', `${spec.path}/bulk-delete`);
  const table = el('table', { class: 'records', 'aria-label': title || resourceName(key) });
  const tr = el('tr');
  if (bulk) tr.append(el('th', { class: 'check' }, el('input', { type: 'checkbox', 'aria-label': tt('select_all'), onchange: (ev) => { for (const c of table.querySelectorAll('tbody input[type=checkbox]')) c.checked = ev.target.checked; updateBulk(); } })));
  for (const f of all) {
    const th = el('th', { scope: 'col' });
    const label = f.name === 'id' ? 'ID' : fieldLabel(key, f.name);
    if (f.sort) {
      const asc = q.sort === f.name;
      const desc = q.sort === `-${f.name}`;
      th.setAttribute('aria-sort', asc ? 'ascending' : desc ? 'descending' : 'none');
      th.append(link(hash({ ...q, offset: 0, sort: asc ? `-${f.name}` : f.name }), `${label}${asc ? ' ▲' : desc ? ' ▼' : ''}`));
    } else {
      th.textContent = label;
    }
    tr.append(th);
  }
  tr.append(el('th', { scope: 'col', class: 'row-actions' }, tt('actions')));
  table.append(el('thead', null, tr));
  const tb = el('tbody');
  for (const rec of page.items) {
    const row = el('tr', { dataset: { id: rec.id } });
    if (bulk) row.append(el('td', { class: 'check' }, el('input', { type: 'checkbox', value: rec.id, 'aria-label': `${recordLabel(rec)}`, onchange: () => updateBulk() })));
    all.forEach((f, i) => {
      const v = show(spec, f, rec[f.name], names);
      const td = el('td', { dataset: { f: f.name } });
      if (i === 0) td.append(link(`#/r/${key}/${rec.id}`, typeof v === 'string' ? v : recordLabel(rec), { class: 'open' }));
      else td.append(v);
      row.append(td);
    });
    row.append(el('td', { class: 'row-actions' }, rowActions(spec, rec)));
    tb.append(row);
  }
  table.append(tb);
  if (page.items.length === 0) {
    body.replaceChildren(el('p', { class: 'empty' }, tt('empty')));
  } else {
    body.replaceChildren(table);
  }
  const from = page.total ? offset + 1 : 0;
  const to = offset + page.items.length;
  const pager = el('nav', { class: 'pager', 'aria-label': 'pages' },
    el('span', { class: 'range' }, tt('range', { from: num(from), to: num(to), total: num(page.total) })),
    button(tt('prev'), () => go(hash({ ...q, offset: Math.max(0, offset - PAGE_SIZE) })), { disabled: offset === 0 }),
    button(tt('next'), () => go(hash({ ...q, offset: offset + PAGE_SIZE })), { disabled: to >= page.total }),
  );
  view.append(pager);

  function updateBulk() {
    const n = table.querySelectorAll('tbody input[type=checkbox]:checked').length;
    const b = actions.querySelector('[data-bulk]');
    if (b) b.disabled = n === 0;
  }
  if (bulk) {
    actions.append(button(tt('bulk_delete'), async () => {
      const ids = [...table.querySelectorAll('tbody input[type=checkbox]:checked')].map((c) => Number(c.value));
      if (!ids.length || !(await confirm(tt('confirm_bulk_delete', { n: ids.length }), tt('run')))) return;
      try {
        const r = await api('POST', `${spec.path}/bulk-delete`, { ids });
        notice(`${tt('deleted')} (${num(r.deleted)})`);
        go(hash(q));
      } catch (e) { notice(errorText(e), 'error'); }
    }, { class: 'danger', dataset: { bulk: '1' }, disabled: true }));
  }
}

function filtersOnly(spec, q) {
  const out = {};
  for (const f of spec.fields) if (f.filter && f.io !== 'read' && q[f.name] !== undefined && q[f.name] !== '') out[f.name] = q[f.name];
  return out;
}

async function filterInput(spec, f, value, names) {
  const label = fieldLabel(spec.key, f.name);
  const k = f.type.kind;
  let input;
  const opt = (v, text) => el('option', { value: v, selected: String(v) === String(value) }, text);
  if (k === 'enum') {
    input = el('select', { name: f.name }, opt('', `${label}: ${tt('all')}`), f.type.options.map((o) => opt(o, enumLabel(spec.key, f.name, o))));
  } else if (k === 'bool') {
    input = el('select', { name: f.name }, opt('', `${label}: ${tt('all')}`), opt('true', tt('yes')), opt('false', tt('no')));
  } else if (k === 'ref' && names.get(f.type.table)) {
    const m = names.get(f.type.table);
    input = el('select', { name: f.name }, opt('', `${label}: ${tt('all')}`), [...m.values()].map((r) => opt(r.id, recordLabel(r))));
  } else {
    input = el('input', { name: f.name, value, placeholder: label, type: k === 'int' || k === 'ref' ? 'number' : 'text', min: k === 'int' ? 0 : undefined });
  }
  input.setAttribute('aria-label', label);
  return el('label', { class: 'filter' }, input);
}

function attemptShortcuts(q, hash) {
  const box = el('div', { class: 'chips', role: 'group', 'aria-label': fieldLabel('leads', 'attempts') });
  for (const n of [0, 1, 2]) {
    const on = q.attempts === String(n);
    const b = button(tt(`attempts_${n}`), () => go(hash({ ...q, offset: 0, attempts: on ? '' : String(n) })));
    b.setAttribute('aria-pressed', String(on));
    box.append(b);
  }
  return box;
}

/** Buttons of a resource's own flows in its list's head (CSV import of a list, number uploads). */
function extraListActions(spec, q, actions) {
  if (may('post', `${spec.path}/upload`)) {
    const file = el('input', { type: 'file', accept: '.csv,text/csv', hidden: true, 'aria-label': tt('upload') });
    file.addEventListener('change', async () => {
      const f = file.files[0];
      if (!f) return;
      try {
        const r = await upload('POST', `${spec.path}/upload`, f);
        const errs = r.errors.slice(0, 5).map((e) => `${e.row}: ${e.message}`).join(' / ');
        notice(`${tt('upload')}: +${num(r.added)}, ${r.updated !== undefined ? tt('updated_n', { n: num(r.updated) }) : `${num(r.duplicates)} dup`}${r.errors.length ? `, ${tt('error')} ${num(r.errors.length)} (${errs})` : ''}`, r.errors.length ? 'error' : 'ok');
        go(hashOf(spec.key, q));
      } catch (e) { notice(errorText(e), 'error'); }
      file.value = '';
    });
    actions.append(file, button(tt('upload'), () => file.click()));
  }
  if (spec.key === 'lists' && may('post', '/lists/{id}/imports')) actions.append(button(tt('import_csv'), () => go('#/import')));
  if (spec.key === 'leads' && q.list_id && may('get', '/lists/{id}/export.csv')) actions.append(...exportButtons(q.list_id, q));
}

export function exportButtons(listId, q = {}) {
  const run = async (encoding) => {
    const p = new URLSearchParams({ encoding });
    if (q.q) p.set('q', q.q);
    if (q.attempts) p.set('attempts', q.attempts);
    try {
      const { blob, name } = await download(`/lists/${listId}/export.csv?${p}`);
      saveBlob(blob, name);
    } catch (e) { notice(errorText(e), 'error'); }
  };
  return [
    button(`${tt('export_csv')} ${tt('export_utf8')}`, () => run('utf-8'), { dataset: { export: 'utf-8' } }),
    button(`${tt('export_csv')} ${tt('export_sjis')}`, () => run('shift_jis'), { dataset: { export: 'shift_jis' } }),
  ];
}

function rowActions(spec, rec) {
  const out = [];
  if (spec.can.update) out.push(button(tt('edit'), () => go(`#/r/${spec.key}/${rec.id}/edit`)));
  if (spec.can.delete) out.push(button(tt('delete'), () => remove(spec, rec), { class: 'danger' }));
  return out;
}

async function remove(spec, rec) {
  if (!(await confirm(`${tt('confirm_delete')} ${recordLabel(rec)}`))) return false;
  try {
    await api('DELETE', `${spec.path}/${rec.id}`);
    notice(tt('deleted'));
    go(`#/r/${spec.key}`);
    return true;
  } catch (e) {
    notice(errorText(e), 'error');
    return false;
  }
}

// ------------------------------------------------------------------------------------------ view
const viewHooks = [];
/** A hand-written section of a resource's view (members, start/stop, import, ...). */
export function addViewSection(f) { viewHooks.push(f); }

export async function renderView(view, key, id) {
  const spec = S.specs.get(key);
  let rec;
  try {
    rec = await api('GET', `${spec.path}/${id}`);
  } catch (e) {
    view.replaceChildren(el('p', { class: 'error', role: 'alert' }, errorText(e)));
    return;
  }
  const fields = spec.fields.filter((f) => f.io !== 'write');
  const names = await namesFor(fields);
  const actions = el('div', { class: 'actions' });
  view.replaceChildren(
    el('nav', { class: 'crumbs' }, link(`#/r/${key}`, `← ${resourceName(key)}`)),
    el('div', { class: 'screen-head' }, el('h1', null, `${recordName(key)}: ${recordLabel(rec)}`), actions),
  );
  if (spec.can.update) {
    const b = button(tt('edit'), () => go(`#/r/${key}/${id}/edit`), { class: 'primary', keys: 'e', keyText: 'E' });
    actions.append(b);
    shortcut('e', () => b.click());
  }
  if (spec.can.delete) actions.append(button(tt('delete'), () => remove(spec, rec), { class: 'danger' }));
  const dl = el('dl', { class: 'record' });
  dl.append(el('dt', null, 'ID'), el('dd', null, String(rec.id)));
  const known = new Set(['id']);
  for (const f of [...fields, ...spec.extra]) {
    known.add(f.name);
    dl.append(el('dt', null, fieldLabel(key, f.name)), el('dd', { dataset: { f: f.name } }, show(spec, f, rec[f.name], names)));
  }
  // Values the server derives (a batch's deletion dates).
  for (const [k, v] of Object.entries(rec)) {
    if (known.has(k)) continue;
    dl.append(el('dt', null, fieldLabel(key, k)), el('dd', { dataset: { f: k } }, v === null ? '—' : String(v)));
  }
  view.append(el('section', { class: 'panel' }, dl));
  for (const hook of viewHooks) {
    const section = await hook(spec, rec, actions);
    if (section) view.append(section);
  }
  for (const child of spec.children) {
    const section = await childList(spec, rec, child);
    if (section) view.append(section);
  }
}

async function childList(parent, rec, child) {
  const spec = S.specs.get(child.key);
  if (!spec) return null;
  const page = await api('GET', `${spec.path}?${child.field}=${rec.id}&limit=20`).catch(() => null);
  if (!page) return null;
  const cols = columns(spec, child.field).slice(0, 5);
  const names = await namesFor(cols);
  const head = el('div', { class: 'screen-head' }, el('h2', null, `${resourceName(child.key)} (${num(page.total)})`));
  const actions = el('div', { class: 'actions' });
  head.append(actions);
  if (spec.can.create && !spec.fields.some((f) => f.name === child.field && f.io === 'read')) {
    actions.append(button(`+ ${tt('new')}`, () => go(`#/r/${child.key}/new?${child.field}=${rec.id}`), { dataset: { child: child.key } }));
  }
  if (page.total > page.items.length || spec.fields.some((f) => f.name === child.field && f.filter)) {
    actions.append(link(`#/r/${child.key}?${child.field}=${rec.id}`, `${tt('details')} →`));
  }
  const section = el('section', { class: 'panel child', dataset: { child: child.key } }, head);
  if (!page.items.length) {
    section.append(el('p', { class: 'empty' }, tt('empty')));
    return section;
  }
  const table = el('table', { class: 'records compact', 'aria-label': resourceName(child.key) },
    el('thead', null, el('tr', null, cols.map((f) => el('th', { scope: 'col' }, fieldLabel(child.key, f.name))))));
  const tb = el('tbody');
  for (const r of page.items) {
    tb.append(el('tr', null, cols.map((f, i) => {
      const v = show(spec, f, r[f.name], names);
      return el('td', null, i === 0 ? link(`#/r/${child.key}/${r.id}`, typeof v === 'string' ? v : recordLabel(r)) : v);
    })));
  }
  table.append(tb);
  section.append(table);
  return section;
}

// ------------------------------------------------------------------------------------------ form
/** Inputs for fields a flow needs other than by type: `key.field` -> builder. */
const widgets = new Map();
export function addWidget(name, f) { widgets.set(name, f); }

/** One field's control: `{row, get(), error(msg)}`; `get()` answers undefined to leave it out. */
async function control(spec, f, value, editing) {
  const key = spec.key;
  const id = `field-${f.name}`;
  const label = fieldLabel(key, f.name);
  const locked = editing && f.io === 'create';
  const required = f.required && !(editing && f.io === 'write');
  const errId = `${id}-error`;
  const helpText = help(key, f.name);
  const err = el('p', { class: 'field-error', id: errId, role: 'alert' });
  const common = { id, name: f.name, 'aria-describedby': helpText ? `${id}-help ${errId}` : errId, required: required && f.type.kind !== 'bool', disabled: locked };
  const k = f.type.kind;
  let input;
  let get;
  const custom = widgets.get(`${key}.${f.name}`);
  if (custom) {
    ({ input, get } = await custom({ spec, f, value, editing, common }));
  } else if (k === 'bool') {
    input = el('input', { type: 'checkbox', ...common, checked: value === true || (value === undefined && /Default true/.test(f.doc)) });
    get = () => input.checked;
  } else if (k === 'enum') {
    const empty = f.nullable || (!editing && !f.required);
    input = el('select', common, empty ? el('option', { value: '' }, f.nullable ? tt('unset') : '--') : null,
      f.type.options.map((o) => el('option', { value: o, selected: o === value }, enumLabel(key, f.name, o))));
    get = () => (input.value === '' ? (f.nullable && editing ? null : undefined) : input.value);
  } else if (k === 'ref' || k === 'refs') {
    const m = await refs(f.type.table);
    if (m && k === 'ref') {
      input = el('select', common, el('option', { value: '' }, f.nullable ? tt('unset') : '--'),
        [...m.values()].map((r) => el('option', { value: r.id, selected: r.id === value }, recordLabel(r))));
      get = () => (input.value === '' ? (f.nullable ? (editing ? null : undefined) : undefined) : Number(input.value));
    } else if (m) {
      const chosen = new Set(value || []);
      input = el('fieldset', { id, class: 'checks', 'aria-describedby': common['aria-describedby'] }, el('legend', { class: 'sr-only' }, label),
        [...m.values()].map((r) => el('label', null, el('input', { type: 'checkbox', value: r.id, checked: chosen.has(r.id), name: f.name }), recordLabel(r))));
      get = () => [...input.querySelectorAll('input:checked')].map((c) => Number(c.value));
    } else {
      input = el('input', { type: k === 'ref' ? 'number' : 'text', min: 1, ...common, value: k === 'ref' ? value ?? '' : (value || []).join(',') });
      get = () => (k === 'ref' ? (input.value ? Number(input.value) : f.nullable && editing ? null : undefined)
        : input.value.split(/[\s,]+/).filter(Boolean).map(Number));
    }
  } else if (k === 'int' || k === 'real') {
    input = el('input', { type: 'number', ...common, min: f.type.min > -1e15 ? f.type.min : undefined, max: f.type.max < 1e15 ? f.type.max : undefined, step: k === 'real' ? 'any' : 1, value: value ?? '' });
    get = () => (input.value === '' ? (f.nullable && editing ? null : undefined) : Number(input.value));
  } else if (k === 'instant') {
    input = el('input', { type: 'datetime-local', ...common, value: toLocalInput(value) });
    get = () => (input.value ? fromLocalInput(input.value) : f.nullable && editing ? null : undefined);
  } else if (k === 'list') {
    input = el('textarea', { ...common, rows: 3, placeholder: tt('one_per_line') }, (value || []).join('\n'));
    get = () => input.value.split(/\n/).map((s) => s.trim()).filter(Boolean);
  } else if (k === 'object') {
    input = el('textarea', { ...common, rows: 4 }, value ? JSON.stringify(value, null, 1) : '');
    get = () => {
      if (!input.value.trim()) return editing ? {} : undefined;
      try { return JSON.parse(input.value); } catch (_) { return input.value; }
    };
  } else if (k === 'color') {
    input = el('input', { type: 'color', ...common, value: value || '#c0622f' });
    get = () => input.value;
  } else {
    const type = { date: 'date', time: 'time', tel: 'tel' }[k] || (f.io === 'write' ? 'password' : 'text');
    const long = k === 'text' && f.type.max > 255;
    const attrs = { ...common, maxlength: f.type.max, autocomplete: f.io === 'write' ? 'new-password' : 'off' };
    if (f.io === 'write' && editing) attrs.placeholder = tt('write_only_hint');
    input = long ? el('textarea', { ...attrs, rows: 4 }, value ?? '') : el('input', { type, ...attrs, value: value ?? '' });
    get = () => {
      const v = input.value;
      if (v === '') {
        if (f.io === 'write') return undefined;
        if (f.nullable) return editing ? null : undefined;
        return editing || f.required ? '' : undefined;
      }
      return v;
    };
    if (k === 'tel' && f.name === 'caller_id') {
      const m = await refs('caller_ids');
      if (m) {
        const listId = `${id}-list`;
        input.setAttribute('list', listId);
        input = el('span', { class: 'with-list' }, input, el('datalist', { id: listId }, [...m.values()].map((r) => el('option', { value: r.number }, r.label || r.number))));
        const inner = input.querySelector('input');
        get = () => (inner.value === '' ? (f.nullable ? (editing ? null : undefined) : undefined) : inner.value);
      }
    }
  }
  const labelEl = el('label', { for: id }, label, required ? el('span', { class: 'req', 'aria-hidden': 'true' }, ' *') : null);
  const row = el('div', { class: `field kind-${k}`, dataset: { field: f.name } }, labelEl, input);
  if (f.io === 'write') {
    const field = input.tagName === 'INPUT' ? input : input.querySelector('input');
    row.append(button(tt('generate'), () => { field.type = 'text'; field.value = generatePassword(); field.dispatchEvent(new Event('input')); }, { class: 'small', dataset: { generate: f.name } }));
  }
  if (helpText) row.append(el('p', { class: 'help', id: `${id}-help` }, helpText));
  row.append(err);
  return {
    f, row, get,
    error(msg) {
      err.textContent = msg || '';
      const target = row.querySelector('input, select, textarea, fieldset');
      if (target) {
        if (msg) target.setAttribute('aria-invalid', 'true');
        else target.removeAttribute('aria-invalid');
      }
    },
    focus() { const target = row.querySelector('input, select, textarea'); if (target) target.focus(); },
  };
}

export async function renderForm(view, key, id, qs) {
  const spec = S.specs.get(key);
  const editing = id !== null;
  let rec = {};
  if (editing) {
    try { rec = await api('GET', `${spec.path}/${id}`); } catch (e) { view.replaceChildren(el('p', { class: 'error', role: 'alert' }, errorText(e))); return; }
  } else {
    for (const [k, v] of Object.entries(parseQuery(qs))) {
      const f = spec.fields.find((x) => x.name === k);
      if (!f) continue;
      rec[k] = ['int', 'ref', 'real'].includes(f.type.kind) ? Number(v) : f.type.kind === 'bool' ? v === 'true' : v;
    }
  }
  const title = editing ? `${recordName(key)}: ${recordLabel(rec)} — ${tt('edit')}` : `${recordName(key)} — ${tt('new')}`;
  const back = editing ? `#/r/${key}/${id}` : `#/r/${key}`;
  view.replaceChildren(el('nav', { class: 'crumbs' }, link(back, `← ${editing ? recordLabel(rec) : resourceName(key)}`)), el('h1', null, title));
  const form = el('form', { class: 'panel form', novalidate: true, dataset: { resource: key } });
  const controls = [];
  for (const f of spec.fields) {
    if (f.io === 'read') continue;
    const c = await control(spec, f, rec[f.name], editing);
    controls.push(c);
    form.append(c.row);
  }
  const formError = el('p', { class: 'error', role: 'alert', id: 'form-error' });
  const save = button(tt('save'), undefined, { type: 'submit', class: 'primary', keys: 'Control+S', keyText: 'Ctrl+S' });
  form.append(formError, el('div', { class: 'buttons' }, button(tt('cancel'), () => go(back)), save));
  view.append(form);
  shortcut('Control+s', () => form.requestSubmit());
  const first = controls.find((c) => !c.row.querySelector('[disabled]'));
  if (first) first.focus();
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    formError.textContent = '';
    for (const c of controls) c.error('');
    const body = {};
    for (const c of controls) {
      if (editing && c.f.io === 'create') continue;
      const v = c.get();
      if (v !== undefined) body[c.f.name] = v;
    }
    if (!(await confirm(tt('confirm_save')))) return;
    save.disabled = true;
    try {
      const saved = editing ? await api('PATCH', `${spec.path}/${id}`, body) : await api('POST', spec.path, body);
      const secrets = controls.filter((c) => c.f.io === 'write' && body[c.f.name] !== undefined);
      if (secrets.length) {
        const pairs = [];
        for (const f of spec.fields) if (f.io !== 'write' && f.type.kind !== 'ref' && ['ident', 'text'].includes(f.type.kind) && saved[f.name] && /user|login|realm/.test(f.name)) pairs.push([fieldLabel(key, f.name), saved[f.name]]);
        for (const c of secrets) pairs.push([fieldLabel(key, c.f.name), body[c.f.name]]);
        await showOnce(pairs);
      }
      notice(tt('saved'));
      go(`#/r/${key}/${saved.id}`);
    } catch (e) {
      save.disabled = false;
      const c = e instanceof HttpError && e.field ? controls.find((x) => x.f.name === e.field) : null;
      if (c) {
        c.error(errorText(e));
        c.focus();
      } else {
        formError.textContent = e.field ? tt('field_problem', { field: fieldLabel(key, e.field), message: errorText(e) }) : errorText(e);
      }
    }
  });
}
