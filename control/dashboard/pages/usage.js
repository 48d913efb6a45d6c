// Usage: verifications per UTC day by outcome (the whole workspace, or one API key), and
// billing usage per billing id, as bar charts drawn by ../chart.js, each with its numbers as
// a table. Counts arrive about a second after the verifies.

import { get, ws } from '../api.js';
import { barChart, chartWithTable, compact, legend } from '../chart.js';
import { card, cardHeader, clear, emptyState, errorState, field, h, skeletonRows, pageHeader, table } from '../ui.js';
import { wsId } from '../session.js';

/** Outcomes: label and colour (each at least 4.5:1 against white). */
const OUTCOMES = {
  VALID: ['Valid', '#15803d'],
  USAGE_LIMITED: ['Usage limited', '#b45309'],
  RATE_LIMITED: ['Rate limited', '#7c3aed'],
  EXPIRED: ['Expired', '#475569'],
  DISABLED: ['Disabled', '#0e7490'],
  DELETED: ['Deleted', '#1e293b'],
  INVALID_SCOPES: ['Invalid scopes', '#be185d'],
  INVALID: ['Invalid', '#b91c1c'],
};

const PERIODS = [7, 30, 90];

/** @typedef {import('../types').Answer<'/api/v1/workspace/{id}/usage', 'get'>} VerificationUsage */
/** @typedef {import('../types').Answer<'/api/v1/workspace/{id}/billing-usage', 'get'>} BillingUsage */

/** "2026-11-30" -> "Nov 30" (UTC). @param {string} day */
function dayLabel(day) {
  return new Date(`${day}T00:00:00Z`).toLocaleDateString('en', { month: 'short', day: 'numeric', timeZone: 'UTC' });
}

/** @param {string} o */
const series = (o) => ({ key: o, label: (OUTCOMES[o] || [o])[0], colour: (OUTCOMES[o] || [o, '#334155'])[1] });

/** @param {HTMLSelectElement} select @param {[string, string][]} options */
function fill(select, options) {
  clear(select, options.map(([value, label]) => h('option', { value }, label)));
  return select;
}

export async function render(main, { workspace }) {
  const id = wsId(workspace);
  const period = fill(h('select', { class: 'select', 'data-testid': 'usage-period' }), PERIODS.map((d) => [String(d), `Last ${d} days`]));
  period.value = '30';
  const keySelect = fill(h('select', { class: 'select', 'data-testid': 'usage-key' }), [['', 'All API keys']]);
  const verifications = h('div', { class: 'card-body' }, skeletonRows(4));
  const billing = h('div', { class: 'card-body' }, skeletonRows(3));
  clear(
    main,
    pageHeader('Usage', 'Verifications per UTC day by outcome, and billing usage per billing id. New verifies show up within about a second.'),
    h('div', { class: 'filter-row' }, field('Period', period), field('API key', keySelect)),
    card(cardHeader('Verifications', 'Every verify of this workspace’s API keys, by its answer.'), verifications),
    card(cardHeader('Billing usage', 'Units added by valid verifies with a billing field, per billing id.'), billing),
  );
  const load = () => Promise.all([loadVerifications(verifications, id, keySelect.value, period.value), loadBilling(billing, id, period.value)]);
  period.addEventListener('change', load);
  keySelect.addEventListener('change', () => loadVerifications(verifications, id, keySelect.value, period.value));
  await Promise.all([loadKeys(keySelect, id), load()]);
}

/** @param {HTMLSelectElement} select @param {string} id */
async function loadKeys(select, id) {
  try {
    /** @type {import('../types').Answer<'/api/v1/workspace/{id}/api-key', 'get'>} */
    const data = await get(ws(id, '/api-key'));
    fill(select, [['', 'All API keys'], ...data.apiKeys.map((k) => /** @type {[string, string]} */ ([k.id, `${k.name} (${k.maskedKey})`]))]);
  } catch {
    // The workspace-wide series still shows; the key list is optional.
  }
}

