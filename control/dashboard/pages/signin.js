// Sign-in by emailed code: email -> POST /api/v1/auth/otp, code -> POST /api/v1/auth/session.

import { post } from '../api.js';
import { busy, button, clear, errorBox, field, h, icon } from '../ui.js';
import { codeInput, onCodeSubmit } from '../otp.js';

export function render(root, { expired, onSignedIn }) {
  const panel = h('div', { class: 'auth-panel' });
  const page = h(
    'div',
    { class: 'auth-page' },
    h(
      'main',
      { class: 'auth-card', id: 'main' },
      h('div', { class: 'brand auth-brand' }, h('span', { class: 'brand-mark', 'aria-hidden': 'true' }, icon('key', 'icon brand-icon')), h('span', { class: 'brand-name' }, 'keygate')),
      panel,
    ),
    h('p', { class: 'auth-foot' }, 'Keys for your frontends and backends, checked at the edge.'),
  );
  clear(root, page);
  emailStep(panel, { expired, onSignedIn });
}

/**
 * @param {HTMLElement} panel
 * @param {{expired?: boolean, onSignedIn: () => void, email?: string}} options
 */
function emailStep(panel, { expired, onSignedIn, email = '' }) {
  const input = h('input', {
    class: 'input',
    type: 'email',
    name: 'email',
    autocomplete: 'email',
    required: true,
    value: email,
    placeholder: 'you@company.com',
    'data-autofocus': true,
    'data-testid': 'signin-email',
  });
  const err = errorBox();
  const submit = button('Email me a sign-in code', { variant: 'primary', type: 'submit', 'data-testid': 'signin-send' });
  submit.classList.add('btn-block');
  const form = h(
    'form',
    { class: 'stack', novalidate: true },
    expired ? h('div', { class: 'callout callout-info', role: 'status' }, 'Your session has ended. Sign in again to continue.') : null,
    field('Work email', input),
    err,
    submit,
  );
  clear(panel, h('h1', { class: 'auth-title', tabindex: '-1' }, 'Sign in'), h('p', { class: 'auth-sub' }, 'We will email you a 6-digit code. No password needed.'), form);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const value = input.value.trim();
    if (!value || !value.includes('@')) {
      err.show('Enter the email address you were invited with.');
      input.focus();
      return;
    }
    err.hide();
    try {
      const sent = await busy(submit, () => post('/api/v1/auth/otp', { email: value }));
      codeStep(panel, { email: value, onSignedIn, challengeId: sent && sent.challengeId });
    } catch (e2) {
      err.show(e2.message);
      input.focus();
    }
  });
  input.focus();
}

// The challenge id of this browser's own request: wrong codes typed here then count only
// against it, never against someone else's request for the same address.
function codeStep(panel, { email, onSignedIn, challengeId: first }) {
  let challengeId = first || undefined;
  const input = codeInput('signin-code');
  const err = errorBox();
  const note = h('p', { class: 'form-note', role: 'status' });
  const submit = button('Sign in', { variant: 'primary', type: 'submit', 'data-testid': 'signin-submit' });
  submit.classList.add('btn-block');
  const resend = button('Send a new code', { variant: 'ghost', small: true });
  const back = button('Use a different email', { variant: 'ghost', small: true });
  const form = h('form', { class: 'stack', novalidate: true }, field('Sign-in code', input, { hint: 'The code expires in 10 minutes.' }), err, note, submit);
  clear(
    panel,
    h('h1', { class: 'auth-title', tabindex: '-1' }, 'Check your email'),
    h('p', { class: 'auth-sub' }, 'If ', h('strong', {}, email), ' has access to keygate, a sign-in code is on its way.'),
    form,
    h('div', { class: 'auth-links' }, back, resend),
  );
  back.addEventListener('click', () => emailStep(panel, { onSignedIn, email }));
  resend.addEventListener('click', async () => {
    err.hide();
    try {
      const sent = await busy(resend, () => post('/api/v1/auth/otp', { email }));
      challengeId = (sent && sent.challengeId) || challengeId;
      note.textContent = 'A code is on its way (any code from the last 10 minutes works; a new one is sent at most every 30 seconds).';
      input.value = '';
      input.focus();
    } catch (e) {
      err.show(e.message);
    }
  });
  const onDead = (why) => {
    err.show(`${why} Send a new code and use the newest email.`);
    resend.focus();
  };
  onCodeSubmit(form, { input, note, err, onDead }, async (code) => {
    await busy(submit, () => post('/api/v1/auth/session', { email, code, challengeId }));
    await onSignedIn();
  });
  input.focus();
}
