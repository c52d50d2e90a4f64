// Rounds of a knarr-against-plain benchmark, and what they come to.

export const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

/**
 * One warm-up of each side (not counted: the first containers on a new engine, an agent's first operation are cold), then
 * rounds with the two sides in turns. Each side pushes its time to knarr or plain (and whatever else it keeps to the
 * series); the warm-up's entries are dropped from every one.
 */
export async function pairedRounds(sides, rounds, knarr, plain, series = []) {
  await sides.knarr('w');
  await sides.plain('w');
  for (const s of [knarr, plain, ...series]) s.pop();
  for (let round = 0; round < rounds; round++) for (const side of round % 2 ? ['plain', 'knarr'] : ['knarr', 'plain']) await sides[side](round);
  const kn = median(knarr);
  const pl = median(plain);
  // Each round's pair runs back to back: on a machine whose load moves between rounds, their ratio is the steadier one.
  const ratio = median(knarr.map((x, i) => x / plain[i]));
  console.log(`per round, seconds (knarr | plain): ${knarr.map((x, i) => `${x.toFixed(2)} | ${plain[i].toFixed(2)}`).join(', ')}`);
  return { kn, pl, ratio };
}
