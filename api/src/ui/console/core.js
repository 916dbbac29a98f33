// What every screen of the console shares: the caller and the registry's document, the words,
// elements, formats (times in the tenant's zone, numbers with separators, durations m:ss), the
// confirmation and notice, and keyboard shortcuts shown on their buttons.

import { CATALOGUE, translateError } from './i18n.js';

export const S = {
  lang: localStorage.getItem('kakeru.lang') === 'en' ? 'en' : 'ja',
  me: null,
  doc: null, // GET /console/specs
  specs: new Map(), // key -> spec
  byTable: new Map(), // table -> spec
  ops: new Set(), // 'get /path/{id}'
  tenant: null,
  cleanup: [], // run when the screen changes (streams, timers)
  missing: new Set(), // words looked up and not in the catalogue (for the tests)
};
window.__console = { missing: S.missing, catalogue: CATALOGUE };

export function t(key, vars) {
  let s = CATALOGUE[S.lang][key];
  if (s === undefined) s = CATALOGUE.ja[key];
  if (s === undefined) return undefined;
  if (vars) for (const [k, v] of Object.entries(vars)) s = s.split(`{${k}}`).join(String(v));
  return s;
}

/** A word that must exist; a gap shows the key and is recorded. */
export function tt(key, vars) {
  const s = t(key, vars);
  if (s === undefined) {
    S.missing.add(key);
    return key;
  }
  return s;
}

export const resourceName = (key) => t(`r.${key}`) ?? (S.missing.add(`r.${key}`), key);
/** The name of one record of a resource (English has singulars; Japanese has no plural). */
export const recordName = (key) => (S.lang === 'en' && CATALOGUE.en[`one.${key}`]) || resourceName(key);

export function fieldLabel(key, name) {
  const s = t(`f.${key}.${name}`) ?? t(`f.${name}`);
  if (s === undefined) {
    S.missing.add(`f.${key}.${name}`);
    return name;
  }
  return s;
}

export function enumLabel(key, name, value) {
  if (value === null || value === undefined) return '';
  return t(`e.${key}.${name}.${value}`) ?? t(`e.${name}.${value}`) ?? String(value);
}

export const help = (key, name) => t(`h.${key}.${name}`);

export const may = (method, path) => S.ops.has(`${method} ${path}`);

export function errorText(e) {
  if (!e) return '';
  if (!e.status) return tt('network_error');
  return translateError(S.lang, e.message);
}

// ------------------------------------------------------------------------------------- elements
export function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else if (k === 'dataset') Object.assign(e.dataset, v);
      // Through the CSSOM: a style attribute would break the page's Content-Security-Policy.
      else if (k === 'style') for (const d of String(v).split(';')) { const i = d.indexOf(':'); if (i > 0) e.style.setProperty(d.slice(0, i).trim(), d.slice(i + 1).trim()); }
      else if (v === true) e.setAttribute(k, '');
      else e.setAttribute(k, v);
    }
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

/**
 * A button whose accessible name is its label; the keyboard shortcut is shown beside it in a
 * <kbd> hidden from the name (aria-keyshortcuts announces it).
 */
export function button(label, onclick, opts = {}) {
  const b = el('button', { type: opts.type || 'button', class: opts.class, onclick, 'aria-keyshortcuts': opts.keys, dataset: opts.dataset, disabled: opts.disabled }, label);
  if (opts.keys) b.append(el('kbd', { 'aria-hidden': 'true' }, opts.keyText || opts.keys));
  return b;
}

export function link(href, label, attrs = {}) {
  return el('a', { href, ...attrs }, label);
}

// -------------------------------------------------------------------------------------- formats
const NUM = { ja: new Intl.NumberFormat('ja-JP'), en: new Intl.NumberFormat('en-US') };
export const num = (n) => (n === null || n === undefined || Number.isNaN(n) ? '—' : NUM[S.lang].format(n));
export const pct = (x, digits = 1) => (x === null || x === undefined || !isFinite(x) ? '—' : `${(x * 100).toFixed(digits)}%`);
export function duration(ms) {
  if (ms === null || ms === undefined) return '—';
  const s = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}
