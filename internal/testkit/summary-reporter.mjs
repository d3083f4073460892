// A reporter for node's test runner (`--test-reporter`) that writes one JSON line: the totals
// node itself prints at the end of its TAP ("# tests 140", "# pass 140" …), for the one-line
// summary `npm test` ends with (summary.ts). Plain JavaScript because node loads reporters
// before tsx's loader is in place.

const TOTALS = /^(tests|suites|pass|fail|cancelled|skipped|todo|duration_ms) (\d+(?:\.\d+)?)$/;

/** @param {AsyncIterable<{ type: string, data: { nesting?: number, message?: string } }>} source */
export default async function* summaryReporter(source) {
  /** @type {Record<string, number>} */
  const totals = {};
  for await (const event of source) {
    // The run's totals are the root's last diagnostics; later ones win.
    if (event.type !== 'test:diagnostic' || event.data.nesting !== 0) continue;
    const match = TOTALS.exec(event.data.message ?? '');
    if (match) totals[match[1]] = Number(match[2]);
  }
  yield `${JSON.stringify(totals)}\n`;
}
