// Headless Chromium for the browser tests, driven by puppeteer-core (no browser download): Debian's `chromium`
// package (or $GLM4V_CHROMIUM), with WebGPU enabled and everything that would reach the network turned off.

import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import puppeteer, { type Browser } from 'puppeteer-core';

const CANDIDATES = [
  '/usr/bin/chromium',
  '/usr/bin/chromium-browser',
  '/usr/bin/google-chrome',
  '/usr/bin/google-chrome-stable',
];

export const CHROMIUM_FLAGS = [
  '--enable-unsafe-webgpu',
  '--no-sandbox',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-default-apps',
  '--mute-audio',
];

/** The Chromium to use, or undefined with the reason none can be used. */
export function findChromium(): { path?: string; reason?: string } {
  const env = process.env.GLM4V_CHROMIUM;
  if (env) return existsSync(env) ? { path: env } : { reason: `GLM4V_CHROMIUM=${env} does not exist` };
  const path = CANDIDATES.find((p) => existsSync(p));
  return path
    ? { path }
    : {
        reason: `no Chromium found (looked for ${CANDIDATES.join(', ')}); install Debian's chromium (bash tools/setup.sh does) or set GLM4V_CHROMIUM`,
      };
}

export interface Chromium {
  browser: Browser;
  close(): Promise<void>;
}

/** Launches headless Chromium with a fresh profile, removed again by close(). */
export async function launchChromium(path: string): Promise<Chromium> {
  const profile = await mkdtemp(join(tmpdir(), 'glm4v-chromium-'));
  const browser = await puppeteer.launch({
    executablePath: path,
    headless: true,
    args: [...CHROMIUM_FLAGS, `--user-data-dir=${profile}`],
    defaultViewport: { width: 1100, height: 900 },
  });
  return {
    browser,
    close: async () => {
      await browser.close().catch(() => undefined);
      await rm(profile, { recursive: true, force: true });
    },
  };
}
