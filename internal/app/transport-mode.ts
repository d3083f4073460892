// A tool run without --transport or TRANSPORT against a running server follows that server:
// `npm run stress` after `TRANSPORT=nats npm start` checks the inventory service's stock, as a
// user would expect, instead of failing with "use --transport nats".
import type { ApiClient } from '../client/api-client.ts';
import { loadConfig, type Config } from '../config/config.ts';

/** The config to run with, and the line to tell the user when it follows the server. */
export async function followServerTransport(
  config: Config, chosen: boolean, client: ApiClient, env: NodeJS.ProcessEnv,
): Promise<{ config: Config; note?: string }> {
  if (chosen) return { config };
  const running = await client.transport();
  if (running === undefined || running === config.transport) return { config };
  return {
    config: loadConfig({ ...env, TRANSPORT: running }),
    note: `the server at ${client.baseUrl} runs TRANSPORT=${running}: doing the same (--transport to choose)`,
  };
}
