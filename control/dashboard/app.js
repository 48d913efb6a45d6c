// The dashboard's entry point: session check, the application shell (sidebar with the workspace
// switcher, organisation settings, the signed-in user) and a small history-API router that
// hands each path to a page module. Pages live in ./pages, one module per screen.

import { ApiError, del, get, onStepUpRequired, post } from './api.js';
import { confirmWithOtp } from './otp.js';
import { loadWorkspaces, session, wsId, wsName } from './session.js';
import { append, busy, button, clear, errorBox, errorState, field, h, icon, loadingState, openModal, requiredText, toast } from './ui.js';
import * as signinPage from './pages/signin.js';
import * as tokensPage from './pages/tokens.js';
import * as modulesPage from './pages/modules.js';
import * as sdkKeysPage from './pages/sdk-keys.js';
import * as membersPage from './pages/members.js';
import * as auditPage from './pages/audit.js';
import * as portalPolicyPage from './pages/portal-policy.js';
import * as usagePage from './pages/usage.js';

const root = document.getElementById('app');

// Calls that yield a secret or widen access ask for an emailed code first (step-up); the
// request is retried once the code is verified.
onStepUpRequired(() => confirmWithOtp(session.user?.email));
const LAST_WS = 'keygate.lastWorkspace';

const ROUTES = [
  { re: /^\/w\/([^/]+)\/tokens(?:\/([a-z-]+))?\/?$/, page: tokensPage, nav: 'tokens', keys: ['workspaceId', 'tab'] },
  { re: /^\/w\/([^/]+)\/modules\/?$/, page: modulesPage, nav: 'modules', keys: ['workspaceId'] },
  { re: /^\/w\/([^/]+)\/portal\/?$/, page: portalPolicyPage, nav: 'portal', keys: ['workspaceId'] },
  { re: /^\/w\/([^/]+)\/usage\/?$/, page: usagePage, nav: 'usage', keys: ['workspaceId'] },
  { re: /^\/settings\/sdk-keys\/?$/, page: sdkKeysPage, nav: 'sdk-keys', keys: [] },
  { re: /^\/settings\/members\/?$/, page: membersPage, nav: 'members', keys: [] },
  { re: /^\/settings\/audit\/?$/, page: auditPage, nav: 'audit', keys: [] },
];

export function navigate(path, { replace = false } = {}) {
  if (replace) history.replaceState(null, '', path);
  else history.pushState(null, '', path);
  route();
}

async function loadSession() {
  if (session.user) return true;
  /** @type {import('./types').Answer<'/api/v1/me', 'get'>} */
  let me;
  try {
    me = await get('/api/v1/me');
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return false;
    throw e;
  }
  session.user = me.user;
  session.organisation = me.organisation;
  session.organisations = me.organisations;
  await loadWorkspaces();
  return true;
}

function resetSession() {
  session.user = null;
  session.organisation = null;
  session.workspaces = [];
  shell = null;
}

/* ---------- Router ---------- */

let generation = 0;

