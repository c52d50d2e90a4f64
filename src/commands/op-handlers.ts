import type { OpHandlers } from '../ops/context.js';

/** Operation handlers by kind, given to the op runner through the Context; each loads only when an operation of its kind runs. */
export const opHandlers: OpHandlers = {
  'cluster.create': () => import('./cluster/ops.js').then((m) => m.clusterCreate),
  'cluster.start': () => import('./cluster/ops.js').then((m) => m.clusterStart),
  'cluster.stop': () => import('./cluster/ops.js').then((m) => m.clusterStop),
  'cluster.delete': () => import('./cluster/ops.js').then((m) => m.clusterDelete),
  'cluster.scale': () => import('./cluster/ops.js').then((m) => m.clusterScale),
  'image.save': () => import('./cluster/ops.js').then((m) => m.imageSave),
  'host.init': () => import('./cluster/ops.js').then((m) => m.hostInit),
};
