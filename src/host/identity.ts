import { hostname } from 'node:os';

/** This host's name in the fleet store (what its agent is named by default). */
export function hostId(): string {
  return hostname();
}