async function route() {
  const mine = ++generation;
  const path = location.pathname;
  closeDrawer();

  if (path.startsWith('/signin')) {
    let signedIn = false;
    try {
      signedIn = await loadSession();
    } catch {
      signedIn = false;
    }
    if (mine !== generation) return;
    if (signedIn) return navigate(homePath(), { replace: true });
    shell = null;
    document.title = 'Sign in · keygate';
    const params = new URLSearchParams(location.search);
    signinPage.render(root, {
      expired: params.has('expired'),
      onSignedIn: async () => {
        resetSession();
        navigate(params.get('next') && params.get('next').startsWith('/') ? params.get('next') : '/', { replace: true });
      },
    });
    return;
  }

  if (!shell) clear(root, h('div', { class: 'boot' }, loadingState('Loading keygate')));
  let signedIn;
  try {
    signedIn = await loadSession();
  } catch (e) {
    if (mine !== generation) return;
    shell = null;
    clear(root, h('div', { class: 'boot' }, errorState(e, () => route())));
    return;
  }
  if (mine !== generation) return;
  if (!signedIn) {
    const next = path === '/' ? '' : `?next=${encodeURIComponent(path + location.search)}`;
    return navigate(`/signin${next}`, { replace: true });
  }

  const match = ROUTES.map((r) => ({ r, m: path.match(r.re) })).find((x) => x.m);
  if (!match) {
    if (path === '/' || path === '') {
      if (session.workspaces.length) return navigate(homePath(), { replace: true });
      ensureShell(null, null);
      return renderFirstWorkspace();
    }
    ensureShell(null, null);
    return renderNotFound('This page does not exist.');
  }

  const params = {};
  match.r.keys.forEach((k, i) => (params[k] = match.m[i + 1] ? decodeURIComponent(match.m[i + 1]) : undefined));
  let workspace = null;
  if (params.workspaceId) {
    workspace = session.workspaces.find((w) => wsId(w) === params.workspaceId) || null;
    if (!workspace) {
      ensureShell(null, match.r.nav);
      return renderNotFound('This workspace does not exist, or you do not have access to it.');
    }
    localStorage.setItem(LAST_WS, wsId(workspace));
  } else {
    const last = localStorage.getItem(LAST_WS);
    workspace = session.workspaces.find((w) => wsId(w) === last) || session.workspaces[0] || null;
  }
  ensureShell(workspace, match.r.nav);
  const main = shell.main;
  clear(main, loadingState());
  try {
    await match.r.page.render(main, {
      params,
      workspace,
      session,
      navigate,
      isCurrent: () => mine === generation,
    });
  } catch (e) {
    if (mine === generation) clear(main, errorState(e, () => route()));
  }
  if (mine === generation) {
    const title = main.querySelector('h1');
    document.title = `${title ? title.textContent : 'keygate'}${workspace && params.workspaceId ? ` · ${wsName(workspace)}` : ''} · keygate`;
    if (focusOnRoute && !main.contains(document.activeElement)) title?.focus({ preventScroll: true });
    focusOnRoute = true;
  }
}

let focusOnRoute = false;

function homePath() {
  const last = localStorage.getItem(LAST_WS);
  const w = session.workspaces.find((x) => wsId(x) === last) || session.workspaces[0];
  return w ? `/w/${encodeURIComponent(wsId(w))}/tokens` : '/';
}

function onLinkClick(e) {
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const a = e.target.closest('a[href]');
  if (!a || a.target || a.hasAttribute('download')) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || url.pathname.startsWith('/api/') || url.hash && url.pathname === location.pathname) return;
  e.preventDefault();
  if (url.pathname + url.search !== location.pathname + location.search) navigate(url.pathname + url.search);
}

/* ---------- Shell ---------- */

let shell = null;

function ensureShell(workspace, nav) {
  if (!shell) shell = buildShell();
  shell.update(workspace, nav);
}

function navLink(href, label, iconName, key) {
  return h('li', {}, h('a', { href, class: 'nav-link', dataset: { nav: key } }, icon(iconName), h('span', {}, label)));
}

