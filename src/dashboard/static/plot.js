/* global document, window */
// The dashboard's line plots, drawn by hand in SVG: a few horizontal grid lines labelled on the
// left, minutes back on the bottom, one polyline per series. Inlined before dashboard.js.
(function () {
  'use strict';

  const SVG = 'http://www.w3.org/2000/svg';
  const H = 200;
  const LEFT = 64;
  const RIGHT = 10;
  const TOP = 10;
  const BOTTOM = 24;

  /** A "nice" upper bound: 1, 2 or 5 times a power of ten, at least `max`. */
  function niceMax(max) {
    if (!(max > 0)) return 1;
    const p = 10 ** Math.floor(Math.log10(max));
    for (const m of [1, 2, 5, 10]) if (m * p >= max) return m * p;
    return 10 * p;
  }

  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  /**
   * Draws `series` ({ key, color }) of `points` ({ at, [key]: number | null }) over the
   * `windowMs` before `now` into the SVG element `root`; `format` labels the vertical axis.
   */
  window.coalescePlot = function (root, { points, series, format, now, windowMs }) {
    // Drawn at the size it is shown, so the labels keep their font size at any width.
    const W = Math.max(320, Math.round(root.getBoundingClientRect().width) || 640);
    root.setAttribute('viewBox', `0 0 ${W} ${H}`);
    const from = now - windowMs;
    const x = (t) => LEFT + ((t - from) / windowMs) * (W - LEFT - RIGHT);
    const shown = points.filter((p) => p.at >= from);
    let max = 0;
    for (const p of shown) for (const s of series) if (typeof p[s.key] === 'number') max = Math.max(max, p[s.key]);
    const top = niceMax(max);
    const y = (v) => TOP + (1 - v / top) * (H - TOP - BOTTOM);
    const nodes = [];
    for (const f of [0, 0.5, 1]) {
      const v = top * f;
      nodes.push(svg('line', { class: 'axis', x1: LEFT, x2: W - RIGHT, y1: y(v), y2: y(v) }));
      nodes.push(svg('text', { class: 'tick', x: LEFT - 6, y: y(v) + 4, 'text-anchor': 'end' }, format(v)));
    }
    const minutes = windowMs / 60000;
    const step = minutes > 20 ? 10 : minutes > 5 ? 2 : 1;
    for (let m = 0; m <= minutes; m += step) {
      const label = m === 0 ? 'now' : `-${m}m`;
      nodes.push(
        svg('text', { class: 'tick', x: x(now - m * 60000), y: H - 6, 'text-anchor': m === 0 ? 'end' : 'middle' }, label),
      );
    }
    for (const s of series) {
      // A failed sample or a missing figure breaks the line rather than drawing a zero.
      let run = [];
      const flush = () => {
        if (run.length > 1) nodes.push(svg('polyline', { points: run.map((p) => p.join(',')).join(' '), stroke: s.color }));
        if (run.length === 1) nodes.push(svg('circle', { cx: run[0][0], cy: run[0][1], r: 2, fill: s.color }));
        run = [];
      };
      for (const p of shown) {
        const v = p[s.key];
        if (typeof v === 'number') run.push([x(p.at).toFixed(1), y(v).toFixed(1)]);
        else flush();
      }
      flush();
    }
    root.replaceChildren(...nodes);
  };
})();
