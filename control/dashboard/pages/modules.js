// Modules: the workspace's catalogue of modules and their functionalities, which blacklist rules
// pick from, and the route map that binds functionalities to routes (`METHOD /path/{p}/*`), so
// the edge derives the action from the request. Edited as a whole and saved with one PUT; a
// "test a request" box asks the control plane which action a method + path resolves to.

import { get, post, put, ws } from '../api.js';
import { append, busy, button, card, cardHeader, clear, errorBox, errorState, h, icon, pageHeader, toast } from '../ui.js';
import { canManage, wsId, wsName } from '../session.js';

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/;

export async function render(main, { workspace }) {
  const id = wsId(workspace);
  let modules;
  try {
    // A functionality is a name or {name, routes}.
    /** @type {import('../types').Answer<'/api/v1/workspace/{id}/modules', 'get'>} */
    const catalogue = await get(ws(id, '/modules'));
    modules = catalogue.modules.map((m) => {
      const fs = m.functionalities || [];
      return {
        name: m.name,
        functionalities: fs.map((f) => (typeof f === 'string' ? f : f.name)),
        routes: fs.filter((f) => typeof f !== 'string').flatMap((f) => (f.routes || []).map((r) => `${f.name}: ${r}`)),
      };
    });
  } catch (e) {
    clear(main, pageHeader('Modules'), errorState(e, () => render(main, { workspace })));
    return;
  }
  const rows = h('div', { class: 'module-rows', 'data-testid': 'module-rows' });
  const err = errorBox();
  const add = button('Add module', { iconName: 'plus', 'data-testid': 'module-add' });
  const save = button('Save catalogue', { variant: 'primary', type: 'submit', 'data-testid': 'modules-save' });
  const manage = canManage();

  function row(m) {
    const nameInput = h('input', { class: 'input mono', name: 'module', value: m.name, placeholder: 'payments', 'aria-label': 'Module name', spellcheck: 'false', disabled: !manage });
    const funcInput = h('input', {
      class: 'input mono',
      name: 'functionalities',
      value: m.functionalities.join(', '),
      placeholder: 'charge, refund, payout',
      'aria-label': 'Functionalities, separated by commas',
      spellcheck: 'false',
      disabled: !manage,
    });
    const remove = h('button', { type: 'button', class: 'icon-btn', 'aria-label': 'Remove module', title: 'Remove module', disabled: !manage }, icon('trash'));
    const routesInput = h('textarea', {
      class: 'input mono module-routes',
      name: 'routes',
      rows: 2,
      placeholder: 'refund: POST /billing/refunds/*   (one route per line: functionality: METHOD /path/{param}/*)',
      'aria-label': 'Routes, one per line: functionality: METHOD /path',
      'data-testid': 'module-routes',
      spellcheck: 'false',
      disabled: !manage,
    });
    routesInput.value = (m.routes || []).join('\n');
    const el = h('div', { class: 'module-row' }, nameInput, funcInput, remove, routesInput);
    remove.addEventListener('click', () => {
      const next = el.nextElementSibling || el.previousElementSibling;
      el.remove();
      (next?.querySelector('input') || add).focus();
      showEmpty();
    });
    return el;
  }
  function showEmpty() {
    if (!rows.querySelector('.module-row')) append(rows, h('p', { class: 'muted module-empty' }, 'No modules yet. Add the parts of your product that frontends call, like “payments” with “charge” and “refund”.'));
    else rows.querySelector('.module-empty')?.remove();
  }
  add.addEventListener('click', () => {
    const r = row({ name: '', functionalities: [], routes: [] });
    rows.append(r);
    showEmpty();
    r.querySelector('input').focus();
  });
  append(rows, modules.map(row));
  showEmpty();

  const form = h(
    'form',
    { class: 'card-body stack', novalidate: true },
    h('div', { class: 'module-row module-head', 'aria-hidden': 'true' }, h('span', {}, 'Module'), h('span', {}, 'Functionalities'), h('span', {})),
    rows,
    err,
    h('div', { class: 'form-actions form-actions-split' }, add, save),
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const collected = [];
    for (const r of rows.querySelectorAll('.module-row')) {
      const [n, f] = r.querySelectorAll('input');
      const name = n.value.trim();
      const functionalities = [...new Set(f.value.split(/[\s,]+/).map((s) => s.trim()).filter(Boolean))];
      if (!name && !functionalities.length) continue;
      const bad = [name, ...functionalities].find((x) => !NAME.test(x));
      if (bad !== undefined) {
        err.show(bad ? `“${bad}” is not a valid name: use letters, digits, “-”, “_”, “.” or “:”.` : 'Every module needs a name.');
        (NAME.test(name) ? f : n).focus();
        return;
      }
      if (collected.some((c) => c.name === name)) {
        err.show(`The module “${name}” is listed twice.`);
        n.focus();
        return;
      }
      const byName = new Map(functionalities.map((fn) => [fn, []]));
      for (const line of r.querySelector('textarea').value.split('\n').map((l) => l.trim()).filter(Boolean)) {
        const at = line.indexOf(':');
        const fn = at > 0 ? line.slice(0, at).trim() : '';
        if (!byName.has(fn)) {
          err.show(`Route “${line}”: start it with one of ${name}’s functionalities, like “${functionalities[0] || 'charge'}: POST /path”.`);
          r.querySelector('textarea').focus();
          return;
        }
        byName.get(fn).push(line.slice(at + 1).trim());
      }
      collected.push({ name, functionalities: functionalities.map((fn) => (byName.get(fn).length ? { name: fn, routes: byName.get(fn) } : fn)) });
    }
    err.hide();
    try {
      /** @type {import('../types').Body<'/api/v1/workspace/{id}/modules', 'put'>} */
      const catalogue = { modules: collected };
      await busy(save, () => put(ws(id, '/modules'), catalogue));
      toast('Catalogue saved', 'success');
    } catch (e2) {
      err.show(e2.message);
    }
  });
  if (!manage) {
    add.disabled = true;
    save.disabled = true;
  }
  // "Test a request": which action a method + path resolves to under the saved map, and
  // whether the workspace's publishable key may call it (its blacklist).
  const method = h('select', { class: 'input', 'aria-label': 'Method', 'data-testid': 'route-test-method' },
    ...['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD'].map((m) => h('option', { value: m }, m)));
  const path = h('input', { class: 'input mono', placeholder: '/billing/refunds/42', 'aria-label': 'Path', 'data-testid': 'route-test-path', spellcheck: 'false' });
  const result = h('p', { class: 'muted', 'data-testid': 'route-test-result', 'aria-live': 'polite' }, 'Saved routes are tested, as the edge’s /g/{path} would classify them.');
  const test = button('Test', { type: 'submit', 'data-testid': 'route-test' });
  const testForm = h('form', { class: 'card-body stack', novalidate: true },
    h('div', { class: 'route-test-row' }, method, path, test), result);
  testForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      /** @type {import('../types').Answer<'/api/v1/workspace/{id}/routes/classify', 'post'>} */
      const r = await busy(test, () => post(ws(id, '/routes/classify'), { method: method.value, path: path.value.trim() || '/' }));
      const a = r.action;
      result.textContent = a
        ? `${a.module}/${a.functionality} (route “${a.route}”): ${r.allowed ? 'allowed for the publishable key' : 'blacklisted: the edge refuses it'}`
        : r.status === 'INVALID_PATH'
          ? `Refused before matching: ${r.message}`
          : 'No route matches: the edge answers 404 ROUTE_NOT_MAPPED and the origin never sees it.';
    } catch (e2) {
      result.textContent = e2.message;
    }
  });
  clear(
    main,
    pageHeader('Modules', `The modules and functionalities of ${wsName(workspace)}. Publishable-key blacklist rules pick from this catalogue; routes let the edge derive the action from the request.`),
    card(cardHeader('Catalogue', 'Separate functionalities with commas. Routes: one per line, “functionality: METHOD /path/{param}/*”.'), form),
    card(cardHeader('Test a request', 'Method and path: which action it resolves to, and whether the key may call it.'), testForm),
  );
}