function buildShell() {
  const select = h('select', { id: 'ws-switcher', class: 'select', 'data-testid': 'workspace-switcher' });
  select.addEventListener('change', () => {
    const id = select.value;
    localStorage.setItem(LAST_WS, id);
    const m = location.pathname.match(/^\/w\/[^/]+(\/.*)?$/);
    navigate(`/w/${encodeURIComponent(id)}${m && m[1] ? m[1] : '/tokens'}`);
  });
  const newWs = h('button', { type: 'button', class: 'icon-btn', 'aria-label': 'New workspace', title: 'New workspace' }, icon('plus'));
  newWs.addEventListener('click', openNewWorkspace);

  const wsNav = h('ul', { class: 'nav-list' });
  const orgHeading = h('p', { class: 'nav-heading' }, 'Organisation');
  // One address may belong to several organisations: switching starts a session in the other.
  const orgSelect = h('select', { id: 'org-switcher', class: 'select ws-select', 'aria-label': 'Organisation', 'data-testid': 'org-switcher' });
  orgSelect.addEventListener('change', async () => {
    orgSelect.disabled = true;
    try {
      await post('/api/v1/auth/switch', { organisationId: orgSelect.value });
      location.assign('/');
    } catch (e) {
      orgSelect.disabled = false;
      toast(e.message, 'error');
    }
  });
  const orgSwitch = h('div', { class: 'ws-switch', hidden: true }, orgSelect);
  const orgNav = h(
    'ul',
    { class: 'nav-list' },
    navLink('/settings/sdk-keys', 'SDK keys', 'shield', 'sdk-keys'),
    navLink('/settings/members', 'Members', 'users', 'members'),
    navLink('/settings/audit', 'Audit log', 'list', 'audit'),
  );
  const userBox = h('div', { class: 'user-box' });
  const signOut = button('Sign out', { variant: 'ghost', iconName: 'logout', small: true, 'data-testid': 'sign-out' });
  signOut.addEventListener('click', () =>
    busy(signOut, async () => {
      try {
        await del('/api/v1/auth/session');
      } catch (e) {
        if (!(e instanceof ApiError && e.status === 401)) {
          toast(e.message, 'error');
          return;
        }
      }
      resetSession();
      navigate('/signin', { replace: true });
    }),
  );

  const drawerClose = h('button', { type: 'button', class: 'icon-btn drawer-close', 'aria-label': 'Close navigation' }, icon('close'));
  drawerClose.addEventListener('click', () => closeDrawer());
  const sidebar = h(
    'aside',
    { class: 'sidebar', id: 'sidebar', 'aria-label': 'Main navigation' },
    h('div', { class: 'brand' }, brandMark(), h('span', { class: 'brand-name' }, 'keygate'), drawerClose),
    h('div', { class: 'ws-switch' }, h('label', { for: 'ws-switcher', class: 'nav-heading' }, 'Workspace'), h('div', { class: 'ws-switch-row' }, select, newWs)),
    h('nav', { 'aria-label': 'Workspace pages' }, wsNav),
    h('nav', { 'aria-label': 'Organisation' }, orgHeading, orgSwitch, orgNav),
    h('div', { class: 'sidebar-footer' }, userBox, signOut),
  );
  const menuBtn = h(
    'button',
    { type: 'button', class: 'icon-btn menu-btn', 'aria-label': 'Open navigation', 'aria-controls': 'sidebar', 'aria-expanded': 'false' },
    icon('menu'),
  );
  menuBtn.addEventListener('click', () => openDrawer());
  const topbarTitle = h('span', { class: 'topbar-ws' });
  const topbar = h('header', { class: 'topbar' }, menuBtn, h('div', { class: 'brand brand-small' }, brandMark(), h('span', { class: 'brand-name' }, 'keygate')), topbarTitle);
  const main = h('main', { id: 'main', class: 'main', tabindex: '-1' });
  const scrim = h('div', { class: 'scrim', 'aria-hidden': 'true' });
  scrim.addEventListener('click', closeDrawer);
  const skip = h('a', { href: '#main', class: 'skip-link' }, 'Skip to content');
  skip.addEventListener('click', (e) => {
    e.preventDefault();
    main.focus();
  });
  const layout = h('div', { class: 'shell' }, sidebar, scrim, h('div', { class: 'main-col' }, topbar, main));
  clear(root, skip, layout);
  sidebar.addEventListener('click', (e) => {
    if (e.target.closest('a.nav-link')) closeDrawer();
  });

  function update(workspace, nav) {
    clear(
      select,
      session.workspaces.length ? null : h('option', { value: '' }, 'No workspaces yet'),
      session.workspaces.map((w) => h('option', { value: wsId(w) }, wsName(w))),
    );
    select.disabled = !session.workspaces.length;
    if (workspace) select.value = wsId(workspace);
    topbarTitle.textContent = workspace ? wsName(workspace) : '';
    const base = workspace ? `/w/${encodeURIComponent(wsId(workspace))}` : null;
    clear(
      wsNav,
      base ? [navLink(`${base}/tokens`, 'Tokens', 'key', 'tokens'), navLink(`${base}/modules`, 'Modules', 'layers', 'modules'), navLink(`${base}/portal`, 'Customer portal', 'users', 'portal'), navLink(`${base}/usage`, 'Usage', 'chart', 'usage')] : null,
    );
    orgHeading.textContent = session.organisation?.name || 'Organisation';
    const orgs = session.organisations || [];
    orgSwitch.hidden = orgs.length < 2;
    clear(orgSelect, orgs.map((o) => h('option', { value: o.id }, `${o.name} (${o.role})`)));
    if (session.organisation?.id) orgSelect.value = session.organisation.id;
    const role = String(session.user?.role || '');
    clear(
      userBox,
      h('span', { class: 'avatar', 'aria-hidden': 'true' }, (session.user?.email || '?')[0].toUpperCase()),
      h('span', { class: 'user-meta' }, h('span', { class: 'user-email', title: session.user?.email }, session.user?.email || ''), role ? h('span', { class: 'user-role' }, role) : null),
    );
    for (const a of sidebar.querySelectorAll('a.nav-link')) {
      if (a.dataset.nav === nav) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
  }

  return { main, update, sidebar, menuBtn, layout };
}

function brandMark() {
  const mark = h('span', { class: 'brand-mark', 'aria-hidden': 'true' });
  mark.append(icon('key', 'icon brand-icon'));
  return mark;
}

function openDrawer() {
  if (!shell) return;
  shell.layout.classList.add('drawer-open');
  shell.menuBtn.setAttribute('aria-expanded', 'true');
  shell.main.setAttribute('inert', '');
  shell.sidebar.querySelector('select, a, button')?.focus();
  document.addEventListener('keydown', drawerKeys, true);
}

function closeDrawer() {
  if (!shell || !shell.layout.classList.contains('drawer-open')) return;
  shell.layout.classList.remove('drawer-open');
  shell.menuBtn.setAttribute('aria-expanded', 'false');
  shell.main.removeAttribute('inert');
  document.removeEventListener('keydown', drawerKeys, true);
  shell.menuBtn.focus();
}

function drawerKeys(e) {
  if (e.key === 'Escape') {
    e.preventDefault();
    closeDrawer();
  }
}

/* ---------- Workspace creation, first run, not found ---------- */

function workspaceForm(onDone) {
  const name = h('input', { class: 'input', name: 'name', required: true, maxlength: '100', placeholder: 'e.g. Production', autocomplete: 'off' });
  const err = errorBox();
  const submit = button('Create workspace', { variant: 'primary', type: 'submit' });
  const form = h('form', { class: 'stack', novalidate: true }, field('Workspace name', name, { hint: 'Each workspace gets its own publishable key and SDK access key.' }), err);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const value = requiredText(name, err, 'Give the workspace a name.');
    if (!value) return;
    err.hide();
    try {
      /** @type {import('./types').Answer<'/api/v1/workspace', 'post'>} */
      const created = await busy(submit, () => post('/api/v1/workspace', { name: value }));
      const w = created.workspace;
      await loadWorkspaces();
      toast(`Workspace “${value}” created`, 'success');
      onDone(w);
    } catch (e2) {
      err.show(e2.message);
      name.focus();
    }
  });
  return { form, submit };
}

