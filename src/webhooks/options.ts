// The options of webhooks and the push fallback (protocol.md section 15): their table rows and their checks.
import type { Option } from '../option.js';
import { urlProblem } from '../option.js';

/** Every event a backend may receive (WEBHOOK_EVENTS). */
export const WEBHOOK_EVENT_TYPES = [
  'user.online',
  'user.offline',
  'notification.unread',
  'connection.opened',
  'connection.closed',
  'channel.subscribed',
  'channel.unsubscribed',
] as const;
export type WebhookEventType = (typeof WEBHOOK_EVENT_TYPES)[number];

export interface WebhookConfig {
  readonly webhookUrl: string | undefined;
  readonly webhookEvents: readonly WebhookEventType[];
  readonly webhookSecret: readonly string[] | undefined;
  readonly pushWebhookUrl: string | undefined;
  readonly pushDelayMs: number;
  readonly pushUnreadDelayMs: number;
  readonly pushCoalesceMs: number;
  readonly webhookTimeoutMs: number;
  readonly webhookMaxAttempts: number;
  readonly webhookRetryBaseMs: number;
  readonly webhookRetryMaxMs: number;
  readonly webhookQueueMax: number;
  readonly webhookConcurrency: number;
  readonly webhookClaimIdleMs: number;
  readonly devWebhooks: boolean;
}

export const WEBHOOK_OPTIONS: readonly Option<keyof WebhookConfig>[] = [
  { key: 'webhookUrl', env: 'WEBHOOK_URL', kind: 'string', default: undefined, doc: 'The app backend\'s webhook endpoint: the events of WEBHOOK_EVENTS are POSTed to it, signed (Standard Webhooks, WEBHOOK_SECRET), retried (protocol.md section 15). `https://` unless in dev mode or the host is a loopback address. Unset: no backend webhooks.' },
  { key: 'webhookEvents', env: 'WEBHOOK_EVENTS', kind: 'list', default: Object.freeze(['user.online', 'user.offline']), oneOf: WEBHOOK_EVENT_TYPES, doc: `Events sent to WEBHOOK_URL, comma separated, of ${WEBHOOK_EVENT_TYPES.join(', ')}.` },
  { key: 'webhookSecret', env: 'WEBHOOK_SECRET', kind: 'list', default: undefined, doc: 'Signing secret of WEBHOOK_URL and PUSH_WEBHOOK_URL: `whsec_` and the base64 of 24 to 64 random bytes (Standard Webhooks). Several, comma separated, while rotating: each signs, the receiver accepts any. Required with either URL (dev mode generates and prints one).' },
  { key: 'pushWebhookUrl', env: 'PUSH_WEBHOOK_URL', kind: 'string', default: undefined, doc: 'The app\'s push sender: a `notification.unread` event is POSTed to it for the notifications no device received within PUSH_DELAY_MS (or read within PUSH_UNREAD_DELAY_MS), one per user per PUSH_COALESCE_MS. `https://` unless in dev mode or a loopback host. Unset (and `notification.unread` not in WEBHOOK_EVENTS): no push tracking.' },
  { key: 'pushDelayMs', env: 'PUSH_DELAY_MS', kind: 'int', default: 5000, min: 0, max: 86400000, doc: 'A stored notification that no device acknowledged (`notifications:received`) within this many ms of being sent falls due for a push.' },
  { key: 'pushUnreadDelayMs', env: 'PUSH_UNREAD_DELAY_MS', kind: 'int', default: 0, min: 0, max: 604800000, doc: 'A notification received by a device but not read (`notifications:read`) within this many ms of that receipt falls due for a push too (`received: true`): a reminder. 0: off, a received notification is never pushed.' },
  { key: 'pushCoalesceMs', env: 'PUSH_COALESCE_MS', kind: 'int', default: 2000, min: 0, max: 3600000, doc: 'A user\'s push waits this long after its oldest pending notification fell due and carries every one due by then (a digest with a `count`); the next push of that user is at least this long after.' },
  { key: 'webhookTimeoutMs', env: 'WEBHOOK_TIMEOUT_MS', kind: 'int', default: 5000, min: 10, max: 60000, doc: 'Time a webhook receiver has to answer one attempt; past it the attempt failed (retried).' },
  { key: 'webhookMaxAttempts', env: 'WEBHOOK_MAX_ATTEMPTS', kind: 'int', default: 8, min: 1, max: 100, doc: 'Attempts of one event (timeouts, network errors, 429 and 5xx are retried; any other status is not); past them it is logged and counted as `exhausted`.' },
  { key: 'webhookRetryBaseMs', env: 'WEBHOOK_RETRY_BASE_MS', kind: 'int', default: 1000, min: 1, max: 600000, doc: 'First retry delay; the n-th waits a random time up to min(WEBHOOK_RETRY_MAX_MS, base x 2^(n-1)) (full jitter), or Retry-After (seconds) when a 429 or 503 answer has one.' },
  { key: 'webhookRetryMaxMs', env: 'WEBHOOK_RETRY_MAX_MS', kind: 'int', default: 300000, min: 1, max: 86400000, doc: 'Longest wait between two attempts.' },
  { key: 'webhookQueueMax', env: 'WEBHOOK_QUEUE_MAX', kind: 'int', default: 100000, min: 1, max: 100000000, doc: 'Events waiting per destination (memory on one node, a Redis Stream in cluster mode); past it a new event is logged and counted as `dropped` (and due pushes stay pending until there is room).' },
  { key: 'webhookConcurrency', env: 'WEBHOOK_CONCURRENCY', kind: 'int', default: 16, min: 1, max: 1000, doc: 'Requests in flight per destination per node (each holds a socket: counted in the open-files reserve).' },
  { key: 'webhookClaimIdleMs', env: 'WEBHOOK_CLAIM_IDLE_MS', kind: 'int', default: 30000, min: 100, max: 3600000, doc: 'Cluster mode: an event held by a node that stopped renewing it (it died) for this long is sent by another node.' },
  { key: 'devWebhooks', env: 'DEV_WEBHOOKS', kind: 'bool', default: false, doc: `Dev mode only, with neither URL set: every event (${WEBHOOK_EVENT_TYPES.join(', ')}) and the push fallback go to the server's own receiver (\`/dev/webhooks\`, loopback, signed with a generated secret), shown in the demo page's webhook log. For trying webhooks on a laptop (\`npm start -- --dev --dev-webhooks\`).` },
];

