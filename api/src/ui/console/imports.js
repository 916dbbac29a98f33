// CSVアップロード as the hosted systems have it (CloudCallCenter §13, BIZTEL 2.2): choose the list
// and a file (CP932 or UTF-8), the delimiter and whether the first row is a header, tags, then
// アップロード shows the first rows with a mapping of 列1, 列2, ... onto name, kana, tel, remarks or
// custom fields (tel required), then 実行 imports the whole file as an import job whose progress is
// pushed (GET /imports/{id}/stream), then the outcome with the error CSV to download.
//
// The preview sends only the start of the file, cut at a line end (a CP932 trail byte is never a
// line feed), so a 50,000-row file previews at once.

import { api, listAll, upload, download, saveBlob, follow } from './api.js';
import { S, tt, el, button, link, num, bytes, errorText, confirm, go, onLeave, recordLabel, fieldLabel } from './core.js';

const PREVIEW_BYTES = 256 * 1024;
const TARGETS = ['name', 'kana', 'tel', 'remarks'];

export async function renderImport(view, listId) {
  const lists = await listAll('/lists').catch(() => []);
  const batches = S.specs.has('batches') ? new Map((await listAll('/batches').catch(() => [])).map((b) => [b.id, b])) : new Map();
  const title = el('h1', null, tt('imp.title'));
  view.replaceChildren(title);
  const form = el('form', { class: 'panel form import', id: 'import-form' });
  const listSel = el('select', { id: 'imp-list', required: true },
    el('option', { value: '' }, tt('imp.choose_list')),
    lists.map((l) => el('option', { value: l.id, selected: String(l.id) === String(listId) }, `${l.name}${batches.get(l.batch_id) ? ` (${recordLabel(batches.get(l.batch_id))})` : ''}`)));
  const file = el('input', { type: 'file', id: 'imp-file', accept: '.csv,.txt,text/csv', required: true, 'aria-describedby': 'imp-file-help' });
  const delim = el('select', { id: 'imp-delimiter' },
    el('option', { value: 'comma' }, tt('imp.comma')), el('option', { value: 'tab' }, tt('imp.tab')), el('option', { value: 'semicolon' }, tt('imp.semicolon')));
  const firstRow = el('div', { class: 'radios', id: 'imp-first-row', role: 'radiogroup', 'aria-labelledby': 'imp-first-row-label' },
    el('label', null, el('input', { type: 'radio', name: 'first', value: 'header', checked: true }), tt('imp.first_row_header')),
    el('label', null, el('input', { type: 'radio', name: 'first', value: 'data' }), tt('imp.first_row_data')));
  const dup = el('input', { type: 'checkbox', id: 'imp-dup' });
  const tags = el('input', { id: 'imp-tags', maxlength: 500, 'aria-describedby': 'imp-tags-help' });
  const problem = el('p', { class: 'error', role: 'alert', id: 'imp-error' });
  const field = (id, label, input, helpText) => el('div', { class: 'field' }, el('label', { for: id }, label), input, helpText ? el('p', { class: 'help', id: `${id}-help` }, helpText) : null);
  form.append(
    field('imp-list', tt('imp.list'), listSel),
    field('imp-file', tt('imp.file'), file, tt('imp.file_hint')),
    field('imp-delimiter', tt('imp.delimiter'), delim),
    el('div', { class: 'field' }, el('span', { class: 'label', id: 'imp-first-row-label' }, tt('imp.first_row')), firstRow),
    el('div', { class: 'field' }, el('span', { class: 'label' }, tt('imp.confirm')), el('label', { class: 'inline' }, dup, tt('imp.allow_dup'))),
    field('imp-tags', tt('imp.tags'), tags, tt('imp.tags_hint')),
    problem,
    el('div', { class: 'buttons' }, button(tt('imp.upload'), undefined, { type: 'submit', class: 'primary', dataset: { step: 'upload' } })),
  );
  const syncDup = () => {
    const l = lists.find((x) => String(x.id) === listSel.value);
    dup.checked = Boolean(l && l.allow_duplicates);
  };
  listSel.addEventListener('change', syncDup);
  syncDup();
  const stage = el('div', { id: 'imp-stage' });
  view.append(form, stage);

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    problem.textContent = '';
    if (!listSel.value) { problem.textContent = tt('imp.need_list'); listSel.focus(); return; }
    const f = file.files[0];
    if (!f) { problem.textContent = tt('imp.need_file'); file.focus(); return; }
    const opts = {
      list: Number(listSel.value),
      delimiter: delim.value,
      header: form.querySelector('input[name=first]:checked').value === 'header',
      tags: tags.value.split(/[\s,、]+/).map((s) => s.trim()).filter(Boolean),
      allowDup: dup.checked,
    };
    // The start of the file, cut after its last line feed.
    const head = new Uint8Array(await f.slice(0, PREVIEW_BYTES).arrayBuffer());
    let cut = head.length;
    if (f.size > PREVIEW_BYTES) {
      const lf = head.lastIndexOf(10);
      if (lf > 0) cut = lf + 1;
    }
    let preview;
    try {
      preview = await upload('POST', `/lists/${opts.list}/imports/preview?delimiter=${opts.delimiter}&header=${opts.header}`, head.slice(0, cut));
    } catch (e) {
      problem.textContent = errorText(e);
      return;
    }
    renderMapping(stage, f, opts, preview, lists);
  });
}

