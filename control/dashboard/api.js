// The one place the dashboard talks to the control plane.
//
// Every call is same-origin JSON. State-changing calls carry the CSRF token: the server sets the
// readable cookie `keygate_csrf` and expects the same value back in `X-CSRF-Token`
// (double-submit). Errors arrive as {"error": {"code", "message", "reason"}} and are thrown as
// ApiError so pages can branch on the stable `reason`.
//
// Step-up: a call that yields a secret or widens access answers 403 STEP_UP_REQUIRED outside
// the session's step-up window. `request` then runs the handler registered with
// `onStepUpRequired` (the shell's "Confirm it's you" code prompt) and, once the window is
// open, retries the call once, so pages need no step-up code of their own.

export class ApiError extends Error {
  constructor(status, reason, message) {
    super(humanize(message) || 'Something went wrong.');
    this.status = status;
    this.reason = reason || `HTTP_${status}`;
  }
}

function csrfToken() {
  for (const part of document.cookie.split(';')) {
    const [name, ...rest] = part.trim().split('=');
    // `__Host-` prefixed when the server sets Secure cookies.
    if (name === 'keygate_csrf' || name === '__Host-keygate_csrf') return decodeURIComponent(rest.join('='));
  }
  return null;
}

const SAFE = new Set(['GET', 'HEAD', 'OPTIONS']);

let stepUpHandler = null;

/** Registers `fn` to open the step-up window; it resolves true once open, false if cancelled. */
export function onStepUpRequired(fn) {
  stepUpHandler = fn;
}

export async function request(method, path, body, retried = false) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (!SAFE.has(method)) {
    const token = csrfToken();
    if (token) headers['X-CSRF-Token'] = token;
  }
  let res;
  try {
    res = await fetch(path, {
      method,
      headers,
      credentials: 'same-origin',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, 'NETWORK', 'Could not reach keygate. Check your connection and try again.');
  }
  const text = res.status === 204 ? '' : await res.text();
  /** @type {any} */
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!res.ok) {
    /** @type {Partial<import('./types').Schema<'ErrorBody'>['error']>} */
    const err = (data && data.error) || {};
    const apiError = new ApiError(res.status, err.reason, err.message || defaultMessage(res.status));
    // A 401 means the session is gone, except where it judges a code the user typed.
    if (res.status === 401 && !path.startsWith('/api/v1/auth/') && !apiError.reason.startsWith('OTP_')) {
      window.dispatchEvent(new CustomEvent('keygate:unauthorized'));
    }
    if (apiError.reason === 'STEP_UP_REQUIRED' && stepUpHandler && !retried && !path.startsWith('/api/v1/auth/')) {
      if (await stepUpHandler()) return request(method, path, body, true);
      throw new ApiError(403, 'STEP_UP_CANCELLED', 'Not done: this needs the code from your email.');
    }
    throw apiError;
  }
  return data;
}

/** Server messages are terse ("that code is not right"): show them as sentences. */
function humanize(message) {
  if (!message) return message;
  const text = String(message).trim();
  const sentence = text.charAt(0).toUpperCase() + text.slice(1);
  return /[.!?]$/.test(sentence) ? sentence : `${sentence}.`;
}

function defaultMessage(status) {
  if (status === 401) return 'Your session has ended. Sign in again.';
  if (status === 403) return 'You do not have permission to do that.';
  if (status === 404) return 'Not found. It may have been removed.';
  if (status === 429) return 'Too many attempts. Wait a moment and try again.';
  if (status >= 500) return 'keygate had a problem handling that. Try again in a moment.';
  return 'The request was not accepted.';
}

export const get = (path) => request('GET', path);
export const post = (path, body = {}) => request('POST', path, body);
export const put = (path, body) => request('PUT', path, body);
export const patch = (path, body) => request('PATCH', path, body);
export const del = (path) => request('DELETE', path);

/** `/api/v1/workspace/{id}` + rest, with the id escaped. */
export const ws = (id, rest = '') => `/api/v1/workspace/${encodeURIComponent(id)}${rest}`;
