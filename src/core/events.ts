import { relativeTime } from './time.js';
import type { OpRecord } from './ops.js';

/**
 * The fleet's event log: what happened (a job started, a host went down, an operation took a step),
 * kept in etcd as a bounded list, newest last. Events are notes for people: writing one never
 * decides anything, and a command whose event could not be written has still succeeded.
 */

export const EVENT_KINDS = ['job', 'op', 'host', 'dot', 'cluster', 'env'] as const;
export type EventKind = (typeof EVENT_KINDS)[number];

/** How many events the log keeps: each write trims what is older, in the same transaction. */
export const EVENT_LOG_SIZE = 1000;
/** How long a command waits, at most, for its event to be written before going on without it. */
export const EVENT_WRITE_TIMEOUT_MS = 1000;
/** How many of an object's events `show` commands list. */
export const SHOWN_EVENTS = 5;

export interface NewEvent {
  kind: EventKind;
  /** What it happened to: a job, host or dot name, an operation id, USER/CLUSTER. */
  object: string;
  /** Where it happened (the host whose agent saw it), or null when no host is concerned. */
  host: string | null;
  /** What happened, one word: started, exited, down, step, commit... */
  event: string;
  message: string;
}

export interface FleetEvent extends NewEvent {
  /** Its place in the log: each event gets the next number, so a follower reads on from the last it saw. */
  seq: number;
  at: string;
}

/** Which events to show: every field set must match. */
export interface EventFilter {
  kind?: EventKind;
  host?: string;
  object?: string;
  /** Events at or after this time (ms since the epoch). */
  since?: number;
}

export function matches(e: FleetEvent, f: EventFilter): boolean {
  return (
    (f.kind === undefined || e.kind === f.kind) &&
    (f.host === undefined || e.host === f.host) &&
    (f.object === undefined || e.object === f.object) &&
    (f.since === undefined || Date.parse(e.at) >= f.since)
  );
}

export const EVENT_COLUMNS = ['TIME', 'KIND', 'OBJECT', 'HOST', 'EVENT', 'MESSAGE'];

export function eventRow(e: FleetEvent, now = Date.now()): string[] {
  return [relativeTime(e.at, now), e.kind, e.object, e.host ?? '-', e.event, e.message || '-'];
}

/** Column widths of followed events: a line is printed as its event comes, before any later one's width is known. */
const FOLLOW_WIDTHS = [8, 7, 16, 10, 9];

/** One line of `events -f`, its columns padded to fixed widths (a longer value pushes the rest right). */
export function followLine(cells: string[]): string {
  return cells.map((c, i) => (i < FOLLOW_WIDTHS.length ? c.padEnd(FOLLOW_WIDTHS[i]!) : c)).join('  ');
}

/** The event an operation's end makes for its cluster: created, started, stopped, deleted, scaled; null for other kinds or an end that is no success. */
export function clusterEventOf(op: OpRecord): NewEvent | null {
  const verb = /^cluster\.(create|start|stop|delete|scale|suspend|resume|reboot|update|clone)$/.exec(op.kind)?.[1];
  const { user, name, size } = op.args as { user?: unknown; name?: unknown; size?: unknown };
  if (!verb || op.status !== 'done' || typeof user !== 'string' || typeof name !== 'string') return null;
  const event = {
    create: 'created',
    start: 'started',
    stop: 'stopped',
    delete: 'deleted',
    scale: 'scaled',
    suspend: 'suspended',
    resume: 'resumed',
    reboot: 'rebooted',
    update: 'updated',
    clone: 'cloned',
  }[verb]!;
  const { node, clone } = op.args as { node?: unknown; clone?: unknown };
  const what = [
    ...(verb === 'create' || verb === 'scale' ? [`${String(size)} node(s)`] : []),
    ...(typeof node === 'number' ? [`node ${node}`] : []),
    ...(typeof clone === 'string' ? [`to ${clone}`] : []),
  ];
  const message = [...what, `by ${op.id}`].join(', ');
  return { kind: 'cluster', object: `${user}/${name}`, host: op.host, event, message };
}

/** An operation's event: queued, running, step, done, failed, cancelled. */
export function opEvent(op: OpRecord, event: string, message = op.kind): NewEvent {
  return { kind: 'op', object: op.id, host: op.host, event, message };
}