/** Bytes in units of 1,024 (50 GB of recordings is 50 × 1,024³ bytes). */
export function bytes(n) {
  if (n === null || n === undefined) return '—';
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${i ? v.toFixed(1) : v} ${units[i]}`;
}
/** An instant as the server wrote it (RFC 3339 in the tenant's zone) -> `YYYY-MM-DD HH:MM`. */
export const when = (s) => (s ? `${s.slice(0, 10)} ${s.slice(11, 16)}` : '—');

/** The tenant zone's offset (`+09:00`) at a local date-time `YYYY-MM-DDTHH:MM`. */
export function zoneOffset(local) {
  const tz = S.me ? S.me.time_zone : 'Asia/Tokyo';
  const guess = new Date(`${local}:00Z`);
  try {
    const part = new Intl.DateTimeFormat('en-US', { timeZone: tz, timeZoneName: 'longOffset' })
      .formatToParts(guess).find((p) => p.type === 'timeZoneName');
    const m = /GMT([+-]\d\d:\d\d)?/.exec(part ? part.value : '');
    return m && m[1] ? m[1] : '+00:00';
  } catch (_) {
    return '+09:00';
  }
}
export const fromLocalInput = (v) => (v ? `${v}:00${zoneOffset(v)}` : null);
export const toLocalInput = (s) => (s ? s.slice(0, 16) : '');
/** Today in the tenant's zone, `YYYY-MM-DD`. */
export function today() {
  const tz = S.me ? S.me.time_zone : 'Asia/Tokyo';
  return new Intl.DateTimeFormat('en-CA', { timeZone: tz, year: 'numeric', month: '2-digit', day: '2-digit' }).format(new Date());
}

// ------------------------------------------------------------------------ dialogs and notices
/** 保存しますか? style confirmation; resolves true on OK. */
export function confirm(text, okLabel) {
  const d = document.getElementById('confirm');
  document.getElementById('confirm-text').textContent = text;
  document.getElementById('confirm-ok').textContent = okLabel || tt('ok');
  document.getElementById('confirm-cancel').textContent = tt('cancel');
  return new Promise((resolve) => {
    d.addEventListener('close', () => resolve(d.returnValue === 'ok'), { once: true });
    d.returnValue = '';
    d.showModal();
    document.getElementById('confirm-ok').focus();
  });
}

let noticeTimer = 0;
export function clearNotice() {
  document.getElementById('notice').hidden = true;
}

export function notice(text, kind = 'ok') {
  const n = document.getElementById('notice');
  n.textContent = text;
  n.dataset.kind = kind;
  n.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => { n.hidden = true; }, 6000);
}

/** Values shown once (a generated password): the user must write them down. */
export function showOnce(pairs) {
  const d = document.getElementById('secret');
  const dl = document.getElementById('secret-values');
  dl.replaceChildren(...pairs.flatMap(([k, v]) => [el('dt', null, k), el('dd', null, el('code', { 'data-secret': k }, v))]));
  d.showModal();
  return new Promise((resolve) => d.addEventListener('close', resolve, { once: true }));
}

/** A random password with upper and lower case letters and digits (the API's rules are checked there). */
export function generatePassword(n = 14) {
  const sets = ['ABCDEFGHJKLMNPQRSTUVWXYZ', 'abcdefghijkmnopqrstuvwxyz', '23456789'];
  const all = sets.join('');
  const pick = (s) => s[crypto.getRandomValues(new Uint32Array(1))[0] % s.length];
  const out = sets.map(pick);
  while (out.length < n) out.push(pick(all));
  for (let i = out.length - 1; i > 0; i--) {
    const j = crypto.getRandomValues(new Uint32Array(1))[0] % (i + 1);
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out.join('');
}

// ----------------------------------------------------------------------------------- navigation
export function go(hash) {
  if (location.hash === hash) window.dispatchEvent(new HashChangeEvent('hashchange'));
  else location.hash = hash;
}

/** Runs `f` when the screen changes (closing streams, stopping timers). */
export function onLeave(f) {
  S.cleanup.push(f);
}

// ------------------------------------------------------------------------------------ shortcuts
/** Global single keys ('/' search, 'n' new, 'e' edit) and Ctrl+S; a screen registers its own. */
const keys = new Map();
export function shortcut(key, f) {
  keys.set(key, f);
  onLeave(() => keys.delete(key));
}
document.addEventListener('keydown', (ev) => {
  if (document.querySelector('dialog[open]')) return;
  const typing = /^(INPUT|TEXTAREA|SELECT)$/.test(ev.target.tagName) || ev.target.isContentEditable;
  let k = ev.key;
  if (ev.ctrlKey || ev.metaKey) k = `Control+${ev.key.toLowerCase()}`;
  else if (typing || ev.altKey) return;
  const f = keys.get(k);
  if (f) {
    ev.preventDefault();
    f();
  }
});

/** A display label of a record (its name, label, number, ...). */
export function recordLabel(rec) {
  if (!rec) return '';
  for (const k of ['display_name', 'name', 'label', 'number', 'sip_username', 'login', 'tel', 'key']) {
    if (rec[k] !== undefined && rec[k] !== null && rec[k] !== '') return String(rec[k]);
  }
  return `#${rec.id}`;
}