function targetLabel(target, custom) {
  if (TARGETS.includes(target)) return `${fieldLabel('leads', target)} (${target})`;
  const c = custom.find((x) => x.key === target);
  return c ? c.label : target;
}

function renderMapping(stage, file, opts, preview, lists) {
  const targets = [...TARGETS, ...preview.custom_fields.map((c) => c.key)];
  const selects = [];
  const head = el('tr');
  const maps = el('tr', { class: 'mapping' });
  preview.columns.forEach((col, i) => {
    head.append(el('th', { scope: 'col' }, opts.header ? `${tt('imp.column', { n: i + 1 })}: ${col}` : tt('imp.column', { n: i + 1 })));
    const s = el('select', { 'aria-label': `${tt('imp.column', { n: i + 1 })}${opts.header ? ` (${col})` : ''}`, dataset: { column: col } },
      el('option', { value: '' }, tt('imp.skip')),
      targets.map((tg) => el('option', { value: tg, selected: preview.suggested[col] === tg }, targetLabel(tg, preview.custom_fields))));
    selects.push(s);
    maps.append(el('td', null, s));
  });
  const rows = preview.rows.map((r) => el('tr', null, preview.columns.map((_, i) => el('td', null, r[i] ?? ''))));
  const problem = el('p', { class: 'error', role: 'alert', id: 'imp-map-error' });
  const run = button(tt('imp.run'), () => start(), { class: 'primary', dataset: { step: 'run' } });
  stage.replaceChildren(el('section', { class: 'panel', id: 'imp-mapping' },
    el('h2', null, tt('imp.preview')),
    el('p', { class: 'help' }, tt('imp.preview_hint')),
    el('p', { class: 'muted' }, tt('imp.encoding', { enc: tt(`enc.${preview.encoding}`) }), ` · ${file.name} · ${bytes(file.size)}`),
    el('div', { class: 'table-box' }, el('table', { class: 'records preview' }, el('thead', null, head, maps), el('tbody', null, rows))),
    problem,
    el('div', { class: 'buttons' }, run)));
  selects[0]?.focus();

  async function start() {
    problem.textContent = '';
    const mapping = {};
    const seen = new Map();
    for (const s of selects) {
      if (!s.value) continue;
      if (seen.has(s.value)) { problem.textContent = tt('imp.twice', { target: targetLabel(s.value, preview.custom_fields) }); s.focus(); return; }
      seen.set(s.value, s);
      mapping[s.dataset.column] = s.value;
    }
    if (!seen.has('tel')) { problem.textContent = tt('imp.need_tel'); selects[0]?.focus(); return; }
    if (!(await confirm(tt('confirm_save'), tt('imp.run')))) return;
    run.disabled = true;
    const list = lists.find((l) => l.id === opts.list);
    try {
      if (list && Boolean(list.allow_duplicates) !== opts.allowDup) {
        await api('PATCH', `/lists/${opts.list}`, { allow_duplicates: opts.allowDup });
        list.allow_duplicates = opts.allowDup;
      }
      const q = new URLSearchParams({ kind: 'generic', mapping: JSON.stringify(mapping), delimiter: opts.delimiter, header: String(opts.header) });
      if (opts.tags.length) q.set('tags', JSON.stringify(opts.tags));
      const t0 = performance.now();
      const job = await upload('POST', `/lists/${opts.list}/imports?${q}`, file);
      progress(stage, job, opts.list, t0);
    } catch (e) {
      run.disabled = false;
      problem.textContent = errorText(e);
    }
  }
}

