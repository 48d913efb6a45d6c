// Customer portal: the workspace's portal policy (what a platform's customers may create for
// themselves at /portal with a link token): scopes and their rights, the longest expiry, the
// largest usage allowance, how many live keys each customer may hold. Owners and admins save
// it with one PUT; members see it read-only.

import { get, put, ws } from '../api.js';
import { append, busy, button, card, cardHeader, clear, errorBox, errorState, field, h, pageHeader, toast } from '../ui.js';
import { canManage, wsId, wsName } from '../session.js';

const DAY = 86400000;
const RIGHTS = [['read', 'Read'], ['create', 'Create'], ['update', 'Update'], ['del', 'Delete']];

export async function render(main, { workspace }) {
  const id = wsId(workspace);
  let answer;
  let defined;
  try {
    /** @type {import('../types').Answer<'/api/v1/workspace/{id}/portal-policy', 'get'>} */
    const policy = await get(ws(id, '/portal-policy'));
    /** @type {import('../types').Answer<'/api/v1/workspace/{id}/scopes', 'get'>} */
    const scopes = await get(ws(id, '/scopes'));
    answer = policy;
    defined = scopes.scopes.map((s) => s.representation);
  } catch (e) {
    clear(main, pageHeader('Customer portal'), errorState(e, () => render(main, { workspace })));
    return;
  }
  const manage = canManage();
  const policy = answer.policy;
  const granted = (rep, right) => policy.allowedScopes.some((s) => s.representation === rep && s[right]);
  const boxes = defined.flatMap((rep) =>
    RIGHTS.map(([right, label]) => ({ rep, right, box: h('input', { type: 'checkbox', name: `${rep}.${right}`, checked: granted(rep, right), disabled: !manage, 'aria-label': `${rep}: ${label}`, 'data-testid': `policy-${rep}-${right}` }) })),
  );
  const number = (name, value, placeholder) => h('input', { class: 'input', type: 'number', min: '0', name, value: value == null ? '' : String(value), placeholder, disabled: !manage, 'data-testid': `policy-${name}` });
  const expiry = number('maxExpiryDays', policy.maxExpiryMs == null ? null : Math.round(policy.maxExpiryMs / DAY), 'No limit');
  const usage = number('maxUsage', policy.maxUsage, 'Unlimited');
  const liveKeys = number('maxLiveKeys', policy.maxLiveKeys, '5');
  const err = errorBox();
  const save = button('Save policy', { variant: 'primary', type: 'submit', 'data-testid': 'policy-save' });
  const scopeRows = defined.length
    ? h('div', { class: 'stack-sm' }, defined.map((rep) => h('div', { class: 'portal-scopes' }, h('code', {}, rep), boxes.filter((b) => b.rep === rep).map((b) => h('label', { class: 'checkbox' }, b.box, ` ${RIGHTS.find(([r]) => r === b.right)[1]}`)))))
    : h('p', { class: 'muted' }, 'This workspace defines no scopes, so customers create keys without scopes.');
  const form = h(
    'form',
    { class: 'stack card-body', novalidate: true },
    h('div', { class: 'stack-sm' }, h('strong', {}, 'Scopes customers may grant'), scopeRows),
    h('div', { class: 'field-row' }, field('Longest expiry, in days', expiry, { hint: 'Empty: keys may never expire.' }), field('Largest usage allowance', usage, { hint: 'Empty: keys may be unlimited.' })),
    field('Live keys per customer', liveKeys, { hint: '0 to 100. 0: customers cannot create keys.' }),
    err,
    manage ? h('div', { class: 'form-actions' }, save) : null,
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    err.hide();
    /** @type {import('../types').Body<'/api/v1/workspace/{id}/portal-policy', 'put'>} */
    const body = {
      allowedScopes: defined
        .map((rep) => Object.fromEntries([['representation', rep], ...boxes.filter((b) => b.rep === rep).map((b) => [b.right, b.box.checked])]))
        .filter((s) => RIGHTS.some(([r]) => s[r])),
      maxExpiryMs: expiry.value === '' ? null : Number(expiry.value) * DAY,
      maxUsage: usage.value === '' ? null : Number(usage.value),
      maxLiveKeys: Number(liveKeys.value || 0),
    };
    try {
      await busy(save, () => put(ws(id, '/portal-policy'), body));
      toast('Portal policy saved', 'success');
    } catch (e2) {
      err.show(e2.message);
    }
  });
  const embed = h('pre', { class: 'mono portal-embed' }, `<iframe src="${location.origin}/portal?workspace=${id}#token=<link token>"></iframe>`);
  clear(
    main,
    pageHeader('Customer portal', `What your customers may create for themselves in ${wsName(workspace)}, at ${location.origin}/portal with a link token.`),
    card(cardHeader('Policy', answer.customised ? 'Set by an admin of this workspace.' : 'The default policy: no one has changed it yet.'), form),
  );
  append(
    main,
    card(
      cardHeader('Embedding', 'Make a link token on your server (POST /api/v1/link-token), then redirect your customer to /portal#token=… or frame the page. Only the workspace’s allowed origins may frame it.'),
      h('div', { class: 'card-body' }, embed),
    ),
  );
}
