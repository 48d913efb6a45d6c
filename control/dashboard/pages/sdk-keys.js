// SDK keys (organisation settings): secret keys for customers' backends, with scopes and an
// optional workspace binding. Shown once at creation; revealed again only with an emailed code.

import { del, get, post } from '../api.js';

/** @typedef {import('../types').Answer<'/api/v1/sdk-keys', 'get'>} SdkKeyList */
/** @typedef {import('../types').Answer<'/api/v1/sdk-keys', 'post'>} SdkKeyCreated */
/** @typedef {import('../types').Answer<'/api/v1/sdk-keys/{id}/reveal/verify', 'post'>} SdkKeyRevealed */
import { append, badge, busy, button, card, cardHeader, clear, errorBox, field, h, icon, listLoader, openModal, pageHeader, requiredText, revokeButton, secretDisplay, showCreated, shownOnce, skeletonRows, table, timeEl, toast } from '../ui.js';
import { revealWithOtp } from '../otp.js';
import { canManage, currentUserEmail, session, wsId, wsName } from '../session.js';

const SCOPES = [
  ['workspace', 'Workspaces', 'List, read, create and edit workspaces.'],
  ['workspace_scopes', 'Workspace scopes', 'Read and define the scopes API keys can carry.'],
  ['api_keys', 'API keys', 'Create, read, edit, rotate and delete your customers’ API keys.'],
];

export async function render(main) {
  const listArea = h('div', { class: 'card-body' }, skeletonRows());
  const create = button('Create SDK key', { variant: 'primary', iconName: 'plus', 'data-testid': 'sdk-key-create' });
  create.addEventListener('click', () => openCreate(load));
  if (!canManage()) create.disabled = true;
  clear(
    main,
    pageHeader('SDK keys', 'Keys your backends use to call the keygate API for this organisation.'),
    h(
      'div',
      { class: 'callout callout-warning', role: 'note' },
      icon('shield'),
      h('div', {}, h('strong', {}, 'Backend-only secrets. '), 'Never put an SDK key in frontend code, mobile apps or a public repository. Anyone holding one can act with its scopes. For browsers, use the workspace’s publishable key.'),
    ),
    card(cardHeader('Keys', null, create), listArea),
  );

  const load = listLoader(
    listArea,
    async () => {
      /** @type {SdkKeyList} */
      const data = await get('/api/v1/sdk-keys');
      return data.sdkKeys;
    },
    keyTable,
    { iconName: 'shield', title: 'No SDK keys yet', text: 'Create one for each backend service, with only the scopes it needs.' },
  );

  function keyTable(keys) {
    return table(
      [
        { label: 'Name', render: (k) => h('span', { class: 'strong nowrap' }, k.name || 'Unnamed key', h('span', { class: 'cell-sub' }, workspaceLabel(k.workspaceId))) },
        { label: 'Key', render: (k) => h('code', { class: 'mask' }, k.masked) },
        { label: 'Scopes', render: (k) => scopeBadges(k.scopes) },
        { label: 'Last used', class: 'nowrap', render: (k) => timeEl(k.lastUsedAt, 'Never used') },
        {
          label: 'Actions',
          class: 'col-actions',
          render: (k) =>
            h(
              'div',
              { class: 'row-actions' },
              button('Reveal', { variant: 'ghost', small: true, iconName: 'eye', 'aria-label': `Reveal SDK key ${k.name || ''}`.trim(), 'data-testid': 'sdk-key-reveal', onClick: (e) => reveal(k, e.currentTarget) }),
              revokeButton(
                'Revoke',
                { 'aria-label': `Revoke SDK key ${k.name || ''}`.trim(), 'data-testid': 'sdk-key-revoke', disabled: !canManage() },
                {
                  title: 'Revoke this SDK key?',
                  message: `Backends using “${k.name || 'this key'}” will start failing immediately. This cannot be undone.`,
                  confirmLabel: 'Revoke key',
                  action: () => del(`/api/v1/sdk-keys/${encodeURIComponent(k.id)}`),
                },
                'SDK key revoked',
                load,
              ),
            ),
        },
      ],
      keys,
      { caption: 'SDK keys', testid: 'sdk-keys-table' },
    );
  }

  async function reveal(k, trigger) {
    const base = `/api/v1/sdk-keys/${encodeURIComponent(k.id)}`;
    try {
      const value = await revealWithOtp({
        what: 'SDK key',
        email: currentUserEmail(),
        trigger,
        start: async () => (await post(`${base}/reveal`)).challengeId,
        verify: async (challengeId, code) => {
          /** @type {SdkKeyRevealed} */
          const revealed = await post(`${base}/reveal/verify`, { challengeId, code });
          return revealed.key;
        },
      });
      if (!value) return;
      const modal = openModal({ title: k.name || 'SDK key', size: 'md' });
      append(modal.body, h('p', { class: 'muted' }, 'Keep it on your servers. Close this window when you are done.'), secretDisplay(value, { label: 'SDK key', what: 'SDK key', testid: 'sdk-key-revealed' }));
      append(modal.footer, button('Done', { variant: 'primary', onClick: () => modal.close() }));
    } catch (e) {
      toast(e.message, 'error');
    }
  }

  await load();
}

