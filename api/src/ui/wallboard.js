// The kakeru wallboard (SPEC 6). Plain script, no framework, no build step: served by the API from
// the binary (api/src/ui.rs).
//
// Data flow: POST /auth/login -> bearer token in sessionStorage -> names (/users, /campaigns,
// /dialing-groups) and pause-reason colours (/pause-reasons) -> POST /wallboard/tickets -> EventSource
// on /wallboard/stream?ticket=...&last_event_id=... . Events only update the model and mark what
// changed; the DOM is touched once per animation frame for what changed (no full re-render per
// event), so a floor of 1,000 agents under a burst of changes stays smooth. Time in state ticks
// once a second from since_ms, corrected by the server clock seen in the events.
//
// An ES module: what each figure means comes from /ui/figures.js, shared with the console's job
// monitor, and is shown as each figure's tooltip and in the legend under the board.
'use strict';

import { FIGURES, figure, STATE_COLORS } from '/ui/figures.js';

(() => {
  // ------------------------------------------------------------------------------------------ words
  const I18N = {
    ja: {
      title: 'ウォールボード', logout: 'ログアウト', login_title: 'ログイン', tenant: 'テナントコード',
      login: 'ログインID', password: 'パスワード', login_button: 'ログイン',
      bad_credentials: 'テナントコード、ログインID、パスワードのいずれかが違います。',
      forbidden_title: '表示できません',
      forbidden_text: 'このページはスーパーバイザー (SV)・管理者 (MGR)・オペレーター (OP) のためのものです。あなたのロールではウォールボードを表示できません。',
      waiting: '待ち呼', longest_wait: '最長待ち', predicted_abandon: '予測破棄率', agents_online: 'ログイン中', agents_total: 'エージェント', talking_calls: '通話中の呼',
      series_range: '応答率の推移', agents_heading: 'エージェント', filter_state: '状態', search: '検索',
      all: 'すべて', no_agents: 'ログイン中のエージェントはいません。', to_ready: '待機にする',
      to_paused: '停止にする', to_offline: 'オフラインにする', close: '閉じる',
      conn_live: 'ライブ', conn_connecting: '接続中…', conn_retry: '再接続中…', conn_idle: '',
      answered: '応答', connected: '接続', abandoned: '破棄呼', answer_rate: '応答率',
      abandon_24h: '破棄率 (24時間)', abandon_30d: '破棄率 (30日)', target: '目標',
      dials_in_flight: '発信中', dial_level: '発信レベル', remaining_leads: '残りリード', callbacks_open: '未完了の折り返し呼',
      calls_today: '本日の通話', today: '本日', legend: '数値の定義', last_24h: '24時間', ready_agents: '待機',
      talking_agents: '通話中', paused_agents: '停止', campaign: 'キャンペーン', group: '発信グループ',
      agents_count: '{n} 人', tile_calls: '通話', last_call: '前回', last_5min: '直近5分', no_series: 'まだデータがありません',
      menu_sent: '変更を送りました', no_reasons: '停止理由がありません', network_error: '通信できません',
      unknown_campaign: 'キャンペーン #{id}', unknown_group: '発信グループ #{id}', agent_n: 'エージェント #{id}',
      state_offline: 'オフライン', state_ready: '待機', state_ringing: '着信中', state_talking: '通話中',
      state_hold: '保留', state_wrap_up: '後処理', state_paused: '停止', state_unknown: '未確認',
      monitor_heading: '通話に参加', monitor_listen: 'モニタリング', monitor_whisper: 'ささやき',
      monitor_barge: '割込', monitor_stop: '参加を終了', monitor_ringing: '{mode}: あなたの電話を呼び出しています',
      monitor_stopped: '通話への参加を終了しました', monitor_not_in_call: 'このエージェントは通話中ではありません。',
      monitor_no_phone: 'あなたには電話のアカウントがありません。',
      monitor_browser: 'このブラウザで参加 (マイクとスピーカー)', monitor_connecting: '{mode}: このブラウザをつないでいます…',
      monitor_on_browser: '{mode}: このブラウザで参加しています', monitor_fallback: '電話のアカウントがないため',
      monitor_mic_blocked: 'マイクが使えません。ブラウザの設定でこのページにマイクを許可してください。',
      monitor_browser_failed: 'このブラウザをつなげませんでした: {error}', monitor_browser_cut: 'このブラウザの音声経路が切れました。もう一度参加してください。',
    },
    en: {
      title: 'Wallboard', logout: 'Log out', login_title: 'Log in', tenant: 'Tenant code',
      login: 'Login', password: 'Password', login_button: 'Log in',
      bad_credentials: 'Tenant code, login or password is wrong.',
      forbidden_title: 'Not available',
      forbidden_text: 'This page is for supervisors (SV), managers (MGR) and operators (OP). Your role may not see the wallboard.',
      waiting: 'Waiting calls', longest_wait: 'Longest wait', predicted_abandon: 'Predicted abandon', agents_online: 'Logged in', agents_total: 'Agents', talking_calls: 'Calls talking',
      series_range: 'Answer rate', agents_heading: 'Agents', filter_state: 'State', search: 'Search',
      all: 'All', no_agents: 'No agent is logged in.', to_ready: 'Make ready',
      to_paused: 'Pause', to_offline: 'Log off', close: 'Close',
      conn_live: 'Live', conn_connecting: 'Connecting…', conn_retry: 'Reconnecting…', conn_idle: '',
      answered: 'Answered', connected: 'Connected', abandoned: 'Abandoned', answer_rate: 'Answer rate',
      abandon_24h: 'Abandon rate (24 h)', abandon_30d: 'Abandon rate (30 days)', target: 'target',
      dials_in_flight: 'Dials in flight', dial_level: 'Dial level', remaining_leads: 'Remaining leads', callbacks_open: 'Open callbacks',
      calls_today: 'Calls today', today: 'today', legend: 'What the figures mean', last_24h: '24 h', ready_agents: 'Ready',
      talking_agents: 'Talking', paused_agents: 'Paused', campaign: 'Campaign', group: 'Dialing group',
      agents_count: '{n} agents', tile_calls: 'calls', last_call: 'last', last_5min: 'last 5 min', no_series: 'No data yet',
      menu_sent: 'Change sent', no_reasons: 'No pause reasons', network_error: 'Network error',
      unknown_campaign: 'Campaign #{id}', unknown_group: 'Dialing group #{id}', agent_n: 'Agent #{id}',
      state_offline: 'Offline', state_ready: 'Ready', state_ringing: 'Ringing', state_talking: 'Talking',
      state_hold: 'Hold', state_wrap_up: 'Wrap-up', state_paused: 'Paused', state_unknown: 'Unknown',
      monitor_heading: 'Join the call', monitor_listen: 'Listen', monitor_whisper: 'Whisper',
      monitor_barge: 'Barge', monitor_stop: 'Leave the call', monitor_ringing: '{mode}: calling your phone',
      monitor_stopped: 'You left the call', monitor_not_in_call: 'This agent is not in a call.',
      monitor_no_phone: 'You have no phone account.',
      monitor_browser: 'Join from this browser (microphone and speaker)', monitor_connecting: '{mode}: connecting this browser…',
      monitor_on_browser: '{mode}: joined from this browser', monitor_fallback: 'you have no phone account',
      monitor_mic_blocked: 'The microphone is blocked: allow it for this page in the browser\'s settings.',
      monitor_browser_failed: 'This browser could not join: {error}', monitor_browser_cut: 'This browser\'s audio path was cut. Join again.',
    },
  };
  const STATES = ['ready', 'ringing', 'talking', 'hold', 'wrap_up', 'paused', 'unknown', 'offline'];
  const SV_ROLES = ['MGR', 'SV'];
  const BOARD_ROLES = ['MGR', 'SV', 'OP'];
  const BUCKET_MS = 300000;
  // Agent tiles: fixed size, absolutely placed by the page (see layoutGrid).
  const TILE_W = 156;
  const TILE_H = 82;
  const TILE_GAP = 6;
  const PAGE = 500;
  const MAX_PAGES = 40;

  // ------------------------------------------------------------------------------------------ state
  const S = {
    lang: localStorage.getItem('kakeru.lang') === 'en' ? 'en' : 'ja',
    token: sessionStorage.getItem('kakeru.token'),
    me: null,
    hours: Number(localStorage.getItem('kakeru.hours')) || 3,
    names: new Map(), // user id -> display name
    campaignInfo: new Map(), // campaign id -> {name, target}
    groupNames: new Map(),
    reasons: new Map(), // reason id -> {name, color}
    agents: new Map(), // agent id -> tile
    agentEls: new Map(), // agent id -> {el, name, state, time, meta, shown}
    campaigns: new Map(), // key ('c7', 'g3') -> tile
    cardEls: new Map(),
    pendingAgents: new Set(),
    pendingCards: new Set(),
    full: false,
    frame: 0,
    lastSeq: 0,
    skewMs: null,
    es: null,
    retryMs: 1000,
    retryTimer: 0,
    menuAgent: null,
    tenantTile: null, // the whole tenant's figures, when control sends them
    gridDirty: false,
    gridWidth: 0,
    stats: { events: 0, applied: 0, frames: 0, snapshots: 0, connects: 0, flush_ms: 0, tick_ms: 0, event_ms: 0 },
  };
  // For the browser tests and the curious: what the page has received and drawn.
  window.__wallboard = S.stats;

  const $ = (id) => document.getElementById(id);
  const t = (key, vars) => {
    let s = (I18N[S.lang] && I18N[S.lang][key]) || I18N.ja[key] || key;
    if (vars) for (const [k, v] of Object.entries(vars)) s = s.replace(`{${k}}`, v);
    return s;
  };
  const el = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  };
  /** Cuts a text to `max` characters (CJK count double) with an ellipsis: tiles do not clip. */
  const fit = (text, max) => {
    let w = 0;
    let i = 0;
    for (const ch of text) {
      w += ch.charCodeAt(0) > 0x2e7f ? 2 : 1;
      if (w > max) return `${text.slice(0, i)}…`;
      i += ch.length;
    }
    return text;
  };
  /** Writes a text only when it differs: an unchanged figure costs no style or layout work. */
  const setText = (e, text) => {
    if (e.textContent !== text) e.textContent = text;
  };
  const serverNow = () => Date.now() + (S.skewMs || 0);
  const pct = (x) => (x === null || x === undefined || !isFinite(x) ? '—' : `${(x * 100).toFixed(1)}%`);
  // One formatter per language: toLocaleString builds a new one on every call, far too slow for
  // thousands of tiles a second.
  const FORMATS = { ja: new Intl.NumberFormat('ja-JP'), en: new Intl.NumberFormat('en-US') };
  const num = (n) => (n === null || n === undefined ? '—' : n < 1000 && Number.isInteger(n) && n >= 0 ? String(n) : FORMATS[S.lang].format(n));
  const duration = (ms) => {
    const s = Math.max(0, Math.floor(ms / 1000));
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    const ss = String(s % 60).padStart(2, '0');
    return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
  };
  const stateName = (st) => (st && st.state) || 'unknown';
  const stateLabel = (st) => {
    const name = stateName(st);
    if (name === 'paused' && st.reason_id !== undefined && S.reasons.has(st.reason_id)) {
      return `${t('state_paused')}: ${S.reasons.get(st.reason_id).name}`;
    }
    return t(`state_${name}`);
  };
  const stateColor = (st) => {
    if (stateName(st) === 'paused' && S.reasons.has(st.reason_id) && S.reasons.get(st.reason_id).color) {
      return S.reasons.get(st.reason_id).color;
    }
    return STATE_COLORS[stateName(st)] || STATE_COLORS.unknown;
  };
  // Dark text on light colours (tenant colours can be anything).
  const inks = new Map();
  const inkFor = (hex) => {
    let ink = inks.get(hex);
    if (ink) return ink;
    const m = /^#?([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(hex || '');
    const lum = m ? m.slice(1).map((x) => parseInt(x, 16) / 255).reduce((a, v, i) => a + [0.2126, 0.7152, 0.0722][i] * v, 0) : 0;
    ink = lum > 0.6 ? '#111' : '#fff';
    inks.set(hex, ink);
    return ink;
  };

  // -------------------------------------------------------------------------------------------- API
  class HttpError extends Error {
    constructor(status, body) {
      super((body && body.error && body.error.message) || `HTTP ${status}`);
      this.status = status;
      this.body = body;
    }
  }

  async function api(method, path, body) {
    const headers = { Accept: 'application/json' };
    if (S.token) headers.Authorization = `Bearer ${S.token}`;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await r.text();
    let json = null;
    try { json = text ? JSON.parse(text) : null; } catch (_) { json = null; }
    if (!r.ok) throw new HttpError(r.status, json);
    return json;
  }

  /** Every page of a list endpoint (bounded). */
  async function listAll(path) {
    const out = [];
    for (let page = 0; page < MAX_PAGES; page++) {
      const sep = path.includes('?') ? '&' : '?';
      const r = await api('GET', `${path}${sep}limit=${PAGE}&offset=${page * PAGE}`);
      out.push(...r.items);
      if (out.length >= r.total || r.items.length === 0) break;
    }
    return out;
  }

  // ------------------------------------------------------------------------------------------ views
  function show(view) {
    for (const id of ['login', 'forbidden', 'board']) $(id).hidden = id !== view;
    $('logout').hidden = view === 'login';
  }

  /** The definitions of the figures, in the page's language (the same words as the tooltips). */
  function renderLegend() {
    const dl = $('legend');
    const rows = [];
    for (const key of Object.keys(FIGURES.ja)) {
      if (key === 'target_count') continue;
      const [label, def] = figure(S.lang, key);
      const dt = el('dt', '', t(key) === key ? label : t(key));
      const dd = el('dd', '', def);
      dd.dataset.def = key;
      rows.push(dt, dd);
    }
    dl.replaceChildren(...rows);
  }

  function applyLang() {
    document.documentElement.lang = S.lang;
    renderLegend();
    document.title = `kakeru ${t('title')}`;
    for (const e of document.querySelectorAll('[data-i18n]')) e.textContent = t(e.dataset.i18n);
    // Buttons with a shortcut show it beside their name (aria-keyshortcuts announces it).
    for (const b of document.querySelectorAll('button[data-key]')) {
      const keys = `Alt+${b.dataset.key.toUpperCase()}`;
      const k = el('kbd', '', keys);
      k.setAttribute('aria-hidden', 'true');
      b.append(k);
      b.setAttribute('aria-keyshortcuts', keys);
    }
    for (const b of document.querySelectorAll('[data-lang]')) b.setAttribute('aria-pressed', String(b.dataset.lang === S.lang));
    fillStateFilter();
    setConn($('conn').dataset.state);
    if (!$('board').hidden) {
      S.full = true;
      schedule();
    }
  }

  function setConn(state) {
    const c = $('conn');
    c.dataset.state = state;
    c.textContent = t(`conn_${state}`);
  }

  function fillStateFilter() {
    const sel = $('filter-state');
    const keep = sel.value;
    sel.replaceChildren(el('option', '', t('all')));
    sel.firstChild.value = '';
    for (const s of STATES) {
      const o = el('option', '', t(`state_${s}`));
      o.value = s;
      sel.append(o);
    }
    sel.value = keep;
  }

  // ------------------------------------------------------------------------------------ log in / out
  async function onLogin(ev) {
    ev.preventDefault();
    $('login-error').textContent = '';
    $('f-submit').disabled = true;
    try {
      const r = await api('POST', '/auth/login', {
        tenant: $('f-tenant').value.trim(),
        login: $('f-login').value.trim(),
        password: $('f-password').value,
      });
      S.token = r.token;
      sessionStorage.setItem('kakeru.token', r.token);
      $('f-password').value = '';
      await start();
    } catch (e) {
      $('login-error').textContent = e.status === 401 ? t('bad_credentials') : (e.status ? e.message : t('network_error'));
    } finally {
      $('f-submit').disabled = false;
    }
  }

  async function logout() {
    stopStream();
    if (S.token) {
      try { await api('POST', '/auth/logout'); } catch (_) { /* the session may be gone already */ }
    }
    loggedOut();
  }

  /** Forgets the board of the previous login (another user may log in next). */
  function resetBoard() {
    stopStream();
    closeMenu();
    for (const m of [S.agents, S.agentEls, S.campaigns, S.cardEls, S.names, S.campaignInfo, S.groupNames, S.reasons]) m.clear();
    S.pendingAgents.clear();
    S.pendingCards.clear();
    S.lastSeq = 0;
    S.skewMs = null;
    S.tenantTile = null;
    $('agent-grid').replaceChildren();
    $('agent-grid').style.height = '0px';
    $('campaigns').replaceChildren();
    $('groups').replaceChildren();
    renderFloor();
  }

  function loggedOut() {
    resetBoard();
    S.token = null;
    S.me = null;
    sessionStorage.removeItem('kakeru.token');
    $('who').textContent = '';
    setConn('idle');
    show('login');
    $('f-tenant').focus();
  }

  function forbidden() {
    resetBoard();
    setConn('idle');
    show('forbidden');
  }

  /** After a login (or a reload with a token): who am I, what may I see. */
  async function start() {
    let me;
    try {
      me = await api('GET', '/me');
    } catch (e) {
      if (e.status === 401) return loggedOut();
      throw e;
    }
    S.me = me;
    $('who').textContent = `${me.login} (${me.role})`;
    if (!BOARD_ROLES.includes(me.role)) {
      // The server refuses the board to this role; ask it, so the page says what the server says.
      try { await api('GET', '/wallboard'); } catch (e) { if (e.status === 403) return forbidden(); }
      return forbidden();
    }
    show('board');
    document.body.classList.toggle('sv', SV_ROLES.includes(me.role));
    await loadNames();
    connect();
  }

  async function loadNames() {
    const jobs = [
      listAll('/pause-reasons').then((rs) => {
        S.reasons.clear();
        for (const r of rs) S.reasons.set(r.id, { name: r.name, color: r.color });
      }),
    ];
    if (SV_ROLES.includes(S.me.role)) {
      jobs.push(listAll('/users').then((us) => { for (const u of us) S.names.set(u.id, u.display_name || u.login); }));
      jobs.push(listAll('/campaigns').then((cs) => {
        for (const c of cs) S.campaignInfo.set(c.id, { name: c.name, target: c.abandon_target_pct });
      }));
      jobs.push(listAll('/dialing-groups').then((gs) => { for (const g of gs) S.groupNames.set(g.id, g.name); }));
    } else {
      S.names.set(S.me.id, S.me.login);
    }
    const results = await Promise.allSettled(jobs);
    for (const r of results) {
      if (r.status === 'rejected' && r.reason.status === 401) throw r.reason;
    }
    fillReasons();
  }

  // ----------------------------------------------------------------------------------------- stream
  function stopStream() {
    clearTimeout(S.retryTimer);
    if (S.es) S.es.close();
    S.es = null;
  }

  async function connect() {
    stopStream();
    setConn(S.lastSeq ? 'retry' : 'connecting');
    let ticket;
    try {
      ticket = (await api('POST', '/wallboard/tickets')).ticket;
    } catch (e) {
      if (e.status === 401) return loggedOut();
      if (e.status === 403) return forbidden();
      return retry();
    }
    const q = new URLSearchParams({ ticket });
    if (S.lastSeq) q.set('last_event_id', String(S.lastSeq));
    const es = new EventSource(`/wallboard/stream?${q}`);
    S.es = es;
    S.stats.connects++;
    es.addEventListener('open', () => { S.retryMs = 1000; setConn('live'); });
    es.addEventListener('snapshot', (m) => onSnapshot(JSON.parse(m.data)));
    // 折り返し呼: the tenant's open callbacks (supervisors' and managers' boards).
    es.addEventListener('callbacks', (m) => {
      $('fig-callbacks').hidden = false;
      $('floor-callbacks').textContent = num(JSON.parse(m.data).open);
    });
    es.addEventListener('change', (m) => {
      const t0 = performance.now();
      onChange(JSON.parse(m.data));
      S.stats.event_ms += performance.now() - t0;
    });
    // A dropped stream: the EventSource would retry with the spent ticket; take a new one instead and
    // resume after the last event seen (last_event_id), with backoff.
    es.addEventListener('error', () => { if (S.es === es) retry(); });
  }

  function retry() {
    if (S.es) S.es.close();
    S.es = null;
    setConn('retry');
    clearTimeout(S.retryTimer);
    S.retryTimer = setTimeout(connect, S.retryMs);
    S.retryMs = Math.min(S.retryMs * 2, 15000);
  }

  // Campaign tiles carry campaign_id, dialing-group tiles dialing_group_id (and no campaign_id).
  const cardKey = (tile) => (tile.campaign_id === undefined ? `g${tile.dialing_group_id}` : `c${tile.campaign_id}`);

  function onSnapshot(s) {
    S.stats.events++;
    S.stats.snapshots++;
    S.lastSeq = s.seq;
    S.agents.clear();
    for (const a of s.agents || []) S.agents.set(a.agent_id, a);
    S.campaigns.clear();
    for (const c of s.campaigns || []) S.campaigns.set(cardKey(c), c);
    for (const g of s.groups || []) S.campaigns.set(cardKey(g), g);
    S.tenantTile = s.tenant || null;
    S.full = true;
    schedule();
  }

  function onChange(c) {
    S.stats.events++;
    if (c.seq <= S.lastSeq) return;
    S.lastSeq = c.seq;
    const skew = c.at_ms - Date.now();
    if (S.skewMs === null || skew > S.skewMs) S.skewMs = skew;
    if (c.tile === 'agent') {
      S.agents.set(c.agent_id, c);
      S.pendingAgents.add(c.agent_id);
    } else if (c.tile === 'tenant') {
      S.tenantTile = c;
    } else if (c.tile === 'campaign' || c.tile === 'group') {
      const k = cardKey(c);
      S.campaigns.set(k, c);
      S.pendingCards.add(k);
    }
    schedule();
  }

  function schedule() {
    if (!S.frame) S.frame = requestAnimationFrame(flush);
  }

  // -------------------------------------------------------------------------------------- rendering
  /** Once per animation frame: apply what changed since the last frame. */
  function flush() {
    const t0 = performance.now();
    S.frame = 0;
    S.stats.frames++;
    if (S.full) {
      S.full = false;
      S.pendingAgents.clear();
      S.pendingCards.clear();
      renderAllAgents();
      renderAllCards();
    } else {
      for (const id of S.pendingAgents) renderAgent(id);
      S.stats.applied += S.pendingAgents.size;
      S.pendingAgents.clear();
      for (const k of S.pendingCards) renderCard(k);
      S.pendingCards.clear();
    }
    if (S.gridDirty) layoutGrid();
    renderFloor();
    S.stats.flush_ms += performance.now() - t0;
  }

  function agentName(id) {
    return S.names.get(id) || t('agent_n', { id });
  }

  function makeAgentEl(id) {
    const e = el('div', 'agent');
    e.dataset.agent = String(id);
    e.tabIndex = 0;
    // Each line keeps one text node whose data is rewritten: no node is replaced per update.
    const line = (cls, text = '') => {
      const d = el('div', cls);
      const n = document.createTextNode(text);
      d.append(n);
      e.append(d);
      return n;
    };
    const name = line('name', fit(agentName(id), 20));
    const state = line('state');
    const time = line('time');
    const meta = line('meta');
    const rec = { el: e, name, state, time, meta, since: 0, key: '', meta_text: '', shown: true, pos: -1 };
    S.agentEls.set(id, rec);
    return rec;
  }

  function paintAgent(rec, tile) {
    const key = `${stateName(tile.state)}:${tile.state.reason_id ?? ''}`;
    if (key !== rec.key) {
      rec.key = key;
      const color = stateColor(tile.state);
      rec.el.style.setProperty('--bg', color);
      rec.el.style.setProperty('--ink', inkFor(color));
      rec.el.dataset.state = stateName(tile.state);
      rec.state.data = fit(stateLabel(tile.state), 24);
    }
    rec.since = tile.since_ms;
    const time = duration(serverNow() - tile.since_ms);
    if (rec.time.data !== time) rec.time.data = time;
    const last = tile.last_call_ms === null || tile.last_call_ms === undefined ? '—' : duration(tile.last_call_ms);
    const meta = fit(`${t('tile_calls')} ${num(tile.calls_today)} · ${t('last_call')} ${last}`, 22);
    if (meta !== rec.meta_text) {
      rec.meta_text = meta;
      rec.meta.data = meta;
    }
    applyFilter(rec, tile);
  }

  function renderAgent(id) {
    const tile = S.agents.get(id);
    let rec = S.agentEls.get(id);
    if (!rec) {
      rec = makeAgentEl(id);
      $('agent-grid').append(rec.el);
      S.gridDirty = true;
    }
    paintAgent(rec, tile);
  }

  /**
   * Places the shown tiles in rows, in display order. Tiles are absolutely positioned boxes of a
   * fixed size, so a change inside one tile never lays out the other 999; this runs only when the
   * set or order of shown tiles or the width changes.
   */
  function layoutGrid() {
    S.gridDirty = false;
    const grid = $('agent-grid');
    const width = S.gridWidth || grid.clientWidth || 1200;
    const cols = Math.max(1, Math.floor((width + TILE_GAP) / (TILE_W + TILE_GAP)));
    let i = 0;
    for (const rec of S.agentEls.values()) {
      if (!rec.shown) continue;
      const x = (i % cols) * (TILE_W + TILE_GAP);
      const y = Math.floor(i / cols) * (TILE_H + TILE_GAP);
      const pos = x * 100000 + y;
      if (rec.pos !== pos) {
        rec.pos = pos;
        rec.el.style.left = `${x}px`;
        rec.el.style.top = `${y}px`;
      }
      i++;
    }
    const rows = Math.ceil(i / cols);
    grid.style.height = `${Math.max(0, rows * (TILE_H + TILE_GAP) - TILE_GAP)}px`;
  }

  function renderAllAgents() {
    const grid = $('agent-grid');
    const ids = [...S.agents.keys()].sort((a, b) => agentName(a).localeCompare(agentName(b), S.lang) || a - b);
    const frag = document.createDocumentFragment();
    const old = S.agentEls;
    S.agentEls = new Map();
    for (const id of ids) {
      const prev = old.get(id);
      let rec;
      if (prev) {
        rec = prev;
        rec.key = '';
        rec.meta_text = '';
        rec.name.data = fit(agentName(id), 20);
        S.agentEls.set(id, rec);
      } else {
        rec = makeAgentEl(id);
      }
      paintAgent(rec, S.agents.get(id));
      frag.append(rec.el);
    }
    grid.replaceChildren(frag);
    S.gridDirty = true;
    S.stats.applied += ids.length;
  }

  function applyFilter(rec, tile) {
    const want = $('filter-state').value;
    const text = $('filter-text').value.trim().toLowerCase();
    const shown = (!want || stateName(tile.state) === want) &&
      (!text || agentName(tile.agent_id).toLowerCase().includes(text) || String(tile.agent_id) === text);
    if (shown !== rec.shown) {
      rec.shown = shown;
      rec.el.hidden = !shown;
      S.gridDirty = true;
    }
  }

  function refilter() {
    for (const [id, rec] of S.agentEls) applyFilter(rec, S.agents.get(id));
    schedule();
  }

  /** Time in state, every second, for every tile (text only: no layout change). */
  function tick() {
    if ($('board').hidden) return;
    const t0 = performance.now();
    const now = serverNow();
    for (const rec of S.agentEls.values()) {
      const s = duration(now - rec.since);
      if (rec.time.data !== s) rec.time.data = s;
    }
    // The longest waits tick too.
    if (S.floorLongest !== null && S.floorLongest !== undefined) setText($('floor-longest'), duration(now - S.floorLongest));
    for (const [k, rec] of S.cardEls) {
      const c = S.campaigns.get(k);
      if (c && c.waiting && c.longest_waiting_since_ms) setText(rec.values.longest_wait, duration(now - c.longest_waiting_since_ms));
    }
    S.stats.tick_ms += performance.now() - t0;
  }

  // Floor summary and the state pie, from the agent tiles.
  function renderFloor() {
    const counts = new Map();
    let online = 0;
    let shownCount = 0;
    for (const [id, a] of S.agents) {
      const name = stateName(a.state);
      const k = name === 'paused' ? `paused:${a.state.reason_id}` : name;
      counts.set(k, (counts.get(k) || 0) + 1);
      if (name !== 'offline') online++;
      const rec = S.agentEls.get(id);
      if (rec && rec.shown) shownCount++;
    }
    let waiting = 0;
    let talking = 0;
    let longest = null;
    if (S.tenantTile) {
      waiting = S.tenantTile.waiting || 0;
      talking = S.tenantTile.talking_calls || 0;
      longest = S.tenantTile.longest_waiting_since_ms ?? null;
    } else {
      for (const [k, c] of S.campaigns) {
        if (k[0] === 'c') {
          waiting += c.waiting || 0;
          talking += c.talking_calls || 0;
          const since = c.longest_waiting_since_ms ?? null;
          if (since !== null && (longest === null || since < longest)) longest = since;
        }
      }
    }
    S.floorLongest = waiting > 0 ? longest : null;
    setText($('floor-longest'), S.floorLongest === null ? '—' : duration(serverNow() - S.floorLongest));
    setText($('floor-waiting'), num(waiting));
    setText($('floor-online'), num(online));
    setText($('floor-total'), num(S.agents.size));
    setText($('floor-talking'), num(talking));
    setText($('agent-count'), t('agents_count', { n: num(shownCount) }));
    if ($('agents-empty').hidden !== S.agents.size > 0) $('agents-empty').hidden = S.agents.size > 0;
    renderPie(counts);
  }

  const SVG = 'http://www.w3.org/2000/svg';
  const svg = (tag, attrs) => {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    return e;
  };

  // The pie keeps its slices and legend rows; a frame only rewrites the numbers that moved, and
  // rebuilds only when the set of slices changes.
  const pie = { keys: '', lang: '', slices: new Map(), rows: new Map(), total: null };
  function renderPie(counts) {
    const entries = [];
    for (const s of STATES) {
      if (s === 'paused') {
        for (const [k, n] of counts) {
          if (k.startsWith('paused:')) {
            const rid = Number(k.slice(7));
            const st = { state: 'paused', reason_id: rid };
            entries.push({ key: k, n, color: stateColor(st), label: stateLabel(st) });
          }
        }
      } else if (counts.get(s)) {
        entries.push({ key: s, n: counts.get(s), color: STATE_COLORS[s], label: t(`state_${s}`) });
      }
    }
    const keys = entries.map((e) => `${e.key}${e.color}`).join(',');
    const svgEl = $('pie');
    if (keys !== pie.keys || S.lang !== pie.lang) {
      pie.keys = keys;
      pie.lang = S.lang;
      pie.slices.clear();
      pie.rows.clear();
      const parts = [svgEl.querySelector('title'), svg('circle', { r: '0.8', fill: 'none', stroke: '#d8dce0', 'stroke-width': '0.35' })];
      for (const e of entries) {
        const c = svg('circle', { r: '0.8', fill: 'none', stroke: e.color, 'stroke-width': '0.35', transform: 'rotate(-90)' });
        c.dataset.slice = e.key;
        pie.slices.set(e.key, c);
        parts.push(c);
      }
      pie.total = svg('text', { x: '0', y: '0.12', 'text-anchor': 'middle', class: 'pie-total' });
      parts.push(pie.total);
      svgEl.replaceChildren(...parts);
      $('pie-legend').replaceChildren(...entries.map((e) => {
        const li = el('li');
        li.dataset.slice = e.key;
        const sw = el('span', 'swatch');
        sw.style.setProperty('--bg', e.color);
        const n = el('span', 'n');
        li.append(sw, el('span', 'label', e.label), n);
        pie.rows.set(e.key, n);
        return li;
      }));
    }
    const total = entries.reduce((a, e) => a + e.n, 0);
    const circumference = 2 * Math.PI * 0.8;
    let offset = 0;
    for (const e of entries) {
      const len = (e.n / total) * circumference;
      const c = pie.slices.get(e.key);
      const dash = `${len.toFixed(4)} ${(circumference - len).toFixed(4)}`;
      if (c.getAttribute('stroke-dasharray') !== dash) {
        c.setAttribute('stroke-dasharray', dash);
        c.setAttribute('stroke-dashoffset', (-offset).toFixed(4));
      } else if (c.getAttribute('stroke-dashoffset') !== (-offset).toFixed(4)) {
        c.setAttribute('stroke-dashoffset', (-offset).toFixed(4));
      }
      const row = pie.rows.get(e.key);
      const txt = num(e.n);
      setText(row, txt);
      offset += len;
    }
    setText(pie.total, String(total));
  }

  // Campaign and dialing-group cards.
  const FIGS = [
    ['waiting', (c) => num(c.waiting)],
    ['longest_wait', (c) => (c.waiting && c.longest_waiting_since_ms ? duration(serverNow() - c.longest_waiting_since_ms) : '—')],
    ['answered', (c) => num(c.today && c.today.answered)],
    ['connected', (c) => num(c.today && c.today.connected)],
    ['talking_calls', (c) => num(c.talking_calls)],
    ['abandoned', (c) => num(c.today && c.today.abandoned)],
    ['answer_rate', (c) => pct(c.last_24h && c.last_24h.answered ? c.last_24h.answer_rate : null)],
    ['abandon_24h', (c) => pct(c.last_24h && c.last_24h.answered ? c.last_24h.abandon_rate : null)],
    ['abandon_30d', (c) => pct(c.last_30d && c.last_30d.answered ? c.last_30d.abandon_rate : null)],
    ['dials_in_flight', (c) => num(c.dials_in_flight)],
    ['dial_level', (c) => (c.dial_level === null || c.dial_level === undefined ? '—' : c.dial_level.toFixed(2))],
    ['predicted_abandon', (c) => pct(c.predicted_abandon_rate)],
    ['remaining_leads', (c) => num(c.remaining_leads)],
    ['calls_today', (c) => num(c.calls_today)],
  ];

  function cardTitle(key) {
    const id = Number(key.slice(1));
    if (key[0] === 'g') return S.groupNames.get(id) || t('unknown_group', { id });
    return (S.campaignInfo.get(id) && S.campaignInfo.get(id).name) || t('unknown_campaign', { id });
  }

  function makeCard(key) {
    const card = el('article', 'card panel');
    card.dataset[key[0] === 'g' ? 'group' : 'campaign'] = key.slice(1);
    const head = el('header', 'card-head');
    head.append(el('span', 'kind', t(key[0] === 'g' ? 'group' : 'campaign')), el('h2', '', cardTitle(key)));
    const figs = el('dl', 'figs');
    const values = {};
    for (const [name] of FIGS) {
      const box = el('div', 'fig');
      box.dataset.fig = name;
      const v = el('dd', 'v');
      const dt = el('dt', 'k', t(name));
      dt.title = figure(S.lang, name)[1];
      box.append(dt, v);
      if (name.startsWith('abandon_')) {
        const tgt = el('span', 'target');
        box.append(tgt);
        values[`${name}_target`] = tgt;
      }
      figs.append(box);
      values[name] = v;
    }
    const bar = el('div', 'state-bar');
    const series = svg('svg', { class: 'series', viewBox: '0 0 300 80', preserveAspectRatio: 'none', role: 'img' });
    const seriesNote = el('div', 'series-note');
    card.append(head, figs, bar, series, seriesNote);
    const rec = { card, values, bar, series, seriesNote, title: head.querySelector('h2') };
    S.cardEls.set(key, rec);
    return rec;
  }

  function renderCard(key) {
    const c = S.campaigns.get(key);
    let rec = S.cardEls.get(key);
    if (!rec) {
      rec = makeCard(key);
      $(key[0] === 'g' ? 'groups' : 'campaigns').append(rec.card);
    }
    for (const [name, f] of FIGS) {
      const v = f(c);
      setText(rec.values[name], v);
    }
    const info = S.campaignInfo.get(c.campaign_id);
    const target = info && typeof info.target === 'number' ? info.target / 100 : null;
    for (const [name, win] of [['abandon_24h', c.last_24h], ['abandon_30d', c.last_30d]]) {
      const tgt = rec.values[`${name}_target`];
      setText(tgt, target === null ? '' : `${t('target')} ${pct(target)}`);
      const over = target !== null && win && win.answered > 0 && win.abandon_rate > target;
      if (tgt.parentElement.classList.contains('over') !== over) tgt.parentElement.classList.toggle('over', over);
    }
    renderStateBar(rec.bar, c.agents_by_state || {});
    renderSeries(rec, c.series_5min || []);
  }

  function renderAllCards() {
    const keep = new Set(S.campaigns.keys());
    for (const [k, rec] of S.cardEls) {
      if (!keep.has(k)) {
        rec.card.remove();
        S.cardEls.delete(k);
      }
    }
    for (const k of [...keep].sort()) {
      const rec = S.cardEls.get(k);
      if (rec) {
        rec.card.remove();
        S.cardEls.delete(k);
      }
      renderCard(k);
    }
  }

  function renderStateBar(bar, byState) {
    const shown = STATES.filter((st) => st !== 'offline' && byState[st]);
    const keys = `${S.lang}:${shown.join(',')}`;
    if (bar.dataset.keys !== keys) {
      bar.dataset.keys = keys;
      bar.replaceChildren(...shown.map((st) => {
        const seg = el('span', 'seg');
        seg.style.setProperty('--bg', STATE_COLORS[st]);
        seg.dataset.state = st;
        return seg;
      }));
    }
    for (const seg of bar.children) {
      const n = byState[seg.dataset.state];
      const w = String(n);
      if (seg.style.getPropertyValue('--w') !== w) {
        seg.style.setProperty('--w', w);
        seg.textContent = `${t(`state_${seg.dataset.state}`)} ${n}`;
        seg.title = seg.textContent;
      }
    }
    if (bar.hidden !== (shown.length === 0)) bar.hidden = shown.length === 0;
  }

  /** The 5-minute answer-rate series over the chosen hours (bars: answered; line: answer rate). */
  function renderSeries(rec, series) {
    const now = serverNow();
    const from = now - S.hours * 3600000;
    const buckets = series.filter(([start]) => start + BUCKET_MS > from);
    // Redrawn only when what it shows changed (a new bucket, new counts, another range, the clock
    // crossing a bucket).
    const tail = buckets.length ? buckets[buckets.length - 1] : null;
    const key = `${S.lang}|${S.hours}|${Math.floor(now / BUCKET_MS)}|${buckets.length}|${buckets.length ? buckets[0][0] : 0}|${tail ? `${tail[0]}:${tail[1].answered}:${tail[1].connected}` : ''}`;
    if (rec.seriesKey === key) return;
    rec.seriesKey = key;
    const n = Math.ceil((S.hours * 3600000) / BUCKET_MS);
    const w = 300 / n;
    const maxAnswered = Math.max(1, ...buckets.map(([, c]) => c.answered));
    const parts = [];
    for (const y of [20, 40, 60]) parts.push(svg('line', { x1: 0, x2: 300, y1: y, y2: y, class: 'grid-line' }));
    const points = [];
    for (const [start, c] of buckets) {
      const i = Math.floor((start - from) / BUCKET_MS);
      const x = Math.max(0, i) * w;
      const h = (c.answered / maxAnswered) * 30;
      parts.push(svg('rect', { x: x.toFixed(2), y: (80 - h).toFixed(2), width: Math.max(0.5, w - 0.5).toFixed(2), height: h.toFixed(2), class: 'bar' }));
      if (c.answered > 0) points.push(`${(x + w / 2).toFixed(2)},${(78 - (c.connected / c.answered) * 74).toFixed(2)}`);
    }
    if (points.length > 1) parts.push(svg('polyline', { points: points.join(' '), class: 'rate' }));
    for (const p of points.length === 1 ? points : []) {
      const [x, y] = p.split(',');
      parts.push(svg('circle', { cx: x, cy: y, r: 2, class: 'rate-dot' }));
    }
    rec.series.replaceChildren(...parts);
    rec.series.dataset.buckets = String(buckets.length);
    const last = buckets.length ? buckets[buckets.length - 1][1] : null;
    setText(rec.seriesNote, last && last.answered
      ? `${t('answer_rate')} ${S.hours}h · ${t('last_5min')} ${pct(last.connected / last.answered)}`
      : `${t('answer_rate')} ${S.hours}h · ${t('no_series')}`);
  }

  function setHours(h) {
    S.hours = h;
    localStorage.setItem('kakeru.hours', String(h));
    for (const b of document.querySelectorAll('[data-hours]')) b.setAttribute('aria-pressed', String(Number(b.dataset.hours) === h));
    for (const k of S.campaigns.keys()) S.pendingCards.add(k);
    schedule();
  }

  // ------------------------------------------------------------------- SV: change an agent's state
  function fillReasons() {
    const sel = $('menu-reason');
    sel.replaceChildren();
    for (const [id, r] of S.reasons) {
      const o = el('option', '', r.name);
      o.value = String(id);
      sel.append(o);
    }
    const none = S.reasons.size === 0;
    sel.disabled = none;
    $('agent-menu').querySelector('[data-to="paused"]').disabled = none;
    if (none) {
      const o = el('option', '', t('no_reasons'));
      sel.append(o);
    }
  }

  function openMenu(id, anchor) {
    if (!S.me || !SV_ROLES.includes(S.me.role)) return;
    S.menuAgent = id;
    fillReasons(); // in the page's language now
    const m = $('agent-menu');
    $('menu-title').textContent = `${agentName(id)} — ${stateLabel(S.agents.get(id).state)}`;
    $('menu-error').textContent = '';
    $('menu-monitor-status').textContent = '';
    // モニタリング / ささやき / 割込 join a call: only an agent in one.
    const inCall = ['talking', 'hold'].includes(stateName(S.agents.get(id).state));
    for (const b of m.querySelectorAll('[data-monitor]')) b.disabled = !inCall && b.dataset.monitor !== 'stop';
    m.hidden = false;
    const r = anchor.getBoundingClientRect();
    const top = Math.min(window.scrollY + r.bottom + 4, window.scrollY + window.innerHeight - m.offsetHeight - 8);
    const left = Math.min(window.scrollX + r.left, window.scrollX + window.innerWidth - m.offsetWidth - 8);
    m.style.setProperty('--top', `${Math.max(0, top)}px`);
    m.style.setProperty('--left', `${Math.max(0, left)}px`);
    m.querySelector('[data-to="ready"]').focus();
  }

  function closeMenu() {
    $('agent-menu').hidden = true;
    S.menuAgent = null;
  }

  async function changeState(to) {
    const id = S.menuAgent;
    if (id === null) return;
    const body = { to };
    if (to === 'paused') body.reason_id = Number($('menu-reason').value);
    $('menu-error').textContent = '';
    try {
      await api('POST', `/agents/${id}/state`, body);
      closeMenu();
    } catch (e) {
      if (e.status === 401) return loggedOut();
      $('menu-error').textContent = e.status ? e.message : t('network_error');
    }
  }

  // -------------------------------------- SV: listen to, whisper to or barge into an agent's call
  // From the supervisor's SIP phone (the dialer rings it), or from this page (WebRTC: the offer goes
  // with the request and the media shard's answer comes back in the reply). Without a phone
  // account the page joins from the browser by itself.
  const SVP = { pc: null, stream: null, ctx: null, analyser: null };

  function closeBrowserPhone(later) {
    const pc = SVP.pc;
    SVP.pc = null;
    $('monitor-audio').srcObject = null;
    // On 参加を終了 the dialer ends the leg first (it records that the supervisor left); the
    // connection is closed a moment later, not raced against that.
    if (pc) setTimeout(() => pc.close(), later ? 3000 : 0);
  }

  /** A new connection for this page, its offer with every host candidate (at most 2 s). The one
   * in use stays up until the new one is answered (a change of mode is a new connection). */
  async function browserOffer() {
    if (!SVP.stream) SVP.stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    const pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle', rtcpMuxPolicy: 'require' });
    pc.addTrack(SVP.stream.getAudioTracks()[0], SVP.stream);
    pc.ontrack = (ev) => {
      if (SVP.pc !== pc) return;
      const far = ev.streams[0] || new MediaStream([ev.track]);
      $('monitor-audio').srcObject = far;
      SVP.ctx = SVP.ctx || new AudioContext();
      const a = SVP.ctx.createAnalyser();
      a.fftSize = 4096;
      SVP.ctx.createMediaStreamSource(far).connect(a);
      SVP.analyser = a;
    };
    pc.oniceconnectionstatechange = () => {
      if (SVP.pc !== pc) return;
      if (['failed', 'disconnected', 'closed'].includes(pc.iceConnectionState)) {
        $('menu-monitor-status').textContent = '';
        $('menu-error').textContent = t('monitor_browser_cut');
      }
    };
    await pc.setLocalDescription(await pc.createOffer());
    await new Promise((resolve) => {
      if (pc.iceGatheringState === 'complete') return resolve();
      pc.addEventListener('icegatheringstatechange', () => { if (pc.iceGatheringState === 'complete') resolve(); });
      setTimeout(resolve, 2000);
    });
    return pc;
  }

  async function joinFromBrowser(id, mode, fallback) {
    const label = t(`monitor_${mode}`);
    $('menu-monitor-status').textContent = t('monitor_connecting', { mode: label });
    let pc;
    try {
      pc = await browserOffer();
    } catch (e) {
      closeBrowserPhone();
      throw Object.assign(new Error(t('monitor_mic_blocked')), { said: true });
    }
    let r;
    try {
      r = await api('POST', `/agents/${id}/monitor`, { mode, sdp: pc.localDescription.sdp });
    } catch (e) {
      pc.close();
      throw e;
    }
    closeBrowserPhone();
    SVP.pc = pc;
    await pc.setRemoteDescription({ type: 'answer', sdp: r.sdp });
    const said = t('monitor_on_browser', { mode: label });
    $('menu-monitor-status').textContent = fallback ? `${said} — ${t('monitor_fallback')}` : said;
  }

  async function monitorCall(mode) {
    const id = S.menuAgent;
    if (id === null) return;
    $('menu-error').textContent = '';
    const browser = $('monitor-browser');
    try {
      if (mode === 'stop') {
        await api('DELETE', `/agents/${id}/monitor`);
        closeBrowserPhone(true);
        $('menu-monitor-status').textContent = t('monitor_stopped');
      } else if (browser.checked) {
        await joinFromBrowser(id, mode);
      } else {
        try {
          await api('POST', `/agents/${id}/monitor`, { mode });
          closeBrowserPhone();
          $('menu-monitor-status').textContent = t('monitor_ringing', { mode: t(`monitor_${mode}`) });
        } catch (e) {
          if (!(e.body && e.body.error && e.body.error.code === 'no_phone')) throw e;
          browser.checked = true;
          localStorage.setItem('kakeru.monitorBrowser', '1');
          await joinFromBrowser(id, mode, true);
        }
      }
    } catch (e) {
      if (e.status === 401) return loggedOut();
      if (e.said) {
        $('menu-error').textContent = e.message;
        $('menu-monitor-status').textContent = '';
        return;
      }
      const code = e.body && e.body.error && e.body.error.code;
      const known = { not_in_call: 'monitor_not_in_call', no_phone: 'monitor_no_phone' }[code];
      if (browser.checked && !known && e.status) {
        closeBrowserPhone();
        $('menu-monitor-status').textContent = '';
        $('menu-error').textContent = t('monitor_browser_failed', { error: e.message });
        return;
      }
      $('menu-error').textContent = known ? t(known) : e.status ? e.message : t('network_error');
    }
  }

  /** The strongest frequency the page hears from the call (Hz), for the tests. */
  function monitorPeakHz() {
    const a = SVP.analyser;
    if (!a) return 0;
    const bins = new Float32Array(a.frequencyBinCount);
    a.getFloatFrequencyData(bins);
    let best = 1;
    for (let i = 2; i < bins.length; i++) if (bins[i] > bins[best]) best = i;
    return (best * SVP.ctx.sampleRate) / a.fftSize;
  }
  window.__monitor = { peakHz: monitorPeakHz, connected: () => !!SVP.pc && ['connected', 'completed'].includes(SVP.pc.iceConnectionState) };

  // ------------------------------------------------------------------------------------------ wiring
  function init() {
    for (const b of document.querySelectorAll('[data-lang]')) {
      b.addEventListener('click', () => {
        S.lang = b.dataset.lang;
        localStorage.setItem('kakeru.lang', S.lang);
        applyLang();
      });
    }
    for (const b of document.querySelectorAll('[data-hours]')) b.addEventListener('click', () => setHours(Number(b.dataset.hours)));
    $('login-form').addEventListener('submit', onLogin);
    $('logout').addEventListener('click', logout);
    $('filter-state').addEventListener('change', refilter);
    $('filter-text').addEventListener('input', refilter);
    $('agent-grid').addEventListener('click', (ev) => {
      const a = ev.target.closest('.agent');
      if (a) openMenu(Number(a.dataset.agent), a);
    });
    $('agent-grid').addEventListener('keydown', (ev) => {
      const a = ev.target.closest('.agent');
      if (a && (ev.key === 'Enter' || ev.key === ' ')) {
        ev.preventDefault();
        openMenu(Number(a.dataset.agent), a);
      }
    });
    for (const b of $('agent-menu').querySelectorAll('[data-to]')) b.addEventListener('click', () => changeState(b.dataset.to));
    $('menu-close').addEventListener('click', closeMenu);
    for (const b of $('agent-menu').querySelectorAll('[data-monitor]')) b.addEventListener('click', () => monitorCall(b.dataset.monitor));
    $('monitor-browser').checked = localStorage.getItem('kakeru.monitorBrowser') === '1';
    $('monitor-browser').addEventListener('change', (ev) => localStorage.setItem('kakeru.monitorBrowser', ev.target.checked ? '1' : '0'));
    document.addEventListener('keydown', (ev) => {
      if (ev.key === 'Escape') closeMenu();
      if (ev.altKey && S.menuAgent !== null) {
        const b = $('agent-menu').querySelector(`[data-key="${ev.key.toLowerCase()}"]`);
        if (b && !b.disabled) {
          ev.preventDefault();
          b.click();
        }
      }
    });
    new ResizeObserver((entries) => {
      const w = entries[entries.length - 1].contentRect.width;
      if (w > 0 && w !== S.gridWidth) {
        S.gridWidth = w;
        S.gridDirty = true;
        schedule();
      }
    }).observe($('agent-grid'));
    applyLang();
    setHours(S.hours);
    setInterval(tick, 1000);
    // The series slides with time even without events.
    setInterval(() => { for (const k of S.campaigns.keys()) S.pendingCards.add(k); schedule(); }, 60000);
    if (S.token) {
      start().catch(() => loggedOut());
    } else {
      show('login');
    }
  }

  init();
})();
