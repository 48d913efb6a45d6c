// Small DOM building blocks shared by every page: elements, icons, buttons, fields, modals with
// a focus trap, confirmation, copy-to-clipboard, toasts and the loading/empty/error states.
// Text always goes in as text nodes, never as HTML, so nothing from the server can inject markup.

let uidCounter = 0;
export const uid = (prefix = 'id') => `${prefix}-${++uidCounter}`;

/** Creates an element: h('button', {class: 'btn', onClick}, 'Label', child). */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  let value;
  for (const [k, v] of Object.entries(props || {})) {
    if (v == null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k === 'value') value = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2).toLowerCase(), v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  if (value !== undefined) el.value = value;
  return el;
}

export function append(el, ...children) {
  for (const child of children.flat(Infinity)) {
    if (child == null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

const ICONS = {
  key: 'M21 2l-2 2m-7.6 7.6a5.5 5.5 0 1 1-7.8 7.8 5.5 5.5 0 0 1 7.8-7.8zm0 0L15.5 7.5m0 0 3 3L22 7l-3-3m-3.5 3.5L19 4',
  copy: 'M9 9h10v12H9zM5 15H4a1 1 0 0 1-1-1V4a1 1 0 0 1 1-1h10a1 1 0 0 1 1 1v1',
  check: 'M4 12l5 5L20 6',
  plus: 'M12 5v14M5 12h14',
  trash: 'M4 7h16M10 11v6M14 11v6M6 7l1 13h10l1-13M9 7V4h6v3',
  eye: 'M2 12s3.5-7 10-7 10 7 10 7-3.5 7-10 7S2 12 2 12zm10-3a3 3 0 1 0 0 6 3 3 0 0 0 0-6z',
  eyeOff: 'M3 3l18 18M10.6 10.6a2 2 0 0 0 2.8 2.8M9.9 5.1A10.4 10.4 0 0 1 12 5c6.5 0 10 7 10 7a17.6 17.6 0 0 1-3.2 4.1M6.6 6.6C3.9 8.4 2 12 2 12s3.5 7 10 7a9.7 9.7 0 0 0 5.4-1.6',
  shield: 'M12 3l8 3v6c0 5-3.5 8-8 9-4.5-1-8-4-8-9V6l8-3z',
  users: 'M16 20v-1a4 4 0 0 0-4-4H6a4 4 0 0 0-4 4v1M9 11a4 4 0 1 0 0-8 4 4 0 0 0 0 8zM22 20v-1a4 4 0 0 0-3-3.9M16 3.1a4 4 0 0 1 0 7.8',
  list: 'M8 6h13M8 12h13M8 18h13M3 6h.01M3 12h.01M3 18h.01',
  logout: 'M9 21H5a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2h4M16 17l5-5-5-5M21 12H9',
  menu: 'M3 6h18M3 12h18M3 18h18',
  close: 'M6 6l12 12M18 6 6 18',
  layers: 'M12 2 2 7l10 5 10-5-10-5zM2 17l10 5 10-5M2 12l10 5 10-5',
  alert: 'M12 9v4m0 4h.01M10.3 3.9 1.8 18a2 2 0 0 0 1.7 3h17a2 2 0 0 0 1.7-3L13.7 3.9a2 2 0 0 0-3.4 0z',
  refresh: 'M21 12a9 9 0 1 1-3-6.7L21 8M21 3v5h-5',
  ban: 'M12 3a9 9 0 1 0 0 18 9 9 0 0 0 0-18zM5.6 5.6l12.8 12.8',
  mail: 'M3 5h18v14H3zM3 6l9 7 9-7',
  chart: 'M3 3v18h18M8 17v-5M13 17V8M18 17v-8',
  globe: 'M12 3a9 9 0 1 0 0 18 9 9 0 0 0 0-18zM3 12h18M12 3a14 14 0 0 1 0 18M12 3a14 14 0 0 0 0 18',
};

/** A decorative stroke icon (hidden from assistive technology). */
export function icon(name, cls = 'icon') {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('class', cls);
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('focusable', 'false');
  const path = document.createElementNS(ns, 'path');
  path.setAttribute('d', ICONS[name] || '');
  svg.append(path);
  return svg;
}

/**
 * Options of `button`: any other key (`data-testid`, `aria-label`, ...) becomes an attribute.
 * @typedef {{variant?: 'primary' | 'secondary' | 'danger' | 'ghost' | 'danger-ghost', iconName?: string,
 *   onClick?: (event: MouseEvent) => void, type?: 'button' | 'submit', small?: boolean,
 *   [attribute: string]: any}} ButtonOptions
 */

/**
 * A button. variant: primary | secondary | danger | ghost | danger-ghost.
 * @param {string} label
 * @param {ButtonOptions} [options]
 * @returns {HTMLButtonElement}
 */
export function button(label, { variant = 'secondary', iconName, onClick, type = 'button', ...rest } = {}) {
  return h(
    'button',
    { type, class: `btn btn-${variant}${rest.small ? ' btn-sm' : ''}`, onClick, ...withoutSmall(rest) },
    iconName ? icon(iconName) : null,
    h('span', { class: 'btn-label' }, label),
  );
}

function withoutSmall(rest) {
  const copy = { ...rest };
  delete copy.small;
  return copy;
}

/** Runs `fn` with the button disabled and showing a spinner; returns fn's result. */
export async function busy(btn, fn) {
  if (!btn) return fn();
  btn.disabled = true;
  btn.classList.add('is-busy');
  btn.setAttribute('aria-busy', 'true');
  try {
    return await fn();
  } finally {
    btn.disabled = false;
    btn.classList.remove('is-busy');
    btn.removeAttribute('aria-busy');
  }
}

/**
 * A labelled form field. `control` gets the id the label points at.
 * @param {string} label
 * @param {HTMLElement} control
 * @param {{hint?: string, optional?: boolean}} [options]
 */
export function field(label, control, { hint, optional } = {}) {
  if (!control.id) control.id = uid('f');
  const hintEl = hint ? h('p', { class: 'field-hint', id: `${control.id}-hint` }, hint) : null;
  if (hintEl) control.setAttribute('aria-describedby', hintEl.id);
  return h(
    'div',
    { class: 'field' },
    h('label', { for: control.id }, label, optional ? h('span', { class: 'optional' }, ' (optional)') : null),
    control,
    hintEl,
  );
}

/** An inline error message region; .show(text) / .hide(). */
export function errorBox() {
  const box = h('div', { class: 'form-error', role: 'alert', hidden: true });
  box.show = (text, ...extra) => {
    clear(box, icon('alert'), h('div', { class: 'form-error-body' }, h('span', {}, text), extra));
    box.hidden = false;
  };
  box.hide = () => {
    box.hidden = true;
    box.replaceChildren();
  };
  return box;
}

/* ---------- Modals ---------- */

const FOCUSABLE =
  'a[href], button:not([disabled]), input:not([disabled]):not([type="hidden"]), select:not([disabled]), textarea:not([disabled]), [tabindex]:not([tabindex="-1"])';
const modalStack = [];

function focusables(root) {
  return [...root.querySelectorAll(FOCUSABLE)].filter((el) => el.offsetParent !== null || el === document.activeElement);
}

/**
 * Opens a dialog with a focus trap; Escape, the close button and a backdrop click close it and
 * focus returns to where it was. Returns {dialog, body, footer, close, setTitle}.
 * @param {{title: any, description?: string, size?: 'sm' | 'md' | 'lg', onClose?: (result?: any) => void,
 *   dismissable?: boolean, closeOnBackdrop?: boolean}} options
 */
export function openModal({ title, description, size = 'md', onClose, dismissable = true, closeOnBackdrop = true }) {
  const opener = /** @type {HTMLElement | null} */ (document.activeElement);
  const titleId = uid('modal-title');
  const descId = description ? uid('modal-desc') : null;
  const titleEl = h('h2', { id: titleId, class: 'modal-title' }, title);
  const body = h('div', { class: 'modal-body' });
  const footer = h('div', { class: 'modal-footer' });
  const closeBtn = h('button', { type: 'button', class: 'icon-btn modal-close', 'aria-label': 'Close' }, icon('close'));
  const dialog = h(
    'div',
    { class: `modal modal-${size}`, role: 'dialog', 'aria-modal': 'true', 'aria-labelledby': titleId, 'aria-describedby': descId },
    h('div', { class: 'modal-header' }, titleEl, dismissable ? closeBtn : null),
    description ? h('p', { class: 'modal-desc', id: descId }, description) : null,
    body,
    footer,
  );
  const backdrop = h('div', { class: 'modal-backdrop' }, dialog);
  let closed = false;

  function onKey(e) {
    if (modalStack[modalStack.length - 1] !== handle) return;
    if (e.key === 'Escape' && dismissable) {
      e.preventDefault();
      e.stopPropagation();
      close();
    } else if (e.key === 'Tab') {
      const items = focusables(dialog);
      if (!items.length) {
        e.preventDefault();
        return;
      }
      const first = items[0];
      const last = items[items.length - 1];
      if (e.shiftKey && (document.activeElement === first || !dialog.contains(document.activeElement))) {
        e.preventDefault();
        last.focus();
      } else if (!e.shiftKey && (document.activeElement === last || !dialog.contains(document.activeElement))) {
        e.preventDefault();
        first.focus();
      }
    }
  }

  function close(result) {
    if (closed) return;
    closed = true;
    document.removeEventListener('keydown', onKey, true);
    backdrop.remove();
    modalStack.splice(modalStack.indexOf(handle), 1);
    if (!modalStack.length) {
      document.getElementById('app')?.removeAttribute('inert');
      document.body.classList.remove('has-modal');
    }
    if (opener && typeof opener.focus === 'function' && document.contains(opener)) opener.focus();
    onClose?.(result);
  }

  closeBtn.addEventListener('click', () => close());
  backdrop.addEventListener('mousedown', (e) => {
    if (e.target === backdrop && dismissable && closeOnBackdrop) close();
  });
  const handle = { dialog, body, footer, close, setTitle: (t) => (titleEl.textContent = t), get closed() { return closed; } };
  modalStack.push(handle);
  document.addEventListener('keydown', onKey, true);
  document.getElementById('app')?.setAttribute('inert', '');
  document.body.classList.add('has-modal');
  document.body.append(backdrop);
  queueMicrotask(() => focusFirst(dialog));
  return handle;
}

/** Focuses the element marked [data-autofocus], else the first field, else the first control. */
export function focusFirst(root) {
  /** @type {HTMLElement | null} */
  const target =
    root.querySelector('[data-autofocus]') ||
    root.querySelector('.modal-body input:not([readonly]), .modal-body select, .modal-body textarea') ||
    focusables(root)[0];
  target?.focus();
}

/**
 * Asks for confirmation; resolves true only when the confirm button was pressed.
 * @param {{title: string, message: any, detail?: any, confirmLabel?: string, danger?: boolean,
 *   action?: () => Promise<any>}} options
 * @returns {Promise<boolean>}
 */
export function confirmDialog({ title, message, detail, confirmLabel = 'Confirm', danger = false, action }) {
  return new Promise((resolve) => {
    let confirmed = false;
    const modal = openModal({ title, size: 'sm', onClose: () => resolve(confirmed) });
    const err = errorBox();
    append(
      modal.body,
      danger ? h('div', { class: 'callout callout-danger' }, icon('alert'), h('div', {}, message)) : h('p', {}, message),
      detail ? h('p', { class: 'muted' }, detail) : null,
      err,
    );
    const cancel = button('Cancel', { onClick: () => modal.close() });
    const ok = button(confirmLabel, { variant: danger ? 'danger' : 'primary', 'data-autofocus': true });
    ok.addEventListener('click', async () => {
      if (!action) {
        confirmed = true;
        modal.close();
        return;
      }
      err.hide();
      try {
        await busy(ok, action);
        confirmed = true;
        modal.close();
      } catch (e) {
        err.show(e.message);
      }
    });
    append(modal.footer, cancel, ok);
  });
}

/**
 * A confirmDialog whose action answers something: resolves to that answer once confirmed and
 * done, or null when cancelled.
 * @template T
 * @param {{title: string, message: any, detail?: any, confirmLabel?: string, danger?: boolean,
 *   action: () => Promise<T>}} options
 * @returns {Promise<T | null>}
 */
export async function confirmAnswer(options) {
  /** @type {T | null} */
  let answer = null;
  const ok = await confirmDialog({
    ...options,
    action: async () => {
      answer = await options.action();
    },
  });
  return ok ? answer : null;
}

/**
 * A table row's Revoke (or Remove) button: asks in a danger dialog that runs `confirm.action`
 * and, once the action succeeded, toasts `done` and calls `reload`.
 * @param {string} label
 * @param {ButtonOptions} options  the button's attributes (`aria-label`, `data-testid`, ...)
 * @param {{title: string, message: any, confirmLabel: string, action: () => Promise<any>}} confirm
 * @param {string} done
 * @param {() => any} reload
 * @returns {HTMLButtonElement}
 */
export function revokeButton(label, options, confirm, done, reload) {
  return button(label, {
    variant: 'danger-ghost',
    small: true,
    iconName: 'trash',
    ...options,
    onClick: async () => {
      if (await confirmDialog({ ...confirm, danger: true })) {
        toast(done, 'success');
        reload();
      }
    },
  });
}

/* ---------- Copy, secrets ---------- */

export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    const area = h('textarea', { class: 'visually-hidden', readonly: true, 'aria-hidden': 'true' });
    area.value = text;
    document.body.append(area);
    area.select();
    let ok = false;
    try {
      ok = document.execCommand('copy');
    } catch {
      ok = false;
    }
    area.remove();
    return ok;
  }
}

/**
 * A "Copy" button copying getText(); says "Copied" for a moment.
 * @param {string | (() => string)} getText
 * @param {{label?: string, what?: string, small?: boolean}} [options]
 */
export function copyButton(getText, { label = 'Copy', what = 'value', small = false } = {}) {
  const btn = button(label, { iconName: 'copy', small, 'aria-label': `Copy ${what}` });
  btn.addEventListener('click', async () => {
    const ok = await copyText(typeof getText === 'function' ? getText() : getText);
    const text = btn.querySelector('.btn-label');
    text.textContent = ok ? 'Copied' : 'Copy failed';
    btn.classList.toggle('is-copied', ok);
    toast(ok ? `Copied ${what} to the clipboard` : 'Could not copy. Select the text and copy it by hand.', ok ? 'success' : 'error');
    setTimeout(() => {
      text.textContent = label;
      btn.classList.remove('is-copied');
    }, 1800);
  });
  return btn;
}

/**
 * A read-only monospace box showing a secret in full (it wraps rather than hiding characters
 * off the edge), with a copy button beside it.
 * @param {string} value
 * @param {{label?: string, what?: string, testid?: string, id?: string}} [options]
 */
export function secretDisplay(value, { label, what = 'key', testid, id } = {}) {
  const box = h('textarea', {
    id,
    class: 'input mono secret-value',
    readonly: true,
    rows: '1',
    spellcheck: 'false',
    autocomplete: 'off',
    'data-testid': testid,
    onFocus: (e) => e.target.select(),
  });
  box.value = value;
  if (label) box.setAttribute('aria-label', label);
  return h('div', { class: 'secret-row' }, box, copyButton(() => box.value, { what }));
}

/**
 * A creation modal's "created" state: `title`, `content` in its body and a focused Done
 * button in its footer; then `reload()`s the list behind it.
 * @param {ReturnType<typeof openModal>} modal
 * @param {string} title
 * @param {Node} content
 * @param {() => any} reload
 */
export function showCreated(modal, title, content, reload) {
  modal.setTitle(title);
  clear(modal.body, content);
  const done = button('Done', { variant: 'primary', 'data-autofocus': true, onClick: () => modal.close() });
  clear(modal.footer, done);
  done.focus();
  reload();
}

/**
 * The "shown once" panel after creating a secret.
 * @param {string} value
 * @param {{what?: string, testid?: string, note?: string}} [options]
 */
export function shownOnce(value, { what = 'token', testid = 'new-secret', note } = {}) {
  return h(
    'div',
    { class: 'shown-once' },
    h(
      'div',
      { class: 'callout callout-warning' },
      icon('alert'),
      h('div', {}, h('strong', {}, 'Copy it now. '), note || `You won't see this ${what} again. If you lose it, revoke it and create a new one.`),
    ),
    secretDisplay(value, { label: `New ${what}`, what, testid }),
  );
}

/* ---------- Toasts ---------- */

export function toast(message, kind = 'info') {
  const region = document.getElementById('toasts');
  if (!region) return;
  const el = h('div', { class: `toast toast-${kind}` }, icon(kind === 'error' ? 'alert' : 'check'), h('span', {}, message));
  region.append(el);
  setTimeout(() => el.classList.add('is-leaving'), 3600);
  setTimeout(() => el.remove(), 4000);
}

/* ---------- States ---------- */

export function loadingState(label = 'Loading') {
  return h(
    'div',
    { class: 'state state-loading', role: 'status' },
    h('span', { class: 'spinner', 'aria-hidden': 'true' }),
    h('span', {}, `${label}…`),
  );
}

export function skeletonRows(n = 3) {
  return h(
    'div',
    { class: 'skeleton-list', role: 'status', 'aria-label': 'Loading' },
    Array.from({ length: n }, () => h('div', { class: 'skeleton-row' })),
  );
}

/**
 * An empty list: icon, title, text and an optional action.
 * @param {{iconName?: string, title: string, text?: string, action?: HTMLElement}} options
 */
export function emptyState({ iconName = 'key', title, text, action }) {
  return h(
    'div',
    { class: 'state state-empty' },
    h('div', { class: 'state-icon' }, icon(iconName)),
    h('h3', {}, title),
    text ? h('p', {}, text) : null,
    action || null,
  );
}

export function errorState(error, retry) {
  return h(
    'div',
    { class: 'state state-error', role: 'alert' },
    h('div', { class: 'state-icon' }, icon('alert')),
    h('h3', {}, 'Could not load this'),
    h('p', {}, error?.message || String(error)),
    retry ? button('Try again', { iconName: 'refresh', onClick: retry }) : null,
  );
}

/**
 * A list loader: fills `area` with `render(items)` from `fetchItems()`, the empty state
 * `empty` when there are none, or the error with a retry. Returns it, to call again after a
 * change.
 * @template T
 * @param {HTMLElement} area
 * @param {() => Promise<T[]>} fetchItems
 * @param {(items: T[]) => Node} render
 * @param {Parameters<typeof emptyState>[0]} empty
 * @returns {() => Promise<void>}
 */
export function listLoader(area, fetchItems, render, empty) {
  const load = async () => {
    try {
      const items = await fetchItems();
      clear(area, items.length ? render(items) : emptyState(empty));
    } catch (e) {
      clear(area, errorState(e, load));
    }
  };
  return load;
}

/**
 * The trimmed text of a required field, or null after saying what is missing in `err`.
 * @param {HTMLInputElement} input
 * @param {{show: (message: string) => void}} err
 * @param {string} message what to say when it is empty
 * @returns {string | null}
 */
export function requiredText(input, err, message) {
  const value = input.value.trim();
  if (!value) {
    err.show(message);
    input.focus();
    return null;
  }
  return value;
}

/* ---------- Formatting ---------- */

const dateFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
const relFmt = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });

