// The console's side of the API: every request carries the caller's own bearer token (kept in
// sessionStorage, the same key the wallboard and the login page use), so the server's role checks
// are the only ones. Event streams open with single-use stream tickets.

export const TOKEN_KEY = 'kakeru.token';

export class HttpError extends Error {
  constructor(status, body) {
    super((body && body.error && body.error.message) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
    this.field = body && body.error ? body.error.field : undefined;
    this.code = body && body.error ? body.error.code : undefined;
  }
}

let token = sessionStorage.getItem(TOKEN_KEY);
const listeners = { unauthorized: () => {} };

export const session = {
  get token() { return token; },
  set(t) {
    token = t;
    if (t) sessionStorage.setItem(TOKEN_KEY, t);
    else sessionStorage.removeItem(TOKEN_KEY);
  },
  onUnauthorized(f) { listeners.unauthorized = f; },
};

function headers(extra) {
  const h = { Accept: 'application/json', ...extra };
  if (token) h.Authorization = `Bearer ${token}`;
  return h;
}

async function reply(r) {
  const text = await r.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch (_) { json = null; }
  if (r.status === 401 && token) listeners.unauthorized();
  if (!r.ok) throw new HttpError(r.status, json);
  return json;
}

/** A JSON call. */
export async function api(method, path, body) {
  const h = headers(body === undefined ? {} : { 'Content-Type': 'application/json' });
  const r = await fetch(path, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body) });
  return reply(r);
}

/** A call with a raw body (a CSV file or a slice of one). */
export async function upload(method, path, blob, contentType = 'text/csv') {
  const r = await fetch(path, { method, headers: headers({ 'Content-Type': contentType }), body: blob });
  return reply(r);
}

/** Bytes of a download, with its progress (`onBytes(received)`), as a Blob. */
export async function download(path, onBytes) {
  const r = await fetch(path, { headers: headers({ Accept: '*/*' }) });
  if (!r.ok) return reply(r);
  const reader = r.body.getReader();
  const parts = [];
  let n = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    parts.push(value);
    n += value.length;
    if (onBytes) onBytes(n);
  }
  const type = r.headers.get('content-type') || 'application/octet-stream';
  const name = /filename="([^"]+)"/.exec(r.headers.get('content-disposition') || '');
  return { blob: new Blob(parts, { type }), name: name ? name[1] : 'download' };
}

/** Hands a Blob to the browser as a file download. */
export function saveBlob(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

export const PAGE = 500;
const MAX_PAGES = 40;

/** Every page of a list endpoint (bounded). */
export async function listAll(path) {
  const out = [];
  for (let page = 0; page < MAX_PAGES; page++) {
    const sep = path.includes('?') ? '&' : '?';
    const r = await api('GET', `${path}${sep}limit=${PAGE}&offset=${page * PAGE}`);
    out.push(...r.items);
    if (out.length >= r.total || r.items.length === 0) break;
  }
  return out;
}

/**
 * An EventSource on `path` opened with a fresh single-use ticket from `ticketPath`; `query` adds
 * parameters (e.g. last_event_id). The caller reconnects (a spent ticket cannot be reused).
 */
export async function eventSource(path, ticketPath = '/stream-tickets', query = {}) {
  const { ticket } = await api('POST', ticketPath);
  const q = new URLSearchParams({ ...query, ticket });
  return new EventSource(`${path}?${q}`);
}

/**
 * Follows a server-sent event stream read with fetch and the bearer header (no ticket to take: on
 * SQLite a ticket is a write, and a running import holds the writer). Calls `on(event, data)` for
 * each event until the stream ends or `signal` aborts; resolves when it ends.
 */
export async function follow(path, on, signal) {
  const r = await fetch(path, { headers: headers({ Accept: 'text/event-stream' }), signal });
  if (!r.ok) return reply(r);
  const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    buf += value;
    let cut;
    while ((cut = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, cut);
      buf = buf.slice(cut + 2);
      let event = 'message';
      const data = [];
      for (const line of block.split('\n')) {
        if (line.startsWith('event:')) event = line.slice(6).trim();
        else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
      }
      if (data.length) on(event, data.join('\n'));
    }
  }
  return null;
}