function openNewWorkspace() {
  const modal = openModal({ title: 'New workspace', size: 'sm' });
  const { form, submit } = workspaceForm((w) => {
    modal.close();
    const id = wsId(w) || wsId(session.workspaces[session.workspaces.length - 1] || {});
    navigate(id ? `/w/${encodeURIComponent(id)}/tokens` : '/');
  });
  form.id = 'new-ws-form';
  submit.setAttribute('form', form.id);
  append(modal.body, form);
  append(modal.footer, button('Cancel', { onClick: () => modal.close() }), submit);
}

function renderFirstWorkspace() {
  const { form, submit } = workspaceForm((w) => navigate(wsId(w) ? `/w/${encodeURIComponent(wsId(w))}/tokens` : '/'));
  form.append(h('div', { class: 'form-actions' }, submit));
  renderPageCard(
    { cls: 'welcome card', iconName: 'layers', heading: 'Create your first workspace', tabTitle: 'Welcome' },
    h('p', { class: 'muted' }, 'A workspace holds one product or environment: its publishable key, SDK access key, tokens and blacklist.'),
    form,
  );
}

function renderNotFound(message) {
  renderPageCard(
    { cls: 'state state-empty', iconName: 'alert', heading: 'Not found', tabTitle: 'Not found' },
    h('p', {}, message),
    h('a', { href: homePath(), class: 'btn btn-secondary' }, 'Go to the dashboard'),
  );
}

/**
 * Fills the main area with one card (class `cls`): an icon, a heading (focusable, for the
 * route change), then `content`; the tab is titled `tabTitle · keygate`.
 * @param {{cls: string, iconName: string, heading: string, tabTitle: string}} card
 * @param {...any} content
 */
function renderPageCard({ cls, iconName, heading, tabTitle }, ...content) {
  clear(
    shell.main,
    h('div', { class: cls }, h('div', { class: 'state-icon' }, icon(iconName)), h('h1', { tabindex: '-1' }, heading), ...content),
  );
  document.title = `${tabTitle} · keygate`;
}

/* ---------- Boot ---------- */

window.addEventListener('popstate', () => route());
document.addEventListener('click', onLinkClick);
window.addEventListener('keygate:unauthorized', () => {
  if (!session.user) return;
  resetSession();
  navigate('/signin?expired=1', { replace: true });
});
route();
