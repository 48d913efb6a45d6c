// Bar charts drawn as SVG by keygate (no chart library): stacked bars per day, a legend, and
// the same numbers as a real table for screen readers. The SVG is redrawn at its container's
// width, so text keeps its size at phone width; each bar carries a <title> (its day and
// counts) and data attributes the browser tests read.

import { h } from './ui.js';

const NS = 'http://www.w3.org/2000/svg';

/**
 * @typedef {{key: string, label: string, colour: string}} Series
 * @typedef {{key: string, label: string, values: Record<string, number>}} Bar
 */

/** An SVG element with attributes and children (strings become text). */
function s(tag, attrs, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

/** 1234 -> "1.2k", 2000000 -> "2M". */
export function compact(n) {
  if (n >= 1e6) return `${+(n / 1e6).toFixed(1)}M`;
  if (n >= 1e3) return `${+(n / 1e3).toFixed(1)}k`;
  return String(+n.toFixed(1));
}

/** The smallest "round" axis maximum (4 steps of 1, 2, 2.5 or 5 x 10^k) at or above `max`. */
function niceMax(max) {
  const raw = Math.max(1, max) / 4;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((v) => v >= raw) || 10 * mag;
  return Math.max(4, step * 4);
}

/** @param {Bar} bar @param {Series[]} series */
const barTotal = (bar, series) => series.reduce((t, x) => t + (bar.values[x.key] || 0), 0);

/** The bar of one day: a <g> of stacked segments with a <title>. */
function drawBar(bar, series, x, width, y) {
  const total = barTotal(bar, series);
  const g = s('g', { class: 'chart-bar', 'data-day': bar.key, 'data-total': total });
  let base = 0;
  const parts = [];
  for (const x0 of series) {
    const n = bar.values[x0.key] || 0;
    if (!n) continue;
    const top = y(base + n);
    g.append(s('rect', { x, y: top, width, height: Math.max(1, y(base) - top), fill: x0.colour, 'data-series': x0.key }));
    parts.push(`${n.toLocaleString()} ${x0.label.toLowerCase()}`);
    base += n;
  }
  g.append(s('title', {}, `${bar.label}: ${parts.join(', ')}`));
  return g;
}

/**
 * The chart at `width` x `height` pixels.
 * @param {Bar[]} bars @param {Series[]} series @param {string} label @param {number} width @param {number} height
 */
function drawChart(bars, series, label, width, height) {
  const pad = { top: 10, right: 24, bottom: 26, left: 44 };
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  const max = niceMax(Math.max(0, ...bars.map((b) => barTotal(b, series))));
  const y = (/** @type {number} */ v) => pad.top + plotH - (v / max) * plotH;
  const svg = s('svg', { width, height, viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': label, class: 'chart-svg' });
  for (let i = 0; i <= 4; i++) {
    const v = (max * i) / 4;
    svg.append(
      s('line', { x1: pad.left, x2: width - pad.right, y1: y(v), y2: y(v), class: i ? 'chart-grid' : 'chart-baseline' }),
      s('text', { x: pad.left - 6, y: y(v) + 4, 'text-anchor': 'end', class: 'chart-axis' }, compact(v)),
    );
  }
  const step = plotW / Math.max(1, bars.length);
  const barW = Math.max(2, Math.min(32, step * 0.72));
  const every = Math.max(1, Math.ceil(bars.length / Math.max(2, Math.floor(plotW / 64))));
  bars.forEach((bar, i) => {
    const x = pad.left + i * step + (step - barW) / 2;
    if (barTotal(bar, series) > 0) svg.append(drawBar(bar, series, x, barW, y));
    if ((bars.length - 1 - i) % every === 0) {
      svg.append(s('text', { x: x + barW / 2, y: height - 8, 'text-anchor': 'middle', class: 'chart-axis' }, bar.label));
    }
  });
  return svg;
}

/**
 * A bar chart (stacked when there are several series) that redraws at its container's width.
 * @param {{bars: Bar[], series: Series[], label: string, testid?: string, height?: number}} options
 */
export function barChart({ bars, series, label, testid, height = 220 }) {
  const box = h('div', { class: 'chart', 'data-testid': testid });
  let drawn = 0;
  const draw = () => {
    const width = Math.max(260, Math.floor(box.clientWidth));
    if (width === drawn) return;
    drawn = width;
    box.replaceChildren(drawChart(bars, series, label, width, height));
  };
  new ResizeObserver(draw).observe(box);
  return box;
}

/** A colour square (SVG: the dashboard's CSP allows no inline styles). @param {string} colour */
function swatch(colour) {
  const svg = s('svg', { width: 12, height: 12, viewBox: '0 0 12 12', class: 'chart-swatch', 'aria-hidden': 'true' });
  svg.append(s('rect', { width: 12, height: 12, rx: 3, fill: colour }));
  return svg;
}

/** The series' colours and names. @param {Series[]} series */
export function legend(series) {
  return h(
    'ul',
    { class: 'chart-legend', 'aria-label': 'Legend' },
    series.map((x) => h('li', {}, swatch(x.colour), x.label)),
  );
}

/**
 * A chart with its numbers as a table: the table is always there for screen readers, and
 * shown on screen with the "Show table" toggle.
 * @param {HTMLElement} chart @param {HTMLElement} tableEl @param {string} what
 */
export function chartWithTable(chart, tableEl, what) {
  const wrap = h('div', { class: 'chart-table visually-hidden' }, tableEl);
  const toggle = h('button', { type: 'button', class: 'btn btn-ghost btn-sm', 'aria-pressed': 'false' }, `Show ${what} as a table`);
  toggle.addEventListener('click', () => {
    const show = toggle.getAttribute('aria-pressed') !== 'true';
    toggle.setAttribute('aria-pressed', String(show));
    toggle.textContent = show ? `Hide the ${what} table` : `Show ${what} as a table`;
    wrap.classList.toggle('visually-hidden', !show);
  });
  return h('div', { class: 'chart-block' }, chart, h('div', { class: 'chart-tools' }, toggle), wrap);
}
