// Audit log: who did what, when and from where; newest first, filterable by workspace.

import { get, listOf } from '../api.js';
import { badge, card, clear, emptyState, errorState, field, h, pageHeader, skeletonRows, table, timeEl } from '../ui.js';
import { session, wsId, wsName } from '../session.js';

export async function render(main) {
  const filter = h(
    'select',
    { class: 'select', name: 'workspace', 'data-testid': 'audit-workspace' },
    h('option', { value: '' }, 'All workspaces'),
    session.workspaces.map((w) => h('option', { value: wsId(w) }, wsName(w))),
  );
  filter.value = new URLSearchParams(location.search).get('workspace') || '';
  const listArea = h('div', { class: 'card-body' }, skeletonRows(5));
  filter.addEventListener('change', () => {
    const url = filter.value ? `${location.pathname}?workspace=${encodeURIComponent(filter.value)}` : location.pathname;
    history.replaceState(null, '', url);
    load();
  });
  clear(
    main,
    pageHeader('Audit log', 'Every sign-in, key creation, reveal, rotation, revocation and blacklist change.'),
    card(h('div', { class: 'card-header' }, h('div', { class: 'filter' }, field('Workspace', filter))), listArea),
  );

  async function load() {
    clear(listArea, skeletonRows(5));
    const q = filter.value ? `?workspaceId=${encodeURIComponent(filter.value)}` : '';
    try {
      const events = listOf(await get(`/api/v1/audit-events${q}`), 'events', 'auditEvents', 'items', 'data')
        .slice()
        .sort((a, b) => new Date(when(b)).getTime() - new Date(when(a)).getTime());
      clear(
        listArea,
        events.length
          ? table(
              [
                { label: 'When', render: (e) => timeEl(when(e)) },
                { label: 'Who', render: (e) => h('span', {}, actorOf(e)) },
                { label: 'What', render: (e) => h('span', { class: 'audit-action' }, badge(actionLabel(e.action || e.event || e.type), tone(e)), describe(e)) },
                { label: 'Workspace', render: (e) => workspaceName(e.workspaceId) },
                { label: 'From', render: (e) => h('span', { class: 'muted', title: e.userAgent || '' }, e.ip || e.clientIp || e.ipAddress || '—') },
              ],
              events,
              { caption: 'Audit events', testid: 'audit-table' },
            )
          : emptyState({ iconName: 'list', title: 'No events yet', text: filter.value ? 'Nothing has happened in this workspace yet.' : 'Actions in the dashboard and the API appear here.' }),
      );
    } catch (e) {
      clear(listArea, errorState(e, load));
    }
  }
  await load();
}

const when = (e) => e.createdAt || e.at || e.timestamp || e.time || e.occurredAt;

function actorOf(e) {
  if (typeof e.actor === 'string') return e.actor;
  return e.actor?.email || e.actorEmail || e.userEmail || e.actor?.name || e.actorId || 'system';
}

function actionLabel(action) {
  return String(action || 'event').replace(/[._]/g, ' ');
}

function tone(e) {
  const a = String(e.action || e.event || '').toLowerCase();
  if (/fail|denied|invalid/.test(a) || e.outcome === 'failure' || e.success === false) return 'danger';
  if (/revoke|delete|remove|rotate/.test(a)) return 'warning';
  return 'neutral';
}

function describe(e) {
  const target = e.target || e.targetName || e.resource || e.subject;
  const text = typeof target === 'string' ? target : target?.name || target?.id || '';
  return text ? h('span', { class: 'muted' }, ` ${text}`) : null;
}

function workspaceName(id) {
  if (!id) return h('span', { class: 'muted' }, '—');
  const w = session.workspaces.find((x) => wsId(x) === String(id));
  return h('span', {}, w ? wsName(w) : String(id));
}
