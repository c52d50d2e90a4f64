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
    /** The fleet CA, the join CA (its key is the token's secret), this member's and knarr's client certificates. */
    etcdPki: {
      dir: `${stateDir}/etcd/pki`,
      caCert: `${stateDir}/etcd/pki/ca.crt`,
      caKey: `${stateDir}/etcd/pki/ca.key`,
      joinCert: `${stateDir}/etcd/pki/join.crt`,
      joinKey: `${stateDir}/etcd/pki/join.key`,
      /** The fleet CA and the join CA: what etcd accepts client certificates from. */
      trusted: `${stateDir}/etcd/pki/trusted.crt`,
      token: `${stateDir}/etcd/pki/token`,
      memberCert: `${stateDir}/etcd/pki/member.crt`,
      memberKey: `${stateDir}/etcd/pki/member.key`,
      clientCert: `${stateDir}/etcd/pki/client.crt`,
      clientKey: `${stateDir}/etcd/pki/client.key`,
    },
    /** A join's short-lived credentials while it runs; gone when it ends. */
    etcdJoining: `${stateDir}/etcd/joining`,
    etcdLog: `${stateDir}/log/etcd.log`,
    logDir: `${stateDir}/log`,
    /** Held by the command changing the dot: one at a time per dot on a host. */
    dotLock: (dot: string) => `${stateDir}/locks/dots/${dot}.lock`,
  };
}

/** The dataset (volume) on a pool that holds the managed etcd's data, as dm-linuxkit's <pool>/dotmesh-etcd. */
export const ETCD_VOLUME = 'knarr-etcd';
