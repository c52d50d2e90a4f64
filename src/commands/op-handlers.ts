import type { OpHandlers } from '../ops/context.js';

/** Operation handlers by kind, given to the op runner through the Context; each loads only when an operation of its kind runs. */
export const opHandlers: OpHandlers = {
  'cluster.create': () => import('./cluster/ops/create.js').then((m) => m.clusterCreate),
  'cluster.start': () => import('./cluster/ops/start.js').then((m) => m.clusterStart),
  'cluster.stop': () => import('./cluster/ops/stop.js').then((m) => m.clusterStop),
  'cluster.delete': () => import('./cluster/ops/delete.js').then((m) => m.clusterDelete),
  'cluster.scale': () => import('./cluster/ops/scale.js').then((m) => m.clusterScale),
  'cluster.suspend': () => import('./cluster/ops/suspend.js').then((m) => m.clusterSuspend),
  'cluster.resume': () => import('./cluster/ops/suspend.js').then((m) => m.clusterResume),
  'cluster.reboot': () => import('./cluster/ops/reboot.js').then((m) => m.clusterReboot),
  'cluster.update': () => import('./cluster/ops/update.js').then((m) => m.clusterUpdate),
  'cluster.clone': () => import('./cluster/ops/clone.js').then((m) => m.clusterClone),
  'cluster.migrate': () => import('./cluster/ops/migrate.js').then((m) => m.clusterMigrate),
  'cluster.migrate-in': () => import('./cluster/ops/migrate.js').then((m) => m.clusterMigrateIn),
  'cluster.migrate-drop': () => import('./cluster/ops/migrate.js').then((m) => m.clusterMigrateDrop),
  'cluster.undo-part': () => import('./cluster/ops/span.js').then((m) => m.undoPart),
  'image.save': () => import('./cluster/ops/image-save.js').then((m) => m.imageSave),
  'host.init': () => import('./cluster/ops/host-init.js').then((m) => m.hostInit),
  'host.evacuate': () => import('./host/evacuate.js').then((m) => m.hostEvacuateOp),
};
