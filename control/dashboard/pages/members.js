// Members: who can sign in to this organisation, and with which role. Only owners and admins
// manage members; the server enforces it, the page only hides what would be refused.

import { del, get, patch, post } from '../api.js';
import { badge, busy, button, card, cardHeader, clear, confirmDialog, errorBox, field, h, listLoader, pageHeader, skeletonRows, table, timeEl, toast } from '../ui.js';
import { canManage, session } from '../session.js';

const ROLES = [
  ['owner', 'Owner', 'Everything, including managing owners.'],
  ['admin', 'Admin', 'Manage keys, members and settings.'],
  ['member', 'Member', 'View keys and settings; cannot reveal or revoke secrets.'],
];

export async function render(main) {
  const manage = canManage();
  const listArea = h('div', { class: 'card-body' }, skeletonRows());

  const email = h('input', { class: 'input', type: 'email', name: 'email', autocomplete: 'off', placeholder: 'colleague@company.com', required: true, 'data-testid': 'invite-email' });
  const role = h('select', { class: 'select', name: 'role', 'data-testid': 'invite-role' }, ROLES.map(([v, l]) => h('option', { value: v }, l)));
  role.value = 'member';
  const err = errorBox();
  const invite = button('Invite', { variant: 'primary', type: 'submit', iconName: 'mail', 'data-testid': 'invite-submit' });
  const inviteForm = h(
    'form',
    { class: 'card-body invite-form', novalidate: true },
    h('div', { class: 'invite-row' }, field('Email', email), field('Role', role), h('div', { class: 'invite-submit' }, invite)),
    h('ul', { class: 'role-help' }, ROLES.map(([, l, d]) => h('li', {}, h('strong', {}, l), ` ${d}`))),
    err,
  );
  inviteForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    const value = email.value.trim();
    if (!value.includes('@')) {
      err.show('Enter the email address to invite.');
      email.focus();
      return;
    }
    err.hide();
    try {
      await busy(invite, () => post('/api/v1/members', { email: value, role: role.value }));
      toast(`${value} can now sign in`, 'success');
      email.value = '';
      load();
    } catch (e2) {
      err.show(e2.message);
      email.focus();
    }
  });

  clear(
    main,
    pageHeader('Members', `People who can sign in to ${session.organisation?.name || 'this organisation'}.`),
    manage ? card(cardHeader('Invite someone', 'They sign in with a code sent to this email.'), inviteForm) : h('p', { class: 'callout callout-info' }, 'Only owners and admins can invite or change members.'),
    card(cardHeader('Members'), listArea),
  );

  const load = listLoader(
    listArea,
    async () => {
      /** @type {import('../types').Answer<'/api/v1/members', 'get'>} */
      const data = await get('/api/v1/members');
      return data.members;
    },
    memberTable,
    { iconName: 'users', title: 'No members', text: 'Invite a colleague above.' },
  );

  function memberTable(members) {
    const me = session.user?.id;
    return table(
      [
        {
          label: 'Email',
          render: (m) => h('span', { class: 'strong' }, m.email, String(m.id) === String(me) ? h('span', { class: 'muted' }, ' (you)') : null),
        },
        {
          label: 'Role',
          render: (m) => {
            if (!manage || String(m.id) === String(me)) return badge(roleLabel(m.role), m.role === 'owner' ? 'accent' : 'neutral');
            const sel = h('select', { class: 'select select-sm', 'aria-label': `Role of ${m.email}` }, ROLES.map(([v, l]) => h('option', { value: v }, l)));
            sel.value = String(m.role || 'member').toLowerCase();
            sel.addEventListener('change', async () => {
              const previous = String(m.role || 'member').toLowerCase();
              sel.disabled = true;
              try {
                /** @type {import('../types').Answer<'/api/v1/members/{id}', 'patch'>} */
                const updated = await patch(`/api/v1/members/${encodeURIComponent(m.id)}`, { role: sel.value });
                m.role = updated.member.role;
                toast(`${m.email} is now ${roleLabel(m.role).toLowerCase()}`, 'success');
              } catch (e) {
                sel.value = previous;
                toast(e.message, 'error');
              } finally {
                sel.disabled = false;
              }
            });
            return sel;
          },
        },
        { label: 'Joined', render: (m) => timeEl(m.createdAt) },
        { label: 'Last sign-in', render: (m) => timeEl(m.lastSignInAt, 'Not yet') },
        {
          label: 'Actions',
          class: 'col-actions',
          render: (m) =>
            manage && String(m.id) !== String(me)
              ? button('Remove', {
                  variant: 'danger-ghost',
                  small: true,
                  iconName: 'trash',
                  'aria-label': `Remove ${m.email}`,
                  onClick: async (e) => {
                    const trigger = e.currentTarget;
                    const ok = await confirmDialog({
                      title: 'Remove this member?',
                      message: `${m.email} will be signed out and can no longer sign in.`,
                      confirmLabel: 'Remove member',
                      danger: true,
                      action: () => busy(trigger, () => del(`/api/v1/members/${encodeURIComponent(m.id)}`)),
                    });
                    if (ok) {
                      toast(`${m.email} removed`, 'success');
                      load();
                    }
                  },
                })
              : null,
        },
      ],
      members,
      { caption: 'Members', testid: 'members-table' },
    );
  }

  await load();
}

function roleLabel(role) {
  const found = ROLES.find(([v]) => v === String(role || '').toLowerCase());
  return found ? found[1] : String(role || 'Member');
}
