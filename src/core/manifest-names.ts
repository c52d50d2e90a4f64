import { COMMIT_ID_RE, DEFAULT_SUBDOT, parseDotRef, validateBranch } from './dots.js';
import { ConflictError } from './errors.js';
import type { Manifest } from './remote.js';

/** A subdot's directory as a dot keeps it: the bare dot's, or a name a DOT.SUBDOT could give. */
export function isSubdotDir(sub: string): boolean {
  if (sub === DEFAULT_SUBDOT) return true;
  try {
    return parseDotRef('subdot', `x.${sub}`).subdot === sub;
  } catch {
    return false;
  }
}

/** The names a remote's manifest gives (its dot, branches, subdots, commit ids and records) as strictly as a command line's. */
export function checkManifestNames(m: Manifest, dot: string, remote: string): void {
  const bad = (what: string) =>
    new ConflictError(`remote ${remote}'s manifest of ${dot} is not to be trusted: ${what}`, { hint: 'push the dot there again from a host that has it' });
  if (m.dot !== dot) throw bad(`it names dot ${JSON.stringify(m.dot)}`);
  for (const b of Object.keys(m.branches)) {
    try {
      validateBranch('branch', b);
    } catch {
      throw bad(`branch ${JSON.stringify(b)}`);
    }
  }
  if (!Array.isArray(m.subdots)) throw bad('its subdots are not a list');
  for (const sub of m.subdots) if (!isSubdotDir(sub)) throw bad(`subdot ${JSON.stringify(sub)}`);
  for (const [id, entry] of Object.entries(m.commits)) {
    if (!COMMIT_ID_RE.test(id) || entry?.record?.id !== id) throw bad(`commit ${JSON.stringify(id)}`);
    if (entry.record.dot !== dot) throw bad(`commit ${id} belongs to dot ${JSON.stringify(entry.record.dot)}`);
    if (entry.base !== null && !COMMIT_ID_RE.test(entry.base)) throw bad(`commit ${id}'s base ${JSON.stringify(entry.base)}`);
  }
  for (const [b, { commits }] of Object.entries(m.branches))
    for (const id of commits) if (!m.commits[id]) throw bad(`branch ${b} lists commit ${id}, which it does not hold`);
}
