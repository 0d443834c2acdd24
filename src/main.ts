// Composition root: config -> logger -> backplane -> server -> listen; dev credentials; signals.
import { randomBytes } from 'node:crypto';
import pino from 'pino';
import { cliInfo } from './cli.js';
import { ConfigError, loadConfig, type Config } from './config.js';
import { createBackplane } from './seams/backplane/index.js';
import { loadChannels } from './wire/topics.js';

type Server = import('./edge/server.js').StorywireServer;

async function main(): Promise<void> {
  // --help and --version answer without a configuration (no JWT key needed to read the help).
  const info = cliInfo(process.argv.slice(2));
  if (info !== undefined) {
    process.stdout.write(info);
    return;
  }
  const { config, devApiKey } = configure();
  const log = pino({ level: config.logLevel });
  // Imported here so that a missing native uWS binary is reported as a clean start-up error.
  let createServer: typeof import('./edge/server.js').createServer;
  try {
    ({ createServer } = await import('./edge/server.js'));
  } catch (err) {
    log.fatal({ err }, (err as Error).message);
    process.exit(1);
  }
  // Without Redis at start the node still serves its own connections, degraded, and joins when it can.
  const channels = loadChannels(config);
  const backplane = await createBackplane(config, log, undefined, channels.historyLimits, channels.longestHistoryTtlMs);
  let server: Server;
  try {
    server = createServer(config, { logger: log, backplane });
  } catch (err) {
    // CHANNELS_FILE is read here: its problems are a configuration error, named one per line.
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`storywire: ${err.message}\n`);
    process.exit(1);
  }
  const port = await server.listen();
  if (config.notifyPolicy === 'any') {
    log.warn(`NOTIFY_POLICY=any${process.env['NOTIFY_POLICY'] === undefined ? ' (the dev-mode default)' : ''}: any user may send notifications to any user (spam, phishing, inbox flooding). Set NOTIFY_POLICY=backend or proxy for a real deployment.`);
  }
  const admin = server.adminPort === undefined ? {} : { admin: hostPort(config.adminHost, server.adminPort) };
  log.info({ address: hostPort(config.host, port), ...admin, port, host: config.host, path: config.wsPath, nodeId: server.nodeId, backplane: backplane.kind, dev: config.dev }, 'storywire listening');
  if (!config.dev && config.allowedOrigins === undefined) {
    log.warn('production without ALLOWED_ORIGINS: any web page may open a connection with a user\'s token (set ALLOWED_ORIGINS to your sites)');
  }
  await printCredentials(config, devApiKey, server, port, log);
  onSignals(config, server, log);
}

/** The process's configuration, with a generated API key in dev mode only; a bad one exits 1 with every problem named. */
function configure(): { config: Config; devApiKey: boolean } {
  try {
    const config = loadConfig(process.env, process.argv.slice(2));
    // CHANNELS_FILE checked here too: its problems are configuration errors, named one per line.
    loadChannels(config);
    if (!config.dev || config.apiKey !== undefined) return { config, devApiKey: false };
    return { config: Object.freeze({ ...config, apiKey: randomBytes(24).toString('base64url') }), devApiKey: true };
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`storywire: ${err.message}\n`);
    process.exit(1);
  }
}

/** Dev mode: the generated API key and a token that works, printed with ready-to-paste commands. */
async function printCredentials(config: Config, devApiKey: boolean, server: Server, port: number, log: pino.Logger): Promise<void> {
  if (devApiKey) {
    const base = server.adminPort === undefined ? `http://${urlHost(config.host)}:${port}` : `http://${urlHost(config.adminHost)}:${server.adminPort}`;
    printLines([
      '',
      '  storywire dev API key (backend HTTP API and /metrics; set API_KEY to choose one):',
      `    key:     ${config.apiKey}`,
      `    try:     curl -H "Authorization: Bearer ${config.apiKey}" -H "content-type: application/json" \\`,
      `               -d '{"id":"1","title":"Le Petit Prince"}' ${base}/v1/stories`,
      '',
    ]);
  }
  // Without API_KEY outside dev mode the server itself warns that the API is disabled.
  if (!config.dev) return;
  if (/prod/i.test(process.env['NODE_ENV'] ?? '')) log.warn(`DEV MODE although NODE_ENV=${process.env['NODE_ENV']}: storywire does not read NODE_ENV; dev mode is on because --dev or STORYWIRE_DEV asked for it`);
  if (!server.devMode) {
    log.warn('DEV MODE (--dev / STORYWIRE_DEV): relaxed defaults (NOTIFY_POLICY any, public presence, demo page). Never run like this in production.');
    return;
  }
  const token = await server.signDevToken('demo', ['stories:publish']);
  const url = `ws://${urlHost(config.host)}:${port}${config.wsPath}`;
  log.warn('DEV MODE (--dev / STORYWIRE_DEV) without JWT_SECRET, JWT_PUBLIC_KEY or JWT_JWKS_URL: tokens are signed with a random secret that dies with this process, and GET /dev/token mints them for loopback peers. Never run like this in production.');
  printLines([
    '',
    '  storywire dev credentials (valid 24 h, user "demo", may publish stories):',
    `    token:   ${token}`,
    `    connect: npx wscat -c "${url}?token=${token}"`,
    `    browser: new WebSocket("${url}", ["storywire.v1", "bearer.${token}"])`,
    ...(config.demoPage ? [`    demo:    http://${urlHost(config.host)}:${port}/  (open it in two tabs with ?user=alice and ?user=bob)`] : []),
    '',
  ]);
}

/** SIGTERM / SIGINT: a graceful shutdown (DRAIN_MS), bounded by SHUTDOWN_TIMEOUT_MS. */
function onSignals(config: Config, server: Server, log: pino.Logger): void {
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal, drainMs: config.drainMs }, 'shutting down: draining connections');
    const force = setTimeout(() => {
      log.error({ timeoutMs: config.shutdownTimeoutMs }, 'shutdown timed out: exiting anyway');
      process.exit(1);
    }, config.shutdownTimeoutMs);
    server.shutdown().then(
      () => {
        clearTimeout(force);
        log.info('shutdown complete');
        process.exit(0);
      },
      (err: unknown) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

/** `host:port` as a listener is written: IPv6 in brackets. */
function hostPort(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/** The host to put in a URL that reaches this listener from the same machine. */
function urlHost(host: string): string {
  if (host === '0.0.0.0') return 'localhost';
  if (host === '::') return '[::1]';
  return host.includes(':') ? `[${host}]` : host;
}

/** Writes the lines to stdout, the last one ended by a newline too. */
function printLines(lines: string[]): void {
  process.stdout.write(`${lines.join('\n')}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`storywire: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
