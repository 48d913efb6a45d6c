// Tokens tab: workspace tokens and secrets. Created values are shown exactly once; the list
// only ever shows masks.

import { del, post, get, ws } from '../api.js';
import { append, badge, busy, button, card, cardHeader, clear, errorBox, field, h, listLoader, openModal, requiredText, revokeButton, showCreated, shownOnce, skeletonRows, table, timeEl } from '../ui.js';
import { wsId } from '../session.js';

const EXPIRY = [
  ['', 'Never'],
  ['30', 'In 30 days'],
  ['90', 'In 90 days'],
  ['365', 'In 1 year'],
];

export async function render(panel, { workspace }) {
  const id = wsId(workspace);
  const listArea = h('div', { class: 'card-body' }, skeletonRows());
  const create = button('Create token', { variant: 'primary', iconName: 'plus', 'data-testid': 'token-create' });
  create.addEventListener('click', () => openCreate(id, load));
  clear(
    panel,
    card(cardHeader('Workspace tokens', 'Tokens and secrets for integrations of this workspace. Each value is shown once, when it is created.', create), listArea),
  );

  const load = listLoader(
    listArea,
    async () => {
      /** @type {import('../types').Answer<'/api/v1/workspace/{id}/tokens', 'get'>} */
      const data = await get(ws(id, '/tokens'));
      return data.tokens;
    },
    tokenTable,
    { title: 'No tokens yet', text: 'Create a token to let an integration call keygate on behalf of this workspace.' },
  );

  function tokenTable(tokens) {
    return table(
      [
        { label: 'Name', render: (t) => h('span', { class: 'strong' }, t.name || 'Unnamed token', h('span', { class: 'cell-sub' }, t.kind === 'secret' ? 'Secret' : 'Token')) },
        { label: 'Value', render: (t) => h('code', { class: 'mask' }, t.masked) },
        { label: 'Created', class: 'nowrap', render: (t) => timeEl(t.createdAt) },
        { label: 'Last used', class: 'nowrap', render: (t) => timeEl(t.lastUsedAt, 'Never used') },
        { label: 'Expires', class: 'nowrap', render: (t) => (t.expired ? badge('Expired', 'danger') : t.expiresAt ? timeEl(t.expiresAt) : badge('No expiry')) },
        {
          label: 'Actions',
          class: 'col-actions',
          render: (t) =>
            revokeButton(
              'Revoke',
              { 'aria-label': `Revoke token ${t.name || ''}`.trim() },
              {
                title: 'Revoke this token?',
                message: `Anything using “${t.name || 'this token'}” will stop working immediately. This cannot be undone.`,
                confirmLabel: 'Revoke token',
                action: () => del(ws(id, `/tokens/${encodeURIComponent(t.id)}`)),
              },
              'Token revoked',
              load,
            ),
        },
      ],
      tokens,
      { caption: 'Workspace tokens', testid: 'tokens-table' },
    );
  }

  await load();
}

function openCreate(id, reload) {
  // A click outside must not throw away a value that is shown only once.
  const modal = openModal({ title: 'Create token', size: 'md', closeOnBackdrop: false });
  const name = h('input', { class: 'input', name: 'name', required: true, maxlength: '100', placeholder: 'e.g. CI deploy', autocomplete: 'off', 'data-testid': 'token-name' });
  const expiry = h('select', { class: 'select', name: 'expiry' }, EXPIRY.map(([v, l]) => h('option', { value: v }, l)));
  const kind = h('select', { class: 'select', name: 'kind' }, h('option', { value: 'token' }, 'Token'), h('option', { value: 'secret' }, 'Secret'));
  const err = errorBox();
  const submit = button('Create token', { variant: 'primary', type: 'submit', 'data-testid': 'token-submit' });
  const form = h('form', { class: 'stack', novalidate: true, id: 'token-create-form' }, field('Name', name, { hint: 'So you can tell tokens apart later.' }), h('div', { class: 'field-row' }, field('Type', kind, { hint: 'A token identifies an integration; a secret is a shared secret it keeps.' }), field('Expires', expiry)), err);
  submit.setAttribute('form', form.id);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const tokenName = requiredText(name, err, 'Give the token a name.');
    if (!tokenName) return;
    err.hide();
    const body = { name: tokenName, kind: kind.value };
    if (expiry.value) body.expiresAt = new Date(Date.now() + Number(expiry.value) * 86400000).toISOString();
    try {
      /** @type {import('../types').Answer<'/api/v1/workspace/{id}/tokens', 'post'>} */
      const created = await busy(submit, () => post(ws(id, '/tokens'), body));
      const value = created.key;
      showCreated(modal, 'Token created', value ? shownOnce(value, { what: 'token', testid: 'new-token' }) : h('p', {}, 'The token was created.'), reload);
    } catch (e2) {
      err.show(e2.message);
    }
  });
  append(modal.body, form);
  append(modal.footer, button('Cancel', { onClick: () => modal.close() }), submit);
}
