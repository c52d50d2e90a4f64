// The environment every benchmark gives the commands it times.

/**
 * process.env less the operator's KNARR_* settings (they must not change what is measured) and
 * NODE_EXTRA_CA_CERTS: Node 20 reads and parses that bundle at every start (about 40 ms here),
 * a cost of the machine's set-up, not of knarr; a Debian host does not set it.
 */
export function benchEnv(extra = {}) {
  if (process.env.NODE_EXTRA_CA_CERTS && !benchEnv.noted) {
    benchEnv.noted = true;
    console.log('  (NODE_EXTRA_CA_CERTS is set here: left out of the timed commands, as on a plain Debian host)');
  }
  const kept = Object.entries(process.env).filter(([k]) => !k.startsWith('KNARR_') && k !== 'NODE_EXTRA_CA_CERTS');
  return { ...Object.fromEntries(kept), ...extra };
}