function scopeBadges(scopes) {
  const parts = [];
  for (const [name, label] of SCOPES) {
    const perms = Array.isArray(scopes?.[name]) ? scopes[name] : [];
    if (perms.length) parts.push(badge(`${label}: ${perms.join(' + ')}`, perms.includes('write') ? 'accent' : 'neutral'));
  }
  return parts.length ? h('div', { class: 'badges' }, parts) : h('span', { class: 'muted' }, 'No scopes');
}

function workspaceLabel(id) {
  if (!id) return 'All workspaces';
  const w = session.workspaces.find((x) => wsId(x) === String(id));
  return `Only ${w ? wsName(w) : String(id)}`;
}

function openCreate(reload) {
  const modal = openModal({ title: 'Create SDK key', size: 'lg', closeOnBackdrop: false });
  const name = h('input', { class: 'input', name: 'name', required: true, maxlength: '100', placeholder: 'e.g. billing-service', autocomplete: 'off', 'data-testid': 'sdk-key-name' });
  const boxes = {};
  const matrix = h(
    'fieldset',
    { class: 'scope-matrix' },
    h('legend', {}, 'Scopes'),
    h('p', { class: 'field-hint' }, 'Grant only what this backend needs. Creating API keys needs API keys: write.'),
    h(
      'table',
      { class: 'scope-table' },
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Resource'), h('th', { scope: 'col' }, 'Read'), h('th', { scope: 'col' }, 'Write'))),
      h(
        'tbody',
        {},
        SCOPES.map(([scope, label, desc]) =>
          h(
            'tr',
            {},
            h('th', { scope: 'row' }, h('span', { class: 'strong' }, label), h('span', { class: 'scope-desc' }, desc)),
            ['read', 'write'].map((perm) => {
              const box = h('input', { type: 'checkbox', name: `${scope}.${perm}`, 'aria-label': `${label}: ${perm}`, 'data-testid': `scope-${scope}-${perm}` });
              boxes[`${scope}.${perm}`] = box;
              return h('td', {}, h('label', { class: 'check' }, box, h('span', { class: 'check-label', 'aria-hidden': 'true' }, perm)));
            }),
          ),
        ),
      ),
    ),
  );
  // Write without read is rarely meant: ticking write ticks read too.
  for (const [scope] of SCOPES) {
    boxes[`${scope}.write`].addEventListener('change', (e) => {
      if (e.target.checked) boxes[`${scope}.read`].checked = true;
    });
  }
  const workspace = h(
    'select',
    { class: 'select', name: 'workspaceId', 'data-testid': 'sdk-key-workspace' },
    h('option', { value: '' }, 'All workspaces (organisation-wide)'),
    session.workspaces.map((w) => h('option', { value: wsId(w) }, wsName(w))),
  );
  const err = errorBox();
  const submit = button('Create SDK key', { variant: 'primary', type: 'submit', 'data-testid': 'sdk-key-submit' });
  const form = h('form', { class: 'stack', novalidate: true, id: 'sdk-key-form' }, field('Name', name), matrix, field('Workspace', workspace, { hint: 'Bind the key to one workspace, or let it work in all of them.' }), err);
  submit.setAttribute('form', form.id);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const keyName = requiredText(name, err, 'Give the key a name.');
    if (!keyName) return;
    const scopes = {};
    for (const [scope] of SCOPES) {
      scopes[scope] = ['read', 'write'].filter((p) => boxes[`${scope}.${p}`].checked);
    }
    if (!Object.values(scopes).some((p) => p.length)) {
      err.show('Choose at least one scope.');
      boxes['workspace.read'].focus();
      return;
    }
    err.hide();
    const body = { name: keyName, scopes };
    if (workspace.value) body.workspaceId = workspace.value;
    try {
      /** @type {SdkKeyCreated} */
      const created = await busy(submit, () => post('/api/v1/sdk-keys', body));
      const value = created.key;
      const info = created.sdkKey;
      showCreated(modal, 'SDK key created', value ? shownOnce(value, { what: 'SDK key', testid: 'new-sdk-key', note: "You won't see this SDK key again without a verification code sent to your email. Store it in your backend's secret manager." }) : h('p', {}, `The key ${info.name || ''} was created.`), reload);
    } catch (e2) {
      err.show(e2.message);
    }
  });
  append(modal.body, form);
  append(modal.footer, button('Cancel', { onClick: () => modal.close() }), submit);
}
