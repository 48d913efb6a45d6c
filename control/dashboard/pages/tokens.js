// The workspace's Tokens page: three tabs (Tokens, SDK Access Key, Publishable Key), each its own
// module. The tab lives in the URL (/w/{id}/tokens/{tab}) so it survives reloads and links.

import { clear, h, pageHeader } from '../ui.js';
import { wsId, wsName } from '../session.js';
import * as tokensTab from './tokens-list.js';
import * as sdkAccessKeyTab from './sdk-access-key.js';
import * as publishableKeyTab from './publishable-key.js';

const TABS = [
  { slug: 'tokens', label: 'Tokens', module: tokensTab },
  { slug: 'sdk-access-key', label: 'SDK Access Key', module: sdkAccessKeyTab },
  { slug: 'publishable-key', label: 'Publishable Key', module: publishableKeyTab },
];

export async function render(main, ctx) {
  const { workspace, params, navigate } = ctx;
  const active = TABS.find((t) => t.slug === params.tab) || TABS[0];
  const base = `/w/${encodeURIComponent(wsId(workspace))}/tokens`;

  const tabButtons = TABS.map((t) =>
    h(
      'button',
      {
        type: 'button',
        role: 'tab',
        id: `tab-${t.slug}`,
        class: 'tab',
        'aria-selected': String(t === active),
        'aria-controls': 'tab-panel',
        tabindex: t === active ? '0' : '-1',
        'data-testid': `tab-${t.slug}`,
        onClick: () => t !== active && navigate(t === TABS[0] ? base : `${base}/${t.slug}`),
      },
      t.label,
    ),
  );
  const tablist = h('div', { class: 'tabs', role: 'tablist', 'aria-label': 'Key types' }, tabButtons);
  tablist.addEventListener('keydown', (e) => {
    const i = tabButtons.indexOf(document.activeElement);
    if (i < 0) return;
    let next = null;
    if (e.key === 'ArrowRight') next = (i + 1) % TABS.length;
    else if (e.key === 'ArrowLeft') next = (i - 1 + TABS.length) % TABS.length;
    else if (e.key === 'Home') next = 0;
    else if (e.key === 'End') next = TABS.length - 1;
    if (next === null) return;
    e.preventDefault();
    tabButtons[next].focus();
    tabButtons[next].click();
  });
  const panel = h('div', { class: 'tab-panel', role: 'tabpanel', id: 'tab-panel', 'aria-labelledby': `tab-${active.slug}` });
  clear(
    main,
    pageHeader('Tokens', `Keys and tokens of the ${wsName(workspace)} workspace.`),
    tablist,
    panel,
  );
  await active.module.render(panel, ctx);
  if (document.activeElement === document.body && params.tab) tabButtons[TABS.indexOf(active)].focus();
}