/** The import job's progress, pushed by the server, then its outcome. */
function progress(stage, job, listId, t0) {
  const bar = el('progress', { id: 'imp-progress', max: Math.max(1, job.bytes_total), value: 0, 'aria-label': tt('imp.progress') });
  const pctText = el('span', { class: 'pct', id: 'imp-pct' }, '0%');
  const rowsText = el('span', { id: 'imp-rows' }, tt('imp.rows_read', { n: 0 }));
  const outcome = el('div', { id: 'imp-outcome' });
  const box = el('section', { class: 'panel', id: 'imp-run', 'aria-busy': 'true' }, el('h2', null, tt('imp.progress')),
    el('div', { class: 'progress-row' }, bar, pctText, rowsText), outcome);
  stage.replaceChildren(box);
  const seen = [];
  window.__importProgress = seen;
  const show = (p) => {
    bar.max = Math.max(1, p.bytes_total);
    bar.value = p.bytes_read;
    const pc = p.bytes_total ? Math.floor((100 * p.bytes_read) / p.bytes_total) : 0;
    pctText.textContent = `${pc}%`;
    rowsText.textContent = tt('imp.rows_read', { n: num(p.rows_read) });
    seen.push(pc);
  };
  const abort = new AbortController();
  let closed = false;
  onLeave(() => { closed = true; abort.abort(); });
  const done = (j) => {
    closed = true;
    abort.abort();
    box.removeAttribute('aria-busy');
    show({ bytes_total: j.bytes_total, bytes_read: j.status === 'done' ? j.bytes_total : j.bytes_read, rows_read: j.rows_read });
    const secs = ((performance.now() - t0) / 1000).toFixed(1);
    box.dataset.elapsedMs = String(Math.round(performance.now() - t0));
    box.querySelector('h2').textContent = j.status === 'done' ? tt('imp.done') : tt('imp.failed');
    const parts = [];
    if (j.status === 'done') {
      parts.push(el('p', { class: 'outcome', id: 'imp-counts' },
        el('strong', { dataset: { imported: j.imported_rows } }, tt('imp.imported', { n: num(j.imported_rows) })), ' · ',
        el('strong', { class: j.rejected_rows ? 'bad' : '', dataset: { rejected: j.rejected_rows } }, tt('imp.rejected', { n: num(j.rejected_rows) })),
        ` · ${tt('imp.elapsed', { s: secs })}`));
    } else {
      parts.push(el('p', { class: 'error', role: 'alert', id: 'imp-failed' }, j.error_message || ''), el('p', null, tt('imp.nothing')));
    }
    if (j.errors_csv) {
      parts.push(button(tt('imp.errors_csv'), async () => {
        const { blob, name } = await download(j.errors_csv);
        saveBlob(blob, name);
      }, { class: 'primary', dataset: { errors_csv: j.id } }));
    }
    parts.push(link(`#/r/leads?list_id=${listId}`, tt('imp.to_leads')), ' ', link(`#/import/${listId}`, tt('imp.again'), { onclick: (ev) => { ev.preventDefault(); go(`#/import/${listId}`); } }));
    outcome.replaceChildren(...parts);
  };
  if (job.status === 'done' || job.status === 'failed') return done(job);
  show(job);
  // The job's events, read with the bearer header; a dropped stream is followed again (a finished
  // job answers done at once).
  const connect = async () => {
    while (!closed) {
      try {
        await follow(`/imports/${job.id}/stream`, (event, data) => {
          if (event === 'progress') show(JSON.parse(data));
          else if (event === 'done') done(JSON.parse(data));
        }, abort.signal);
      } catch (e) {
        if (closed) return;
        if (e.status) { outcome.replaceChildren(el('p', { class: 'error', role: 'alert' }, errorText(e))); return; }
      }
      if (!closed) await new Promise((r) => setTimeout(r, 1000));
    }
  };
  connect();
}