/** The checks that need several options at once. */
export function webhookProblems(c: WebhookConfig, dev: boolean): string[] {
  const problems: string[] = [];
  const why = 'the events carry who is online and what users were told';
  for (const [name, url] of [['WEBHOOK_URL', c.webhookUrl], ['PUSH_WEBHOOK_URL', c.pushWebhookUrl]] as const) {
    const p = url === undefined ? undefined : urlProblem(name, url, dev, why);
    if (p !== undefined) problems.push(p);
  }
  for (const s of c.webhookSecret ?? []) {
    const key = s.startsWith('whsec_') ? Buffer.from(s.slice(6), 'base64') : undefined;
    if (key === undefined || key.length < 24 || key.length > 64 || !/^[A-Za-z0-9+/]+={0,2}$/.test(s.slice(6))) {
      problems.push('WEBHOOK_SECRET must be `whsec_` and the base64 of 24 to 64 bytes (e.g. `node -e "console.log(\'whsec_\' + crypto.randomBytes(32).toString(\'base64\'))"`)');
      break;
    }
  }
  if (!dev && c.webhookSecret === undefined && (c.webhookUrl !== undefined || c.pushWebhookUrl !== undefined)) {
    problems.push('WEBHOOK_URL and PUSH_WEBHOOK_URL need WEBHOOK_SECRET (receivers verify every event by it)');
  }
  if (c.devWebhooks && !dev) problems.push('DEV_WEBHOOKS needs dev mode (--dev): it sends every event to this server itself');
  if (c.webhookRetryMaxMs < c.webhookRetryBaseMs) problems.push(`WEBHOOK_RETRY_MAX_MS (${c.webhookRetryMaxMs}) must be at least WEBHOOK_RETRY_BASE_MS (${c.webhookRetryBaseMs})`);
  return problems;
}
