import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** The dashboard page as served: one HTML document, and the Content-Security-Policy that fits it. */
export interface Page {
  readonly html: string;
  readonly csp: string;
}

const STYLE = '<!-- dashboard.css -->';
const SCRIPT = '<!-- scripts -->';
/** Inlined in this order, as one script: dashboard.js uses what plot.js defines. */
const SCRIPTS = ['plot.js', 'dashboard.js'];

let page: Page | undefined;

/**
 * Builds the page once: `static/index.html` with `dashboard.css` and the scripts inlined, so
 * the page is one request, and a policy that allows exactly those two inline blocks (by hash)
 * and requests to this origin only.
 */
export function dashboardPage(): Page {
  if (page) return page;
  const dir = join(__dirname, 'static');
  const read = (file: string): string => readFileSync(join(dir, file), 'utf8');
  const css = read('dashboard.css');
  const js = SCRIPTS.map(read).join('\n');
  const template = read('index.html');
  if (!template.includes(STYLE) || !template.includes(SCRIPT)) {
    throw new Error(`dashboard page ${join(dir, 'index.html')} lacks its ${STYLE} or ${SCRIPT} placeholder`);
  }
  const hash = (text: string): string => `'sha256-${createHash('sha256').update(text).digest('base64')}'`;
  // Replaced with functions: a `$` in the inlined text must stay as it is.
  const html = template.replace(STYLE, () => `<style>${css}</style>`).replace(SCRIPT, () => `<script>${js}</script>`);
  const csp = [
    "default-src 'none'",
    `style-src ${hash(css)}`,
    `script-src ${hash(js)}`,
    "connect-src 'self'",
    'img-src data:',
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
  page = { html, csp };
  return page;
}
