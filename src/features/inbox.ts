// The notification inbox: the user's recent notifications from the personal topic's history, their read
// state from the read-state store, and read changes pushed to the user's other devices. What it parses and
// serves is cached per user (InboxCache), so that asking again costs no parse and no serialization.
import { ErrorCode, WireError } from '../wire/codes.js';
import type { HistoryStore } from '../seams/history/types.js';
import type { ReadState, ReadStateStore } from '../seams/readstate/types.js';
import type { PubSub } from '../pubsub/pubsub.js';
import type { UWS } from '../uws.js';
import { eventFrame } from '../wire/frames.js';
import { framePosition } from '../wire/position.js';
import { userTopic } from '../wire/topics.js';

export interface InboxItem {
  id: string;
  offset: number;
  read: boolean;
  [k: string]: unknown;
}

export interface InboxPage {
  notifications: InboxItem[];
  unreadCount: number;
  epoch: string;
  offset: number;
}

/** An inbox page as sent: its JSON and that JSON's UTF-8 size (what the history-read budget is charged). */
export interface InboxPageJson {
  json: string;
  bytes: number;
}

export interface InboxOptions {
  /** How many frames of the personal topic are kept: the inbox cannot hold more, nor a page list more. */
  historySize: number;
  /** User-sent notifications (`origin: "user"`) shown at most, the newest (NOTIFY_USER_SHARE of HISTORY_SIZE). */
  userShare?: number;
  /** Characters of parsed frames and serialized pages kept in the cache over all users (INBOX_CACHE_BYTES). */
  cacheBytes: number;
  /** Told every read once it is recorded (the push fallback: a read notification is never pushed). */
  onRead?: ((userId: string, change: { id: string } | { epoch: string; allUpTo: number }) => void) | undefined;
}

interface StoredFrame {
  type: string;
  offset: number;
  data: { id: string; [k: string]: unknown };
}

/** A stored notification, parsed once; a page adds its read flag. */
interface Parsed {
  data: StoredFrame['data'];
  id: string;
  offset: number;
  user: boolean;
}

/** One page as last served: valid while the frames, the position, the read state and the limit are the same. */
interface ServedPage {
  offset: number;
  limit: number;
  allUpTo: number;
  ids: ReadonlySet<string>;
  page: InboxPageJson;
}

interface Entry {
  epoch: string;
  /**
   * The frames last read, parsed, by offset (null: not a notification). A frame is named for good by its
   * epoch and offset (offsets are never reused within an epoch), so a hit needs no check of its bytes.
   */
  byOffset: Map<number, Parsed | null>;
  /** What the entry costs: the characters of its frames and of its served page. */
  cost: number;
  served: ServedPage | undefined;
}

/** What one read of the inbox found: the notifications shown (newest first) and the state they are read in. */
interface View {
  shown: Parsed[];
  read: ReadState;
  epoch: string;
  offset: number;
  /** The user's cache entry, taken: its served page is kept only when the frames are those it was made of. */
  entry: Entry;
  /** The characters of the frames the entry now holds parsed. */
  framesCost: number;
}

const isRead = (p: Parsed, read: ReadState) => p.offset <= read.allUpTo || read.ids.has(p.id);

function parse(frame: string): Parsed | null {
  const f = JSON.parse(frame) as StoredFrame;
  if (f.type !== 'notification:received') return null;
  return { data: f.data, id: f.data.id, offset: f.offset, user: f.data['origin'] === 'user' };
}

/** Parsed inboxes and served pages per user, least recently used dropped first past `maxCost` characters. */
export class InboxCache {
  private readonly entries = new Map<string, Entry>();
  private cost = 0;

  constructor(private readonly maxCost: number) {}

  /** The user's entry for `epoch` (one of another epoch is dropped), out of the cache until kept again. */
  take(userId: string, epoch: string): Entry {
    const e = this.entries.get(userId);
    if (e !== undefined) {
      this.entries.delete(userId);
      this.cost -= e.cost;
      e.cost = 0;
      if (e.epoch === epoch) return e;
    }
    return { epoch, byOffset: new Map(), cost: 0, served: undefined };
  }

  /** Puts an entry back at the newest end with what it costs; then drops the oldest while over the bound. */
  keep(userId: string, e: Entry, cost: number): void {
    e.cost = cost;
    this.cost += cost;
    this.entries.set(userId, e);
    for (const [key, old] of this.entries) {
      if (this.cost <= this.maxCost) break;
      this.entries.delete(key);
      this.cost -= old.cost;
    }
  }

  /** Users and characters held (for tests). */
  get size(): { users: number; cost: number } {
    return { users: this.entries.size, cost: this.cost };
  }
}

export class Inbox {
  private readonly historySize: number;
  private readonly userShare: number;
  private readonly onRead: InboxOptions['onRead'];
  readonly cache: InboxCache;

  constructor(
    private readonly history: HistoryStore,
    private readonly reads: ReadStateStore,
    private readonly pubsub: PubSub,
    options: InboxOptions,
  ) {
    this.historySize = options.historySize;
    this.userShare = options.userShare ?? options.historySize;
    this.cache = new InboxCache(options.cacheBytes);
    this.onRead = options.onRead;
  }

