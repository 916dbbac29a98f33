// kakeru's login page (/): tenant, login ID and password; each role goes to its home. Served by
// the API from the binary (api/src/pages.rs). The bearer token is kept in sessionStorage (the
// pages of the same tab read it there).
'use strict';

(() => {
  const I18N = {
    ja: {
      product: '掛ける', title: 'ログイン', tenant: 'テナントコード', login: 'ログインID', password: 'パスワード',
      submit: 'ログイン', language: '言語', required: '{f}を入力してください',
      bad_credentials: 'テナントコード、ログインID、パスワードのいずれかが違います。',
      network_error: '通信できません。接続を確認してください。', too_many: 'ログインの試行が多すぎます。しばらく待ってから再度お試しください。',
      locked: 'このアカウントはパスワードを複数回間違えたためロックされています。管理者に解除を依頼してください。',
      busy: '混み合っています。少し待ってから再度お試しください。',
      homes: 'オペレーターはエージェントデスクトップ、スーパーバイザーはウォールボード、管理者は管理コンソール、閲覧者とバックオフィスはレポートへ移動します。',
    },
    en: {
      product: 'outbound', title: 'Log in', tenant: 'Tenant code', login: 'Login ID', password: 'Password',
      submit: 'Log in', language: 'Language', required: 'Enter the {f}',
      bad_credentials: 'Tenant code, login ID or password is wrong.',
      network_error: 'The server cannot be reached. Check the connection.', too_many: 'Too many attempts. Wait a moment and try again.',
      locked: 'This account is locked after repeated wrong passwords. Ask a manager to unlock it.',
      busy: 'The server is busy. Wait a moment and try again.',
      homes: 'Operators go to the agent desktop, supervisors to the wallboard, managers to the admin console, report viewers and back office to the reports.',
    },
  };
  /** Each role's home page. */
  const HOMES = { OP: '/ui/agent', SV: '/ui/wallboard', MGR: '/ui/admin', BIZ: '/ui/reports', BY: '/ui/reports' };
  let lang = localStorage.getItem('kakeru.lang') === 'en' ? 'en' : 'ja';
  const $ = (id) => document.getElementById(id);
  const t = (k, vars) => {
    let s = (I18N[lang] && I18N[lang][k]) || I18N.ja[k] || k;
    for (const [a, b] of Object.entries(vars || {})) s = s.replace(`{${a}}`, b);
    return s;
  };
  const FIELDS = ['tenant', 'login', 'password'];

  function applyLang() {
    document.documentElement.lang = lang;
    document.title = `kakeru ${t('title')}`;
    for (const e of document.querySelectorAll('[data-i18n]')) e.textContent = t(e.dataset.i18n);
    for (const e of document.querySelectorAll('[data-i18n-label]')) e.setAttribute('aria-label', t(e.dataset.i18nLabel));
    for (const b of document.querySelectorAll('[data-lang]')) b.setAttribute('aria-pressed', String(b.dataset.lang === lang));
  }

  function fieldError(f, msg) {
    $(`e-${f}`).textContent = msg || '';
    $(`f-${f}`).setAttribute('aria-invalid', msg ? 'true' : 'false');
  }

  async function onSubmit(ev) {
    ev.preventDefault();
    $('login-error').textContent = '';
    let missing = false;
    for (const f of FIELDS) {
      const empty = !$(`f-${f}`).value.trim();
      fieldError(f, empty ? t('required', { f: t(f) }) : '');
      missing = missing || empty;
    }
    if (missing) return;
    $('f-submit').disabled = true;
    try {
      const r = await fetch('/auth/login', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
        body: JSON.stringify({ tenant: $('f-tenant').value.trim(), login: $('f-login').value.trim(), password: $('f-password').value }),
      });
      const body = await r.json().catch(() => null);
      if (!r.ok) {
        const err = (body && body.error) || {};
        if (r.status === 401) $('login-error').textContent = t('bad_credentials');
        else if (r.status === 429) $('login-error').textContent = t('too_many');
        else if (r.status === 423) $('login-error').textContent = t('locked');
        else if (r.status === 503) $('login-error').textContent = t('busy');
        else if (err.field && FIELDS.includes(err.field)) fieldError(err.field, err.message);
        else $('login-error').textContent = err.message || `HTTP ${r.status}`;
        return;
      }
      sessionStorage.setItem('kakeru.token', body.token);
      sessionStorage.setItem('kakeru.role', body.user.role);
      $('f-password').value = '';
      location.assign(HOMES[body.user.role] || '/ui/wallboard');
    } catch (_) {
      $('login-error').textContent = t('network_error');
    } finally {
      $('f-submit').disabled = false;
    }
  }

  for (const b of document.querySelectorAll('[data-lang]')) {
    b.addEventListener('click', () => {
      lang = b.dataset.lang;
      localStorage.setItem('kakeru.lang', lang);
      applyLang();
    });
  }
  $('login-form').addEventListener('submit', onSubmit);
  applyLang();
  $('f-tenant').focus();
})();
