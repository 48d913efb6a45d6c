// The customer portal (`/portal#token=lt_…`): one customer of a platform manages their own API
// keys in one workspace, with no account: the link token is the credential.
//
// The token comes from the URL fragment (never sent to a server, never in a Referer) or, for
// platforms that cannot use a fragment, from `?token=`; either way it is taken out of the
// address bar at once (history.replaceState) and kept for this tab only (sessionStorage), so a
// reload keeps working until the token expires. Every call sends it as
// `Authorization: Bearer`. Values of keys are shown once, when created or rolled.

import {
  append, badge, busy, button, card, cardHeader, clear, emptyState, errorBox,
  errorState, field, h, icon, openModal, requiredText, revokeButton, showCreated, shownOnce, skeletonRows, table, timeEl,
} from './ui.js';

const STORAGE = 'keygate_portal_token';
const DAY = 86400000;

/** A failed portal call, with the server's stable reason. */
class PortalError extends Error {
  constructor(status, reason, message) {
    super(message || 'Something went wrong. Try again.');
    this.status = status;
    this.reason = reason || `HTTP_${status}`;
  }
}

/** The link token of this page, and the workspace the page was framed for (if named). */
function takeToken() {
  const url = new URL(window.location.href);
  const fromHash = new URLSearchParams(url.hash.slice(1)).get('token');
  const fromQuery = url.searchParams.get('token');
  const token = fromHash || fromQuery || sessionStorage.getItem(STORAGE);
  if (fromHash || fromQuery) {
    url.hash = '';
    url.searchParams.delete('token');
    window.history.replaceState(null, '', url.pathname + url.search);
  }
  if (token) sessionStorage.setItem(STORAGE, token);
  return { token, workspace: url.searchParams.get('workspace') };
}

const { token, workspace: framedFor } = takeToken();

