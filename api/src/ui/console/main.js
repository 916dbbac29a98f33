// The kakeru admin console (/ui/admin): MGR's home, SV's through the menu. Plain ES modules, no
// framework, no build step, served by the API from the binary (api/src/ui.rs).
//
// Boot: a bearer token in sessionStorage (the login page at / or this page's own form) -> GET /me
// and GET /console/specs (the registry's resources and operations as the caller's role sees them)
// -> the menu, in the floor's words, showing what the role may reach -> a screen per hash route:
//   #/                      home (set-up steps)
//   #/r/<resource>[?query]  a generic list; /<id> its view; /new, /<id>/edit its form
//   #/agents                the users with role OP (エージェント)
//   #/import[/<list>]       CSV upload with the column mapping
//   #/monitor               job monitor (live from the wallboard feed)
//   #/unsaved[/<id>]        unsaved wrap-up records
//   #/recordings            recordings
//   #/callbacks[/<id>[/edit]|/new] 折り返し呼履歴: search, one callback, its edit; register by hand
//   #/tenant                tenant settings
//   #/reports[/<kind>]      the reports with their charts and CSV (/ui/reports opens here)
//   #/call-history          発着信履歴 with the recordings played inline

import { api, session, HttpError } from './api.js';
import { S, tt, el, link, resourceName, errorText, clearNotice } from './core.js';
import { renderList, renderView, renderForm, clearRefs } from './generic.js';
import './sections.js';
import { renderImport } from './imports.js';
import { renderMonitor } from './monitor.js';
import { renderRecordings, renderUnsaved, renderTenant, renderHome } from './records.js';
import { renderCallbacks } from './callbacks.js';
import { renderReports, renderHistory, REPORT_PATHS } from './reports.js';

const $ = (id) => document.getElementById(id);

// The menu: groups of entries in the floor's words. `r:<key>` is a resource (shown when the role
// reads it), `s:<screen>` a hand-written screen (shown when the role may call what it needs), `x:`
// another page. A resource of the registry not named here still appears, under その他.
const MENU = [
  ['g.outbound', ['r:campaigns', 'r:result-codes', 'r:batches', 'r:lists', 's:import', 'r:leads', 'r:lead-numbers', 'r:call-jobs', 's:monitor', 's:unsaved', 'r:recalls', 's:callbacks']],
  ['g.agents', ['s:agents', 'r:dialing-groups', 'r:phones', 'r:pause-reasons']],
  ['g.settings', ['r:caller-ids', 'r:custom-fields', 'r:dnc-numbers', 'r:inbound-blocks', 'r:closed-days', 'r:phone-book', 'r:outside-transfers', 'r:users', 'r:grants', 's:tenant', 'r:audit-events']],
  ['g.records', ['s:reports', 's:call-history', 'r:call-records', 'r:wrapup-records', 's:recordings', 'x:wallboard']],
];

/** What a hand-written screen needs the role to be allowed. */
const SCREENS = {
  agents: () => S.specs.has('users'),
  import: () => S.ops.has('post /lists/{id}/imports/preview') && S.specs.has('lists'),
  // BIZTEL's ジョブモニタ is for those who run the jobs (the campaign figures are theirs only).
  monitor: () => S.ops.has('get /wallboard/stream') && S.ops.has('post /call-jobs/{id}/stop') && S.specs.has('call-jobs') && S.specs.has('campaigns'),
  unsaved: () => S.ops.has('post /wrapup-records/{id}/save') && S.specs.has('wrapup-records'),
  recordings: () => S.ops.has('get /recordings'),
  callbacks: () => S.ops.has('get /callbacks'),
  tenant: () => S.ops.has('get /tenant') && S.ops.has('patch /tenant'),
  reports: () => REPORT_PATHS.some((p) => S.ops.has(`get ${p}`)),
  'call-history': () => S.ops.has('get /call-history'),
};
const PAGES = {
  reports: { href: '/ui/reports', may: () => SCREENS.reports() },
  wallboard: { href: '/ui/wallboard', may: () => S.ops.has('get /wallboard/stream') },
};