/** @param {HTMLElement} area @param {string} id @param {string} keyId @param {string} days */
async function loadVerifications(area, id, keyId, days) {
  clear(area, skeletonRows(4));
  try {
    const path = keyId ? `/api-key/${encodeURIComponent(keyId)}/usage` : '/usage';
    /** @type {VerificationUsage} */
    const data = await get(ws(id, `${path}?days=${days}`));
    clear(area, verificationView(data, keyId ? 'this API key' : 'this workspace'));
  } catch (e) {
    clear(area, errorState(e, () => loadVerifications(area, id, keyId, days)));
  }
}

/** @param {VerificationUsage} data @param {string} whose */
function verificationView(data, whose) {
  const total = (d) => Object.values(d.outcomes).reduce((a, b) => a + b, 0);
  const sum = data.days.reduce((a, d) => a + total(d), 0);
  if (!sum) return emptyState({ iconName: 'chart', title: 'No verifications yet', text: `Verifies of ${whose} in this period appear here.` });
  const outcomes = data.outcomes.map(series);
  const bars = data.days.map((d) => ({ key: d.day, label: dayLabel(d.day), values: d.outcomes }));
  const chart = barChart({ bars, series: outcomes, label: `Verifications of ${whose} per day by outcome, ${sum.toLocaleString()} in all`, testid: 'usage-chart' });
  const columns = [
    { label: 'Day', class: 'nowrap', render: (d) => d.day },
    ...outcomes.map((o) => ({ label: o.label, class: 'num', render: (d) => (d.outcomes[o.key] || 0).toLocaleString() })),
    { label: 'Total', class: 'num strong', render: (d) => total(d).toLocaleString() },
  ];
  const tableEl = table(columns, data.days, { caption: `Verifications of ${whose} per UTC day by outcome`, testid: 'usage-table' });
  return h('div', {}, legend(outcomes), chartWithTable(chart, tableEl, 'verifications'));
}

/** @param {HTMLElement} area @param {string} id @param {string} days */
async function loadBilling(area, id, days) {
  clear(area, skeletonRows(3));
  try {
    /** @type {BillingUsage} */
    const data = await get(ws(id, `/billing-usage?days=${days}`));
    clear(area, billingView(data));
  } catch (e) {
    clear(area, errorState(e, () => loadBilling(area, id, days)));
  }
}

/** @param {BillingUsage} data */
function billingView(data) {
  if (!data.billingIds.length) return emptyState({ iconName: 'chart', title: 'No billing usage yet', text: 'Verifies that send billing: {id, usage} add to their billing id here.' });
  const pick = fill(h('select', { class: 'select', 'data-testid': 'billing-id' }), data.billingIds.map((b) => [b.billingId, `${b.billingId} (${compact(b.total)})`]));
  const chartArea = h('div', {});
  const show = () => {
    const b = data.billingIds.find((x) => x.billingId === pick.value) || data.billingIds[0];
    const one = [{ key: 'total', label: 'Units', colour: '#4f46e5' }];
    const bars = b.days.map((d) => ({ key: d.day, label: dayLabel(d.day), values: { total: d.total } }));
    const chart = barChart({ bars, series: one, label: `Billing usage of ${b.billingId} per day, ${b.total.toLocaleString()} units in all`, testid: 'billing-chart' });
    const days = table([{ label: 'Day', render: (d) => d.day }, { label: 'Units', class: 'num', render: (d) => d.total.toLocaleString() }], b.days, { caption: `Billing usage of ${b.billingId} per UTC day` });
    clear(chartArea, chartWithTable(chart, days, 'daily units'));
  };
  pick.addEventListener('change', show);
  show();
  const totals = table(
    [{ label: 'Billing id', render: (b) => h('code', {}, b.billingId) }, { label: 'Units in the period', class: 'num', render: (b) => b.total.toLocaleString() }],
    data.billingIds,
    { caption: 'Billing usage per billing id in the period', testid: 'billing-table' },
  );
  const more = data.more ? h('p', { class: 'muted' }, `and ${data.more} more billing ids`) : null;
  return h('div', {}, field('Billing id', pick), chartArea, h('h3', { class: 'chart-subtitle' }, 'All billing ids'), h('div', { class: 'chart-table' }, totals), more);
}
