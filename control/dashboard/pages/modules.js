// Modules: the workspace's catalogue of modules and their functionalities, which blacklist rules
// pick from. Edited as a whole and saved with one PUT.

import { get, listOf, put, ws } from '../api.js';
import { append, busy, button, card, cardHeader, clear, errorBox, errorState, h, icon, pageHeader, toast } from '../ui.js';
import { canManage, wsId, wsName } from '../session.js';

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/;

export async function render(main, { workspace }) {
  const id = wsId(workspace);
  let modules;
  try {
    modules = listOf(await get(ws(id, '/modules')), 'modules').map((m) => ({ name: m.name, functionalities: [...(m.functionalities || [])] }));
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
    const el = h('div', { class: 'module-row' }, nameInput, funcInput, remove);
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
    const r = row({ name: '', functionalities: [] });
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
      collected.push({ name, functionalities });
    }
    err.hide();
    try {
      await busy(save, () => put(ws(id, '/modules'), { modules: collected }));
      toast('Catalogue saved', 'success');
    } catch (e2) {
      err.show(e2.message);
    }
  });
  if (!manage) {
    add.disabled = true;
    save.disabled = true;
  }
  clear(
    main,
    pageHeader('Modules', `The modules and functionalities of ${wsName(workspace)}. Publishable-key blacklist rules pick from this catalogue.`),
    card(cardHeader('Catalogue', 'Separate functionalities with commas.'), form),
  );
}