/** A <time> with a relative label and the exact date as tooltip; "Never" for empty. */
export function timeEl(value, never = 'Never') {
  if (!value) return h('span', { class: 'muted' }, never);
  const date = new Date(typeof value === 'number' && value < 1e12 ? value * 1000 : value);
  if (Number.isNaN(date.getTime())) return h('span', {}, String(value));
  return h('time', { datetime: date.toISOString(), title: dateFmt.format(date) }, relative(date));
}

export function relative(date) {
  const secs = Math.round((date.getTime() - Date.now()) / 1000);
  const abs = Math.abs(secs);
  if (abs < 45) return 'just now';
  if (abs < 3600) return relFmt.format(Math.round(secs / 60), 'minute');
  if (abs < 86400) return relFmt.format(Math.round(secs / 3600), 'hour');
  if (abs < 86400 * 30) return relFmt.format(Math.round(secs / 86400), 'day');
  return dateFmt.format(date);
}

export function badge(text, kind = 'neutral') {
  return h('span', { class: `badge badge-${kind}` }, text);
}

/** A page header: title (focus target after navigation), description, actions. */
export function pageHeader(title, description, ...actions) {
  return h(
    'header',
    { class: 'page-header' },
    h('div', { class: 'page-heading' }, h('h1', { tabindex: '-1', class: 'page-title' }, title), description ? h('p', { class: 'page-desc' }, description) : null),
    actions.length ? h('div', { class: 'page-actions' }, actions) : null,
  );
}

/**
 * A responsive table: rows turn into labelled cards at phone width.
 * @param {{label: string, render: (row: any) => any, class?: string}[]} columns
 * @param {any[]} rows
 * @param {{caption?: string, testid?: string}} [options]
 */
export function table(columns, rows, { caption, testid } = {}) {
  return h(
    'div',
    { class: 'table-wrap' },
    h(
      'table',
      { class: 'table', 'data-testid': testid },
      caption ? h('caption', { class: 'visually-hidden' }, caption) : null,
      h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col', class: c.class }, c.label)))),
      h(
        'tbody',
        {},
        rows.map((row) =>
          h(
            'tr',
            { 'data-id': row.id },
            columns.map((c) => h('td', { 'data-label': c.label, class: c.class }, c.render(row))),
          ),
        ),
      ),
    ),
  );
}

export function card(...children) {
  return h('section', { class: 'card' }, children);
}

export function cardHeader(title, description, ...actions) {
  return h(
    'div',
    { class: 'card-header' },
    h('div', {}, h('h2', { class: 'card-title' }, title), description ? h('p', { class: 'card-desc' }, description) : null),
    actions.length ? h('div', { class: 'card-actions' }, actions) : null,
  );
}
