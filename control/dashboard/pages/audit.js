// Audit log: who did what, when and from where; newest first, filterable by workspace, paged
// with "Load more" (the server's `nextBefore` cursor).

import { get } from '../api.js';
import { badge, busy, button, card, clear, emptyState, errorState, field, h, pageHeader, skeletonRows, table, timeEl } from '../ui.js';
import { session, wsId, wsName } from '../session.js';

const ACTIONS = {
  'session.create': 'Signed in',
  'session.delete': 'Signed out',
  'workspace.create': 'Created workspace',
  'workspace.update': 'Updated workspace',
  'workspace.modules.update': 'Updated modules',
  'workspace_token.create': 'Created token',
  'workspace_token.revoke': 'Revoked token',
  'sdk_key.create': 'Created SDK key',
  'sdk_key.revoke': 'Revoked SDK key',
  'sdk_key.rotate': 'Rotated SDK key',
  'sdk_key.reveal': 'Revealed SDK key',
  'sdk_key.reveal.request': 'Asked to reveal SDK key',
  'publishable_key.revoke': 'Revoked publishable key',
  'publishable_key.origins.update': 'Updated allowed origins',
  'blacklist.add': 'Blacklisted an action',
  'blacklist.remove': 'Removed a blacklist rule',
  'member.invite': 'Invited member',
  'member.role.change': 'Changed member role',
  'member.remove': 'Removed member',
};

export async function render(main) {
  const filter = h(
    'select',
    { class: 'select', name: 'workspace', 'data-testid': 'audit-workspace' },
    h('option', { value: '' }, 'All workspaces'),
    session.workspaces.map((w) => h('option', { value: wsId(w) }, wsName(w))),
  );
  filter.value = new URLSearchParams(location.search).get('workspace') || '';
  const listArea = h('div', { class: 'card-body' }, skeletonRows(5));
  const more = h('div', { class: 'card-footer' });
  filter.addEventListener('change', () => {
    const url = filter.value ? `${location.pathname}?workspace=${encodeURIComponent(filter.value)}` : location.pathname;
    history.replaceState(null, '', url);
    load();
  });
  clear(
    main,
    pageHeader('Audit log', 'Every sign-in, key creation, reveal, rotation, revocation and blacklist change, newest first.'),
    card(h('div', { class: 'card-header' }, h('div', { class: 'filter' }, field('Workspace', filter))), listArea, more),
  );

  let events = [];
  async function load(before) {
    const params = new URLSearchParams();
    if (filter.value) params.set('workspaceId', filter.value);
    if (before) params.set('before', before);
    if (!before) {
      events = [];
      clear(listArea, skeletonRows(5));
      clear(more);
    }
    try {
      /** @type {import('../types').Answer<'/api/v1/audit-events', 'get'>} */
      const data = await get(`/api/v1/audit-events${params.size ? `?${params}` : ''}`);
      events = events.concat(data.events);
      events.sort((a, b) => new Date(when(b)).getTime() - new Date(when(a)).getTime());
      clear(listArea, events.length ? eventTable(events) : emptyState({ iconName: 'list', title: 'No events yet', text: filter.value ? 'Nothing has happened in this workspace yet.' : 'Actions in the dashboard and the API appear here.' }));
      const next = data.nextBefore;
      clear(more, next ? button('Load older events', { small: true, onClick: (e) => busy(e.currentTarget, () => load(next)) }) : null);
    } catch (e) {
      if (before) clear(more, h('p', { class: 'form-error', role: 'alert' }, e.message));
      else clear(listArea, errorState(e, () => load()));
    }
  }
  await load();
}

/** @typedef {import('../types').Answer<'/api/v1/audit-events', 'get'>['events'][number]} AuditEvent */

/** @param {AuditEvent[]} events */
function eventTable(events) {
  return table(
    [
      { label: 'When', class: 'nowrap', render: (e) => timeEl(when(e)) },
      { label: 'Who', render: (e) => h('span', { class: 'audit-actor' }, actorOf(e)) },
      {
        label: 'What',
        render: (e) =>
          h(
            'span',
            { class: 'audit-what' },
            h('span', { class: 'audit-action' }, actionLabel(e.action), failed(e) ? badge('Failed', 'danger') : null),
            describe(e),
          ),
      },
      { label: 'Workspace', render: (e) => workspaceName(e.workspaceId) },
      { label: 'From', render: (e) => h('span', { class: 'muted nowrap', title: e.userAgent || '' }, e.ip || '—') },
    ],
    events,
    { caption: 'Audit events', testid: 'audit-table' },
  );
}

/** @param {AuditEvent} e */
const when = (e) => e.createdAt;
/** @param {AuditEvent} e */
const failed = (e) => e.outcome === 'failure';

/** @param {AuditEvent} e an email, an SDK key's mask, or nothing (the system). */
function actorOf(e) {
  return e.actor || 'system';
}

function actionLabel(action) {
  if (ACTIONS[action]) return ACTIONS[action];
  const words = String(action || 'event').replace(/[._]+/g, ' ').trim();
  return words.charAt(0).toUpperCase() + words.slice(1);
}

/** The most telling detail: a name, a masked key, an email, a rule; else a short id. */
function describe(e) {
  const d = e.detail && typeof e.detail === 'object' ? e.detail : {};
  const parts = [];
  for (const k of ['name', 'email', 'key', 'newKey', 'role']) if (typeof d[k] === 'string' && d[k]) parts.push(d[k]);
  if (d.module) parts.push(`${d.module} / ${d.functionality === '*' ? 'all functionalities' : d.functionality || ''}`);
  if (typeof e.target === 'string' && e.target.includes('@') && !parts.includes(e.target)) parts.unshift(e.target);
  if (failed(e) && d.reason) parts.push(String(d.reason));
  if (!parts.length && e.target) {
    const t = String(e.target);
    return h('code', { class: 'audit-target', title: t }, t.includes('@') || t.length <= 14 ? t : `${t.slice(0, 8)}…${t.slice(-4)}`);
  }
  return parts.length ? h('span', { class: 'audit-detail' }, parts.join(' · ')) : null;
}

function workspaceName(id) {
  if (!id) return h('span', { class: 'muted' }, '—');
  const w = session.workspaces.find((x) => wsId(x) === String(id));
  return h('span', {}, w ? wsName(w) : String(id));
}
