/**
 * The approvals page, GET /approvals: the app's pending approvals (tool, input as JSON, run or
 * batch, time left) with Approve and Deny-with-a-reason buttons, polling GET /v1/approvals every
 * second. Behind the same app token as the API (the auth hook treats it as an app route; a proxy in
 * front adds the header to the page's requests as to any other). Everything it loads is served
 * here (its script and style are files of their own, so that the CSP allows no inline code), and
 * its data goes into the page as text, never as HTML.
 */
import type { FastifyInstance } from 'fastify';

export const APPROVALS_PAGE_PATH = '/approvals';

export const APPROVALS_PAGE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "img-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>toolq approvals</title>
<link rel="stylesheet" href="/approvals/page.css">
<script src="/approvals/page.js" defer></script>
</head>
<body>
<header><h1>Calls waiting for approval</h1><p id="status" role="status">Loading…</p></header>
<main><p id="empty" hidden>Nothing waits for approval.</p><div id="list"></div></main>
</body>
</html>
`;

const CSS = `
body { font: 15px/1.4 system-ui, sans-serif; margin: 0; background: #f6f7f9; color: #1d2330; }
header { background: #1d2330; color: #fff; padding: 12px 24px; display: flex; align-items: baseline; gap: 24px; }
header h1 { font-size: 18px; margin: 0; }
header p { margin: 0; opacity: .8; font-size: 13px; }
main { padding: 16px 24px; max-width: 960px; }
.approval { background: #fff; border: 1px solid #d5d9e0; border-radius: 6px; padding: 12px 16px; margin-bottom: 12px; }
.approval h2 { font-size: 16px; margin: 0 0 6px; font-family: ui-monospace, monospace; }
.approval dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; margin: 0 0 8px; font-size: 13px; }
.approval dt { color: #5b6475; }
.approval dd { margin: 0; font-family: ui-monospace, monospace; }
.approval pre { background: #f0f2f5; padding: 8px; border-radius: 4px; overflow: auto; max-height: 240px; margin: 0 0 8px; }
.actions { display: flex; gap: 8px; align-items: center; }
.actions input { flex: 1; padding: 6px; border: 1px solid #c4c9d2; border-radius: 4px; }
button { padding: 6px 14px; border-radius: 4px; border: 1px solid transparent; cursor: pointer; font-weight: 600; }
button.approve { background: #1f7a3f; color: #fff; }
button.deny { background: #b3261e; color: #fff; }
button:disabled { opacity: .5; cursor: default; }
.note { font-size: 13px; color: #b3261e; margin: 6px 0 0; }
.soon { color: #b3261e; }
`;

// Plain browser JavaScript, no build step: served as it is.
const JS = `'use strict';
const rows = new Map();
const list = document.getElementById('list');
const empty = document.getElementById('empty');
const status = document.getElementById('status');

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function timeLeft(expiresAt) {
  const s = Math.max(0, Math.round((expiresAt - Date.now()) / 1000));
  if (s >= 3600) return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min';
  if (s >= 60) return Math.floor(s / 60) + ' min ' + (s % 60) + ' s';
  return s + ' s';
}

function row(a) {
  const card = el('article', 'approval');
  card.dataset.approvalId = a.approval_id;
  card.append(el('h2', '', a.tool));
  const facts = el('dl');
  const add = (name, value) => { facts.append(el('dt', '', name)); const dd = el('dd', '', value); facts.append(dd); return dd; };
  if (a.run_id) add('run', a.run_id); else add('batch', a.batch_id);
  add('tool_use_id', a.tool_use_id);
  add('requested', new Date(a.requested_at).toLocaleTimeString());
  const left = add('time left', timeLeft(a.expires_at));
  left.className = 'left';
  card.append(facts);
  card.append(el('pre', 'input', JSON.stringify(a.input, null, 2)));
  const actions = el('div', 'actions');
  const reason = el('input');
  reason.placeholder = 'Reason (required to deny)';
  reason.setAttribute('aria-label', 'Reason for ' + a.tool);
  const approve = el('button', 'approve', 'Approve');
  const deny = el('button', 'deny', 'Deny');
  const note = el('p', 'note');
  approve.addEventListener('click', () => decide(a, 'approve', reason.value, [approve, deny], note));
  deny.addEventListener('click', () => {
    if (reason.value.trim() === '') { note.textContent = 'Give a reason: the model reads it.'; reason.focus(); return; }
    decide(a, 'deny', reason.value, [approve, deny], note);
  });
  actions.append(reason, approve, deny);
  card.append(actions, note);
  return { card, left, expiresAt: a.expires_at };
}

async function decide(a, decision, reason, buttons, note) {
  buttons.forEach((b) => { b.disabled = true; });
  try {
    const res = await fetch('/v1/approvals/' + encodeURIComponent(a.approval_id), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(reason.trim() === '' ? { decision } : { decision, reason }),
    });
    if (res.ok) {
      status.textContent = (decision === 'approve' ? 'Approved ' : 'Denied ') + a.tool + ' (' + a.tool_use_id + ')';
      drop(a.approval_id);
      return;
    }
    const body = await res.json().catch(() => ({}));
    note.textContent = (body.error && body.error.message) || ('HTTP ' + res.status);
    if (res.status === 409 || res.status === 404) setTimeout(() => drop(a.approval_id), 3000);
  } catch (err) {
    note.textContent = 'Could not send the decision: ' + err.message;
  }
  buttons.forEach((b) => { b.disabled = false; });
}

function drop(id) {
  const r = rows.get(id);
  if (r) { r.card.remove(); rows.delete(id); }
  empty.hidden = rows.size > 0;
}

async function load() {
  try {
    const res = await fetch('/v1/approvals', { cache: 'no-store', headers: { accept: 'application/json' } });
    if (!res.ok) throw new Error('HTTP ' + res.status);
    const { approvals } = await res.json();
    const seen = new Set();
    for (const a of approvals) {
      seen.add(a.approval_id);
      if (!rows.has(a.approval_id)) { const r = row(a); rows.set(a.approval_id, r); list.append(r.card); }
    }
    for (const id of [...rows.keys()]) if (!seen.has(id)) drop(id);
    empty.hidden = rows.size > 0;
    status.textContent = rows.size + ' waiting · updated ' + new Date().toLocaleTimeString();
  } catch (err) {
    status.textContent = 'Could not load the approvals: ' + err.message;
  }
}

function tick() {
  for (const r of rows.values()) {
    r.left.textContent = timeLeft(r.expiresAt);
    r.left.classList.toggle('soon', r.expiresAt - Date.now() < 60000);
  }
}

load();
setInterval(load, 1000);
setInterval(tick, 1000);
`;

export function registerApprovalPage(app: FastifyInstance): void {
  const serve = (path: string, type: string, body: string) =>
    app.get(path, async (_request, reply) => {
      reply.header('content-security-policy', APPROVALS_PAGE_CSP);
      reply.header('cache-control', 'no-store');
      reply.header('x-content-type-options', 'nosniff');
      return reply.type(type).send(body);
    });
  serve(APPROVALS_PAGE_PATH, 'text/html; charset=utf-8', HTML);
  serve(`${APPROVALS_PAGE_PATH}/page.js`, 'text/javascript; charset=utf-8', JS);
  serve(`${APPROVALS_PAGE_PATH}/page.css`, 'text/css; charset=utf-8', CSS);
}
