/**
 * A real browser for the console tests: Debian's Chromium, headless,
 * driven by playwright-core (which downloads no browser), with a fresh
 * profile each time.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';

export const CHROMIUM = process.env.UVFIO_CHROMIUM ?? '/usr/bin/chromium';

const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export interface Browser {
  context: BrowserContext;
  close(): Promise<void>;
}

/** Launches Chromium with a new profile directory, removed on close. */
export async function launchBrowser(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`no browser at ${CHROMIUM}: install Debian's chromium (see .ci/run), or set UVFIO_CHROMIUM`);
  const profile = mkdtempSync(join(tmpdir(), 'uvfio-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: FLAGS,
    viewport: { width: 1280, height: 1000 },
    timeout: 60_000,
  });
  return {
    context,
    async close() {
      await context.close().catch(() => {});
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** What canvasPixels uses of the page's globals. */
export interface PageGlobals {
  document: {
    querySelector(selector: string): {
      width: number;
      height: number;
      textContent: string | null;
      getContext(kind: '2d'): { getImageData(x: number, y: number, w: number, h: number): { data: Uint8ClampedArray } };
    } | null;
  };
  btoa(text: string): string;
}

/** Every pixel of the page's canvas for `uuid`, as RGB. */
export async function canvasPixels(page: Page, uuid: string): Promise<{ width: number; height: number; rgb: Uint8Array }> {
  const { width, height, data } = await page.evaluate((u) => {
    // Runs in the page (the tests are compiled without the DOM's types).
    const page = globalThis as unknown as PageGlobals;
    const c = page.document.querySelector(`canvas[data-uuid="${u}"]`)!;
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let s = '';
    for (let i = 0; i < d.length; i += 4) s += String.fromCharCode(d[i]!, d[i + 1]!, d[i + 2]!);
    return { width: c.width, height: c.height, data: page.btoa(s) };
  }, uuid);
  return { width, height, rgb: new Uint8Array(Buffer.from(data, 'base64')) };
}
