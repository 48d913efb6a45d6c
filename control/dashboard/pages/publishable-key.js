// Publishable Key tab: the workspace's frontend key (not a secret, shown in full), its revocation
// (atomic replacement), its blacklist of module/functionality actions, its allowed origins and
// gateway settings, and the workspace's gateway signing secret (owners and admins, on request).

import { del, get, patch, post, ws } from '../api.js';

/** @typedef {import('../types').Answer<'/api/v1/workspace/{id}/publishable-key', 'get'>} KeyAnswer */
/** @typedef {import('../types').Answer<'/api/v1/workspace/{id}/modules', 'get'>} Catalogue */
/** @typedef {import('../types').Answer<'/api/v1/workspace/{id}/gateway-secret', 'get'>} GatewaySecrets */
import {
  append, badge, busy, button, card, cardHeader, clear, confirmAnswer, confirmDialog, emptyState, errorBox,
  errorState, field, h, icon, loadingState, openModal, secretDisplay, table, timeEl, toast,
} from '../ui.js';
import { canManage, wsId } from '../session.js';

const ALL = '*';

export async function render(panel, ctx) {
  const id = wsId(ctx.workspace);
  clear(panel, loadingState('Loading the publishable key'));
  let key;
  let modules;
  try {
    /** @type {[KeyAnswer, Catalogue]} */
    const [keyData, modData] = await Promise.all([get(ws(id, '/publishable-key')), get(ws(id, '/modules')).catch(() => ({ modules: [] }))]);
    key = keyData.publishableKey;
    modules = modData.modules;
  } catch (e) {
    clear(panel, errorState(e, () => render(panel, ctx)));
    return;
  }

  /* --- the key --- */
  const keySlot = h('div', { class: 'stack-sm' });
  const notice = h('div', { role: 'status' });
  const revoke = button('Revoke Key', { variant: 'danger', iconName: 'refresh', 'data-testid': 'revoke-key' });
  function showKey() {
    clear(
      keySlot,
      h('div', { class: 'field' }, h('label', { for: 'pk-value' }, 'Publishable key'), secretDisplay(key.key, { id: 'pk-value', what: 'publishable key', testid: 'publishable-key' })),
      h('dl', { class: 'meta' }, key.createdAt ? [h('dt', {}, 'Created'), h('dd', {}, timeEl(key.createdAt))] : null),
    );
  }
  revoke.addEventListener('click', async () => {
    const result = await confirmAnswer({
      title: 'Revoke the publishable key?',
      message: 'Systems still using the old key will start failing immediately: every request signed with it is refused at the edge.',
      detail: 'A new key is issued at once. Update your frontend code with it.',
      confirmLabel: 'Revoke and issue a new key',
      danger: true,
      // Name the key on screen: if someone else replaced it meanwhile, this is a 409, not a
      // second replacement.
      action: async () => {
        /** @type {import('../types').Answer<'/api/v1/workspace/{id}/publishable-key/revoke', 'post'>} */
        const revoked = await post(ws(id, '/publishable-key/revoke'), key.id ? { keyId: key.id } : {});
        return revoked;
      },
    });
    if (!result) return;
    key = result.publishableKey;
    showKey();
    clear(notice, h('div', { class: 'callout callout-success', 'data-testid': 'revoke-notice' }, icon('check'), h('div', {}, h('strong', {}, 'New key issued. '), 'The old key no longer works. Update your frontends with the key below.')));
    toast('Publishable key replaced', 'success');
  });
  showKey();

  /* --- blacklist --- */
  const rulesArea = h('div', { class: 'card-body' });
  const addRule = button('Blacklist Action', { variant: 'secondary', iconName: 'ban', 'data-testid': 'blacklist-add' });
  addRule.addEventListener('click', () => openBlacklistModal());
  function rules() {
    return key.blacklist;
  }
  function showRules() {
    const list = rules();
    clear(
      rulesArea,
      list.length
        ? table(
            [
              { label: 'Module', render: (r) => h('code', {}, r.module) },
              { label: 'Functionality', render: (r) => (r.functionality === ALL ? badge('All functionalities', 'warning') : h('code', {}, r.functionality)) },
              {
                label: 'Actions',
                class: 'col-actions',
                render: (r) =>
                  button('Remove', {
                    variant: 'danger-ghost',
                    small: true,
                    iconName: 'trash',
                    'aria-label': `Remove rule ${r.module} ${r.functionality === ALL ? 'all functionalities' : r.functionality}`,
                    'data-testid': 'blacklist-remove',
                    onClick: async (e) => {
                      try {
                        await busy(e.currentTarget, () => del(ws(id, `/publishable-key/blacklist/${encodeURIComponent(r.id)}`)));
                        key.blacklist = rules().filter((x) => x.id !== r.id);
                        showRules();
                        toast('Rule removed', 'success');
                        addRule.focus();
                      } catch (err) {
                        toast(err.message, 'error');
                      }
                    },
                  }),
              },
            ],
            list,
            { caption: 'Blacklisted actions', testid: 'blacklist-table' },
          )
        : emptyState({ iconName: 'ban', title: 'Nothing is blacklisted', text: 'Every module and functionality can be called with this key. Blacklist an action to refuse it at the edge.' }),
    );
  }
  function openBlacklistModal() {
    const modal = openModal({ title: 'Blacklist an action', description: 'Requests made with this publishable key for the chosen action are refused at the edge.' });
    if (!modules.length) {
      append(
        modal.body,
        emptyState({
          iconName: 'layers',
          title: 'No modules yet',
          text: 'Blacklist rules pick from the workspace’s catalogue of modules and functionalities. Add some first.',
          action: h('a', { class: 'btn btn-primary', href: `/w/${encodeURIComponent(id)}/modules`, onClick: () => modal.close() }, 'Edit modules'),
        }),
      );
      append(modal.footer, button('Close', { onClick: () => modal.close() }));
      return;
    }
    const moduleSel = h(
      'select',
      { class: 'select', name: 'module', 'data-testid': 'blacklist-module', required: true },
      h('option', { value: '' }, 'Choose a module…'),
      modules.map((m) => h('option', { value: m.name }, m.name)),
    );
    const funcSel = h('select', { class: 'select', name: 'functionality', 'data-testid': 'blacklist-functionality', disabled: true }, h('option', { value: '' }, 'Choose a module first'));
    moduleSel.addEventListener('change', () => {
      const m = modules.find((x) => x.name === moduleSel.value);
      const taken = new Set(rules().filter((r) => r.module === moduleSel.value).map((r) => r.functionality));
      clear(
        funcSel,
        m ? [h('option', { value: ALL, disabled: taken.has(ALL) }, 'All functionalities'), (m.functionalities || []).map((f) => h('option', { value: f, disabled: taken.has(f) }, f))] : h('option', { value: '' }, 'Choose a module first'),
      );
      funcSel.disabled = !m;
    });
    const err = errorBox();
    const save = button('Save rule', { variant: 'primary', type: 'submit', 'data-testid': 'blacklist-save' });
    const form = h(
      'form',
      { class: 'stack', id: 'blacklist-form', novalidate: true },
      field('Module', moduleSel),
      field('Functionality', funcSel, { hint: '“All functionalities” blocks the whole module.' }),
      err,
    );
    save.setAttribute('form', form.id);
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      if (!moduleSel.value) {
        err.show('Choose a module.');
        moduleSel.focus();
        return;
      }
      if (!funcSel.value) {
        err.show('Choose a functionality, or “All functionalities”.');
        funcSel.focus();
        return;
      }
      err.hide();
      try {
        /** @type {import('../types').Answer<'/api/v1/workspace/{id}/publishable-key/blacklist', 'post'>} */
        const created = await busy(save, () => post(ws(id, '/publishable-key/blacklist'), { module: moduleSel.value, functionality: funcSel.value }));
        key.blacklist = [...rules(), created.rule];
        showRules();
        modal.close();
        toast('Action blacklisted', 'success');
      } catch (e2) {
        err.show(e2.message);
      }
    });
    append(modal.body, form);
    append(modal.footer, button('Cancel', { onClick: () => modal.close() }), save);
  }
  showRules();

  /* --- origins --- */
  const origins = h('textarea', {
    class: 'textarea mono',
    name: 'allowedOrigins',
    rows: '3',
    placeholder: 'https://app.example.com',
    spellcheck: 'false',
    'data-testid': 'allowed-origins',
  });
  origins.value = (key.allowedOrigins || []).join('\n');
  const originUrl = h('input', { class: 'input mono', type: 'url', name: 'originUrl', placeholder: 'https://api.example.com', value: key.originUrl || '', spellcheck: 'false', 'data-testid': 'origin-url' });
  const forwardCookies = h('input', { type: 'checkbox', name: 'forwardCookies', 'data-testid': 'forward-cookies' });
  forwardCookies.checked = Boolean(key.forwardCookies);
  const originErr = errorBox();
  const saveOrigins = button('Save', { variant: 'primary', type: 'submit', 'data-testid': 'origins-save' });
  const originsForm = h(
    'form',
    { class: 'card-body stack', novalidate: true },
    field('Allowed origins', origins, { hint: 'One per line, e.g. https://app.example.com. Leave empty to allow any origin.' }),
    field('Origin URL', originUrl, { hint: 'Where the edge forwards requests it allows: https on a public address.' }),
    h('label', { class: 'checkbox' }, forwardCookies, ' Forward cookies (Cookie to the origin, Set-Cookie back). Off by default: every workspace shares the edge’s host.'),
    originErr,
    h('div', { class: 'form-actions' }, saveOrigins),
  );
  originsForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    const list = origins.value.split(/[\s,]+/).map((s) => s.trim()).filter(Boolean);
    const bad = list.find((o) => !/^https?:\/\/[^/\s]+$/i.test(o.replace(/\/$/, '')));
    if (bad) {
      originErr.show(`“${bad}” is not an origin. Use scheme and host only, like https://app.example.com.`);
      origins.focus();
      return;
    }
    const url = originUrl.value.trim();
    if (url && !/^https?:\/\/\S+$/i.test(url)) {
      originErr.show('The origin URL must start with https:// or http://.');
      originUrl.focus();
      return;
    }
    originErr.hide();
    try {
      /** @type {import('../types').Answer<'/api/v1/workspace/{id}/publishable-key', 'patch'>} */
      const updated = await busy(saveOrigins, () => patch(ws(id, '/publishable-key'), { allowedOrigins: list.map((o) => o.replace(/\/$/, '')), originUrl: url || null, forwardCookies: forwardCookies.checked }));
      key = updated.publishableKey;
      toast('Origins saved', 'success');
    } catch (e2) {
      originErr.show(e2.message);
    }
  });

  /* --- gateway signing secret (owners and admins; fetched only on request) --- */
  const secretSlot = h('div', { class: 'stack-sm', 'data-testid': 'gateway-secrets' });
  const showSecret = button('Show secret', { iconName: 'eye', 'data-testid': 'gateway-secret-show' });
  const rotateSecret = button('Rotate', { iconName: 'refresh', 'data-testid': 'gateway-secret-rotate' });
  const secretErr = errorBox();
  /** @param {GatewaySecrets} data the answer of GET (and of POST .../rotate: the same shape) */
  function showSecrets(data) {
    const list = data.gatewaySecrets;
    clear(
      secretSlot,
      ...list.map((s, i) => h(
        'div',
        { class: 'field' },
        h('label', {}, `${i === 0 ? 'Current' : 'Previous'} secret (key id ${s.kid})`),
        secretDisplay(s.secret, { what: 'gateway secret', testid: `gateway-secret-${i}` }),
        s.retiresAt ? h('p', { class: 'field-hint' }, 'Still signed with until ', timeEl(s.retiresAt)) : null,
      )),
    );
  }
  showSecret.addEventListener('click', async () => {
    try {
      showSecrets(await busy(showSecret, () => get(ws(id, '/gateway-secret'))));
      secretErr.hide();
    } catch (e) {
      secretErr.show(e.message);
    }
  });
  rotateSecret.addEventListener('click', async () => {
    const ok = await confirmDialog({
      title: 'Rotate the gateway signing secret?',
      message: 'The edge signs with both the new and the current secret for 24 hours; switch your origin to the new one within that time.',
      confirmLabel: 'Rotate',
    });
    if (!ok) return;
    try {
      showSecrets(await busy(rotateSecret, () => post(ws(id, '/gateway-secret/rotate'), { overlapSeconds: 86400 })));
      secretErr.hide();
      toast('Gateway secret rotated', 'success');
    } catch (e) {
      secretErr.show(e.message);
    }
  });

  const manage = canManage();
  if (!manage) {
    revoke.disabled = true;
    addRule.disabled = true;
    saveOrigins.disabled = true;
    showSecret.disabled = true;
    rotateSecret.disabled = true;
  }
  clear(
    panel,
    h(
      'div',
      { class: 'stack-lg' },
      card(
        cardHeader('Publishable key', 'Use this key in frontend code (browsers, mobile apps). It is safe to expose; restrict what it can do below.', revoke),
        h('div', { class: 'card-body stack' }, notice, keySlot),
      ),
      card(cardHeader('Blacklisted actions', 'Module and functionality pairs this key may not call. Several rules can apply at once.', addRule), rulesArea),
      card(cardHeader('Origins', 'Which browser origins may use this key, and where allowed requests go.'), originsForm),
      card(
        cardHeader('Gateway signing secret', 'Your origin verifies the x-keygate-gateway-signature header of forwarded requests with this secret.', h('div', { class: 'form-actions' }, showSecret, rotateSecret)),
        h('div', { class: 'card-body stack' }, secretSlot, secretErr),
      ),
      manage ? null : h('p', { class: 'muted' }, 'Only owners and admins can change the publishable key.'),
    ),
  );
}
