// Finds a Chromium for the browser test: CHROMIUM_PATH, or Debian's `chromium` and friends.
import fs from 'node:fs/promises';

const CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome', '/usr/bin/google-chrome-stable'];

/** The first executable among `preferred` and the usual places, or undefined. */
export async function findChromium(preferred: string | undefined): Promise<string | undefined> {
  for (const candidate of preferred ? [preferred] : CANDIDATES) {
    try {
      await fs.access(candidate, fs.constants.X_OK);
      return candidate;
    } catch {
      // not here; try the next
    }
  }
  return undefined;
}

/** Chromium refuses to run as root with its sandbox on (as in CI containers). */
export function chromiumArgs(): string[] {
  return process.getuid?.() === 0 ? ['--no-sandbox'] : [];
}
