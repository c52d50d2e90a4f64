import { connectEtcd3 } from '../../src/state/etcd3-store.js';
import { storeContract } from '../harness/store-contract.js';
import { haveTools, integration } from '../harness/tools.js';

const run = integration('store contract (etcd3 client)', haveTools('etcd', 'etcdctl', 'openssl'), 'etcd, etcdctl or openssl is not installed');

// The agent's etcd3 client: 1 s per attempt on a member, 8 s per call (a daemon rides out an election). With no lease
// kept, its watches notice a frozen member by HTTP/2 pings, which etcd takes every 5 s at most (6 s, plus the reconnect);
// with one, an unanswered renewal moves them at once. The kept lease is 5 s, as the gateway's: 2 s and then 3 s lapsed
// once each under CI's load with the leader frozen (its election plus the move off it); the agent's default is 10 s.
if (run)
  storeContract('the etcd3 client', (endpoints, options) => connectEtcd3(endpoints, options), {
    deadlineMs: 9500,
    watchFailoverMs: 7500,
    keptWatchFailoverMs: 3000,
    keptLeaseTtlSeconds: 5,
  });