  /** A limit above the history size asks for no more than the history holds: it is answered as that size. */
  clamp(limit: number): number {
    return Math.min(limit, this.historySize);
  }

  private async fetch(userId: string): Promise<[string[], ReadState, { epoch: string; offset: number }]> {
    const topic = userTopic(userId);
    return Promise.all([this.history.latest(topic, this.historySize), this.reads.get(userId), this.history.position(topic)]);
  }

  /**
   * The inbox from what fetch() read, parsing only the frames the cache does not hold. Takes the user's cache
   * entry: the caller keeps it again in the same turn (`framesCost` plus its served page).
   */
  private view(userId: string, [frames, read, position]: Awaited<ReturnType<Inbox['fetch']>>): View {
    const entry = this.cache.take(userId, position.epoch);
    const before = entry.byOffset;
    const byOffset = new Map<number, Parsed | null>();
    let framesCost = 0;
    let hits = 0;
    const shown: Parsed[] = [];
    // Newest first: past the share, older user-sent ones are left out (a history that holds more than its
    // share, such as one written before the bound, still shows only the share beside the system ones).
    let users = 0;
    for (const f of frames) {
      const at = framePosition(f);
      const mine = at !== undefined && at.epoch === entry.epoch;
      let p = mine ? before.get(at.offset) : undefined;
      if (p === undefined) p = parse(f);
      else hits++;
      if (mine) {
        byOffset.set(at.offset, p);
        framesCost += f.length;
      }
      if (p === null || (p.user && ++users > this.userShare)) continue;
      shown.push(p);
    }
    entry.byOffset = byOffset;
    if (hits !== frames.length || before.size !== byOffset.size) entry.served = undefined;
    return { shown, read, epoch: position.epoch, offset: position.offset, entry, framesCost };
  }

  /** view() for a caller that needs no page served: the entry kept again as it is. */
  private async current(userId: string): Promise<View> {
    const v = this.view(userId, await this.fetch(userId));
    this.cache.keep(userId, v.entry, v.framesCost + (v.entry.served?.page.json.length ?? 0));
    return v;
  }

  private static page(v: View, limit: number): InboxPage {
    let unreadCount = 0;
    const notifications: InboxItem[] = [];
    for (const p of v.shown) {
      const read = isRead(p, v.read);
      if (!read) unreadCount++;
      if (notifications.length < limit) notifications.push({ ...p.data, offset: p.offset, read });
    }
    return { notifications, unreadCount, epoch: v.epoch, offset: v.offset };
  }

  /** The newest `limit` notifications (default 50, at most the history size), newest first, with the unread count of all stored ones. */
  async list(userId: string, limit = 50): Promise<InboxPage> {
    return Inbox.page(await this.current(userId), this.clamp(limit));
  }

  /** list() as JSON: the page served last, when nothing it shows has changed since; else serialized and kept. */
  async listJson(userId: string, limit = 50): Promise<InboxPageJson> {
    const v = this.view(userId, await this.fetch(userId));
    const n = this.clamp(limit);
    const s = v.entry.served;
    let page: InboxPageJson;
    if (s !== undefined && s.offset === v.offset && s.limit === n && s.allUpTo === v.read.allUpTo && sameIds(s.ids, v.read.ids)) page = s.page;
    else {
      const json = JSON.stringify(Inbox.page(v, n));
      page = { json, bytes: Buffer.byteLength(json) };
      v.entry.served = { offset: v.offset, limit: n, allUpTo: v.read.allUpTo, ids: v.read.ids, page };
    }
    this.cache.keep(userId, v.entry, v.framesCost + page.json.length);
    return page;
  }

  /** Marks one notification or all of them read; tells the user's other connections; returns the new unread count. */
  async markRead(userId: string, change: { id: string } | { all: true }, from?: UWS.WebSocket<unknown>): Promise<number> {
    const topic = userTopic(userId);
    // One read of the inbox: the new unread count follows from it and the change.
    const { shown, read, offset, epoch } = await this.current(userId);
    let event: { ids?: string[]; allUpTo?: number };
    let stillUnread: (p: Parsed) => boolean;
    if ('all' in change) {
      await this.reads.mark(userId, { allUpTo: offset });
      this.onRead?.(userId, { epoch, allUpTo: offset });
      event = { allUpTo: offset };
      stillUnread = (p) => !isRead(p, read) && p.offset > offset;
    } else {
      if (!shown.some((p) => p.id === change.id)) throw new WireError(ErrorCode.NOT_FOUND, `no notification ${change.id} in the inbox`, 404);
      await this.reads.mark(userId, { id: change.id });
      this.onRead?.(userId, { id: change.id });
      event = { ids: [change.id] };
      stillUnread = (p) => !isRead(p, read) && p.id !== change.id;
    }
    const unreadCount = shown.filter(stillUnread).length;
    await this.pubsub.emit('notifications:read', topic, eventFrame('notifications:read', topic, { ...event, unreadCount }), from);
    return unreadCount;
  }
}

function sameIds(a: ReadonlySet<string>, b: ReadonlySet<string>): boolean {
  if (a === b) return true;
  if (a.size !== b.size) return false;
  for (const id of a) if (!b.has(id)) return false;
  return true;
}
