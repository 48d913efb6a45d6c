// Step-up verification: revealing a secret needs a one-time code emailed to the signed-in user.
// The caller's `start()` asks the server to send a code (returns a challenge id); this modal
// collects the code and calls `verify(challengeId, code)`. A wrong code keeps the modal open;
// an expired, spent or locked challenge offers a new code.

import { ApiError } from './api.js';
import { append, busy, button, errorBox, field, h, openModal, toast, uid } from './ui.js';

const DEAD_CHALLENGE = {
  OTP_EXPIRED: 'This code has expired.',
  OTP_CONSUMED: 'This code has already been used.',
  OTP_TOO_MANY_ATTEMPTS: 'Too many wrong codes were entered, so this code no longer works.',
  OTP_NOT_FOUND: 'This code is no longer valid.',
  CHALLENGE_NOT_FOUND: 'This code is no longer valid.',
};

const WRONG_CODE = new Set(['OTP_INVALID', 'OTP_MISMATCH', 'INVALID_CODE', 'OTP_WRONG']);

/**
 * The digits typed into a code form's `input`, or null after asking for them; clears the
 * form's note, and its error once there is a code.
 * @param {HTMLInputElement} input
 * @param {HTMLElement} note
 * @param {ReturnType<typeof errorBox>} err
 * @returns {string | null}
 */
function enteredCode(input, note, err) {
  const code = input.value.replace(/\D/g, '');
  note.textContent = '';
  if (!code) {
    err.show('Enter the 6-digit code from the email.');
    input.focus();
    return null;
  }
  err.hide();
  return code;
}

/**
 * The input a code is typed into.
 * @param {string} testid its `data-testid`
 * @returns {HTMLInputElement}
 */
export function codeInput(testid) {
  return h('input', {
    class: 'input input-code mono',
    name: 'code',
    inputmode: 'numeric',
    autocomplete: 'one-time-code',
    maxlength: '9',
    placeholder: '123456',
    'data-autofocus': true,
    'data-testid': testid,
    required: true,
  });
}

/**
 * Shows why a code was refused: a spent, expired or locked challenge goes to `onDead` (with
 * the sentence saying which), a wrong code asks to check the email, anything else shows its
 * message.
 * @param {unknown} error what the verify call threw
 * @param {{input: HTMLInputElement, err: ReturnType<typeof errorBox>,
 *   onDead: (why: string) => void}} parts
 */
function explainCodeError(error, { input, err, onDead }) {
  const reason = error instanceof ApiError ? error.reason : '';
  if (DEAD_CHALLENGE[reason]) {
    onDead(DEAD_CHALLENGE[reason]);
  } else if (WRONG_CODE.has(reason) || (error instanceof ApiError && error.status === 401)) {
    err.show("That code isn't right. Check the latest email from keygate and try again.");
    input.select();
    input.focus();
  } else {
    err.show(error instanceof Error ? error.message : String(error));
    input.focus();
  }
}

/**
 * Handles a code form's submit: reads the code (asking for it when missing), hands it to
 * `send`, and explains a refusal (see `explainCodeError`).
 * @param {HTMLFormElement} form
 * @param {{input: HTMLInputElement, note: HTMLElement, err: ReturnType<typeof errorBox>,
 *   onDead: (why: string) => void}} parts
 * @param {(code: string) => Promise<void>} send
 */
export function onCodeSubmit(form, parts, send) {
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const code = enteredCode(parts.input, parts.note, parts.err);
    if (!code) return;
    try {
      await send(code);
    } catch (error) {
      explainCodeError(error, parts);
    }
  });
}

/**
 * Sends a code (start) and opens the verification modal. Resolves with the revealed secret, or
 * null when the user cancels. Throws when no code could be sent at all.
 * @param {{what: string, email: string, start: () => Promise<any>,
 *   verify: (challengeId: string, code: string) => Promise<any>, trigger?: HTMLButtonElement,
 *   title?: string, purpose?: string, done?: string}} options
 */
export async function revealWithOtp({ what, email, start, verify, trigger, title, purpose, done }) {
  let challengeId = await busy(trigger, start);
  return new Promise((resolve) => {
    let revealed = null;
    const modal = openModal({
      title: title || 'Check your email',
      size: 'sm',
      onClose: () => resolve(revealed),
    });
    const intro = h(
      'p',
      { class: 'otp-intro' },
      'We sent a 6-digit verification code to ',
      h('strong', {}, email || 'your email address'),
      `. Enter it to ${purpose || `reveal the ${what}`}. The code expires in 10 minutes.`,
    );
    const input = codeInput('otp-code');
    const err = errorBox();
    err.dataset.testid = 'otp-error';
    const note = h('p', { class: 'form-note', role: 'status' });
    const cancel = button('Cancel', { onClick: () => modal.close() });
    const verifyBtn = button('Verify', { variant: 'primary', type: 'submit', 'data-testid': 'otp-verify' });
    const form = h('form', { class: 'stack', novalidate: true }, intro, field('Verification code', input), err, note);
    form.id = uid('otp-form');

    function setDead(dead) {
      input.disabled = dead;
      verifyBtn.disabled = dead;
    }

    async function sendNew(btn) {
      try {
        challengeId = await busy(btn, start);
        err.hide();
        setDead(false);
        input.value = '';
        note.textContent = `A code is on its way to ${email || 'your email'} (if one was sent in the last 30 seconds, that one works).`;
        input.focus();
      } catch (e) {
        err.show(e.message);
      }
    }

    const onDead = (why) => {
      setDead(true);
      const again = button('Send a new code', { variant: 'secondary', small: true, 'data-testid': 'otp-resend' });
      again.addEventListener('click', () => sendNew(again));
      err.show(`${why} Request a new code to continue.`, h('div', { class: 'form-error-action' }, again));
      again.focus();
    };
    onCodeSubmit(form, { input, note, err, onDead }, async (code) => {
      revealed = await busy(verifyBtn, () => verify(challengeId, code));
      toast(done || `${what[0].toUpperCase()}${what.slice(1)} revealed`, 'success');
      modal.close();
    });
    append(modal.body, form);
    verifyBtn.setAttribute('form', form.id);
    append(modal.footer, cancel, verifyBtn);
  });
}

/**
 * Opens this session's step-up window: emails a code (POST /api/v1/auth/step-up) and asks for
 * it. Resolves true once verified (the caller then retries what needed it), false on cancel.
 */
export async function confirmWithOtp(email) {
  const { post } = await import('./api.js');
  const opened = await revealWithOtp({
    what: 'confirmation',
    title: "Confirm it's you",
    purpose: 'confirm this change (it stays confirmed for 10 minutes)',
    done: 'Confirmed',
    email,
    start: async () => (await post('/api/v1/auth/step-up')).challengeId,
    verify: async (challengeId, code) => {
      await post('/api/v1/auth/step-up/verify', { challengeId, code });
      return true;
    },
  });
  return opened === true;
}
