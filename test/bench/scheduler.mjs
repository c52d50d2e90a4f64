// The scheduler placing jobs on simulated hosts, in process: placements a second at 10,000 jobs on
// 10,000 hosts (target at least 20,000/s), and how the time per placement grows from 100 to 10,000 hosts.
// A report, not a gate: exits 0 once measured; the last line says PASS/FAIL.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const mod = fileURLToPath(new URL('../../dist/core/scheduler.js', import.meta.url));
if (!existsSync(mod)) {
  console.error('scheduler: build first (npm run bench does)');
  process.exit(1);
}
const { Scheduler } = await import(mod);
const GiB = 1024 ** 3;
const TAGS = ['ssd', 'hdd', 'eu', 'us', 'gpu'];

function hosts(n) {
  return Array.from({ length: n }, (_, i) => ({
    name: `host${i}`,
    tags: [TAGS[i % 2], TAGS[2 + (i % 2)], ...(i % 50 === 0 ? ['gpu'] : [])],
    cpu: 16000,
    memory: 64 * GiB,
    usedCpu: (i * 37) % 8000,
    usedMemory: ((i * 13) % 32) * GiB,
    runningJobs: i % 20,
    ports: new Set(),
    draining: i % 97 === 0,
    up: i % 89 !== 0,
  }));
}
function jobs(n) {
  return Array.from({ length: n }, (_, i) => ({
    name: `job${i}`,
    cpu: 100 + (i % 5) * 100,
    memory: ((1 + (i % 4)) * GiB) / 4,
    ports: i % 10 === 0 ? [`${8000 + (i % 1000)}/tcp`] : [],
    tags: i % 3 === 0 ? ['ssd'] : i % 7 === 0 ? ['eu', 'ssd'] : [],
    fixed: false,
    history: i % 11 === 0 ? [`host${(i * 7) % n}`] : [],
  }));
}
function run(nHosts, nJobs, strategy) {
  const s = new Scheduler(hosts(nHosts), { strategy });
  const js = jobs(nJobs);
  const t = process.hrtime.bigint();
  let placed = 0;
  for (const j of js) if (s.place(j).host) placed++;
  const ms = Number(process.hrtime.bigint() - t) / 1e6;
  return { ms, placed, perSecond: (nJobs / ms) * 1000, usPerPlacement: (ms * 1000) / nJobs };
}

run(1000, 2000, 'spread'); // warm-up: let the JIT compile place()
console.log('scheduler: time per placement as hosts grow (2,000 jobs each, spread)');
const growth = [];
for (const n of [100, 1000, 10000]) {
  const r = run(n, 2000, 'spread');
  growth.push(r.usPerPlacement);
  console.log(`  ${String(n).padStart(6)} hosts: ${r.usPerPlacement.toFixed(2)} us/placement (${r.placed} placed)`);
}
const results = {};
for (const strategy of ['spread', 'binpack']) {
  const r = run(10000, 10000, strategy);
  results[strategy] = r;
  console.log(`  10,000 jobs on 10,000 hosts, ${strategy}: ${Math.round(r.perSecond)} placements/s (${r.placed} placed, ${r.ms.toFixed(0)} ms)`);
}
const worst = Math.min(results.spread.perSecond, results.binpack.perSecond);
console.log(
  `scheduler: ${Math.round(worst)} placements/s at 10,000 hosts (target 20000) ${worst >= 20000 ? 'PASS' : 'FAIL'}; growth 100 -> 10,000 hosts ` +
    `x${(growth[2] / growth[0]).toFixed(2)}`,
);
