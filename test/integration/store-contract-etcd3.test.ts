import { connectEtcd3 } from '../../src/state/etcd3-store.js';
import { storeContract } from '../harness/store-contract.js';
import { haveTools, integration } from '../harness/tools.js';

const run = integration('store contract (etcd3 client)', haveTools('etcd', 'etcdctl', 'openssl'), 'etcd, etcdctl or openssl is not installed');

// The agent's etcd3 client: 1 s per attempt on a member, 8 s per call (a daemon rides out an election). With no lease
// kept, its watches notice a frozen member by HTTP/2 pings, which etcd takes every 5 s at most (6 s, plus the reconnect);
// with one, an unanswered renewal moves them at once. The kept lease is 3 s, as the gateway's: with 2 s, a frozen leader's
// election on a loaded machine (CI) left a renewal no margin once.
if (run)
  storeContract('the etcd3 client', (endpoints, options) => connectEtcd3(endpoints, options), {
    deadlineMs: 9500,
    watchFailoverMs: 7500,
    keptWatchFailoverMs: 3000,
    keptLeaseTtlSeconds: 3,
  });
