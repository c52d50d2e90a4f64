import type { OpHandlers } from '../ops/context.js';

/** Operation handlers by kind, given to the op runner through the Context; each loads only when an operation of its kind runs. */
export const opHandlers: OpHandlers = {
  'cluster.create': () => import('./cluster/ops/create.js').then((m) => m.clusterCreate),
  'cluster.start': () => import('./cluster/ops/start.js').then((m) => m.clusterStart),
  'cluster.stop': () => import('./cluster/ops/stop.js').then((m) => m.clusterStop),
  'cluster.delete': () => import('./cluster/ops/delete.js').then((m) => m.clusterDelete),
  'cluster.scale': () => import('./cluster/ops/scale.js').then((m) => m.clusterScale),
  'image.save': () => import('./cluster/ops/image-save.js').then((m) => m.imageSave),
  'host.init': () => import('./cluster/ops/host-init.js').then((m) => m.hostInit),
};