function menuEntries() {
  const named = new Set();
  const groups = MENU.map(([g, items]) => [g, items.filter((it) => {
    const [kind, key] = it.split(':');
    if (kind === 'r') named.add(key);
    if (kind === 'r') return S.specs.has(key);
    if (kind === 's') return SCREENS[key]();
    return PAGES[key].may();
  })]);
  const rest = [...S.specs.keys()].filter((k) => !named.has(k)).map((k) => `r:${k}`);
  if (rest.length) groups.push(['g.other', rest]);
  return groups.filter(([, items]) => items.length);
}

/** Lists a person reads newest first (a trail). */
const NEWEST_FIRST = new Set(['audit-events']);

function entryHref(it) {
  const [kind, key] = it.split(':');
  if (kind === 'r') return NEWEST_FIRST.has(key) ? `#/r/${key}?sort=-created_at` : `#/r/${key}`;
  if (kind === 's') return `#/${key}`;
  return PAGES[key].href;
}

function entryLabel(it) {
  const [kind, key] = it.split(':');
  return kind === 'r' ? resourceName(key) : tt(`m.${key}`);
}

function renderMenu() {
  const box = $('menu-groups');
  box.replaceChildren(...menuEntries().map(([g, items]) => el('section', { class: 'menu-group' },
    el('h3', null, tt(g)),
    el('ul', null, items.map((it) => el('li', null, link(entryHref(it), entryLabel(it), { dataset: { entry: it } })))))));
  markMenu();
}

