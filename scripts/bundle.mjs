// Bundles dist/ as rolldown.config.mjs says, printing nothing but warnings and errors (the CLI lists every chunk).
import { build } from 'rolldown';
import config from '../rolldown.config.mjs';

for (const options of Array.isArray(config) ? config : [config]) await build({ ...options, logLevel: 'warn' });
