import { defineConfig } from 'vitest/config';

// CI sets KNARR_TEST_REPORT to collect a JSON report it turns into "N passed, N failed".
const report = process.env.KNARR_TEST_REPORT;

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/harness/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // One zfs-fuse daemon serves the whole run and stumbles on concurrent receives: files run one at a time.
    fileParallelism: false,
    reporters: report ? ['default', ['json', { outputFile: report }]] : ['default'],
  },
});