function markMenu() {
  const h = location.hash || '#/';
  for (const a of document.querySelectorAll('#menu a')) {
    const href = a.getAttribute('href');
    const on = href.startsWith('#') && (h === href || h.startsWith(`${href}/`) || h.startsWith(`${href}?`));
    if (on) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

// --------------------------------------------------------------------------------- language
function applyLang() {
  document.documentElement.lang = S.lang;
  document.title = `kakeru ${tt('title')}`;
  for (const e of document.querySelectorAll('[data-i18n]')) e.textContent = tt(e.dataset.i18n);
  for (const e of document.querySelectorAll('[data-i18n-aria]')) e.setAttribute('aria-label', tt(e.dataset.i18nAria));
  for (const b of document.querySelectorAll('[data-lang]')) b.setAttribute('aria-pressed', String(b.dataset.lang === S.lang));
  if (S.me) {
    renderMenu();
    route();
  }
}

// ------------------------------------------------------------------------------ log in / out
function show(which) {
  $('login').hidden = which !== 'login';
  $('menu').hidden = which !== 'app';
  $('view').hidden = which !== 'app';
  $('logout').hidden = which !== 'app';
  $('link-wallboard').hidden = !(which === 'app' && PAGES.wallboard.may());
  $('link-reports').hidden = !(which === 'app' && PAGES.reports.may());
}

function loggedOut() {
  session.set(null);
  S.me = null;
  $('who').textContent = '';
  show('login');
  $('f-tenant').focus();
}

async function onLogin(ev) {
  ev.preventDefault();
  $('login-error').textContent = '';
  $('f-submit').disabled = true;
  try {
    const r = await api('POST', '/auth/login', { tenant: $('f-tenant').value.trim(), login: $('f-login').value.trim(), password: $('f-password').value });
    session.set(r.token);
    $('f-password').value = '';
    await start();
  } catch (e) {
    $('login-error').textContent = e.status === 401 ? tt('bad_credentials') : errorText(e);
  } finally {
    $('f-submit').disabled = false;
  }
}

async function start() {
  try {
    S.me = await api('GET', '/me');
    S.doc = await api('GET', '/console/specs');
  } catch (e) {
    if (e instanceof HttpError && e.status === 401) return loggedOut();
    throw e;
  }
  S.specs = new Map(S.doc.resources.map((r) => [r.key, r]));
  S.byTable = new Map(S.doc.resources.map((r) => [r.table, r]));
  S.ops = new Set(S.doc.ops.map((o) => `${o.method} ${o.path}`));
  $('who').textContent = `${S.me.login} (${S.me.role})`;
  document.body.dataset.role = S.me.role;
  show('app');
  renderMenu();
  route();
}

// ---------------------------------------------------------------------------------- routing
function forbidden(view) {
  view.replaceChildren(el('section', { class: 'panel', id: 'forbidden' }, el('h1', null, tt('forbidden_title')), el('p', null, tt('forbidden_text'))));
}

let routing = 0;
async function route() {
  if (!S.me) return;
  const mine = ++routing;
  for (const f of S.cleanup.splice(0)) { try { f(); } catch (_) { /* a screen's own cleanup */ } }
  clearRefs();
  markMenu();
  // Each route draws into its own element: a screen still loading when the next route starts
  // goes on drawing into a detached one, never over the new screen.
  const box = $('view');
  const view = el('div', { class: 'screen' });
  box.replaceChildren(view);
  box.setAttribute('aria-busy', 'true');
  const [path, qs] = (location.hash.slice(1) || '/').split('?');
  const parts = path.split('/').filter(Boolean);
  try {
    const [a, b, c, d] = parts;
    if (!a) await renderHome(view);
    else if (a === 'r' && S.specs.has(b)) {
      if (!c) await renderList(view, b, qs);
      else if (c === 'new' && S.specs.get(b).can.create) await renderForm(view, b, null, qs);
      else if (/^\d+$/.test(c) && !d) await renderView(view, b, Number(c));
      else if (/^\d+$/.test(c) && d === 'edit' && S.specs.get(b).can.update) await renderForm(view, b, Number(c), qs);
      else forbidden(view);
    } else if (a === 'agents' && SCREENS.agents()) {
      await renderList(view, 'users', qs, { fixed: { role: 'OP' }, title: tt('m.agents'), base: '#/agents' });
    } else if (a === 'import' && SCREENS.import()) await renderImport(view, b);
    else if (a === 'monitor' && SCREENS.monitor()) await renderMonitor(view);
    else if (a === 'unsaved' && SCREENS.unsaved()) await renderUnsaved(view, b ? Number(b) : null);
    else if (a === 'recordings' && SCREENS.recordings()) await renderRecordings(view, qs);
    else if (a === 'callbacks' && SCREENS.callbacks()) await renderCallbacks(view, b, qs, c);
    else if (a === 'tenant' && SCREENS.tenant()) await renderTenant(view);
    else if (a === 'reports' && SCREENS.reports()) await renderReports(view, b, qs);
    else if (a === 'call-history' && SCREENS['call-history']()) await renderHistory(view, qs);
    else forbidden(view);
  } catch (e) {
    if (mine === routing) view.replaceChildren(el('p', { class: 'error', role: 'alert' }, errorText(e)));
  }
  if (mine === routing) {
    box.removeAttribute('aria-busy');
    box.dataset.route = location.hash || '#/';
  }
}

// ------------------------------------------------------------------------------------- wiring
function init() {
  for (const b of document.querySelectorAll('[data-lang]')) {
    b.addEventListener('click', () => {
      S.lang = b.dataset.lang;
      localStorage.setItem('kakeru.lang', S.lang);
      clearNotice();
      applyLang();
    });
  }
  $('login-form').addEventListener('submit', onLogin);
  $('logout').addEventListener('click', async () => {
    try { await api('POST', '/auth/logout'); } catch (_) { /* the session may be gone already */ }
    loggedOut();
  });
  session.onUnauthorized(() => loggedOut());
  window.addEventListener('hashchange', route);
  // /ui/reports is this console opened at its reports.
  if (location.pathname === '/ui/reports' && !location.hash) history.replaceState(null, '', '/ui/reports#/reports');
  applyLang();
  if (session.token) start().catch(() => loggedOut());
  else show('login');
}

init();
