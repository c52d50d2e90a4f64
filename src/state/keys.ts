/**
 * Every etcd key knarr reads or writes is built here, under /knarr/<fleet>/
 * (a fleet is a table, as in docklet). Nothing else concatenates key paths.
 */
/** 2: per-host data moved from hosts/<host>/... to hostdata/<host>/..., and the per-host pending index of operations. */
export const SCHEMA_VERSION = '2';

export function fleetKeys(fleet: string) {
  const root = `/knarr/${fleet}`;
  return {
    root: `${root}/`,
    schema: `${root}/meta/schema`,
    createdAt: `${root}/meta/created-at`,
    /** Bare host records only: every agent lists them on each pass, so nothing else is filed under them. */
    hosts: `${root}/hosts/`,
    host: (host: string) => `${root}/hosts/${host}`,
    /** Everything else about a host (pools, dots, commits, remotes, images, ambassadors), read only by who needs that host's data. */
    hostData: (host: string) => `${root}/hostdata/${host}/`,
    /** Where schema 1 filed a host's data (under its record); moved to hostData by migrateHostData. */
    legacyHostData: (host: string) => `${root}/hosts/${host}/`,
    /** Present while the host's agent holds its lease: the host is up. */
    hostAlive: (host: string) => `${root}/alive/${host}`,
    alive: `${root}/alive/`,
    /** Each starting agent's join handshake (under its lease): waiting, init, work, ok or refused. */
    joins: `${root}/joins/`,
    join: (host: string) => `${root}/joins/${host}`,
    /** The token in the fleet's shared data directory, which a joining host proves it can read. */
    shareToken: `${root}/meta/share-token`,
    hostPools: (host: string) => `${root}/hostdata/${host}/pools/`,
    hostPool: (host: string, pool: string) => `${root}/hostdata/${host}/pools/${pool}`,
    hostDots: (host: string) => `${root}/hostdata/${host}/dots/`,
    hostDot: (host: string, dot: string) => `${root}/hostdata/${host}/dots/${dot}`,
    hostDotCommits: (host: string, dot: string) => `${root}/hostdata/${host}/dot-commits/${dot}/`,
    hostDotCommit: (host: string, dot: string, id: string) => `${root}/hostdata/${host}/dot-commits/${dot}/${id}`,
    /** A clone's history before it: the commits of the dot it came from, up to the one it was cloned at, newest first. */
    hostDotHistory: (host: string, dot: string) => `${root}/hostdata/${host}/dot-history/${dot}`,
    remotes: (host: string) => `${root}/hostdata/${host}/remotes/`,
    remote: (host: string, name: string) => `${root}/hostdata/${host}/remotes/${name}`,
    /** A job's intent (proc): written before it starts. */
    jobs: `${root}/jobs/`,
    job: (name: string) => `${root}/jobs/${name}`,
    /** A job's actual state (ps): written once it runs. */
    ps: `${root}/ps/`,
    psEntry: (name: string) => `${root}/ps/${name}`,
    /** What happened to a job, kept after it is removed (hosts it ran on, exits, moves). */
    jobHistory: (name: string) => `${root}/job-history/${name}/`,
    jobHistories: `${root}/job-history/`,
    /** The port of each service the host's ambassador forwards to, kept so linked jobs keep their address. */
    ambassadors: (host: string) => `${root}/hostdata/${host}/ambassadors/`,
    ambassador: (host: string, service: string) => `${root}/hostdata/${host}/ambassadors/${service}`,
    /** Durable operations: the record of each, and (under its runner's lease) who runs it now. */
    ops: `${root}/ops/`,
    op: (id: string) => `${root}/ops/${id}`,
    opClaim: (id: string) => `${root}/op-claims/${id}`,
    /** The operations of a host not yet ended (value: the parent's id, or empty), written and removed with the record. */
    opsPendingAll: `${root}/ops-pending/`,
    opsPending: (host: string) => `${root}/ops-pending/${host}/`,
    opPending: (host: string, id: string) => `${root}/ops-pending/${host}/${id}`,
    /** LXC clusters by user and name; users' subnets and the addresses taken in them. */
    clusters: `${root}/clusters/`,
    userClusters: (user: string) => `${root}/clusters/${user}/`,
    cluster: (user: string, name: string) => `${root}/clusters/${user}/${name}`,
    userSubnet: (user: string) => `${root}/users/${user}/subnet`,
    userAddress: (user: string, ip: string) => `${root}/users/${user}/addresses/${ip}`,
    userAddresses: (user: string) => `${root}/users/${user}/addresses/`,
    subnets: `${root}/subnets/`,
    subnet: (cidr: string) => `${root}/subnets/${cidr.replace('/', '_')}`,
    /** Capacity held for a cluster node on a host while an operation creates or moves it (Cloud48's placeholder). */
    placeholders: `${root}/placeholders/`,
    hostPlaceholders: (host: string) => `${root}/placeholders/${host}/`,
    placeholder: (host: string, op: string, container: string) => `${root}/placeholders/${host}/${op}/${container}`,
    /** Held (under a lease) by whoever is placing cluster nodes: one placement at a time, so two never book the same room. */
    placementLock: `${root}/locks/placement`,
    /** Base images on a host. */
    hostImages: (host: string) => `${root}/hostdata/${host}/images/`,
    hostImage: (host: string, name: string) => `${root}/hostdata/${host}/images/${name}`,
    /** Environments (roles, members, state), each changed only by compare-and-swap; their history lines apart. */
    envs: `${root}/envs/`,
    env: (name: string) => `${root}/envs/${name}`,
    envHistory: (name: string) => `${root}/env-history/${name}/`,
    /** What each host's agent serves as an environment's balancer (a listener and the environment's service), by host and environment. */
    balancers: `${root}/balancers/`,
    hostBalancers: (host: string) => `${root}/balancers/${host}/`,
    balancer: (host: string, env: string) => `${root}/balancers/${host}/${env}`,
    services: `${root}/services/`,
    service: (name: string) => `${root}/services/${name}`,
    /** The fleet's event log: one key per event by its number (zero-padded, so keys sort in order), and the last number given. */
    events: `${root}/events/log/`,
    event: (seq: number) => `${root}/events/log/${String(seq).padStart(16, '0')}`,
    eventSeq: `${root}/events/seq`,
    /** Each host's last state in the log (up or down): a down is written once, by whoever sees it first. */
    eventHost: (host: string) => `${root}/events/hosts/${host}`,
    /** Monotonic counters (cluster ids, ...), bumped in one transaction. */
    counter: (kind: string) => `${root}/counters/${kind}`,
  };
}

/** Keys of the managed etcd cluster itself, outside every fleet: the cluster is shared by the fleets in it. */
export const etcdClusterKeys = {
  /** The fleet CA's key, sealed with the join token's secret: a joining host signs its member certificate with it. */
  caKey: '/knarr-etcd/pki/ca-key',
  /** Held (under a lease) by the host joining: one learner at a time. */
  joinLock: '/knarr-etcd/join-lock',
  /** Held (under a lease) by the agent defragmenting its member: one member of the cluster at a time. */
  defragLock: '/knarr-etcd/defrag-lock',
} as const;
