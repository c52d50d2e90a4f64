import { connectEtcd } from '../../src/state/store.js';
import { storeContract } from '../harness/store-contract.js';
import { haveTools, integration } from '../harness/tools.js';

const run = integration('store contract (gateway client)', haveTools('etcd', 'etcdctl', 'openssl'), 'etcd, etcdctl or openssl is not installed');

// The CLI's gateway client: 1 s per attempt on a member, 4 s per call.
if (run) storeContract('the gateway client', (endpoints, options) => connectEtcd(endpoints, options));
