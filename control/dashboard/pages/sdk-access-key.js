// SDK Access Key tab: the workspace's own SDK key, hidden until the user proves control of their
// email (step-up OTP). Rotation replaces it; the old key stops working at once.

import { get, post, ws } from '../api.js';

/** @typedef {import('../types').Answer<'/api/v1/workspace/{id}/sdk-access-key', 'get'>} AccessKeyAnswer */
/** @typedef {import('../types').Answer<'/api/v1/workspace/{id}/sdk-access-key/reveal/verify', 'post'>} Revealed */
/** @typedef {import('../types').Answer<'/api/v1/workspace/{id}/sdk-access-key/rotate', 'post'>} Rotated */
import { button, card, cardHeader, clear, confirmAnswer, errorState, h, icon, loadingState, secretDisplay, timeEl, toast } from '../ui.js';
import { revealWithOtp } from '../otp.js';
import { currentUserEmail, wsId } from '../session.js';

export async function render(panel, { workspace }) {
  const id = wsId(workspace);
  clear(panel, loadingState('Loading the SDK access key'));
  let info;
  try {
    /** @type {AccessKeyAnswer} */
    const data = await get(ws(id, '/sdk-access-key'));
    info = data.sdkAccessKey;
  } catch (e) {
    clear(panel, errorState(e, () => render(panel, { workspace })));
    return;
  }

  const label = h('label', { for: 'sdk-access-key-field' }, 'SDK access key');
  const fieldSlot = h('div', { class: 'secret-slot' });
  const reveal = button('Reveal Key', { variant: 'secondary', iconName: 'eye', 'data-testid': 'reveal-key' });
  const rotate = button('Rotate key', { variant: 'danger-ghost', iconName: 'refresh', 'data-testid': 'rotate-key' });
  const meta = h(
    'dl',
    { class: 'meta' },
    info.createdAt ? [h('dt', {}, 'Created'), h('dd', {}, timeEl(info.createdAt))] : null,
    'lastUsedAt' in info ? [h('dt', {}, 'Last used'), h('dd', {}, timeEl(info.lastUsedAt, 'Never used'))] : null,
  );

  function showHidden() {
    const hidden = h('input', {
      id: 'sdk-access-key-field',
      type: 'password',
      class: 'input mono',
      readonly: true,
      value: info.masked,
      autocomplete: 'off',
      'aria-describedby': 'sdk-access-key-hint',
      'data-testid': 'sdk-access-key-hidden',
    });
    clear(fieldSlot, h('div', { class: 'secret-row' }, hidden, reveal));
  }

  function showRevealed(key) {
    const hide = button('Hide', { variant: 'ghost', iconName: 'eyeOff', onClick: showHidden });
    const shown = secretDisplay(key, { id: 'sdk-access-key-field', what: 'SDK access key', testid: 'sdk-access-key-revealed' });
    clear(fieldSlot, h('div', { class: 'secret-row' }, shown, hide));
    shown.querySelector('textarea').focus();
  }

  reveal.addEventListener('click', async () => {
    try {
      const key = await revealWithOtp({
        what: 'SDK access key',
        email: currentUserEmail(),
        trigger: reveal,
        start: async () => (await post(ws(id, '/sdk-access-key/reveal'))).challengeId,
        verify: async (challengeId, code) => {
          /** @type {Revealed} */
          const revealed = await post(ws(id, '/sdk-access-key/reveal/verify'), { challengeId, code });
          return revealed.key;
        },
      });
      if (key) showRevealed(key);
    } catch (e) {
      toast(e.message, 'error');
    }
  });

  rotate.addEventListener('click', async () => {
    const created = await confirmAnswer({
      title: 'Rotate the SDK access key?',
      message: 'A new key replaces the current one. Backends still using the current key will start failing immediately.',
      confirmLabel: 'Rotate key',
      danger: true,
      action: async () => {
        /** @type {Rotated} */
        const rotated = await post(ws(id, '/sdk-access-key/rotate'));
        return rotated;
      },
    });
    if (!created) return;
    toast('SDK access key rotated', 'success');
    const newKey = created.key;
    info = created.sdkAccessKey;
    if (newKey) {
      clear(
        fieldSlot,
        h('div', { class: 'stack-sm' },
          h('div', { class: 'callout callout-success', role: 'status' }, icon('check'), h('div', {}, h('strong', {}, 'New key issued. '), 'The old key no longer works. Update your backends with this key.')),
          h('div', { class: 'secret-row' }, secretDisplay(newKey, { label: 'SDK access key', what: 'SDK access key', testid: 'sdk-access-key-new' }), button('Hide', { variant: 'ghost', iconName: 'eyeOff', onClick: showHidden })),
        ),
      );
    } else {
      showHidden();
    }
  });

  showHidden();
  clear(
    panel,
    card(
      cardHeader('SDK access key', 'Your backend uses this key to call the keygate API for this workspace.', rotate),
      h(
        'div',
        { class: 'card-body stack' },
        h('div', { class: 'callout callout-info' }, icon('shield'), h('div', { id: 'sdk-access-key-hint' }, 'This is a secret. Keep it on your servers; never ship it in frontend or mobile code. Revealing it sends a verification code to ', h('strong', {}, currentUserEmail() || 'your email'), '.')),
        h('div', { class: 'field' }, label, fieldSlot),
        meta.childElementCount ? meta : null,
      ),
    ),
  );
}