async function call(method, path, body) {
  /** @type {Record<string, string>} */
  const headers = { Accept: 'application/json', Authorization: `Bearer ${token}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(`/api/v1/portal${path}`, {
      method,
      headers,
      credentials: 'omit',
      referrerPolicy: 'no-referrer',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new PortalError(0, 'NETWORK', 'Could not reach the server. Check your connection and try again.');
  }
  /** @type {any} */
  const data = await res.json().catch(() => null);
  if (!res.ok) {
    const err = (data && data.error) || {};
    const e = new PortalError(res.status, err.reason, sentence(err.message));
    if (res.status === 401) showLinkProblem(e.reason);
    throw e;
  }
  return data;
}

function sentence(text) {
  if (!text) return text;
  const s = String(text).charAt(0).toUpperCase() + String(text).slice(1);
  return /[.!?]$/.test(s) ? s : `${s}.`;
}

const root = document.getElementById('app');

/** The page shown instead of the portal when the link cannot be used. */
function showLinkProblem(reason) {
  sessionStorage.removeItem(STORAGE);
  const expired = reason === 'LINK_TOKEN_EXPIRED';
  const title = expired ? 'This link has expired' : reason === 'WRONG_WORKSPACE' ? 'This link does not belong here' : 'This link is not valid';
  const text = expired
    ? 'Links to this page work for a short time only. Go back to the site that sent you here and open the page again to get a new link.'
    : 'Go back to the site that sent you here and open the page again to get a new link.';
  clear(
    root,
    h(
      'div',
      { class: 'auth-page' },
      h(
        'div',
        { class: 'auth-card', role: 'alert', 'data-testid': expired ? 'portal-expired' : 'portal-invalid' },
        h('div', { class: 'state-icon portal-problem-icon' }, icon('alert')),
        h('h1', { class: 'auth-title' }, title),
        h('p', { class: 'auth-sub' }, text),
      ),
    ),
  );
}

/** "Read, create" for a scope's rights. */
function rights(scope) {
  const names = [['read', 'read'], ['create', 'create'], ['update', 'update'], ['del', 'delete']];
  return names.filter(([k]) => scope[k]).map(([, label]) => label).join(', ');
}

function scopeList(scopes) {
  if (!scopes.length) return h('span', { class: 'muted' }, 'No scopes');
  return h('span', { class: 'portal-scopes' }, scopes.map((s) => badge(`${s.representation}: ${rights(s) || 'none'}`)));
}

/** @param {import('./types').Answer<'/api/v1/portal/session', 'get'>} session */
function renderPortal(session) {
  const listArea = h('div', { class: 'card-body' }, skeletonRows());
  const create = button('Create key', { variant: 'primary', iconName: 'plus', 'data-testid': 'portal-create' });
  create.addEventListener('click', () => openCreate(session, load));
  const until = new Date(session.expiresAt);
  clear(
    root,
    h(
      'main',
      { id: 'main', class: 'main portal-main', tabindex: '-1' },
      h(
        'header',
        { class: 'portal-top' },
        h('div', { class: 'brand portal-brand' }, h('span', { class: 'brand-mark', 'aria-hidden': 'true' }, icon('key', 'icon brand-icon')), h('span', { class: 'brand-name' }, session.workspaceName)),
        h('p', { class: 'muted portal-who', 'data-testid': 'portal-customer' }, 'Signed in as ', h('strong', {}, session.customerId), ' · link valid until ', h('time', { datetime: until.toISOString() }, until.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' }))),
      ),
      card(cardHeader('Your API keys', 'Keys you use to call this service. A key’s value is shown once, when you create or roll it.', create), listArea),
    ),
  );

  async function load() {
    try {
      /** @type {import('./types').Answer<'/api/v1/portal/api-key', 'get'>} */
      const data = await call('GET', '/api-key');
      clear(listArea, data.apiKeys.length ? keyTable(data.apiKeys) : emptyState({ title: 'No keys yet', text: 'Create a key to start calling the API.' }));
    } catch (e) {
      if (e.status !== 401) clear(listArea, errorState(e, load));
    }
  }

  function keyTable(keys) {
    return table(
      [
        { label: 'Name', render: (k) => h('span', { class: 'strong' }, k.name) },
        { label: 'Key', render: (k) => h('code', { class: 'mask' }, k.maskedKey) },
        { label: 'Scopes', render: (k) => scopeList(k.scopes) },
        { label: 'Last used', class: 'nowrap', render: (k) => timeEl(k.lastUsedAt, 'Never used') },
        { label: 'Expires', class: 'nowrap', render: (k) => (k.expiresAt ? timeEl(k.expiresAt) : badge('No expiry')) },
        {
          label: 'Actions',
          class: 'col-actions',
          render: (k) =>
            h(
              'div',
              { class: 'row-actions' },
              button('Roll', { small: true, iconName: 'refresh', 'aria-label': `Roll key ${k.name}`, 'data-testid': 'portal-roll', onClick: () => openRoll(k, load) }),
              revokeButton(
                'Revoke',
                { 'aria-label': `Revoke key ${k.name}`, 'data-testid': 'portal-revoke' },
                {
                  title: 'Revoke this key?',
                  message: `Anything using “${k.name}” stops working immediately. This cannot be undone.`,
                  confirmLabel: 'Revoke key',
                  action: () => call('DELETE', `/api-key/${encodeURIComponent(k.id)}`),
                },
                'Key revoked',
                load,
              ),
            ),
        },
      ],
      keys,
      { caption: 'Your API keys', testid: 'portal-keys' },
    );
  }

  load();
}

/** Expiry choices within the policy's maximum (the last one is the maximum itself). */
function expiryChoices(maxMs) {
  const choices = [7, 30, 90, 365].map((d) => [d * DAY, `In ${d} days`]).filter(([ms]) => maxMs == null || ms < maxMs);
  choices.push(maxMs == null ? [0, 'Never'] : [maxMs, `In ${Math.round(maxMs / DAY) || 1} days (longest allowed)`]);
  return choices;
}

/** @param {import('./types').Answer<'/api/v1/portal/session', 'get'>} session */
function openCreate(session, reload) {
  const policy = session.policy;
  // A click outside must not throw away a value that is shown only once.
  const modal = openModal({ title: 'Create key', size: 'md', closeOnBackdrop: false });
  const name = h('input', { class: 'input', name: 'name', required: true, maxlength: '100', placeholder: 'e.g. Production', autocomplete: 'off', 'data-testid': 'portal-key-name' });
  const expiry = h('select', { class: 'select', name: 'expiry' }, expiryChoices(policy.maxExpiryMs).map(([v, l]) => h('option', { value: String(v) }, l)));
  expiry.value = String(expiryChoices(policy.maxExpiryMs).at(-1)[0]);
  const boxes = policy.allowedScopes.map((s) => ({ scope: s, box: h('input', { type: 'checkbox', name: s.representation, 'data-testid': `portal-scope-${s.representation}` }) }));
  const scopes = boxes.length
    ? h('fieldset', { class: 'stack-sm portal-fieldset' }, h('legend', { class: 'portal-legend' }, 'Scopes'), boxes.map(({ scope, box }) => h('label', { class: 'checkbox' }, box, ` ${scope.representation} (${rights(scope)})`)))
    : null;
  const err = errorBox();
  const submit = button('Create key', { variant: 'primary', type: 'submit', 'data-testid': 'portal-submit' });
  const usageNote = policy.maxUsage == null ? null : h('p', { class: 'field-hint' }, `Each key may be used up to ${policy.maxUsage.toLocaleString()} times.`);
  const form = h('form', { class: 'stack', novalidate: true, id: 'portal-create-form' }, field('Name', name, { hint: 'So you can tell your keys apart.' }), field('Expires', expiry), scopes, usageNote, err);
  submit.setAttribute('form', form.id);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const given = requiredText(name, err, 'Give the key a name.');
    if (!given) return;
    err.hide();
    /** @type {import('./types').Body<'/api/v1/portal/api-key', 'post'>} */
    const body = { name: given, scopes: boxes.filter((b) => b.box.checked).map((b) => b.scope) };
    // The last choice (the longest allowed, or never) is the server's default: send nothing.
    if (expiry.selectedIndex < expiry.options.length - 1) body.expiresAt = Date.now() + Number(expiry.value);
    try {
      /** @type {import('./types').Answer<'/api/v1/portal/api-key', 'post'>} */
      const created = await busy(submit, () => call('POST', '/api-key', body));
      showCreated(modal, 'Key created', shownOnce(created.apiKey.key, { what: 'API key', testid: 'portal-new-key' }), reload);
    } catch (e2) {
      if (e2.status !== 401) err.show(e2.message);
    }
  });
  append(modal.body, form);
  append(modal.footer, button('Cancel', { onClick: () => modal.close() }), submit);
}

const GRACE = [
  [0, 'Stop the old value now'],
  [3600000, 'Keep the old value working for 1 hour'],
  [DAY, 'Keep the old value working for 24 hours'],
  [7 * DAY, 'Keep the old value working for 7 days'],
];

/** @param {import('./types').Schema<'ApiKey'>} key */
function openRoll(key, reload) {
  const modal = openModal({ title: `Roll “${key.name}”`, size: 'md', closeOnBackdrop: false, description: 'The key gets a new value. Update everything that uses it.' });
  const grace = h('select', { class: 'select', name: 'grace', 'data-testid': 'portal-grace' }, GRACE.map(([v, l]) => h('option', { value: String(v) }, l)));
  grace.value = String(3600000);
  const err = errorBox();
  const submit = button('Roll key', { variant: 'primary', type: 'submit', 'data-testid': 'portal-roll-submit' });
  const form = h('form', { class: 'stack', novalidate: true, id: 'portal-roll-form' }, field('The old value', grace), err);
  submit.setAttribute('form', form.id);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    err.hide();
    try {
      /** @type {import('./types').Answer<'/api/v1/portal/api-key/{akid}/rotate', 'post'>} */
      const rolled = await busy(submit, () => call('POST', `/api-key/${encodeURIComponent(key.id)}/rotate`, { gracePeriodMs: Number(grace.value) }));
      showCreated(modal, 'Key rolled', shownOnce(rolled.apiKey.key, { what: 'API key', testid: 'portal-new-key' }), reload);
    } catch (e2) {
      if (e2.status !== 401) err.show(e2.message);
    }
  });
  append(modal.body, form);
  append(modal.footer, button('Cancel', { onClick: () => modal.close() }), submit);
}

async function start() {
  if (!token) {
    showLinkProblem('INVALID_LINK_TOKEN');
    return;
  }
  try {
    /** @type {import('./types').Answer<'/api/v1/portal/session', 'get'>} */
    const session = await call('GET', '/session');
    if (framedFor && framedFor !== session.workspaceId) {
      showLinkProblem('WRONG_WORKSPACE');
      return;
    }
    document.title = `API keys · ${session.workspaceName}`;
    renderPortal(session);
  } catch (e) {
    if (e.status !== 401) clear(root, h('div', { class: 'boot' }, errorState(e, start)));
  }
}

start();
