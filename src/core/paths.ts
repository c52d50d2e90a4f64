/** Every host-local path under the state directory; nothing else builds these. */
export function statePaths(stateDir: string) {
  return {
    poolsDir: `${stateDir}/pools`,
    poolRecord: (pool: string) => `${stateDir}/pools/${pool}.json`,
    defaultLoopFile: (pool: string) => `${stateDir}/pools/${pool}.img`,
    poolMountpoint: (pool: string) => `${stateDir}/mnt/${pool}`,
    etcdDir: `${stateDir}/etcd`,
    etcdState: `${stateDir}/etcd/server.json`,
    /** A restore in progress: what to finish if it was cut short. */
    etcdRestore: `${stateDir}/etcd/restore.json`,
    etcdLocalData: `${stateDir}/etcd/data`,
    etcdLog: `${stateDir}/log/etcd.log`,
    logDir: `${stateDir}/log`,
    /** Held by the command changing the dot: one at a time per dot on a host. */
    dotLock: (dot: string) => `${stateDir}/locks/dots/${dot}.lock`,
  };
}

/** The dataset (volume) on a pool that holds the managed etcd's data, as dm-linuxkit's <pool>/dotmesh-etcd. */
export const ETCD_VOLUME = 'knarr-etcd';
